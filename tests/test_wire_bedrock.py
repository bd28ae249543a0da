"""``bedrock.converse``: bodies against a plain reference, incrementally through a
session, cache points, what cannot be expressed, artifacts, replies and the round
trip from Bedrock's own message shape."""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
import wire_reference_ab as ref
from srt.errors import ProviderResponseError, RateLimitError
from srt.message import canonicalize
from srt.wire import build_body, get_format, layout
from srt.wire.base import Frag, Target
from srt.wire.bedrock import FORMAT, event_frame
from srt.wire.eventstream import encode_frame
from wire_ab_support import PNG, blocks, canon_tools, session_run

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

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


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
            "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},  # type: ignore[index]
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


# -- artifacts ----------------------------------------------------------------------

REASONING = {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "sig=="}}}


def test_reasoning_replayed_for_its_model_and_stripped_for_another(rt: srt.Runtime) -> None:
    s = rt.session("think")
    s.append(
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": "4",
            "artifacts": [
                {
                    "provider": "bedrock",
                    "model": MODEL,
                    "type": "reasoningContent",
                    "data": REASONING,
                },
                {
                    "provider": "anthropic",
                    "model": MODEL,
                    "type": "thinking",
                    "data": {"type": "thinking", "thinking": "t", "signature": "s"},
                },
            ],
        },
    )
    same = json.loads(s.request(FMT, model=MODEL, cache=False))
    assert same["messages"][1]["content"] == [REASONING, {"text": "4"}]
    assert s.last_build is not None and len(s.last_build.notes) == 1
    assert "anthropic/" + MODEL in s.last_build.notes[0]  # another provider's artifact
    other = json.loads(s.request(FMT, model=OTHER, cache=False))
    assert other["messages"][1]["content"] == [{"text": "4"}]
    assert s.last_build is not None and "stripped 2 artifact(s)" in s.last_build.notes[0]


# -- replies ------------------------------------------------------------------------

RESPONSE = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                REASONING,
                {"text": "Let me look up "},
                {"text": "the top song."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                        "name": "top_song",
                        "input": {"sign": "WZPZ"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {
        "inputTokens": 30,
        "outputTokens": 25,
        "totalTokens": 1155,
        "cacheReadInputTokens": 1024,
        "cacheWriteInputTokens": 76,
    },
    "metrics": {"latencyMs": 1234},
}


def test_parse_reply(rt: srt.Runtime) -> None:
    reply = FORMAT.parse_reply(RESPONSE, model=MODEL)
    assert (reply.model, reply.response_id, reply.stop_reason) == (MODEL, None, "tool_use")
    assert reply.usage == srt.Usage(
        input_tokens=30 + 1024 + 76, output_tokens=25, cache_read_tokens=1024, cache_write_tokens=76
    )
    msg = reply.message
    assert msg["content"] == "Let me look up the top song."
    assert msg["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'},
        }
    ]
    assert msg["artifacts"] == [
        {"provider": "bedrock", "model": MODEL, "type": "reasoningContent", "data": REASONING}
    ]
    s = rt.session("reply")
    s.append({"role": "user", "content": "Top song at WZPZ?"}, msg)
    s.append(
        {
            "role": "tool",
            "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "content": "Elemental Hotel",
        }
    )
    body = json.loads(s.request(FMT, model=MODEL, cache=False))
    assert body["messages"][1]["content"] == [
        REASONING,
        {"text": "Let me look up the top song."},
        RESPONSE["output"]["message"]["content"][3],  # type: ignore[index]
    ]
    assert body["messages"][2]["content"][0]["toolResult"]["content"] == [
        {"text": "Elemental Hotel"}
    ]


def test_parse_reply_without_model() -> None:
    data = {
        "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 1},
    }
    reply = FORMAT.parse_reply(data)
    assert reply.message == {"role": "assistant", "content": "hi"}
    assert reply.usage == srt.Usage(input_tokens=3, output_tokens=1)
    canonicalize(reply.message)
    with pytest.raises(srt.UnsupportedFeatureError, match="reasoning content"):
        FORMAT.parse_reply(RESPONSE)


@pytest.mark.parametrize(
    "data",
    [
        {"message": "ThrottlingException"},
        {"output": {"message": {"content": "text"}}},
        {"output": {"message": {"content": ["text"]}}},
        {"output": {"message": {"content": [{"guardContent": {}}]}}},
        {"output": {"message": {"content": [{"toolUse": {"name": "f"}}]}}},
    ],
)
def test_parse_reply_rejects_what_it_cannot_represent(data: Any) -> None:
    with pytest.raises(srt.ProviderResponseError):
        FORMAT.parse_reply(data, model=MODEL)


# -- Bedrock's own shape -> canonical -> Bedrock ---------------------------------------

text_blocks = st.builds(lambda t: {"text": t}, ref.texts)
image_blocks = st.builds(
    lambda fmt, data: {"image": {"format": fmt, "source": {"bytes": data}}},
    st.sampled_from(["png", "jpeg", "gif", "webp"]),
    st.sampled_from(["", "AAAA", "iVBORw0KGgo="]),
)
reasoning_blocks = st.builds(
    lambda t, s: {"reasoningContent": {"reasoningText": {"text": t, "signature": s}}},
    ref.texts,
    ref.texts,
) | st.builds(lambda d: {"reasoningContent": {"redactedContent": d}}, st.just("cmVkYWN0ZWQ="))


