"""The local provider server's fault modes (status codes, resets, malformed streams,
slow and endless streams) seen through the SDKs, raw httpx and a raw socket.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from botocore.eventstream import ChecksumMismatch
from testing_server_support import (
    ANTHROPIC_H,
    BEDROCK_H,
    CHAT,
    CONVERSE,
    MESSAGES,
    OPENAI_H,
    bedrock_url,
    claude,
    frames,
    oai,
)

from srt.testing import ProviderServer
from support import sse_events


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
        srv.close()  # bounded itself; it gives up on a handler that does not end
        # Both endless streams and the idle connection were ended by ``close`` (not
        # waited for: they never end by themselves), every handler gone.
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
