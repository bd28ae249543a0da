"""``bedrock.converse`` replies: reasoning artifacts replayed or stripped, replies
parsed, the round trip from Bedrock's own message shape, and error frames mid-stream
(requests are in ``test_wire_bedrock``)."""

from __future__ import annotations

import json
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
from srt.wire import build_body
from srt.wire.bedrock import FORMAT, event_frame
from srt.wire.eventstream import encode_frame

FMT = "bedrock.converse"
MODEL, OTHER = ref.MODEL, ref.OTHER_MODEL

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
    st.sampled_from(["AAAA", "iVBORw0KGgo="]),  # (an empty image is refused)
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
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "no"}], "status": "error"}},
            ],
        }
    )
    assert msgs == [
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
        {"role": "tool", "tool_call_id": "t2", "content": "no", "is_error": True},
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
                "content": [{"toolResult": {"toolUseId": "t", "content": [], "status": "failed"}}],
            },
            srt.InvalidMessageError,
            "status is 'success' or 'error'",
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
