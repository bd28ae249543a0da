"""``bedrock.converse`` requests: bodies against a plain reference, incrementally through
a session, cache points and what cannot be expressed. Artifacts, replies, the round trip
from Bedrock's own message shape and error frames are in ``test_wire_bedrock_replies``."""

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
from srt.wire.base import Frag, Target
from srt.wire.bedrock import FORMAT
from wire_ab_support import PNG, WEATHER_TOOL, blocks, canon_tools, session_run

FMT = "bedrock.converse"
MODEL, OTHER = ref.MODEL, ref.OTHER_MODEL
TARGET = Target("bedrock", MODEL)

PARAM_VALUES: dict[str, Any] = {
    "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "stopSequences": ["ünïcode"]},
    "additionalModelRequestFields": {"top_k": 5},
    "performanceConfig": {"latency": "standard"},
    "requestMetadata": {"user": "u-1"},
}
PARAMS = st.lists(st.sampled_from(sorted(PARAM_VALUES)), unique=True, max_size=4).map(
    lambda keys: {k: PARAM_VALUES[k] for k in keys}
)


# -- whole bodies against the reference ---------------------------------------------


def test_registered() -> None:
    fmt = get_format(FMT)
    assert fmt is FORMAT
    assert (fmt.provider, fmt.splits_system, fmt.marker) == ("bedrock", True, "cachePoint")


def test_minimal_body_and_key_order() -> None:
    body = build_body(FMT, [canonicalize({"role": "user", "content": "hi"})[0]], model=MODEL)
    assert body == b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
    body = build_body(
        FMT,
        [canonicalize({"role": "system", "content": "sys"})[0]],
        model=MODEL,
        tools=[WEATHER_TOOL],
        params={"inferenceConfig": {"maxTokens": 5}},
    )
    assert list(json.loads(body)) == ["toolConfig", "system", "messages", "inferenceConfig"]
    assert b'"model' not in body


@pytest.mark.parametrize("key", ["model", "messages", "system", "toolConfig"])
def test_reserved_params(key: str) -> None:
    with pytest.raises(srt.ConfigError):
        build_body(FMT, [], model=MODEL, params={key: 1})


def test_model_is_still_checked() -> None:
    with pytest.raises(srt.ConfigError):
        build_body(FMT, [], model="")


def test_tool_fragment() -> None:
    assert json.loads(FORMAT.tool_fragment(canon_tools([WEATHER_TOOL])[0])) == {
        "toolSpec": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
        }
    }
    bare = {"type": "function", "function": {"name": "noop"}}
    assert FORMAT.tool_fragment(bare) == (
        b'{"toolSpec":{"name":"noop","inputSchema":{"json":{"type":"object","properties":{}}}}}'
    )
    native = {"toolSpec": {"name": "noop", "inputSchema": {"json": {"type": "object"}}}}
    assert json.loads(FORMAT.tool_fragment(native)) == {
        "toolSpec": {"name": "noop", "inputSchema": {"json": {"type": "object"}}}
    }


