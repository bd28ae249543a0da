"""The local provider server (``srt.testing``) against the official SDKs and raw HTTP.

The OpenAI and Anthropic SDKs prove the wire formats; botocore's event-stream decoder proves
the Bedrock framing; raw httpx and a raw socket show every fault mode.
"""

from __future__ import annotations

import email.utils
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anthropic
import httpx
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from srt.testing import (
    ProviderServer,
    cache_minimum,
    count_tokens,
    encode_event_frame,
    ntokens,
    render,
)

BEDROCK_MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
CLAUDE = "claude-sonnet-4-6"
LONG = "The quick brown fox jumps over the lazy dog. " * 120  # 5,400 bytes: ~1,350 tokens


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_", "AWS_")):
            monkeypatch.delenv(key)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s
    assert s.errors == []
    assert s.active_handlers == 0


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def oai(srv: ProviderServer, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-test", **kw)
    _CLIENTS.append(client)
    return client


def claude(srv: ProviderServer) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=srv.url, api_key="sk-ant-test", max_retries=0)
    _CLIENTS.append(client)
    return client


OPENAI_H = {"Authorization": "Bearer sk-test"}
ANTHROPIC_H = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
BEDROCK_H = {"Authorization": "Bearer bedrock-key"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
MESSAGES = {"model": CLAUDE, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
CONVERSE = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


def bedrock_url(srv: ProviderServer, stream: bool = False, model: str = BEDROCK_MODEL) -> str:
    op = "converse-stream" if stream else "converse"
    return f"{srv.url}/model/{quote(model, safe='')}/{op}"


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """A spec-following SSE parser: CRLF, LF or CR line ends; comments skipped."""
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    out: list[tuple[str | None, str]] = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            out.append((name, "\n".join(data)))
    return out


def frames(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buf = EventStreamBuffer()
    buf.add_data(raw)
    return [(m.headers, m.payload) for m in buf]


def raw_chunks(
    srv: ProviderServer, path: str, body: dict[str, Any], headers: dict[str, str]
) -> list[bytes]:
    """POST over a bare socket and return the HTTP chunks of the reply, un-joined."""
    data = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head += ["Content-Type: application/json", f"Content-Length: {len(data)}", "", ""]
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall("\r\n".join(head).encode() + data)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    rest = raw.split(b"\r\n\r\n", 1)[1]
    chunks = []
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        rest = rest[size + 2 :]


# -- OpenAI Chat Completions -----------------------------------------------------------


def test_chat_completion_and_usage(srv: ProviderServer) -> None:
    r = oai(srv).chat.completions.create(**CHAT)  # type: ignore[call-overload]
    text = r.choices[0].message.content
    assert text.startswith("reply 1 to hello: ")
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop"
    expected = count_tokens("openai.chat", CHAT)
    assert expected == ntokens(json.dumps(CHAT["messages"][0], separators=(",", ":")))
    assert r.usage.prompt_tokens == expected == srv.log[-1].prompt_tokens
    assert r.usage.completion_tokens == ntokens(text)
    assert r.usage.total_tokens == expected + ntokens(text)
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    rec = srv.log[-1]
    assert rec.endpoint == "openai.chat" and rec.status == 200 and rec.body == CHAT
    assert rec.headers["authorization"] == "Bearer <redacted>"
    assert srv.requests["openai.chat"] == 1


def test_chat_stream_with_usage(srv: ProviderServer) -> None:
    srv.script("chat", ["streamed ünïcode reply in several small pieces"])
    stream = oai(srv).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed ünïcode reply in several small pieces"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == ntokens(text)
    assert srv.wait_streams_closed() and srv.max_open_streams == 1


def test_chat_tool_call_round(srv: ProviderServer) -> None:
    client = oai(srv)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    srv.script(
        "openai.chat", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}]
    )
    msgs: list[Any] = [{"role": "user", "content": "weather?"}]
    r = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools)  # type: ignore[arg-type]
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Oslo"
    }
    msgs += [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    srv.script("chat", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Bergen"}}]}])
    stream = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools, stream=True)  # type: ignore[arg-type]
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in stream
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"city": "Bergen"}
    assert srv.log[-1].labels == ["tool:0", "message:0", "message:1", "message:2"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({**CHAT, "temperatur": 1}, "Unrecognized request argument supplied: temperatur"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "Invalid value: 'robot'"),
        ({"model": "m", "messages": [{"role": "user", "content": None}]}, "content"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "expected one of a string"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x", "metadata": {}}]},
            "'metadata' was unexpected",
        ),
        (
            {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c1", "content": "x"}]},
            "tool_calls",
        ),
        ({**CHAT, "stream_options": {"include_usage": True}}, "stream_options"),
        ({**CHAT, "tools": [{"type": "function", "function": {}}]}, "tools[0]"),
        ({**CHAT, "temperature": 3}, "temperature"),
        ([CHAT], "JSON object"),
    ],
)
def test_chat_validation(srv: ProviderServer, http: httpx.Client, body: Any, needle: str) -> None:
    r = http.post(srv.url + "/v1/chat/completions", json=body, headers=OPENAI_H)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and needle in err["message"] + str(err["param"])
    assert set(err) == {"message", "type", "param", "code"}


def test_chat_assistant_null_content_needs_tool_calls(srv: ProviderServer) -> None:
    with pytest.raises(openai.BadRequestError):
        oai(srv).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": None}],
        )


def test_openai_auth(srv: ProviderServer, http: httpx.Client) -> None:
    r = http.post(srv.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with ProviderServer(api_key="sk-right") as strict:
        r = http.post(strict.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H)
        assert r.status_code == 401
        r = http.post(
            strict.url + "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": "Bearer sk-right"},
        )
        assert r.status_code == 200
    assert http.post(srv.url + "/v1/nope", json=CHAT, headers=OPENAI_H).status_code == 404


