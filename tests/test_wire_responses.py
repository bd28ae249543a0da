"""``openai.responses`` requests: bodies against the plain reference, incremental
sessions, artifacts and unsupported features. Reply parsing is in
``test_wire_responses_replies``, the items round trip in ``test_wire_responses_items``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt.message import canonical_tool, canonicalize
from srt.wire import build_body, get_format
from srt.wire.base import Target
from srt.wire.openai_responses import FORMAT, OpenAIResponses
from wire_reference_oa import (
    MODELS,
    PARAMS,
    conversation,
    responses_body,
    responses_tail,
    tool_def,
)

FMT = "openai.responses"


def canon(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(canonicalize(m)[0]) for m in msgs]


def canon_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(canonical_tool(t)) for t in tools]


def build(msgs: list[dict[str, Any]], model: str = "gpt-5", fmt: str = FMT, **kw: Any) -> bytes:
    return build_body(fmt, [canonicalize(m)[0] for m in msgs], model=model, **kw)


def inputs(msgs: list[dict[str, Any]], model: str = "gpt-5") -> list[Any]:
    items: list[Any] = json.loads(build(msgs, model))["input"]
    return items


# -- bodies ---------------------------------------------------------------------------


def test_registered() -> None:
    fmt = get_format(FMT)
    assert fmt is FORMAT
    assert isinstance(fmt, OpenAIResponses)
    assert (fmt.name, fmt.provider, fmt.splits_system, fmt.identity) == (
        FMT,
        "openai",
        False,
        False,
    )


def test_a_small_body_exactly() -> None:
    msgs = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"c":"P"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "assistant", "content": "18°C."},
    ]
    tools = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
    body = build(msgs, tools=canon_tools(tools), params={"store": False, "instructions": "x"})
    assert (
        body
        == (
            '{"model":"gpt-5","input":[{"role":"system","content":"Be brief."},'
            '{"role":"user","content":"Weather in Paris?"},'
            '{"type":"function_call","call_id":"c1","name":"w","arguments":"{\\"c\\":\\"P\\"}"},'
            '{"type":"function_call_output","call_id":"c1","output":"18C"},'
            '{"role":"assistant","content":"18°C."}],'
            '"tools":[{"type":"function","name":"w","parameters":{"type":"object"},'
            '"strict":false}],'
            '"store":false,"instructions":"x"}'
        ).encode()
    )


def test_empty_conversation_and_reserved_params() -> None:
    assert build([]) == b'{"model":"gpt-5","input":[]}'
    for key in ("model", "input", "tools"):
        with pytest.raises(srt.ConfigError):
            build([], params={key: 1})
    for model in ("", None, "\ud800"):
        with pytest.raises(srt.ConfigError):
            build([], model=model)  # type: ignore[arg-type]


def test_parts_and_tools_shapes() -> None:
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                {"type": "image_url", "image_url": {"url": "https://x/b.png", "detail": "low"}},
                {"type": "image", "data": b"\x89PNG", "media_type": "image/png"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "1"}] * 2},
    ]
    assert inputs(msgs) == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://x/a.png", "detail": "auto"},
                {"type": "input_image", "image_url": "https://x/b.png", "detail": "low"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,iVBORw==",
                    "detail": "auto",
                },
            ],
        },
        {"role": "assistant", "content": "a"},
        {"type": "function_call_output", "call_id": "c", "output": "11"},
    ]
    tool = {
        "type": "function",
        "function": {"strict": True, "parameters": {}, "description": "d", "name": "f"},
    }
    frag = FORMAT.tool_fragment(json.loads(canonical_tool(tool)))
    assert frag == b'{"type":"function","name":"f","description":"d","parameters":{},"strict":true}'
    # Responses- and Anthropic-shaped definitions are accepted through canonical_tool.
    for shape in ({"type": "function", "name": "f"}, {"name": "f", "input_schema": {}}):
        assert json.loads(FORMAT.tool_fragment(json.loads(canonical_tool(shape))))["name"] == "f"


def test_an_assistant_message_never_renders_empty() -> None:
    empty = {"role": "assistant", "content": ""}
    assert inputs([empty, empty]) == [empty, empty]
    assert inputs([{"role": "assistant", "content": []}]) == [empty]
    # Text parts are joined: the typed input takes output_text only in output items.
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert inputs([{"role": "assistant", "content": parts}]) == [
        {"role": "assistant", "content": "ab"}
    ]
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
    assert inputs([{"role": "assistant", "content": "", "tool_calls": [call]}]) == [
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": ""}
    ]


@settings(max_examples=200)
@given(
    conversation(),
    st.sampled_from(MODELS),
    st.lists(tool_def(), max_size=3),
    PARAMS,
)
def test_build_body_equals_reference(
    msgs: list[dict[str, Any]], model: str, tools: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    ctools = canon_tools(tools)
    body = build(msgs, model, tools=ctools, params=params)
    assert body == responses_body(canon(msgs), model=model, tools=ctools, params=params)
    json.loads(body)


def session_check(
    fmt: str,
    reference: Any,
    tail: Any,
    msgs: list[dict[str, Any]],
    model: str,
    tools: list[dict[str, Any]],
    params: dict[str, Any],
) -> None:
    """Append ``msgs`` one by one; every request equals the reference and extends the last."""
    ctools = canon_tools(tools)
    closing = tail(ctools, params)
    with tempfile.TemporaryDirectory() as d, srt.Runtime(Path(d) / "s.db") as rt:
        s = rt.session("s")
        prev = None
        for i in range(len(msgs) + 1):
            if i:
                s.append(msgs[i - 1])
            body = s.request(fmt, model=model, tools=tools, cache=False, **params)
            assert body == reference(canon(msgs[:i]), model=model, tools=ctools, params=params)
            assert body.endswith(closing)
            if prev is not None:
                assert body.startswith(prev[: len(prev) - len(closing)])
            prev = body
        again = s.request(fmt, model=model, tools=tools, cache=False, **params)
        assert again == prev
        assert s.last_build is not None and s.last_build.serialized == 0
        # A fresh runtime on the same file builds the same bytes cold.
    with tempfile.TemporaryDirectory() as d, srt.Runtime(Path(d) / "t.db") as rt:
        t = rt.session("t")
        t.append(*msgs)
        assert t.request(fmt, model=model, tools=tools, cache=False, **params) == prev


@settings(max_examples=30)
@given(
    conversation(max_turns=6),
    st.sampled_from(MODELS),
    st.lists(tool_def(), max_size=2),
    PARAMS,
)
def test_session_requests_equal_reference_and_extend(
    msgs: list[dict[str, Any]], model: str, tools: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    session_check(FMT, responses_body, responses_tail, msgs, model, tools, params)


def fifty_turns() -> list[list[dict[str, Any]]]:
    """A deterministic 50-turn conversation with tools, a tool-call loop and an image."""
    turns: list[list[dict[str, Any]]] = [[{"role": "system", "content": "You are terse."}]]
    for t in range(50):
        user: dict[str, Any] = {"role": "user", "content": f"turn {t}: next step? ✓"}
        if t == 7:
            user["content"] = [
                {"type": "text", "text": "what is in this image?"},
                {"type": "image", "data": bytes(range(64)), "media_type": "image/png"},
            ]
        turn = [user]
        if t % 5 == 2:  # a tool-call loop: three rounds of calls before the answer
            for r in range(3):
                calls = [
                    {
                        "id": f"call_{t}_{r}_{k}",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"q": t, "k": k})},
                    }
                    for k in range(1 + r % 2)
                ]
                turn.append({"role": "assistant", "content": None, "tool_calls": calls})
                turn.extend(
                    {"role": "tool", "tool_call_id": c["id"], "content": f"result {c['id']}"}
                    for c in calls
                )
        turn.append({"role": "assistant", "content": f'answer {t}\nwith "quotes" and \x00'})
        turns.append(turn)
    return turns


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}},
        },
    }
]


def test_fifty_turns(rt: srt.Runtime) -> None:
    s = rt.session("fifty")
    ctools = canon_tools(TOOLS)
    params = {"store": False, "temperature": 0}
    msgs: list[dict[str, Any]] = []
    prev = b""
    for turn in fifty_turns():
        s.append(*turn)
        msgs.extend(turn)
        body = s.request(FMT, model="gpt-5", tools=TOOLS, cache=False, **params)
        data = json.loads(body)
        assert data["model"] == "gpt-5"
        assert body == responses_body(canon(msgs), model="gpt-5", tools=ctools, params=params)
        assert s.last_build is not None
        assert s.last_build.serialized == len(turn)
        closing = responses_tail(ctools, params)
        assert body.startswith(prev[: len(prev) - len(closing)])
        prev = body
    # One item per message, but one per call for an assistant message with calls.
    assert len(data["input"]) == sum(len(m.get("tool_calls") or [m]) for m in msgs) == 181
    images = [p for it in data["input"] for p in it.get("content", []) if isinstance(p, dict)]
    assert any(p["type"] == "input_image" for p in images)


# -- artifacts ------------------------------------------------------------------------

REASONING = {
    "type": "reasoning",
    "id": "rs_1",
    "encrypted_content": "gAAAA-opaque",
    "summary": [{"type": "summary_text", "text": "thinking"}],
}


def with_reasoning(provider: str = "openai", model: str = "model-a") -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "answer",
        "artifacts": [
            {"provider": provider, "model": model, "type": "reasoning", "data": REASONING}
        ],
    }


def test_artifacts_replayed_for_their_model_and_stripped_for_another(rt: srt.Runtime) -> None:
    s = rt.session("a")
    s.append({"role": "user", "content": "q"}, with_reasoning(), {"role": "user", "content": "q2"})
    a = json.loads(s.request(FMT, model="model-a", cache=False))
    assert a["input"] == [
        {"role": "user", "content": "q"},
        REASONING,
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "q2"},
    ]
    assert s.last_build is not None and s.last_build.notes == ()
    b = json.loads(s.request(FMT, model="model-b", cache=False))
    assert b["input"] == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "q2"},
    ]
    assert s.last_build.notes == (
        "stripped 1 artifact(s) from openai/model-a: "
        "they are only valid for the model that produced them",
    )
    # Another provider's artifact for the same model name is stripped too.
    t = rt.session("t")
    t.append(with_reasoning("anthropic", "model-a"))
    assert json.loads(t.request(FMT, model="model-a", cache=False))["input"] == [
        {"role": "assistant", "content": "answer"}
    ]
    assert t.last_build is not None
    assert t.last_build.notes[0].startswith("stripped 1 artifact(s) from anthropic/model-a")


def test_artifacts_only_message_for_another_model_still_renders() -> None:
    msg = with_reasoning()
    msg["content"] = ""
    assert inputs([msg], "model-a") == [REASONING]
    assert inputs([msg], "model-b") == [{"role": "assistant", "content": ""}]
    frag = FORMAT.render(canonicalize(msg)[0], Target("openai", "model-b"))
    assert frag.note and "1 artifact(s) from openai/model-a" in frag.note


# -- unsupported features -------------------------------------------------------------

CALL = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}

UNSUPPORTED = [
    ({"role": "user", "content": "x", "name": "bob"}, "the message 'name' field"),
    ({"role": "system", "content": "x", "name": "s"}, "the message 'name' field"),
    ({"role": "assistant", "content": "x", "name": "a"}, "the message 'name' field"),
    ({"role": "assistant", "content": "x", "audio": {"id": "a1"}}, "the message 'audio' field"),
    (
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]},
        "input_audio parts",
    ),
    ({"role": "user", "content": [{"type": "file", "file": {"id": "f"}}]}, "file parts"),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://e.com/u.png", "w": 3}}],
        },
        "image_url parts with ['w']",
    ),
    (
        {
            "role": "assistant",
            "content": [{"type": "image_url", "image_url": {"url": "https://e.com/u.png"}}],
        },
        "image_url parts in assistant messages",
    ),
    (
        {
            "role": "tool",
            "tool_call_id": "c",
            "content": [{"type": "image_url", "image_url": {"url": "https://e.com/u.png"}}],
        },
        "image_url parts in tool results",
    ),
    (
        {"role": "assistant", "content": None, "tool_calls": [{**CALL, "type": "custom"}]},
        "custom tool calls",
    ),
    (
        {"role": "assistant", "content": None, "tool_calls": [{**CALL, "index": 0}]},
        "tool calls with ['index']",
    ),
]


@pytest.mark.parametrize(("msg", "feature"), UNSUPPORTED)
def test_unsupported_features_are_named(msg: dict[str, Any], feature: str) -> None:
    with pytest.raises(srt.UnsupportedFeatureError) as info:
        build([msg])
    assert info.value.format == FMT
    assert info.value.feature == feature
    assert FMT in str(info.value) and feature in str(info.value)


def test_unsupported_in_a_session_writes_fine_but_request_raises(rt: srt.Runtime) -> None:
    s = rt.session("u")
    s.append({"role": "user", "content": "x", "name": "bob"})
    assert s.request("openai.chat", model="m")  # Chat can say it
    with pytest.raises(srt.UnsupportedFeatureError, match="'name' field"):
        s.request(FMT, model="m")


def test_unsupported_tool_definition_fields() -> None:
    tool = {"type": "function", "function": {"name": "f", "cache_control": {"type": "x"}}}
    with pytest.raises(srt.UnsupportedFeatureError, match="cache_control"):
        build([], tools=canon_tools([tool]))