@st.composite
def native_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Alternating Converse messages: tool results answer the previous tool uses."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    uses = 0
    for _ in range(draw(st.integers(1, 5))):
        content: list[dict[str, Any]] = []
        for use_id in pending:
            result = draw(st.lists(text_blocks | image_blocks, max_size=2))
            content.append({"toolResult": {"toolUseId": use_id, "content": result}})
        content += draw(
            st.lists(text_blocks | image_blocks, min_size=0 if pending else 1, max_size=3)
        )
        out.append({"role": "user", "content": content})
        reply = draw(st.lists(reasoning_blocks, max_size=2)) + draw(
            st.lists(text_blocks, max_size=2)
        )
        pending = []
        for _ in range(draw(st.integers(0 if reply else 1, 2))):
            uses += 1
            pending.append(f"tooluse_{uses}")
            use = {"toolUseId": pending[-1], "name": "lookup", "input": draw(ref.json_objects)}
            reply.append({"toolUse": use})
        out.append({"role": "assistant", "content": reply})
    return out


@settings(max_examples=200, deadline=None)
@given(conversation=native_conversations())
def test_native_round_trip(conversation: list[dict[str, Any]]) -> None:
    canonical = [c for msg in conversation for c in FORMAT.to_canonical(msg, model=MODEL)]
    bodies = [canonicalize(m)[0] for m in canonical]
    body = json.loads(build_body(FMT, bodies, model=MODEL))
    assert body["messages"] == conversation


def test_to_canonical_shapes() -> None:
    msgs = FORMAT.to_canonical(
        {
            "role": "user",
            "content": [
                {"text": "look"},
                {"image": {"format": "jpeg", "source": {"bytes": "AAAA"}}},
                {"cachePoint": {"type": "default"}},
                {
                    "toolResult": {
                        "toolUseId": "t1",
                        "content": [{"text": "42"}],
                        "status": "success",
                    }
                },
            ],
        }
    )
    assert msgs == [
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
            ],
        },
    ]
    assert FORMAT.to_canonical({"role": "user", "content": [{"text": "hi"}]}) == [
        {"role": "user", "content": "hi"}
    ]
    (asst,) = FORMAT.to_canonical(
        {
            "role": "assistant",
            "content": [REASONING, {"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}],
        },
        model=MODEL,
    )
    assert asst == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
        "artifacts": [
            {"provider": "bedrock", "model": MODEL, "type": "reasoningContent", "data": REASONING}
        ],
    }


@pytest.mark.parametrize(
    ("msg", "error", "match"),
    [
        (
            {"role": "assistant", "content": [REASONING]},
            srt.UnsupportedFeatureError,
            "without the model",
        ),
        (
            {"role": "user", "content": [{"document": {"name": "d"}}]},
            srt.UnsupportedFeatureError,
            "document blocks",
        ),
        (
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": "t", "content": [], "status": "error"}}],
            },
            srt.UnsupportedFeatureError,
            "status 'error'",
        ),
        (
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": "t", "content": [{"json": {"a": 1}}]}}],
            },
            srt.UnsupportedFeatureError,
            "json blocks",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k"}}}}
                ],
            },
            srt.UnsupportedFeatureError,
            "image sources",
        ),
        ({"role": "system", "content": [{"text": "x"}]}, srt.InvalidMessageError, "role"),
        ({"role": "user", "content": None}, srt.InvalidMessageError, "content"),
    ],
)
def test_to_canonical_refuses(msg: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        FORMAT.to_canonical(msg)


def test_an_empty_assistant_reply_is_left_out_with_a_note(tmp_path: Path) -> None:
    """Providers can answer ``content: []`` (e.g. after a tool result); such a reply
    contributes nothing to later requests instead of making them fail."""
    rt = srt.Runtime(str(tmp_path / "empty.db"))
    s = rt.session("s")
    s.append({"role": "user", "content": "hi"}, {"role": "assistant", "content": ""})
    s.append({"role": "user", "content": "again"})
    body = json.loads(s.request("bedrock.converse", model="m", cache=False))
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["hi", "again"]
    assert any("no content" in n for n in s.last_build.notes)


# -- error frames mid-stream ------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "payload", "error", "said"),
    [
        (  # an error frame: code and message in headers, payload empty (as botocore reads it)
            {
                ":message-type": "error",
                ":error-code": "InternalFailure",
                ":error-message": "An internal error occurred",
            },
            b"",
            ProviderResponseError,
            "InternalFailure mid-stream: An internal error occurred",
        ),
        (
            {":message-type": "exception", ":exception-type": "serviceUnavailableException"},
            b'{"message":"Bedrock is unable to process your request."}',
            RateLimitError,
            "serviceUnavailableException mid-stream: Bedrock is unable",
        ),
        (
            {":message-type": "exception", ":exception-type": "internalServerException"},
            b'{"message":"boom"}',
            ProviderResponseError,
            "internalServerException mid-stream: boom",
        ),
    ],
)
def test_an_error_frame_mid_stream_is_a_typed_error_with_its_message(
    headers: dict[str, str], payload: bytes, error: type[Exception], said: str
) -> None:
    frame = encode_frame(dict(headers), payload)
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    (seen,) = list(buffer)
    assert {k: v for k, v in seen.headers.items() if k in headers} == headers  # botocore's view
    dec = FORMAT.stream_decoder()
    dec.feed(event_frame("messageStart", {"role": "assistant"}))
    with pytest.raises(error, match=said) as caught:
        dec.feed(frame)
    assert type(caught.value) is error