def test_azure(srv: ProviderServer, http: httpx.Client) -> None:
    az = openai.AzureOpenAI(
        azure_endpoint=srv.url, api_version="2024-10-21", api_key="az-secret", max_retries=0
    )
    _CLIENTS.append(az)
    r = az.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi azure"}]
    )
    assert r.model == "my-deployment" and r.choices[0].message.content.startswith(
        "reply 1 to hi azure"
    )
    rec = srv.log[-1]
    assert rec.endpoint == "azure.chat" and rec.path.endswith("?api-version=2024-10-21")
    assert rec.headers["api-key"] == "<redacted>" and "az-secret" not in repr(srv.log)
    url = srv.url + "/openai/deployments/d/chat/completions"
    assert http.post(url, json=CHAT, headers={"api-key": "k"}).status_code == 404  # no api-version
    r = http.post(srv.url + "/openai/v1/chat/completions", json=CHAT, headers={"api-key": "k"})
    assert r.status_code == 200 and srv.requests["azure.chat"] == 2
    r = http.post(
        srv.url + "/openai/v1/responses",
        json={"model": "d", "input": "x"},
        headers={"api-key": "k"},
    )
    assert r.status_code == 200 and r.json()["object"] == "response"


# -- OpenAI Responses ------------------------------------------------------------------


def test_responses_chain_bills_the_whole_chain(srv: ProviderServer) -> None:
    client = oai(srv)
    r1 = client.responses.create(model="gpt-4o", input="first question", instructions="be brief")
    assert r1.status == "completed" and r1.output_text.startswith("reply 1 to first question")
    assert r1.store is True and r1.id.startswith("resp_")
    r2 = client.responses.create(model="gpt-4o", input="second", previous_response_id=r1.id)
    assert r2.previous_response_id == r1.id
    rec = srv.log[-1]
    assert rec.labels == ["item:0", "item:1", "item:2"]  # instructions are not carried forward
    user1 = {"role": "user", "content": "first question"}
    out1 = r1.output[0].model_dump(mode="json", exclude_none=True)
    chain = [user1, out1, {"role": "user", "content": "second"}]
    expected = sum(ntokens(json.dumps(i, ensure_ascii=False, separators=(",", ":"))) for i in chain)
    assert r2.usage.input_tokens == expected == rec.prompt_tokens
    assert r2.usage.input_tokens > r1.usage.input_tokens + r1.usage.output_tokens - ntokens(
        '{"instructions":"be brief"}'
    )
    assert r2.usage.input_tokens_details.cached_tokens == 0  # under 1,024 tokens
    assert (
        srv.count_tokens(
            "openai.responses",
            {"model": "gpt-4o", "input": "second", "previous_response_id": r1.id},
        )
        == expected
    )


def test_previous_response_not_found(srv: ProviderServer) -> None:
    client = oai(srv)

    def chained(prev: str) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="gpt-4o", input="x", previous_response_id=prev)
        assert info.value.code == "previous_response_not_found"
        assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
        return info.value

    assert "'resp_unknown' not found" in chained("resp_unknown").message
    unstored = client.responses.create(model="gpt-4o", input="x", store=False)
    chained(unstored.id)
    kept = client.responses.create(model="gpt-4o", input="x")
    client.responses.create(model="gpt-4o", input="y", previous_response_id=kept.id)
    srv.expire_responses([kept.id])
    chained(kept.id)
    with ProviderServer(responses_ttl_s=60) as short:
        c2 = oai(short)
        r = c2.responses.create(model="gpt-4o", input="x")
        short.advance(61)
        with pytest.raises(openai.BadRequestError) as info:
            c2.responses.create(model="gpt-4o", input="x", previous_response_id=r.id)
        assert info.value.code == "previous_response_not_found"


def test_responses_stream_events(srv: ProviderServer) -> None:
    srv.script("responses", ["stream me please, in pieces"])
    events = list(oai(srv).responses.create(model="gpt-4o", input="hi", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    for t in (
        "response.output_item.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_item.done",
    ):
        assert t in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "stream me please, in pieces"
    final = events[-1].response
    assert final.usage.input_tokens == srv.log[-1].prompt_tokens and final.output_text == text
    with oai(srv).responses.stream(model="gpt-4o", input="again") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().output_text.startswith("reply 2 to again")


def test_responses_function_calls(srv: ProviderServer, http: httpx.Client) -> None:
    client = oai(srv)
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    srv.script("responses", [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}])
    r1 = client.responses.create(model="gpt-4o", input="find x", tools=tools)  # type: ignore[arg-type]
    call = r1.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "x"}
    out = {"type": "function_call_output", "call_id": call.call_id, "output": "found"}
    r2 = client.responses.create(
        model="gpt-4o", input=[out], previous_response_id=r1.id, tools=tools
    )  # type: ignore[arg-type, list-item]
    assert r2.status == "completed"
    bad = {
        "model": "gpt-4o",
        "input": [{**out, "call_id": "call_other"}],
        "previous_response_id": r1.id,
    }
    r = http.post(srv.url + "/v1/responses", json=bad, headers=OPENAI_H)
    assert r.status_code == 400 and "call_other" in r.json()["error"]["message"]
    r = http.post(
        srv.url + "/v1/responses", json={"model": "m", "input": "x", "bogus": 1}, headers=OPENAI_H
    )
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]


# -- Anthropic Messages ----------------------------------------------------------------


