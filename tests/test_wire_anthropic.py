"""``anthropic.messages`` requests: bodies against a plain reference, incrementally
through a session, cache markers and what cannot be expressed. Artifacts, replies and
the round trip from Anthropic's own message shape are in ``test_wire_anthropic_replies``."""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
import wire_reference_ab as ref
from srt.message import canonicalize
from srt.wire import build_body, get_format, layout
from srt.wire.anthropic import DEFAULT_MAX_TOKENS, FORMAT
from srt.wire.base import Frag, Target
from wire_ab_support import PNG, blocks, canon_tools, session_run
from wire_ab_support import STRICT_WEATHER_TOOL as WEATHER_TOOL

FMT = "anthropic.messages"
MODEL, OTHER = ref.MODEL, ref.OTHER_MODEL
TARGET = Target("anthropic", MODEL)

PARAM_VALUES: dict[str, Any] = {
    "max_tokens": 1024,
    "temperature": 0.25,
    "stop_sequences": ["\n\nHuman:", "ünïcode"],
    "metadata": {"user_id": "u-1"},
    "top_k": 5,
    "stream": False,
}
PARAMS = st.lists(st.sampled_from(sorted(PARAM_VALUES)), unique=True, max_size=4).map(
    lambda keys: {k: PARAM_VALUES[k] for k in keys}
)

# -- whole bodies against the reference ---------------------------------------------


def test_registered() -> None:
    fmt = get_format(FMT)
    assert fmt is FORMAT
    assert (fmt.provider, fmt.splits_system, fmt.marker) == ("anthropic", True, "cache_control")


def test_minimal_body_and_key_order() -> None:
    body = build_body(FMT, [canonicalize({"role": "user", "content": "hi"})[0]], model=MODEL)
    assert body == (
        b'{"model":"model-a","max_tokens":4096,"messages":'
        b'[{"role":"user","content":[{"type":"text","text":"hi"}]}]}'
    )
    assert DEFAULT_MAX_TOKENS == 4096
    body = build_body(
        FMT,
        [canonicalize({"role": "system", "content": "sys"})[0]],
        model=MODEL,
        tools=[WEATHER_TOOL],
        params={"temperature": 0, "max_tokens": 7},
    )
    assert list(json.loads(body)) == [
        "model",
        "max_tokens",
        "tools",
        "system",
        "messages",
        "temperature",
    ]
    assert json.loads(body)["max_tokens"] == 7
    assert body.count(b"max_tokens") == 1


@pytest.mark.parametrize("key", ["model", "messages", "system", "tools"])
def test_reserved_params(key: str) -> None:
    with pytest.raises(srt.ConfigError):
        build_body(FMT, [], model=MODEL, params={key: 1})


def test_tool_fragment() -> None:
    assert json.loads(FORMAT.tool_fragment(canon_tools([WEATHER_TOOL])[0])) == {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": WEATHER_TOOL["function"]["parameters"],
    }
    bare = {"type": "function", "function": {"name": "noop"}}
    assert FORMAT.tool_fragment(bare) == (
        b'{"name":"noop","input_schema":{"type":"object","properties":{}}}'
    )
    # Anthropic's own tool shape is accepted too.
    native = {"name": "noop", "input_schema": {"type": "object", "properties": {}}}
    assert json.loads(FORMAT.tool_fragment(native)) == json.loads(FORMAT.tool_fragment(bare))


