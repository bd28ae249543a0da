"""``openai.responses``: bodies against the plain reference, incremental sessions,
artifacts, unsupported features, reply parsing and the items round trip."""

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
from srt.wire.openai_responses import FORMAT, OpenAIResponses, to_canonical
from wire_reference_oa import (
    CALL_ID,
    MODELS,
    NAME,
    PARAMS,
    TEXT,
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
    ({"role": "user", "content": "x", "cache_hint": 1}, "the message 'cache_hint' field"),
    (
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]},
        "input_audio parts",
    ),
    ({"role": "user", "content": [{"type": "file", "file": {"id": "f"}}]}, "file parts"),
    (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u", "w": 3}}]},
        "image_url parts with ['w']",
    ),
    (
        {
            "role": "assistant",
            "content": [{"type": "image_url", "image_url": {"url": "u"}}],
        },
        "image_url parts in assistant messages",
    ),
    (
        {
            "role": "tool",
            "tool_call_id": "c",
            "content": [{"type": "image_url", "image_url": {"url": "u"}}],
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


# -- parse_reply ----------------------------------------------------------------------

TEXT_REPLY: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190b14f964abc054267",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e6",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "In a peaceful grove, ", "annotations": []},
                {"type": "output_text", "text": "a unicorn slept.", "annotations": []},
            ],
        }
    ],
    "parallel_tool_calls": True,
    "store": True,
    "usage": {
        "input_tokens": 1036,
        "input_tokens_details": {"cached_tokens": 1024},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 1123,
    },
}

TOOL_REPLY: dict[str, Any] = {
    "id": "resp_2",
    "object": "response",
    "status": "completed",
    "model": "o4-mini-2025-04-16",
    "output": [
        {
            "type": "reasoning",
            "id": "rs_2",
            "summary": [{"type": "summary_text", "text": "Need the weather."}],
            "encrypted_content": "gAAAAABo-opaque",
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_a",
            "name": "get_weather",
            "arguments": '{"location":"Paris"}',
            "status": "completed",
        },
        {
            "type": "function_call",
            "id": "fc_2",
            "call_id": "call_b",
            "name": "get_weather",
            "arguments": '{"location":"Bogotá"}',
            "status": "completed",
        },
    ],
    "usage": {
        "input_tokens": 300,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 120,
        "output_tokens_details": {"reasoning_tokens": 64},
        "total_tokens": 420,
    },
}


def test_parse_text_reply() -> None:
    reply = FORMAT.parse_reply(TEXT_REPLY)
    assert reply.message == {
        "role": "assistant",
        "content": "In a peaceful grove, a unicorn slept.",
    }
    assert reply.usage == srt.Usage(input_tokens=1036, output_tokens=87, cache_read_tokens=1024)
    assert reply.usage.uncached_input_tokens == 12
    assert reply.model == "gpt-4.1-2025-04-14"
    assert reply.response_id == "resp_67ccd2bed1ec8190b14f964abc054267"
    assert reply.stop_reason == "completed"
    canonicalize(reply.message)