def test_anthropic_create_and_stream(srv: ProviderServer) -> None:
    client = claude(srv)
    m = client.messages.create(**MESSAGES)  # type: ignore[call-overload]
    assert (
        m.type == "message"
        and m.stop_reason == "end_turn"
        and m.content[0].text.startswith("reply 1 to hi")
    )
    assert (
        m.usage.input_tokens
        == count_tokens("anthropic.messages", MESSAGES)
        == srv.log[-1].prompt_tokens
    )
    assert m.usage.output_tokens == ntokens(m.content[0].text)
    assert (
        srv.log[-1]
        .headers.get("authorization", srv.log[-1].headers.get("x-api-key", ""))
        .endswith("<redacted>")
    )
    with client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "stream ☃"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and text.startswith("reply 2 to stream ☃")
    assert (
        final.usage.output_tokens == ntokens(text)
        and final.usage.input_tokens == srv.log[-1].prompt_tokens
    )
    count = client.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "hi"}])
    assert count.input_tokens == count_tokens("anthropic.messages", MESSAGES)


def test_anthropic_tool_round(srv: ProviderServer, http: httpx.Client) -> None:
    client = claude(srv)
    tools = [
        {
            "name": "get_time",
            "description": "now",
            "input_schema": {"type": "object", "properties": {}},
        }
    ]
    srv.script(
        "anthropic",
        [
            {
                "text": "let me check",
                "tool_calls": [{"name": "get_time", "arguments": {"tz": "UTC"}}],
            }
        ],
    )
    msgs: list[Any] = [{"role": "user", "content": "time?"}]
    m = client.messages.create(model=CLAUDE, max_tokens=64, messages=msgs, tools=tools)  # type: ignore[arg-type]
    assert m.stop_reason == "tool_use"
    use = m.content[1]
    assert use.type == "tool_use" and use.input == {"tz": "UTC"}
    msgs += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12:00"}],
        },
    ]
    m2 = client.messages.create(model=CLAUDE, max_tokens=64, messages=msgs, tools=tools)  # type: ignore[arg-type]
    assert m2.content[0].text.startswith("reply 2 to 12:00")
    msgs[-1]["content"][0]["tool_use_id"] = "toolu_unknown"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=CLAUDE, max_tokens=64, messages=msgs, tools=tools)  # type: ignore[arg-type]
    srv.script("anthropic", [{"tool_calls": [{"name": "get_time", "arguments": {"tz": "CET"}}]}])
    with client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=msgs[:1], tools=tools
    ) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.content[0].input == {"tz": "CET"} and final.stop_reason == "tool_use"


def _sys(text: str, ttl: str | None = None) -> list[dict[str, Any]]:
    cc: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": text, "cache_control": cc}]


def test_anthropic_cache_accounting(srv: ProviderServer) -> None:
    client = claude(srv)
    cc = {"type": "ephemeral"}
    turn1 = [{"role": "user", "content": [{"type": "text", "text": "q1", "cache_control": cc}]}]
    m1 = client.messages.create(model=CLAUDE, max_tokens=64, system=_sys(LONG), messages=turn1)  # type: ignore[arg-type]
    b1 = srv.log[-1].boundaries
    assert srv.log[-1].breakpoints == [(0, "5m"), (1, "5m")]
    assert b1[0] >= 1024
    assert (m1.usage.cache_creation_input_tokens, m1.usage.cache_read_input_tokens) == (b1[1], 0)
    assert m1.usage.input_tokens == b1[-1] - b1[1] == 0
    assert m1.usage.cache_creation.ephemeral_5m_input_tokens == b1[1]
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": "q1"}]},
        {"role": "assistant", "content": m1.content[0].text},
        {"role": "user", "content": [{"type": "text", "text": "q2", "cache_control": cc}]},
    ]
    m2 = client.messages.create(model=CLAUDE, max_tokens=64, system=_sys(LONG), messages=turn2)  # type: ignore[arg-type]
    b2 = srv.log[-1].boundaries
    assert b2[:2] == b1[:2]  # markers never change tokens
    assert m2.usage.cache_read_input_tokens == b1[1]  # found by looking back from the breakpoint
    assert m2.usage.cache_creation_input_tokens == b2[3] - b1[1]
    assert m2.usage.input_tokens == b2[-1] - b2[3] == 0
    # Below the minimum nothing is cached, silently.
    small = client.messages.create(
        model=CLAUDE, max_tokens=64, system=_sys("short"), messages=turn1
    )  # type: ignore[arg-type]
    assert (small.usage.cache_creation_input_tokens, small.usage.cache_read_input_tokens) == (0, 0)
    assert small.usage.input_tokens == srv.log[-1].prompt_tokens
    # After 5 minutes the 5m entries are gone; the 1h one survives.
    srv.advance(301)
    m3 = client.messages.create(model=CLAUDE, max_tokens=64, system=_sys(LONG), messages=turn2)  # type: ignore[arg-type]
    assert m3.usage.cache_read_input_tokens == 0 and m3.usage.cache_creation_input_tokens == b2[3]
    # m3 wrote units 0 and 3; a 1h breakpoint that hits an entry lifts it to 1h.
    m4 = client.messages.create(
        model=CLAUDE, max_tokens=64, system=_sys(LONG, "1h"), messages=turn1
    )  # type: ignore[arg-type]
    assert m4.usage.cache_read_input_tokens == b1[0]
    assert m4.usage.cache_creation.ephemeral_5m_input_tokens == b1[1] - b1[0]
    srv.advance(301)
    m5 = client.messages.create(
        model=CLAUDE, max_tokens=64, system=_sys(LONG, "1h"), messages=turn1
    )  # type: ignore[arg-type]
    assert m5.usage.cache_read_input_tokens == b1[0]  # only the 1h system entry is alive
    assert m5.usage.cache_creation.ephemeral_5m_input_tokens == b1[1] - b1[0]
    fresh = client.messages.create(
        model="claude-opus-4-6", max_tokens=64, system=_sys(LONG, "1h"), messages=turn1
    )  # type: ignore[arg-type]
    assert fresh.usage.cache_creation.ephemeral_1h_input_tokens == b1[0]
    assert fresh.usage.cache_creation.ephemeral_5m_input_tokens == b1[1] - b1[0]


