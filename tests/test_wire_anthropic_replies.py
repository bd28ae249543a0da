"""``anthropic.messages`` replies: thinking artifacts replayed or stripped, replies
parsed, and the round trip from Anthropic's own message shape (requests are in
``test_wire_anthropic``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
import wire_reference_ab as ref
from srt.message import canonicalize
from srt.wire import build_body
from srt.wire.anthropic import FORMAT
from wire_ab_support import STRICT_WEATHER_TOOL as WEATHER_TOOL

FMT = "anthropic.messages"
MODEL, OTHER = ref.MODEL, ref.OTHER_MODEL

# -- artifacts ----------------------------------------------------------------------

THINKING = {
    "type": "thinking",
    "thinking": "Let me think.",
    "signature": "EqQBCgIYAhIM1gbcDa9GJwZA",
}


def test_thinking_replayed_for_its_model_and_stripped_for_another(rt: srt.Runtime) -> None:
    s = rt.session("think")
    s.append(
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": "4",
            "artifacts": [
                {"provider": "anthropic", "model": MODEL, "type": "thinking", "data": THINKING}
            ],
        },
        {"role": "user", "content": "thanks"},
    )
    same = json.loads(s.request(FMT, model=MODEL, cache=False))
    assert same["messages"][1]["content"] == [THINKING, {"type": "text", "text": "4"}]
    assert s.last_build is not None and s.last_build.notes == ()
    other = json.loads(s.request(FMT, model=OTHER, cache=False))
    assert other["messages"][1]["content"] == [{"type": "text", "text": "4"}]
    assert s.last_build is not None and len(s.last_build.notes) == 1
    assert f"anthropic/{MODEL}" in s.last_build.notes[0]
    # Back to the first model: the replayed block is still there.
    assert json.loads(s.request(FMT, model=MODEL, cache=False)) == same


# -- replies ------------------------------------------------------------------------

RESPONSE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": MODEL,
    "content": [
        THINKING,
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
        {"type": "text", "text": "I'll check "},
        {"type": "text", "text": "the weather."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"city": "San Francisco, CA", "unit": "celsius"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 472,
        "cache_creation_input_tokens": 1024,
        "cache_read_input_tokens": 2048,
        "output_tokens": 91,
        "service_tier": "standard",
    },
}


def test_parse_reply(rt: srt.Runtime) -> None:
    reply = FORMAT.parse_reply(RESPONSE)
    assert reply.model == MODEL
    assert reply.response_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert reply.stop_reason == "tool_use"
    assert reply.usage == srt.Usage(
        input_tokens=472 + 2048 + 1024,
        output_tokens=91,
        cache_read_tokens=2048,
        cache_write_tokens=1024,
    )
    assert reply.usage.uncached_input_tokens == 472 + 1024
    msg = reply.message
    assert msg["content"] == "I'll check the weather."
    assert msg["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {
                "name": "get_weather",
                "arguments": '{"city":"San Francisco, CA","unit":"celsius"}',
            },
        }
    ]
    assert [a["type"] for a in msg["artifacts"]] == ["thinking", "redacted_thinking"]
    assert all(a["provider"] == "anthropic" and a["model"] == MODEL for a in msg["artifacts"])
    canonicalize(msg)
    s = rt.session("reply")
    s.append({"role": "user", "content": "Weather in SF?"}, msg)
    s.append({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "18°C"})
    body = json.loads(s.request(FMT, model=MODEL, tools=[WEATHER_TOOL], cache=False))
    turn = body["messages"][1]["content"]
    assert [b["type"] for b in turn] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert turn[0] == THINKING and turn[3]["input"] == RESPONSE["content"][4]["input"]  # type: ignore[index]


def test_parse_reply_plain_text_and_minimal_usage() -> None:
    reply = FORMAT.parse_reply(
        {
            "id": "m",
            "model": MODEL,
            "content": [],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 0},
        }
    )
    assert reply.message == {"role": "assistant", "content": ""}
    assert reply.usage == srt.Usage(input_tokens=3)
    canonicalize(reply.message)


@pytest.mark.parametrize(
    "data",
    [
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {"content": "not a list"},
        {
            "model": MODEL,
            "content": [{"type": "server_tool_use", "id": "x", "name": "web_search", "input": {}}],
        },
        {"content": [{"type": "thinking", "thinking": "t", "signature": "s"}]},  # no model
        {"model": MODEL, "content": [{"type": "tool_use", "name": "f"}]},  # no id
        [],
    ],
)
def test_parse_reply_rejects_what_it_cannot_represent(data: Any) -> None:
    with pytest.raises(srt.ProviderResponseError):
        FORMAT.parse_reply(data)


# -- Anthropic's own shape -> canonical -> Anthropic -----------------------------------

text_blocks = st.builds(lambda t: {"type": "text", "text": t}, ref.texts)
image_blocks = st.builds(
    lambda media, data: {
        "type": "image",
        "source": {"type": "base64", "media_type": media, "data": data},
    },
    st.sampled_from(ref.IMAGE_TYPES),
    st.sampled_from(["AAAA", "iVBORw0KGgo="]),  # (an empty image is refused)
) | st.builds(
    lambda n: {"type": "image", "source": {"type": "url", "url": f"https://example.com/{n}.jpg"}},
    st.integers(0, 99),
)
thinking_blocks = st.builds(
    lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, ref.texts, ref.texts
) | st.builds(lambda d: {"type": "redacted_thinking", "data": d}, ref.texts)


@st.composite
def native_conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Alternating Anthropic messages: tool results answer the previous tool uses."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    uses = 0
    for _ in range(draw(st.integers(1, 5))):
        content: list[dict[str, Any]] = []
        for use_id in pending:
            result = draw(
                st.text(st.characters(codec="utf-8"), max_size=8)
                | st.lists(text_blocks | image_blocks, max_size=2)
            )
            content.append({"type": "tool_result", "tool_use_id": use_id, "content": result})
        content += draw(
            st.lists(text_blocks | image_blocks, min_size=0 if pending else 1, max_size=3)
        )
        if len(content) == 1 and content[0]["type"] == "text" and draw(st.booleans()):
            out.append({"role": "user", "content": content[0]["text"]})
        else:
            out.append({"role": "user", "content": content})
        reply = draw(st.lists(thinking_blocks, max_size=2)) + draw(
            st.lists(text_blocks, max_size=2)
        )
        pending = []
        for _ in range(draw(st.integers(0 if reply else 1, 2))):
            uses += 1
            pending.append(f"toolu_{uses}")
            reply.append(
                {
                    "type": "tool_use",
                    "id": pending[-1],
                    "name": "lookup",
                    "input": draw(ref.json_objects),
                }
            )
        if len(reply) == 1 and reply[0]["type"] == "text" and draw(st.booleans()):
            out.append({"role": "assistant", "content": reply[0]["text"]})
        else:
            out.append({"role": "assistant", "content": reply})
    return out


def normalised(msg: dict[str, Any]) -> dict[str, Any]:
    content = msg["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    return {"role": msg["role"], "content": content}


@settings(max_examples=200, deadline=None)
@given(conversation=native_conversations(), via_key=st.booleans())
def test_native_round_trip(conversation: list[dict[str, Any]], via_key: bool) -> None:
    canonical: list[dict[str, Any]] = []
    for msg in conversation:
        if via_key and msg["role"] == "assistant":
            canonical += FORMAT.to_canonical({**msg, "model": MODEL})
        else:
            canonical += FORMAT.to_canonical(msg, model=MODEL)
    bodies = [canonicalize(m)[0] for m in canonical]
    body = json.loads(build_body(FMT, bodies, model=MODEL))
    assert body["messages"] == [normalised(m) for m in conversation]


def test_to_canonical_shapes() -> None:
    msgs = FORMAT.to_canonical(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "42"}],
                },
                {"type": "tool_result", "tool_use_id": "t2", "content": "ok", "is_error": False},
                {"type": "tool_result", "tool_use_id": "t3", "content": "no", "is_error": True},
            ],
        }
    )
    assert msgs == [
        {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "42"}]},
        {"role": "tool", "tool_call_id": "t2", "content": "ok"},
        {"role": "tool", "tool_call_id": "t3", "content": "no", "is_error": True},
        {"role": "user", "content": "look"},
    ]
    (asst,) = FORMAT.to_canonical(
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"b": 1, "a": [2]}}],
        }
    )
    assert asst == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "t",
                "type": "function",
                "function": {"name": "f", "arguments": '{"b":1,"a":[2]}'},
            }
        ],
    }
    (think,) = FORMAT.to_canonical(
        {"role": "assistant", "model": OTHER, "content": [THINKING]}, model=MODEL
    )
    assert think["artifacts"] == [
        {"provider": "anthropic", "model": OTHER, "type": "thinking", "data": THINKING}
    ]


@pytest.mark.parametrize(
    ("msg", "error", "match"),
    [
        (
            {"role": "assistant", "content": [THINKING]},
            srt.UnsupportedFeatureError,
            "without the model",
        ),
        (
            {"role": "user", "content": [{"type": "document", "source": {}}]},
            srt.UnsupportedFeatureError,
            "document blocks",
        ),
        (
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": "yes"}
                ],
            },
            srt.InvalidMessageError,
            "is_error is a boolean",
        ),
        (
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "x", "citations": [{"type": "char_location"}]}
                ],
            },
            srt.UnsupportedFeatureError,
            "citations",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
            },
            srt.UnsupportedFeatureError,
            "file image sources",
        ),
        ({"role": "system", "content": "x"}, srt.InvalidMessageError, "role"),
        ({"role": "user", "content": 5}, srt.InvalidMessageError, "content"),
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
    body = json.loads(s.request("anthropic.messages", model="m", cache=False))
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["hi", "again"]
    assert any("no content" in n for n in s.last_build.notes)


def test_a_stream_whose_message_delta_nulls_its_input_counts_keeps_message_start_s() -> None:
    """``message_delta``'s ``input_tokens`` and cache counts are nullable: a null is no
    count, and the ones ``message_start`` reported stand (as the SDK's accumulator has
    it), instead of the reply pricing its input, cache reads and writes at 0."""
    from anthropic.lib.streaming._messages import accumulate_event
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 1000,
                    "cache_creation_input_tokens": 200,
                },
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {
                "output_tokens": 15,
                "input_tokens": None,
                "cache_read_input_tokens": None,
                "cache_creation_input_tokens": None,
            },
        },
        {"type": "message_stop"},
    ]
    decoder = FORMAT.stream_decoder("claude-sonnet-4-5")
    for ev in events:
        decoder.decode(f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode())
    usage = decoder.reply().usage
    sdk: Any = None
    adapter: Any = TypeAdapter(RawMessageStreamEvent)
    bufs: dict[int, bytes] = {}
    for ev in events:
        event = adapter.validate_python(ev)
        sdk = accumulate_event(event=event, current_snapshot=sdk, json_bufs=bufs)
    assert (sdk.usage.input_tokens, sdk.usage.output_tokens) == (10, 15)
    assert sdk.usage.cache_read_input_tokens == 1000
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        10 + 1000 + 200,
        1000,
        200,
    )
    assert usage.output_tokens == 15
