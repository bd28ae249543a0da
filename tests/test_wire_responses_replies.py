"""``openai.responses`` replies: text, tool calls with reasoning (and the session that
continues from them), refusals, incomplete replies, and what cannot be parsed."""

from __future__ import annotations

import json
from typing import Any

import pytest

import srt
from srt.message import canonicalize
from srt.wire import build_body
from srt.wire.openai_responses import FORMAT
from test_wire_responses import FMT

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
    assert reply.stop_reason == "max_output_tokens"  # (why, as other formats' say it)
    assert reply.usage == srt.Usage(5, 16)
    filtered = dict(incomplete, incomplete_details={"reason": "content_filter"})
    assert FORMAT.parse_reply(filtered).stop_reason == "content_filter"
    assert FORMAT.parse_reply(dict(incomplete, incomplete_details=None)).stop_reason == (
        "incomplete"
    )

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