def test_anthropic_cache_minimum_per_model(srv: ProviderServer) -> None:
    assert cache_minimum(CLAUDE) == 1024
    assert cache_minimum("claude-3-haiku-20240307") == 2048
    assert cache_minimum("claude-haiku-4-5") == 4096
    assert cache_minimum("claude-haiku-4-5", overrides={"haiku": 100}) == 100
    client = claude(srv)
    msgs = [{"role": "user", "content": "q"}]
    m = client.messages.create(
        model="claude-haiku-4-5", max_tokens=64, system=_sys(LONG), messages=msgs
    )  # type: ignore[arg-type]
    assert m.usage.cache_creation_input_tokens == 0  # ~1,350 tokens < 4,096
    m = client.messages.create(
        model="claude-haiku-4-5", max_tokens=64, system=_sys(LONG * 4), messages=msgs
    )  # type: ignore[arg-type]
    assert m.usage.cache_creation_input_tokens == srv.log[-1].boundaries[0] > 4096


def test_anthropic_breakpoint_rules(srv: ProviderServer) -> None:
    client = claude(srv)
    cc = {"type": "ephemeral"}
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": cc} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": blocks}]
        )  # type: ignore[arg-type]
    assert "maximum of 4 blocks" in str(info.value)
    client.messages.create(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": blocks[:4]}]
    )  # type: ignore[arg-type]
    late_1h = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ],
        }
    ]
    with pytest.raises(anthropic.BadRequestError, match="1h"):
        client.messages.create(
            model=CLAUDE, max_tokens=64, system=_sys("s", "5m"), messages=late_1h
        )  # type: ignore[arg-type]
    client.messages.create(model=CLAUDE, max_tokens=64, system=_sys("s", "1h"), messages=late_1h)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"temprature": 1}, "temprature: Extra inputs are not permitted"),
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "first message"),
        ({"messages": [{"role": "user", "content": ""}]}, "non-empty"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "x", "extra": 1}]}
                ]
            },
            "extra",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}],
                    }
                ]
            },
            "not allowed",
        ),
        (
            {"system": [{"type": "text", "text": "s", "cache_control": {"type": "persistent"}}]},
            "cache_control",
        ),
        ({"tools": [{"name": "t", "input_schema": "no"}]}, "input_schema"),
    ],
)
def test_anthropic_validation(
    srv: ProviderServer, http: httpx.Client, change: dict[str, Any], needle: str
) -> None:
    body = {**MESSAGES, **change}
    if change.get("max_tokens", 0) is None:
        del body["max_tokens"]
    r = http.post(srv.url + "/v1/messages", json=body, headers=ANTHROPIC_H)
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert needle in r.json()["error"]["message"]