@settings(max_examples=200, deadline=None)
@given(
    turns=ref.conversation_turns("anthropic"),
    tools=ref.TOOLS,
    params=PARAMS,
    model=st.sampled_from([MODEL, OTHER]),
)
def test_build_body_equals_reference(
    turns: list[list[dict[str, Any]]],
    tools: list[dict[str, Any]],
    params: dict[str, Any],
    model: str,
) -> None:
    bodies = [canonicalize(m)[0] for turn in turns for m in turn]
    body = build_body(FMT, bodies, model=model, tools=tools, params=params)
    history = [json.loads(b) for b in bodies]
    assert body == ref.anthropic_body(history, model=model, tools=canon_tools(tools), params=params)
    parsed = json.loads(body)
    roles = [t["role"] for t in parsed["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # same-role runs are merged


def _session_run(
    rt: srt.Runtime, turns: list[list[dict[str, Any]]], tools: list[Any], params: dict[str, Any]
) -> list[bytes]:
    return session_run(rt, FMT, ref.anthropic_body, ref.anthropic_tail, turns, tools, params)


@settings(max_examples=30, deadline=None)
@given(turns=ref.conversation_turns("anthropic"), tools=ref.TOOLS, params=PARAMS)
def test_session_requests_equal_reference_and_extend_the_prefix(
    turns: list[list[dict[str, Any]]], tools: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rt = srt.Runtime(os.path.join(tmp, "srt.db"))
        try:
            _session_run(rt, turns, tools, params)
        finally:
            rt.close()


def fifty_turns(images: bool = True) -> list[list[dict[str, Any]]]:
    """A deterministic 50-turn conversation: every turn a question, a tool call, its
    result and the answer; every tenth question carries images."""
    turns: list[list[dict[str, Any]]] = [[{"role": "system", "content": "You are terse."}]]
    for i in range(50):
        question: Any = f"Weather in city {i}? \x00 ü"
        if images and i % 10 == 3:
            question = [
                {"type": "text", "text": f"And this picture {i}?"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": f"https://example.com/{i}.png"}},
            ]
        turns.append([{"role": "user", "content": question}])
        calls = [
            {
                "id": f"toolu_{i}_{k}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": f"c{i}{k}"})},
            }
            for k in range(1 + i % 2)
        ]
        turns.append(
            [
                {
                    "role": "assistant",
                    "content": "Checking." if i % 3 else None,
                    "tool_calls": calls,
                },
                *({"role": "tool", "tool_call_id": c["id"], "content": f"{i}°C"} for c in calls),
            ]
        )
        turns.append([{"role": "assistant", "content": f"It is {i}°C."}])
    return turns


def test_fifty_turn_conversation_with_tool_loop(rt: srt.Runtime) -> None:
    turns = fifty_turns(images=True)
    bodies = _session_run(rt, turns, [WEATHER_TOOL], {"max_tokens": 256})
    last = json.loads(bodies[-1])
    roles = [t["role"] for t in last["messages"]]
    assert roles == ["user", "assistant"] * 100  # alternating: results share the user turn
    assert last["messages"][-2]["content"][0]["type"] == "tool_result"
    assert {
        b["source"]["type"] for t in last["messages"] for b in t["content"] if b["type"] == "image"
    } == {"base64", "url"}
    # A later request in a fresh runtime builds the same bytes from scratch.
    msgs = [canonicalize(m)[0] for t in turns for m in t]
    assert (
        build_body(FMT, msgs, model=MODEL, tools=[WEATHER_TOOL], params={"max_tokens": 256})
        == bodies[-1]
    )


# -- cache markers ------------------------------------------------------------------

CONTROLS = [
    (None, {"type": "ephemeral"}),
    ("5m", {"type": "ephemeral"}),
    ("1h", {"type": "ephemeral", "ttl": "1h"}),
]


@pytest.mark.parametrize(("ttl", "control"), CONTROLS)
def test_mark_places_cache_control_on_the_last_block(ttl: str | None, control: Any) -> None:
    msgs = [
        {
            "role": "system",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "q"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
        {
            "role": "assistant",
            "content": "x",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]
    frags = [FORMAT.render(canonicalize(m)[0], TARGET) for m in msgs]
    marked = [Frag(f.kind, f.role, FORMAT.mark(f.data, ttl), f.note) for f in frags]
    system, pieces, last = layout(FORMAT, marked)
    tools = [
        FORMAT.tool_fragment(WEATHER_TOOL),
        FORMAT.mark(FORMAT.tool_fragment(WEATHER_TOOL), ttl),
    ]
    head, tail = FORMAT.envelope(MODEL, {}, system, tools)
    body = json.loads(head + b"".join(pieces) + FORMAT.close(last) + tail)
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1]["cache_control"] == control
    assert "cache_control" not in body["system"][0]
    assert body["system"][1] == {"type": "text", "text": "b", "cache_control": control}
    user, assistant, results = body["messages"][0], body["messages"][1], body["messages"][2]
    assert "cache_control" not in user["content"][0]
    assert user["content"][1]["cache_control"] == control
    assert [("cache_control" in b) for b in assistant["content"]] == [False, True]
    assert results["content"][0]["cache_control"] == control


@settings(max_examples=100, deadline=None)
@given(turns=ref.conversation_turns("anthropic"), ttl=st.sampled_from([None, "5m", "1h"]))
def test_mark_any_fragment(turns: list[list[dict[str, Any]]], ttl: str | None) -> None:
    control = dict(CONTROLS)[ttl]
    for msg in (m for t in turns for m in t):
        frag = FORMAT.render(canonicalize(msg)[0], TARGET)
        plain, marked = blocks(frag.data), blocks(FORMAT.mark(frag.data, ttl))
        assert marked[:-1] == plain[:-1]
        assert marked[-1] == {**plain[-1], "cache_control": control}


def test_mark_rejects_bad_ttl() -> None:
    with pytest.raises(srt.ConfigError):
        FORMAT.mark(b'{"type":"text","text":"x"}', "2h")
    with pytest.raises(srt.ConfigError):
        FORMAT.mark(b"", None)


# -- what Anthropic cannot express --------------------------------------------------

CALL = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
UNSUPPORTED = [
    ({"role": "user", "content": "hi", "name": "bob"}, "the message 'name' field"),
    ({"role": "assistant", "content": "hi", "name": "bot"}, "the message 'name' field"),
    ({"role": "assistant", "content": "hi", "audio": {"id": "a1"}}, "the message 'audio' field"),
    (
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
        "image_url parts in a system message",
    ),
    (
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}],
        },
        "input_audio parts in a user message",
    ),
    ({"role": "user", "content": ""}, "an empty text block"),
    ({"role": "user", "content": [{"type": "text", "text": ""}]}, "an empty text block"),
    ({"role": "system", "content": ""}, "an empty text block"),
    ({"role": "user", "content": []}, "an empty user message"),
    (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]},
        "image URLs other than http(s) or base64 data",
    ),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}],
        },
        "image/bmp images",
    ),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{oops"}}],
        },
        "tool call arguments that are not valid JSON",
    ),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}],
        },
        "tool call arguments that are not a JSON object",
    ),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**CALL, "function": {"name": "f", "arguments": '{"x":NaN}'}}],
        },
        "NaN or infinity in tool call arguments",
    ),
    (
        {"role": "assistant", "content": None, "tool_calls": [{**CALL, "type": "custom"}]},
        "custom tool calls",
    ),
    (
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
        "image_url parts in an assistant message",
    ),
    (
        {
            "role": "tool",
            "tool_call_id": "t1",
            "content": [{"type": "file", "file": {"file_id": "f"}}],
        },
        "file parts in a tool message",
    ),
]