@settings(max_examples=200, deadline=None)
@given(
    turns=ref.conversation_turns("bedrock"),
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
    assert body == ref.bedrock_body(history, model=model, tools=canon_tools(tools), params=params)
    roles = [t["role"] for t in json.loads(body)["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))


def _session_run(
    rt: srt.Runtime, turns: list[list[dict[str, Any]]], tools: list[Any], params: dict[str, Any]
) -> list[bytes]:
    return session_run(rt, FMT, ref.bedrock_body, ref.bedrock_tail, turns, tools, params)


@settings(max_examples=30, deadline=None)
@given(turns=ref.conversation_turns("bedrock"), tools=ref.TOOLS, params=PARAMS)
def test_session_requests_equal_reference_and_extend_the_prefix(
    turns: list[list[dict[str, Any]]], tools: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rt = srt.Runtime(os.path.join(tmp, "srt.db"))
        try:
            _session_run(rt, turns, tools, params)
        finally:
            rt.close()


def fifty_turns() -> list[list[dict[str, Any]]]:
    """A deterministic 50-turn conversation: every turn a question, a tool call, its
    result and the answer; every tenth question carries an image."""
    turns: list[list[dict[str, Any]]] = [[{"role": "system", "content": "You are terse."}]]
    for i in range(50):
        question: Any = f"Weather in city {i}? \x00 ü"
        if i % 10 == 3:
            question = [
                {"type": "text", "text": f"And this picture {i}?"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ]
        turns.append([{"role": "user", "content": question}])
        calls = [
            {
                "id": f"tooluse_{i}_{k}",
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
    turns = fifty_turns()
    params = {"inferenceConfig": {"maxTokens": 256}}
    bodies = _session_run(rt, turns, [WEATHER_TOOL], params)
    last = json.loads(bodies[-1])
    assert [t["role"] for t in last["messages"]] == ["user", "assistant"] * 100
    assert "toolResult" in last["messages"][-2]["content"][0]
    images = [b for t in last["messages"] for b in t["content"] if "image" in b]
    assert len(images) == 5 and images[0]["image"]["format"] == "png"
    msgs = [canonicalize(m)[0] for t in turns for m in t]
    assert build_body(FMT, msgs, model=MODEL, tools=[WEATHER_TOOL], params=params) == bodies[-1]


# -- cache points -------------------------------------------------------------------

POINTS = [
    (None, {"cachePoint": {"type": "default"}}),
    ("5m", {"cachePoint": {"type": "default"}}),
    ("1h", {"cachePoint": {"type": "default", "ttl": "1h"}}),
]


@pytest.mark.parametrize(("ttl", "point"), POINTS)
def test_mark_appends_a_cache_point(ttl: str | None, point: Any) -> None:
    msgs = [
        {"role": "system", "content": "a"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "q"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
        {"role": "assistant", "content": "x"},
    ]
    frags = [FORMAT.render(canonicalize(m)[0], TARGET) for m in msgs]
    marked = [Frag(f.kind, f.role, FORMAT.mark(f.data, ttl), f.note) for f in frags]
    system, pieces, last = layout(FORMAT, marked)
    tools = [FORMAT.mark(FORMAT.tool_fragment(WEATHER_TOOL), ttl)]
    head, tail = FORMAT.envelope(MODEL, {}, system, tools)
    body = json.loads(head + b"".join(pieces) + FORMAT.close(last) + tail)
    assert body["toolConfig"]["tools"][1] == point and "toolSpec" in body["toolConfig"]["tools"][0]
    assert body["system"] == [{"text": "a"}, point]
    assert (
        body["messages"][0]["content"][2] == point and "image" in body["messages"][0]["content"][1]
    )
    assert body["messages"][1]["content"] == [{"text": "x"}, point]


@settings(max_examples=100, deadline=None)
@given(turns=ref.conversation_turns("bedrock"), ttl=st.sampled_from([None, "5m", "1h"]))
def test_mark_any_fragment(turns: list[list[dict[str, Any]]], ttl: str | None) -> None:
    point = dict(POINTS)[ttl]
    for msg in (m for t in turns for m in t):
        frag = FORMAT.render(canonicalize(msg)[0], TARGET)
        assert blocks(FORMAT.mark(frag.data, ttl)) == [*blocks(frag.data), point]


def test_mark_rejects_bad_ttl() -> None:
    with pytest.raises(srt.ConfigError):
        FORMAT.mark(b'{"text":"x"}', "1d")
    with pytest.raises(srt.ConfigError):
        FORMAT.mark(b"", None)


# -- what Bedrock cannot express ----------------------------------------------------

CALL = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
UNSUPPORTED = [
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
        },
        "image URLs (Bedrock takes image bytes)",
    ),
    (
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA=="}}],
        },
        "image/tiff images",
    ),
    ({"role": "user", "content": "hi", "name": "bob"}, "the message 'name' field"),
    (
        {"role": "tool", "tool_call_id": "t1", "content": "x", "name": "f"},
        "the message 'name' field",
    ),
    (
        {"role": "developer", "content": [{"type": "image_url", "image_url": {"url": PNG}}]},
        "image_url parts in a system message",
    ),
    ({"role": "system", "content": [{"type": "text", "text": ""}]}, "an empty text block"),
    ({"role": "user", "content": ""}, "an empty text block"),
    (
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}],
        },
        "input_audio parts in a user message",
    ),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "nope"}}],
        },
        "tool call arguments that are not valid JSON",
    ),
    (
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**CALL, "function": {"name": "f", "arguments": '"s"'}}],
        },
        "tool call arguments that are not a JSON object",
    ),
]


@pytest.mark.parametrize(("msg", "feature"), UNSUPPORTED)
def test_unsupported_features_are_named(msg: dict[str, Any], feature: str) -> None:
    with pytest.raises(srt.UnsupportedFeatureError) as exc:
        FORMAT.render(canonicalize(msg)[0], TARGET)
    assert exc.value.format == FMT
    assert feature in exc.value.feature


def test_image_url_in_a_session_raises_naming_it(rt: srt.Runtime) -> None:
    s = rt.session("url")
    s.append(
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
        }
    )
    with pytest.raises(srt.UnsupportedFeatureError, match="image URLs"):
        s.request(FMT, model=MODEL, cache=False)
    # The same history is fine for a format that takes URLs.
    json.loads(s.request("anthropic.messages", model=MODEL, cache=False))


def test_system_message_after_start_is_refused(rt: srt.Runtime) -> None:
    msgs = [{"role": "user", "content": "hi"}, {"role": "developer", "content": "late"}]
    with pytest.raises(srt.UnsupportedFeatureError) as exc:
        build_body(FMT, [canonicalize(m)[0] for m in msgs], model=MODEL)
    assert exc.value.format == FMT
    s = rt.session("late")
    s.append(*msgs)
    with pytest.raises(srt.UnsupportedFeatureError, match="after the conversation has started"):
        s.request(FMT, model=MODEL, cache=False)