def test_anthropic_headers(srv: ProviderServer, http: httpx.Client) -> None:
    url = srv.url + "/v1/messages"
    r = http.post(url, json=MESSAGES, headers={"x-api-key": "k"})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    r = http.post(url, json=MESSAGES, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = http.post(
        url, json=MESSAGES, headers={"Authorization": "Bearer k", "anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 200 and r.headers["request-id"]
    consecutive = {
        **MESSAGES,
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    }
    assert http.post(url, json=consecutive, headers=ANTHROPIC_H).status_code == 200
    r = http.post(url + "/count_tokens", json={**MESSAGES}, headers=ANTHROPIC_H)
    assert r.status_code == 400  # count_tokens takes no max_tokens
    body = {k: v for k, v in MESSAGES.items() if k != "max_tokens"}
    r = http.post(url + "/count_tokens", json=body, headers=ANTHROPIC_H)
    assert r.json() == {"input_tokens": count_tokens("anthropic.count_tokens", body)}


# -- Bedrock Converse ------------------------------------------------------------------


def test_bedrock_converse(srv: ProviderServer, http: httpx.Client) -> None:
    body = {
        **CONVERSE,
        "system": [{"text": "be nice"}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0},
    }
    r = http.post(bedrock_url(srv), json=body, headers=BEDROCK_H)
    assert r.status_code == 200
    out = r.json()
    assert out["stopReason"] == "end_turn" and out["output"]["message"]["role"] == "assistant"
    text = out["output"]["message"]["content"][0]["text"]
    assert text.startswith("reply 1 to hi")
    total = count_tokens("bedrock.converse", body, model=BEDROCK_MODEL)
    assert srv.log[-1].model == BEDROCK_MODEL
    u = out["usage"]
    assert (
        u["inputTokens"],
        u["outputTokens"],
        u["cacheReadInputTokens"],
        u["cacheWriteInputTokens"],
    ) == (total, ntokens(text), 0, 0)
    assert u["totalTokens"] == total + ntokens(text) and out["metrics"]["latencyMs"] >= 1
    srv.script("bedrock", [{"tool_calls": [{"name": "calc", "arguments": {"x": 1}}]}])
    tools = {"tools": [{"toolSpec": {"name": "calc", "inputSchema": {"json": {"type": "object"}}}}]}
    r = http.post(bedrock_url(srv), json={**CONVERSE, "toolConfig": tools}, headers=BEDROCK_H)
    use = r.json()["output"]["message"]["content"][0]["toolUse"]
    assert r.json()["stopReason"] == "tool_use" and use["input"] == {"x": 1}
    follow = {
        "toolConfig": tools,
        "messages": [
            *CONVERSE["messages"],
            {"role": "assistant", "content": [{"toolUse": use}]},
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": use["toolUseId"], "content": [{"json": {"y": 2}}]}}
                ],
            },
        ],
    }
    assert http.post(bedrock_url(srv), json=follow, headers=BEDROCK_H).status_code == 200


def test_bedrock_stream_decodes_with_botocore(srv: ProviderServer, http: httpx.Client) -> None:
    srv.script("converse_stream", ["ünïcode stream from bedrock, in pieces"])
    r = http.post(bedrock_url(srv, stream=True), json=CONVERSE, headers=BEDROCK_H)
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    got = frames(r.content)
    kinds = [h[":event-type"] for h, _ in got]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert all(
        h[":message-type"] == "event" and h[":content-type"] == "application/json" for h, _ in got
    )
    payloads = [json.loads(p) for _, p in got]
    text = "".join(
        p["delta"]["text"] for h, p in zip(kinds, payloads, strict=True) if h == "contentBlockDelta"
    )
    assert text == "ünïcode stream from bedrock, in pieces"
    assert payloads[-2]["stopReason"] == "end_turn"
    assert payloads[-1]["usage"]["outputTokens"] == ntokens(text)
    srv.script(
        "converse_stream",
        [{"tool_calls": [{"name": "calc", "arguments": {"x": 12345678901234567890}}]}],
    )
    r = http.post(bedrock_url(srv, stream=True), json=CONVERSE, headers=BEDROCK_H)
    got = frames(r.content)
    start = next(json.loads(p) for h, p in got if h[":event-type"] == "contentBlockStart")
    assert start["start"]["toolUse"]["name"] == "calc"
    args = "".join(
        json.loads(p)["delta"]["toolUse"]["input"]
        for h, p in got
        if h[":event-type"] == "contentBlockDelta"
    )
    assert json.loads(args) == {"x": 12345678901234567890}


def test_encode_event_frame_round_trip() -> None:
    headers = {":event-type": "contentBlockDelta", ":message-type": "event", "x-ünï": "välue"}
    payload = '{"delta":{"text":"日本語"}}'.encode()
    raw = encode_event_frame(headers, payload) + encode_event_frame({"a": ""}, b"")
    [(h1, p1), (h2, p2)] = frames(raw)
    assert (h1, p1, h2, p2) == (headers, payload, {"a": ""}, b"")
    broken = bytearray(raw)
    broken[20] ^= 1
    with pytest.raises(ChecksumMismatch):
        frames(bytes(broken))


def test_bedrock_auth(srv: ProviderServer, http: httpx.Client) -> None:
    url = bedrock_url(srv)
    r = http.post(url, json=CONVERSE)
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    assert "message" in r.json()
    body = json.dumps(CONVERSE).encode()

    def signed(service: str, headers_to_drop: tuple[str, ...] = ()) -> httpx.Response:
        req = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), service, "us-east-1").add_auth(req)
        hdrs = dict(req.headers.items())
        for name in headers_to_drop:
            hdrs.pop(name)
        return http.post(url, content=body, headers=hdrs)

    assert signed("bedrock").status_code == 200
    assert srv.log[-1].headers["authorization"] == "AWS4-HMAC-SHA256 <redacted>"
    r = signed("s3")
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert signed("bedrock", ("X-Amz-Date",)).status_code == 403
    bad = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/bedrock/"
        "aws4_request, SignedHeaders=content-type;x-amz-date, Signature=" + "0" * 64,
        "x-amz-date": "20250101T000000Z",
    }
    r = http.post(url, json=CONVERSE, headers=bad)
    assert r.status_code == 403 and "host" in r.json()["message"]


def test_bedrock_cache_points_and_validation(srv: ProviderServer, http: httpx.Client) -> None:
    cp = {"cachePoint": {"type": "default"}}
    body = {
        "system": [{"text": LONG}, cp],
        "messages": [{"role": "user", "content": [{"text": "q1"}, cp]}],
    }
    u1 = http.post(bedrock_url(srv), json=body, headers=BEDROCK_H).json()["usage"]
    b = srv.log[-1].boundaries
    assert srv.log[-1].breakpoints == [(0, "5m"), (1, "5m")]
    assert (u1["cacheWriteInputTokens"], u1["cacheReadInputTokens"], u1["inputTokens"]) == (
        b[1],
        0,
        0,
    )
    u2 = http.post(bedrock_url(srv, stream=True), json=body, headers=BEDROCK_H)
    meta = json.loads(frames(u2.content)[-1][1])["usage"]
    assert (meta["cacheReadInputTokens"], meta["cacheWriteInputTokens"]) == (b[1], 0)
    other = bedrock_url(srv, model="anthropic.claude-haiku-4-5-20251001-v1:0")
    u3 = http.post(other, json=body, headers=BEDROCK_H).json()["usage"]
    assert u3["cacheWriteInputTokens"] == 0 and u3["inputTokens"] == b[-1]  # haiku-4: 4,096 minimum

    def rejected(payload: dict[str, Any], needle: str) -> None:
        r = http.post(bedrock_url(srv), json=payload, headers=BEDROCK_H)
        assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "ValidationException"
        assert needle in r.json()["message"]

    five = {
        "messages": [
            {"role": "user", "content": [x for i in range(5) for x in ({"text": f"t{i}"}, cp)]}
        ]
    }
    rejected(five, "maximum of 4")
    rejected({**CONVERSE, "modelId": "x"}, "modelId")
    rejected(
        {
            "messages": [
                {"role": "user", "content": [{"text": "a"}]},
                {"role": "user", "content": [{"text": "b"}]},
            ]
        },
        "alternate",
    )
    rejected({"messages": [{"role": "user", "content": [{"text": " "}]}]}, "blank")
    late = {
        "system": [{"text": "s"}, cp],
        "messages": [
            {
                "role": "user",
                "content": [{"text": "a"}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
            }
        ],
    }
    rejected(late, "TTL")
    rejected(
        {
            "messages": [
                {"role": "user", "content": [{"toolResult": {"toolUseId": "nope", "content": []}}]}
            ]
        },
        "nope",
    )


# -- Faults ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "url_path", "body", "headers"),
    [
        ("openai.chat", "/v1/chat/completions", CHAT, OPENAI_H),
        ("anthropic", "/v1/messages", MESSAGES, ANTHROPIC_H),
        ("bedrock", None, CONVERSE, BEDROCK_H),
    ],
)
def test_status_faults(
    srv: ProviderServer,
    http: httpx.Client,
    target: str,
    url_path: str | None,
    body: Any,
    headers: dict[str, str],
) -> None:
    url = srv.url + url_path if url_path else bedrock_url(srv)
    srv.fault(target, "status", code=429, retry_after=2)
    srv.fault(target, "status", code=429, retry_after_date=30)
    srv.fault(target, "status", code=429, retry_after_ms=1500, retry_after=1)
    srv.fault(target, "status", code=429, retry_after=180)
    srv.fault(target, "status", count=2, code=529)
    for code in (500, 503, 408, 409):
        srv.fault(target, "status", code=code)
    replies = [http.post(url, json=body, headers=headers) for _ in range(10)]
    assert [r.status_code for r in replies] == [429, 429, 429, 429, 529, 529, 500, 503, 408, 409]
    assert replies[0].headers["retry-after"] == "2"
    when = email.utils.parsedate_to_datetime(replies[1].headers["retry-after"]).timestamp()
    assert 20 < when - time.time() < 40
    assert (
        replies[2].headers["retry-after-ms"] == "1500" and replies[2].headers["retry-after"] == "1"
    )
    assert replies[3].headers["retry-after"] == "180"
    for r in replies:
        if target == "anthropic":
            assert r.json()["type"] == "error"
        elif target == "bedrock":
            assert "message" in r.json() and r.headers["x-amzn-ErrorType"]
        else:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    if target == "anthropic":
        assert replies[4].json()["error"]["type"] == "overloaded_error"
        assert replies[0].json()["error"]["type"] == "rate_limit_error"
    if target == "bedrock":
        assert replies[0].headers["x-amzn-ErrorType"] == "ThrottlingException"
    assert http.post(url, json=body, headers=headers).status_code == 200
    assert [rec.fault for rec in srv.log][:2] == ["status:429", "status:429"] and srv.log[
        -1
    ].fault is None