def test_parse_tool_reply_with_reasoning_and_continue(rt: srt.Runtime) -> None:
    reply = FORMAT.parse_reply(TOOL_REPLY)
    model = "o4-mini-2025-04-16"
    assert reply.message == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"location":"Bogotá"}'},
            },
        ],
        "artifacts": [
            {
                "provider": "openai",
                "model": model,
                "type": "reasoning",
                "data": TOOL_REPLY["output"][0],
            }
        ],
    }
    assert reply.usage == srt.Usage(300, 120, 0, 0, reasoning_tokens=64)
    assert (reply.model, reply.response_id, reply.stop_reason) == (model, "resp_2", "completed")

    s = rt.session("weather")
    s.append({"role": "user", "content": "Weather in Paris and Bogotá?"})
    s.append(reply.message)
    s.append(
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "14C"},
    )
    items = json.loads(s.request(FMT, model=model, cache=False))["input"]
    assert items == [
        {"role": "user", "content": "Weather in Paris and Bogotá?"},
        TOOL_REPLY["output"][0],
        {"type": "function_call", "call_id": "call_a", "name": "get_weather",
         "arguments": '{"location":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather",
         "arguments": '{"location":"Bogotá"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
        {"type": "function_call_output", "call_id": "call_b", "output": "14C"},
    ]  # fmt: skip
    # Chat Completions cannot carry the reasoning item; it is left out with a note.
    chat = json.loads(s.request("openai.chat", model=model, cache=False))
    assert "artifacts" not in chat["messages"][1]
    assert s.last_build is not None and s.last_build.notes


def test_parse_refusal_incomplete_and_text_with_calls() -> None:
    refusal = {
        "id": "r",
        "model": "m",
        "status": "completed",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}],
            }
        ],
    }
    reply = FORMAT.parse_reply(refusal)
    assert reply.message == {
        "role": "assistant",
        "content": "",
        "refusal": "I can't help with that.",
    }
    assert reply.usage == srt.Usage()
    body = canonicalize(reply.message)[0]
    (item,) = json.loads(build_body(FMT, [body], model="m"))["input"]
    assert item == {
        "type": "message",
        "id": item["id"],
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": "I can't help with that."}],
    }
    # The id is the same for the same text and refusal, so the bytes are stable.
    assert item["id"].startswith("msg_") and len(item["id"]) == 36
    again = json.loads(build_body(FMT, [body], model="other"))["input"][0]
    assert again["id"] == item["id"]

    incomplete = {
        "id": "r2",
        "model": "m",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [],
        "usage": {"input_tokens": 5, "output_tokens": 16},
    }
    reply = FORMAT.parse_reply(incomplete)
    assert reply.message == {"role": "assistant", "content": ""}
    assert reply.stop_reason == "incomplete"
    assert reply.usage == srt.Usage(5, 16)

    mixed = dict(TOOL_REPLY, output=[TEXT_REPLY["output"][0], TOOL_REPLY["output"][1]])
    reply = FORMAT.parse_reply(mixed)
    assert reply.message["content"] == "In a peaceful grove, a unicorn slept."
    assert len(reply.message["tool_calls"]) == 1
    assert "artifacts" not in reply.message
    canonicalize(reply.message)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"id": "x", "output": None},
        [],
        {"id": "x", "status": "failed", "output": [], "error": {"code": "server_error"}},
        {"id": "x", "output": [{"type": "reasoning", "id": "rs", "summary": []}]},
        {"id": "x", "output": ["text"]},
        {"id": "x", "output": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        {"id": "x", "output": [{"type": "function_call", "call_id": "c", "name": "f"}]},
        {"id": "x", "output": [{"type": "message", "content": [{"type": "output_text"}]}]},
    ],
)
def test_parse_bad_replies(data: Any) -> None:
    with pytest.raises(srt.ProviderResponseError):
        FORMAT.parse_reply(data)


def test_parse_unknown_output_item() -> None:
    data = {"id": "x", "model": "m", "output": [{"type": "web_search_call", "id": "ws"}]}
    # A reply srt cannot store is the provider's (a ProviderError: the call keeps its ledger
    # row), not an input the caller could change.
    with pytest.raises(srt.ProviderResponseError, match="'web_search_call' output item"):
        FORMAT.parse_reply(data)


# -- Responses items -> canonical -----------------------------------------------------


def round_trip(items: list[dict[str, Any]], model: str = "gpt-5") -> list[Any]:
    msgs = to_canonical(items, model)
    return inputs(msgs, model)


def test_to_canonical_a_whole_exchange() -> None:
    items: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://x/cat.png", "detail": "high"},
            ],
        },
        REASONING,
        {"role": "assistant", "content": "Let me check."},
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "look", "arguments": '{"x":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
        {"type": "function_call_output", "call_id": "c2", "output": "a mat"},
        {"role": "assistant", "content": "A cat."},
    ]
    msgs = to_canonical(items, "gpt-5")
    assert msgs == [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "high"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}},
                {"id": "c2", "type": "function",
                 "function": {"name": "look", "arguments": "{\"x\":1}"}},
            ],
            "artifacts": [
                {"provider": "openai", "model": "gpt-5", "type": "reasoning", "data": REASONING}
            ],
        },
        {"role": "tool", "content": "a cat", "tool_call_id": "c1"},
        {"role": "tool", "content": "a mat", "tool_call_id": "c2"},
        {"role": "assistant", "content": "A cat."},
    ]  # fmt: skip
    assert round_trip(items) == items
    # Another model: the reasoning item is stripped, the rest is unchanged.
    assert inputs(msgs, "gpt-4.1") == [it for it in items if it is not REASONING]