@pytest.mark.parametrize(("msg", "feature"), UNSUPPORTED)
def test_unsupported_features_are_named(msg: dict[str, Any], feature: str) -> None:
    body = canonicalize(msg)[0]
    with pytest.raises(srt.UnsupportedFeatureError) as exc:
        FORMAT.render(body, TARGET)
    assert exc.value.format == FMT
    assert feature in exc.value.feature


def test_only_thinking_for_another_model_leaves_nothing_to_send() -> None:
    msg = {
        "role": "assistant",
        "content": "",
        "artifacts": [
            {
                "provider": "anthropic",
                "model": OTHER,
                "type": "thinking",
                "data": {"type": "thinking", "thinking": "t", "signature": "s"},
            }
        ],
    }
    frag = FORMAT.render(canonicalize(msg)[0], TARGET)
    assert frag.data == b"" and frag.note is not None and "stripped 1 artifact" in frag.note
    assert (
        blocks(FORMAT.render(canonicalize(msg)[0], Target("anthropic", OTHER)).data)[0]["type"]
        == "thinking"
    )


def test_image_detail_hint_is_noted_not_silently_dropped() -> None:
    auto = {"type": "image_url", "image_url": {"url": PNG, "detail": "auto"}}
    high = {"type": "image_url", "image_url": {"url": PNG, "detail": "high"}}
    assert FORMAT.render(canonicalize({"role": "user", "content": [auto]})[0], TARGET).note is None
    frag = FORMAT.render(canonicalize({"role": "user", "content": [high]})[0], TARGET)
    assert frag.note is not None and "detail" in frag.note
    assert blocks(frag.data)[0]["source"]["type"] == "base64"


def test_system_message_after_start_is_refused(rt: srt.Runtime) -> None:
    msgs = [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]
    with pytest.raises(srt.UnsupportedFeatureError) as exc:
        build_body(FMT, [canonicalize(m)[0] for m in msgs], model=MODEL)
    assert exc.value.format == FMT and "system" in exc.value.feature
    s = rt.session("late")
    s.append(*msgs)
    with pytest.raises(srt.UnsupportedFeatureError, match="after the conversation has started"):
        s.request(FMT, model=MODEL, cache=False)


def test_unsupported_message_in_a_session_raises_on_request(rt: srt.Runtime) -> None:
    s = rt.session("named")
    s.append({"role": "user", "content": "hi", "name": "bob"})
    with pytest.raises(srt.UnsupportedFeatureError, match="'name' field"):
        s.request(FMT, model=MODEL, cache=False)