def test_fault_forever_and_targets(srv: ProviderServer, http: httpx.Client) -> None:
    srv.fault("*", "status", count=None, code=503)
    for _ in range(3):
        assert (
            http.post(srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H).status_code
            == 503
        )
    srv.clear()
    assert (
        http.post(srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H).status_code == 200
    )
    srv.fault("responses", "status", code=500)
    assert (
        http.post(srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H).status_code == 200
    )
    r = http.post(srv.url + "/v1/responses", json={"model": "m", "input": "x"}, headers=OPENAI_H)
    assert r.status_code == 500
    srv.fault("openai", "status", code=429, body="not json at all")
    r = http.post(srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H)
    assert r.status_code == 429 and r.text == "not json at all"
    with pytest.raises(ValueError):
        srv.fault("openai", "explode")
    with pytest.raises(ValueError):
        srv.fault("nowhere", "status", code=500)
    with pytest.raises(ValueError):
        srv.fault("openai", "malformed_sse", variant="nope")


def test_retry_visible_through_the_sdk(srv: ProviderServer) -> None:
    srv.fault("openai", "status", count=2, code=429, retry_after_ms=10)
    client = oai(srv, max_retries=2)
    client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert srv.requests["openai.chat"] == 3
    assert [rec.headers["x-stainless-retry-count"] for rec in srv.log] == ["0", "1", "2"]


def test_reset_before_headers(srv: ProviderServer, http: httpx.Client) -> None:
    srv.fault("chat", "reset_before_headers")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.post(srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H)
    assert (
        http.post(srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H).status_code == 200
    )
    srv.fault("anthropic", "reset_before_headers")
    with pytest.raises(anthropic.APIConnectionError):
        claude(srv).messages.create(**MESSAGES)  # type: ignore[call-overload]


def test_reset_after_events(srv: ProviderServer, http: httpx.Client) -> None:
    srv.fault("chat", "reset_after_events", n=3)
    lines: list[str] = []
    body = {**CHAT, "stream": True}
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # noqa: SIM117
        with http.stream(
            "POST", srv.url + "/v1/chat/completions", json=body, headers=OPENAI_H
        ) as r:
            assert r.status_code == 200
            lines.extend(line for line in r.iter_lines() if line)
    assert len(lines) == 3 and all(line.startswith("data: {") for line in lines)
    assert srv.wait_streams_closed()
    srv.fault("converse_stream", "reset_after_events", n=2)
    got = b""
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # noqa: SIM117
        with http.stream(
            "POST", bedrock_url(srv, stream=True), json=CONVERSE, headers=BEDROCK_H
        ) as r:
            for chunk in r.iter_raw():
                got += chunk
    assert len(frames(got)) == 2
    srv.fault("messages", "reset_after_events", n=0)  # non-stream: headers, then the reset
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.post(srv.url + "/v1/messages", json=MESSAGES, headers=ANTHROPIC_H)


