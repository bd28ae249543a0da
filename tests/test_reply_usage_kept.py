"""A reply srt cannot keep (content it does not store: a hosted tool's item or block, a
Chat ``custom`` tool call) was billed all the same: its ledger row records the usage the
body reports, in each format's words, sync and async, and a stream's stored partial
reply carries the usage its events reported. Before, those rows had no usage (NULL, or
zeros for a stream's partial)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

import srt
from srt._types import Reply, Usage
from srt.providers import Anthropic, Bedrock, OpenAI, Provider
from srt.testing import ProviderServer
from srt.wire import get_format

JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}
# Every body bills 11 input tokens, 4 of them read from the cache, and 3 output tokens.
WANT = {"input_tokens": 11, "cache_read_tokens": 4, "cache_write_tokens": 0, "output_tokens": 3}
BODIES: dict[str, dict[str, Any]] = {
    "openai.chat": {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "custom", "custom": {"name": "g", "input": "x"}}
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 3,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    },
    "openai.responses": {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "gpt-4o",
        "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}],
        "usage": {
            "input_tokens": 11,
            "output_tokens": 3,
            "total_tokens": 14,
            "input_tokens_details": {"cached_tokens": 4},
        },
    },
    "anthropic.messages": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 7, "cache_read_input_tokens": 4, "output_tokens": 3},
    },
    "bedrock.converse": {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"citationsContent": {"content": [{"text": "x"}], "citations": []}}],
            }
        },
        "stopReason": "end_turn",
        "usage": {"inputTokens": 7, "cacheReadInputTokens": 4, "outputTokens": 3},
        "metrics": {"latencyMs": 1},
    },
}
MODEL = {
    "openai.chat": "gpt-4o",
    "openai.responses": "gpt-4o",
    "anthropic.messages": "claude-sonnet-4-6",
    "bedrock.converse": "anthropic.claude-sonnet-4-6",
}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def _provider(endpoint: str, srv: ProviderServer) -> Provider:
    if endpoint == "openai.chat":
        return OpenAI("sk-x", base_url=srv.url + "/v1")
    if endpoint == "openai.responses":
        return OpenAI("sk-x", base_url=srv.url + "/v1", api="responses")
    if endpoint == "anthropic.messages":
        return Anthropic("sk-ant-x", base_url=srv.url)
    return Bedrock(region="us-east-1", api_key="k", endpoint_url=srv.url)


def _usage(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in WANT}


def _send_unkept(
    srv: ProviderServer, s: srt.Session, endpoint: str, body: dict[str, Any], asynchronous: bool
) -> dict[str, Any]:
    """Send ``s`` a user message that ``endpoint`` answers with ``body`` (a reply srt does
    not keep: a ProviderResponseError); the one ledger row it leaves."""
    srv.fault(endpoint, "status", code=200, body=json.dumps(body).encode(), headers=JSON_HEADERS)
    s.append({"role": "user", "content": "hi"})
    with closing(_provider(endpoint, srv)) as p, pytest.raises(srt.ProviderResponseError):
        if asynchronous:

            async def main() -> None:
                try:
                    await s.asend(p, model=MODEL[endpoint])
                finally:
                    await p.aclose()

            asyncio.run(main())
        else:
            s.send(p, model=MODEL[endpoint])
    (row,) = s.calls()
    return row


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("endpoint", sorted(BODIES))
def test_an_unkept_reply_leaves_its_usage_in_the_ledger(
    endpoint: str, asynchronous: bool, srv: ProviderServer, rt: srt.Runtime
) -> None:
    s = rt.session("billed")
    row = _send_unkept(srv, s, endpoint, BODIES[endpoint], asynchronous)
    assert row["status"] == "error" and _usage(row) == WANT
    assert [m["role"] for m in s.messages()] == ["user"]


@pytest.mark.parametrize("usage", ["eleven", ["x"], None])
def test_a_usage_that_does_not_parse_leaves_the_row_without_usage(
    usage: Any, srv: ProviderServer, rt: srt.Runtime
) -> None:
    body = {**BODIES["openai.chat"], "usage": usage}
    srv.fault("openai.chat", "status", code=200, body=json.dumps(body).encode(),
              headers=JSON_HEADERS)  # fmt: skip
    s = rt.session("unbilled")
    s.append({"role": "user", "content": "hi"})
    with closing(_provider("openai.chat", srv)) as p, pytest.raises(srt.ProviderResponseError):
        s.send(p, model="gpt-4o")
    (row,) = s.calls()
    assert row["status"] == "error" and set(_usage(row).values()) == {None}


def _responses_stream_with_an_unkept_item() -> bytes:
    fmt = get_format("openai.responses")
    reply = Reply({"role": "assistant", "content": "Hello world"}, Usage(11, 3, 4, 0), "gpt-4o")
    obj = fmt.encode_reply(reply, id="resp_1")
    events = fmt.encode_events(obj, chunks=["Hello", " world"])
    name, last = events[-1]
    assert name == "response.completed"
    final = json.loads(json.dumps(last))
    final["response"]["output"].append({"type": "web_search_call", "id": "ws_1", "status": "x"})
    return b"".join(fmt.encode_stream([*events[:-1], (name, final)]))


@pytest.mark.parametrize("how", ["stream", "astream"])
def test_a_stream_whose_reply_cannot_be_kept_stores_its_partial_with_usage(
    how: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    srv.fault("openai.responses", "status", code=200,
              body=_responses_stream_with_an_unkept_item(), headers=SSE_HEADERS)  # fmt: skip
    s = rt.session("partial")
    s.append({"role": "user", "content": "hi"})
    seen: list[str] = []
    p = _provider("openai.responses", srv)
    with closing(p), pytest.raises(srt.ProviderResponseError, match="web_search_call"):
        if how == "stream":
            seen += s.stream(p, model="gpt-4o")
        else:

            async def main() -> None:
                try:
                    async for delta in s.astream(p, model="gpt-4o"):
                        seen.append(delta)
                finally:
                    await p.aclose()

            asyncio.run(main())
    assert "".join(seen) == "Hello world"
    (row,) = s.calls()
    assert row["status"] == "error" and _usage(row) == WANT
    entry = s.entries()[-1]
    assert entry.status == "error" and entry.message["content"] == "Hello world"


#: The model each unkept body names, where the format names one (Bedrock's does not).
SNAPSHOT = {
    "openai.chat": "gpt-4o-2024-08-06",
    "openai.responses": "gpt-4o-2024-08-06",
    "anthropic.messages": "claude-sonnet-4-6-20260101",
    "bedrock.converse": None,
}


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("endpoint", sorted(BODIES))
def test_an_unkept_reply_leaves_the_model_it_names_in_the_ledger(
    endpoint: str, asynchronous: bool, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """As a kept reply's row does (``reply_model``: the model the reply named, when it
    is not the one asked for), so the row is priced as the model that billed it."""
    body = dict(BODIES[endpoint])
    if SNAPSHOT[endpoint] is not None:
        body["model"] = SNAPSHOT[endpoint]
    s = rt.session("named")
    row = _send_unkept(srv, s, endpoint, body, asynchronous)
    assert row["status"] == "error" and _usage(row) == WANT
    assert row["reply_model"] == SNAPSHOT[endpoint]


@pytest.mark.parametrize(
    ("named", "want"),
    [
        ("gpt-4o", None),  # the model asked for: none recorded, as for a kept reply
        ("", None),
        (7, None),
        (["gpt-4o-mini"], None),
        ("gpt-4o-mini sk-x", "gpt-4o-mini [redacted]"),  # an echoed key is not kept
        ("m" * 300, "m" * 200),
        ("gpt-\ud800", "gpt-\ufffd"),
    ],
)
def test_an_unkept_replys_model_is_recorded_as_a_kept_ones(
    named: Any, want: str | None, srv: ProviderServer, rt: srt.Runtime
) -> None:
    unkept = {**BODIES["openai.chat"], "model": named}
    choice = {"index": 0, "finish_reason": "stop",
              "message": {"role": "assistant", "content": "Hello."}}  # fmt: skip
    kept = {**unkept, "choices": [choice]}
    s = rt.session("named")
    s.append({"role": "user", "content": "hi"})
    with closing(_provider("openai.chat", srv)) as p:
        for body in (kept, unkept):
            srv.fault("openai.chat", "status", code=200, body=json.dumps(body).encode(),
                      headers=JSON_HEADERS)  # fmt: skip
            if body is kept:
                s.send(p, model="gpt-4o")
            else:
                with pytest.raises(srt.ProviderResponseError):
                    s.send(p, model="gpt-4o")
    ok, error = s.calls()
    assert (ok["status"], error["status"]) == ("ok", "error")
    assert ok["reply_model"] == error["reply_model"] == want