def test_to_canonical_normalisations() -> None:
    items = [
        {"type": "message", "id": "m1", "status": "completed", "role": "user", "content": "hi"},
        {"role": "user",
         "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA=="}]},
        {"role": "user", "content": [{"type": "output_text", "text": "typed as output"}]},
        {"type": "reasoning", "id": "rs", "summary": [], "model": "o3"},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "refusal", "refusal": "no"},
                {"type": "output_text", "text": "t", "annotations": [], "logprobs": []},
            ],
        },
        {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f", "arguments": "",
         "status": "completed"},
        {"type": "function_call_output", "id": "fo", "call_id": "c",
         "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
    ]  # fmt: skip
    msgs = to_canonical(items)
    assert msgs[3]["artifacts"][0]["model"] == "o3"
    assert "model" not in msgs[3]["artifacts"][0]["data"]
    assert msgs[3]["refusal"] == "no"
    assert inputs(msgs, "o3") == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "auto"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "typed as output"}]},
        {"type": "reasoning", "id": "rs", "summary": []},
        {"type": "message", "id": inputs(msgs, "o3")[4]["id"], "role": "assistant",
         "status": "completed", "content": [
            {"type": "output_text", "text": "t", "annotations": []},
            {"type": "refusal", "refusal": "no"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": ""},
        {"type": "function_call_output", "call_id": "c", "output": "ab"},
    ]  # fmt: skip


def test_to_canonical_grouping_keeps_item_order() -> None:
    fc = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
    msg = {"role": "assistant", "content": "m"}
    empty = {"role": "assistant", "content": ""}
    for items in (
        [msg, REASONING, fc],
        [fc, REASONING],
        [REASONING, fc, REASONING, fc],
        [REASONING, empty, fc],
        [empty, fc],
        [REASONING],
        [msg, msg],
        [fc, msg],
    ):
        assert round_trip(items) == items, items
    assert len(to_canonical([REASONING, msg, fc, fc], "m")) == 1
    assert to_canonical(fc) == to_canonical([fc])


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([{"type": "web_search_call", "id": "w"}], "web_search_call items"),
        ([{"type": "item_reference", "id": "x"}], "item_reference items"),
        ([REASONING], "without a model"),
        ([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}], "input_file"),
        ([{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}], "image_url"),
        ([{"role": "user", "content": "x", "phase": "y"}], "phase"),
        ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "", "ns": 1}], "ns"),
        ([{"role": "critic", "content": "x"}], "critic"),
        ([{"role": "user", "content": [{"type": "refusal", "refusal": "r"}]}], "refusal"),
    ],
)
def test_to_canonical_unsupported(items: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(srt.UnsupportedFeatureError, match=match):
        to_canonical(items)


def test_to_canonical_rejects_non_items() -> None:
    with pytest.raises(srt.InvalidMessageError):
        to_canonical(["not an item"])  # type: ignore[list-item]
    with pytest.raises(srt.InvalidMessageError):
        to_canonical([{"role": "user", "content": 3}])


# Items already in the form render() gives, so the round trip must be exact.
_IN_TEXT = TEXT.map(lambda t: {"type": "input_text", "text": t})
_IN_IMAGE = st.builds(
    lambda u, d: {"type": "input_image", "image_url": u, "detail": d},
    TEXT.map(lambda t: "https://e.com/" + t),
    st.sampled_from(["auto", "low", "high"]),
)
ITEM = st.one_of(
    st.builds(
        lambda r, c: {"role": r, "content": c},
        st.sampled_from(["user", "system", "developer"]),
        TEXT | st.lists(_IN_TEXT | _IN_IMAGE, max_size=3),
    ),
    st.builds(lambda c: {"role": "assistant", "content": c}, TEXT),
    st.builds(
        lambda i, n, a: {"type": "function_call", "call_id": i, "name": n, "arguments": a},
        CALL_ID,
        NAME,
        TEXT,
    ),
    st.builds(
        lambda i, o: {"type": "function_call_output", "call_id": i, "output": o}, CALL_ID, TEXT
    ),
    st.builds(
        lambda i, e, s: {
            "encrypted_content": e,
            "id": "rs_" + i,
            "summary": [{"text": s, "type": "summary_text"}],
            "type": "reasoning",
        },
        NAME,
        TEXT,
        TEXT,
    ),
)


@settings(max_examples=200)
@given(st.lists(ITEM, max_size=10), st.sampled_from(MODELS))
def test_items_round_trip(items: list[dict[str, Any]], model: str) -> None:
    msgs = to_canonical(items, model)
    bodies = [canonicalize(m)[0] for m in msgs]
    body = build_body(FMT, bodies, model=model)
    assert json.loads(body)["input"] == items
    # Key order is kept as well: the rendered items are byte-identical.
    expected = b'{"model":' + json.dumps(model, ensure_ascii=False).encode() + b',"input":['
    expected += b",".join(
        json.dumps(it, ensure_ascii=False, separators=(",", ":")).encode() for it in items
    )
    assert body == expected + b"]}"
    # And to_canonical of what was sent gives the same canonical messages again.
    assert [canonicalize(m)[0] for m in to_canonical(json.loads(body)["input"], model)] == bodies