def test_malformed_sse_openai(srv: ProviderServer, http: httpx.Client) -> None:
    url, body = srv.url + "/v1/chat/completions", {**CHAT, "stream": True}
    normal = sse_events(http.post(url, json=body, headers=OPENAI_H).content)
    assert normal[-1] == (None, "[DONE]")
    srv.fault("chat", "malformed_sse", variant="bad_json", after=2)
    events = sse_events(http.post(url, json=body, headers=OPENAI_H).content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[2][1])
    srv.fault("chat", "malformed_sse", variant="crlf")
    raw = http.post(url, json=body, headers=OPENAI_H).content
    assert b"\r\n\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    assert len(sse_events(raw)) == len(normal)
    srv.fault("chat", "malformed_sse", variant="error_event", after=2)
    events = sse_events(http.post(url, json=body, headers=OPENAI_H).content)
    assert len(events) == 3 and "error" in json.loads(events[-1][1])
    srv.fault("chat", "malformed_sse", variant="error_event")
    with pytest.raises(openai.APIError):
        list(oai(srv).chat.completions.create(**body))  # type: ignore[call-overload]
    srv.fault("chat", "malformed_sse", variant="crlf")
    srv.fault("chat", "malformed_sse", variant="split_utf8")
    for _ in range(2):  # a correct client reads both
        chunks = list(oai(srv).chat.completions.create(**body))  # type: ignore[call-overload]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith(
            "reply"
        )


def test_split_utf8_crosses_chunks(srv: ProviderServer) -> None:
    srv.fault("messages", "malformed_sse", variant="split_utf8")
    chunks = raw_chunks(srv, "/v1/messages", {**MESSAGES, "stream": True}, ANTHROPIC_H)

    def decodes(b: bytes) -> bool:
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True

    assert not all(decodes(c) for c in chunks)  # a character is cut between two chunks
    events = sse_events(b"".join(chunks))
    text = "".join(
        json.loads(d)["delta"].get("text", "") for n, d in events if n == "content_block_delta"
    )
    assert text.endswith(" ünïcödé ✓")
    srv.fault("messages", "malformed_sse", variant="split_utf8")
    srv.fault("messages", "malformed_sse", variant="crlf")
    for _ in range(2):
        with claude(srv).messages.stream(**MESSAGES) as stream:  # type: ignore[arg-type]
            assert "".join(stream.text_stream).startswith("reply")


def test_malformed_anthropic_and_bedrock(srv: ProviderServer, http: httpx.Client) -> None:
    srv.fault("messages", "malformed_sse", variant="error_event", after=3)
    events = sse_events(
        http.post(
            srv.url + "/v1/messages", json={**MESSAGES, "stream": True}, headers=ANTHROPIC_H
        ).content
    )
    assert events[-1][0] == "error"
    assert json.loads(events[-1][1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    srv.fault("messages", "malformed_sse", variant="error_event", after=3)
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):  # noqa: SIM117
        with claude(srv).messages.stream(**MESSAGES) as stream:  # type: ignore[arg-type]
            list(stream.text_stream)
    srv.fault("messages", "malformed_sse", variant="bad_json")
    events = sse_events(
        http.post(
            srv.url + "/v1/messages", json={**MESSAGES, "stream": True}, headers=ANTHROPIC_H
        ).content
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[1][1])
    url = bedrock_url(srv, stream=True)
    srv.fault(
        "converse_stream",
        "malformed_sse",
        variant="error_event",
        after=2,
        error_type="throttlingException",
    )
    got = frames(http.post(url, json=CONVERSE, headers=BEDROCK_H).content)
    headers, payload = got[-1]
    assert len(got) == 3 and headers[":message-type"] == "exception"
    assert headers[":exception-type"] == "throttlingException" and "message" in json.loads(payload)
    srv.fault("converse_stream", "malformed_sse", variant="bad_crc")
    with pytest.raises(ChecksumMismatch):
        frames(http.post(url, json=CONVERSE, headers=BEDROCK_H).content)
    srv.fault("converse_stream", "malformed_sse", variant="bad_json")
    got = frames(http.post(url, json=CONVERSE, headers=BEDROCK_H).content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(got[1][1])


def _first_bytes(it: Iterator[bytes], n: int) -> bytes:
    """At least ``n`` bytes from ``it``; the caller keeps ``it`` (and so the stream) alive:
    an abandoned httpx iterator closes its connection when it is collected."""
    got = b""
    for chunk in it:
        got += chunk
        if len(got) >= n:
            break
    return got


def test_slow_and_endless_end_when_the_client_leaves(srv: ProviderServer) -> None:
    srv.fault("chat", "slow")  # one byte every 30 s
    srv.fault("messages", "endless", interval=0.02)
    with httpx.Client(timeout=10) as c:
        with c.stream(
            "POST",
            srv.url + "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers=OPENAI_H,
        ) as r:
            assert _first_bytes(r.iter_raw(), 1) == b"d"  # "data: ..."
        assert srv.open_streams == 0 or srv.wait_streams_closed()
        with c.stream(
            "POST", srv.url + "/v1/messages", json={**MESSAGES, "stream": True}, headers=ANTHROPIC_H
        ) as r:
            got = _first_bytes(r.iter_raw(), 3000)
        assert got.startswith(b"event: message_start") and b"event: ping" in got
    assert srv.wait_streams_closed()
    assert srv.max_open_streams == 1


def test_close_is_prompt_with_endless_streams_open() -> None:
    srv = ProviderServer()
    srv.fault("chat", "slow", count=None)
    srv.fault("converse_stream", "endless", count=None, interval=0.05)
    clients = [httpx.Client(timeout=10) for _ in range(2)]
    try:
        r1 = clients[0].send(
            clients[0].build_request(
                "POST",
                srv.url + "/v1/chat/completions",
                json={**CHAT, "stream": True},
                headers=OPENAI_H,
            ),
            stream=True,
        )
        r2 = clients[1].send(
            clients[1].build_request(
                "POST", bedrock_url(srv, stream=True), json=CONVERSE, headers=BEDROCK_H
            ),
            stream=True,
        )
        it1, it2 = r1.iter_raw(), r2.iter_raw()
        assert _first_bytes(it1, 1) and _first_bytes(it2, 1)
        idle = httpx.Client(timeout=10)  # plus an idle keep-alive connection
        assert idle.get(srv.url + "/health").json()["ok"]
        assert srv.open_streams == 2
        start = time.monotonic()
        srv.close()
        assert time.monotonic() - start < 2.0
        assert srv.open_streams == 0 and srv.active_handlers == 0 and srv.errors == []
        idle.close()
        with pytest.raises(httpx.HTTPError):  # the server went away mid-stream
            _first_bytes(it1, 1 << 30)
        r1.close()
        r2.close()
    finally:
        for c in clients:
            c.close()
        srv.close()
    with httpx.Client(timeout=2) as c, pytest.raises(httpx.ConnectError):
        c.get(srv.url + "/health")


def test_slow_non_stream_and_delay(srv: ProviderServer) -> None:
    srv.fault("messages", "slow", interval=0.001)
    srv.fault("messages", "delay", seconds=0.05)
    with httpx.Client(timeout=10) as c:
        r = c.post(srv.url + "/v1/messages", json=MESSAGES, headers=ANTHROPIC_H)
        assert r.json()["type"] == "message"
        with pytest.raises(httpx.ReadTimeout):
            c.post(srv.url + "/v1/messages", json=MESSAGES, headers=ANTHROPIC_H, timeout=0.01)


# -- OpenAI prompt caching -------------------------------------------------------------


def test_openai_cache_in_a_growing_conversation(srv: ProviderServer) -> None:
    client = oai(srv)
    msgs: list[Any] = [{"role": "system", "content": "You are terse. " * 100}]
    seen = []
    prev_total = 0
    for turn in range(30):
        msgs.append(
            {"role": "user", "content": f"turn {turn}: " + "tell me more about caching. " * 8}
        )
        r = client.chat.completions.create(model="gpt-4o", messages=msgs)
        total, cached = r.usage.prompt_tokens, r.usage.prompt_tokens_details.cached_tokens
        assert total == srv.log[-1].prompt_tokens
        expected = prev_total // 128 * 128 if total >= 1024 and prev_total >= 1024 else 0
        assert cached == expected, (turn, total, prev_total)
        assert cached % 128 == 0 and cached <= total
        seen.append(cached)
        prev_total = total
        msgs.append({"role": "assistant", "content": r.choices[0].message.content})
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] > 3000
    assert 0 < seen.count(0) < 30
    # prompt_cache_key keeps a separate namespace; the same key finds its own entries.
    r = client.chat.completions.create(model="gpt-4o", messages=msgs[:-1], prompt_cache_key="other")
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    r = client.chat.completions.create(model="gpt-4o", messages=msgs[:-1], prompt_cache_key="other")
    assert r.usage.prompt_tokens_details.cached_tokens == r.usage.prompt_tokens // 128 * 128
    r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs[:-1])
    assert r.usage.prompt_tokens_details.cached_tokens == 0  # per model
    srv.advance(601)
    r = client.chat.completions.create(model="gpt-4o", messages=msgs[:-1])
    assert r.usage.prompt_tokens_details.cached_tokens == 0  # idle TTL passed


def test_openai_cache_for_responses_chains(srv: ProviderServer) -> None:
    client = oai(srv)
    r1 = client.responses.create(model="gpt-4o", input=LONG)
    assert r1.usage.input_tokens_details.cached_tokens == 0
    r2 = client.responses.create(model="gpt-4o", input="next", previous_response_id=r1.id)
    assert r2.usage.input_tokens_details.cached_tokens == r1.usage.input_tokens // 128 * 128 > 1024
    msgs = [{"role": "developer", "content": LONG}]
    for expect_hit in (False, True):
        stream = client.chat.completions.create(
            model="gpt-4o", messages=msgs, stream=True, stream_options={"include_usage": True}
        )  # type: ignore[arg-type]
        usage = list(stream)[-1].usage
        assert usage.prompt_tokens_details.cached_tokens == (
            usage.prompt_tokens // 128 * 128 if expect_hit else 0
        )


# -- the rest ---------------------------------------------------------------------------


def test_render_and_counters(srv: ProviderServer, http: httpx.Client) -> None:
    prep = render("anthropic.messages", {**MESSAGES, "system": _sys("abc")})
    assert prep.labels == ["system:0", "message:0.0"] and prep.breakpoints == [(0, "5m")]
    assert prep.units[0] == '{"type":"text","text":"abc"}' and prep.units[1].startswith("user:")
    assert ntokens("abcd") == 1 and ntokens("abcde") == 2 and ntokens("é") == 1

    def call() -> None:
        with httpx.Client(timeout=10) as c:
            for _ in range(5):
                assert (
                    c.post(
                        srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H
                    ).status_code
                    == 200
                )

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert srv.requests["openai.chat"] == 30 and len(srv.log) == 30
    assert [rec.seq for rec in srv.log] == list(range(1, 31))
    replies = {rec.reply.text.split(":")[0] for rec in srv.log if rec.reply}
    assert replies == {f"reply {n} to hello" for n in range(1, 31)}


def test_context_window() -> None:
    with ProviderServer(context_window=100) as small:
        big = [{"role": "user", "content": "x" * 500}]
        with pytest.raises(openai.BadRequestError) as info:
            oai(small).chat.completions.create(model="gpt-4o", messages=big)  # type: ignore[arg-type]
        assert info.value.code == "context_length_exceeded"
        with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
            claude(small).messages.create(model=CLAUDE, max_tokens=8, messages=big)  # type: ignore[arg-type]
        items = [{"role": "user", "content": "y" * 200} for _ in range(3)]
        r = oai(small).responses.create(model="gpt-4o", input=items, truncation="auto")  # type: ignore[arg-type]
        assert r.status == "completed" and small.log[-1].labels == ["item:2"]
        with pytest.raises(openai.BadRequestError):
            oai(small).responses.create(model="gpt-4o", input=items)  # type: ignore[arg-type]
        assert small.errors == []
