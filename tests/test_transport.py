"""The retry policy and error mapping, against real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import http.server
import ssl
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import httpx
import pytest
import trustme

import srt
import srt.providers.transport as transport_module
from srt._core import Body
from srt.providers.policy import redact
from srt.providers.transport import (
    AsyncTransport,
    HTTPRequest,
    RetryPolicy,
    Timeouts,
    Transport,
)


def test_retry_after_headers() -> None:
    p = RetryPolicy()
    assert p.retry_after({"retry-after-ms": "250"}) == 0.25
    assert p.retry_after({"retry-after": "3"}) == 3.0
    when = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert p.retry_after({"retry-after": when}, now=1_000_000.0) == pytest.approx(30.0)
    assert p.retry_after({"retry-after": "soon"}) is None
    assert p.retry_after({}) is None
    # retry-after-ms wins over Retry-After
    assert p.retry_after({"retry-after-ms": "10", "retry-after": "9"}) == 0.01
    # "nan" asks for no wait srt can honour (``max(0.0, nan)`` would be an immediate
    # retry): Retry-After, else the backoff, decides
    assert p.retry_after({"retry-after": "nan"}) is None
    assert p.retry_after({"retry-after-ms": "NaN"}) is None
    assert p.retry_after({"retry-after-ms": "nan", "retry-after": "2"}) == 2.0
    assert p.delay(0, {"retry-after": "nan"}, 0.0) == 0.5


def test_delays_follow_the_policy() -> None:
    p = RetryPolicy()
    assert p.delay(0, {"retry-after": "2"}, 0.5) == 2.0
    # Above 120 s the server's wish is ignored in favour of backoff.
    assert p.delay(0, {"retry-after": "500"}, 0.0) == 0.5
    assert [p.backoff(a, 0.0) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert p.backoff(0, 0.999) == pytest.approx(0.5 * 0.75, rel=1e-2)
    assert all(p.retryable(code, {}) for code in (408, 409, 429, 500, 503, 529))
    assert not p.retryable(400, {}) and not p.retryable(401, {})
    assert p.retryable(400, {"x-should-retry": "true"}) and not p.retryable(
        500, {"x-should-retry": "false"}
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plan: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    seen: ClassVar[list[float]] = []
    heads: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).seen.append(time.monotonic())
        type(self).heads.append({k.lower(): v for k, v in self.headers.items()})
        status, headers, body = type(self).plan.pop(0) if type(self).plan else (200, {}, b"{}")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.plan, _Handler.seen, _Handler.heads = [], [], []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def transport() -> Iterator[Callable[..., Transport]]:
    made: list[Transport] = []

    def make(**kw: Any) -> Transport:
        made.append(Transport(**kw))
        return made[-1]

    yield make
    for t in made:
        t.close()


def _req(url: str, secret: str = "sk-CANARY-transport") -> HTTPRequest:
    return HTTPRequest(
        "POST", url + "/v1/x", {"authorization": f"Bearer {secret}"}, b"{}", secrets=(secret,)
    )


def test_exact_retry_counts_and_waits(server: str, transport: Callable[..., Transport]) -> None:
    waits: list[float] = []
    t = transport(retry=RetryPolicy(max_retries=2), sleep=waits.append, rand=lambda: 0.0)
    _Handler.plan = [(429, {"retry-after": "1"}, b"slow down"), (503, {}, b"busy")]
    resp = t.open(_req(server))
    assert resp.status == 200 and resp.retries == 2 and resp.read() == b"{}"
    assert waits == [1.0, 1.0]  # Retry-After, then backoff 0.5 * 2**1
    assert len(_Handler.seen) == 3


def test_on_exchange_is_told_each_call_once_retries_and_waits_included(
    server: str, transport: Callable[..., Transport], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An injected clock that only the retry's wait moves: the call's time is that wait.
    clock = [0.0]

    def wait(seconds: float) -> None:
        clock[0] += seconds

    fake = types.SimpleNamespace(perf_counter=lambda: clock[0], monotonic=time.monotonic)
    monkeypatch.setattr(transport_module, "time", fake)
    took: list[float] = []
    t = transport(retry=RetryPolicy(max_retries=1), on_exchange=took.append, sleep=wait)
    _Handler.plan = [(503, {"retry-after-ms": "150"}, b"busy")]
    resp = t.open(_req(server))
    assert took == []  # not before the response is read
    assert resp.read() == b"{}" and resp.retries == 1
    resp.close()  # a second close tells nothing more
    assert took == [0.15]  # the retry-after-ms wait is in the call's time
    _Handler.plan = [(400, {}, b"no")]
    with pytest.raises(srt.ProviderResponseError):
        t.open(_req(server))
    assert len(took) == 2  # a call that failed for good is told too


@pytest.mark.parametrize("chunked", [False, True])
def test_sent_is_told_once_the_whole_body_went_out_at_each_attempt(
    server: str, transport: Callable[..., Transport], chunked: bool
) -> None:
    """``HTTPRequest.sent`` runs after the body's last byte was handed to the socket and
    before the reply is read, once per attempt, in the sync and the async transport;
    the server receives the body whole, with its length, either way."""
    parts = [b'{"a":', b"1}"]
    body: bytes | Body = Body(parts) if chunked else b"".join(parts)
    told: list[int] = []

    def req() -> HTTPRequest:
        r = _req(server)
        r.body = body
        r.sent = lambda: told.append(len(_Handler.heads))
        return r

    _Handler.plan = [(503, {}, b"busy")]
    t = transport(retry=RetryPolicy(max_retries=1), sleep=lambda _: None)
    resp = t.open(req())
    assert resp.read() == b"{}" and resp.retries == 1
    assert len(told) == 2 and told[0] <= 1 and told[1] <= 2  # each before its reply
    assert [h["content-length"] for h in _Handler.heads] == ["7", "7"]

    async def go() -> bytes:
        at = AsyncTransport()
        try:
            r = await at.open(req())
            return await r.read()
        finally:
            await at.aclose()

    assert asyncio.run(go()) == b"{}"
    assert len(told) == 3 and _Handler.heads[-1]["content-length"] == "7"


def test_gives_up_after_max_retries_with_a_typed_error(
    server: str, transport: Callable[..., Transport]
) -> None:
    waits: list[float] = []
    t = transport(retry=RetryPolicy(max_retries=2), sleep=waits.append, rand=lambda: 0.0)
    _Handler.plan = [(500, {}, b"x")] * 3
    with pytest.raises(srt.ProviderResponseError) as err:
        t.open(_req(server))
    assert err.value.status == 500 and len(_Handler.seen) == 3 and waits == [0.5, 1.0]


@pytest.mark.parametrize(
    ("status", "exc"),
    [(401, srt.ProviderAuthError), (403, srt.ProviderAuthError), (400, srt.ProviderResponseError)],
)
def test_no_retry_on_client_errors_and_no_secret_in_text(
    server: str, transport: Callable[..., Transport], status: int, exc: type[Exception]
) -> None:
    t = transport(sleep=lambda s: None)
    _Handler.plan = [(status, {}, b'{"error": "bad key sk-CANARY-transport"}')]
    with pytest.raises(exc) as err:
        t.open(_req(server))
    assert len(_Handler.seen) == 1
    assert "sk-CANARY" not in str(err.value) and "sk-CANARY" not in repr(err.value)


AZURE_LIKE = "0123456789abcdef0123456789abcdef"  # no key shape: only its own value finds it


@pytest.mark.parametrize("at", [1968, 1975, 1983, 1990, 1997, 2000])
def test_a_secret_the_shown_body_would_cut_leaves_no_piece_of_itself(
    server: str, transport: Callable[..., Transport], at: int
) -> None:
    """An error body quoting the key where the shown part (2,000 characters) ends: no
    8 characters of the key stay in the error's text, whatever the offset."""
    t = transport(sleep=lambda s: None)
    body = ("x" * at + AZURE_LIKE + "y" * 100).encode()
    _Handler.plan = [(400, {}, body)]
    with pytest.raises(srt.ProviderResponseError) as err:
        t.open(_req(server, AZURE_LIKE))
    shown = str(err.value) + repr(err.value) + (err.value.body or "")
    pieces = {AZURE_LIKE[i : i + 8] for i in range(len(AZURE_LIKE) - 7)}
    assert not [p for p in pieces if p in shown]
    assert "x" * 100 in shown  # the body is still shown


def test_redact_removes_a_secrets_start_that_ends_a_text() -> None:
    """A text cut anywhere (a stream decoder's quote of an error event) ends with no 8
    characters of a secret's start; 7 or fewer are too short to name it and stay."""
    for k in range(8, len(AZURE_LIKE)):
        assert redact("error: " + AZURE_LIKE[:k], (AZURE_LIKE,)) == "error: [redacted]"
    assert redact("error: " + AZURE_LIKE[:7], (AZURE_LIKE,)).endswith(AZURE_LIKE[:7])
    assert redact(AZURE_LIKE[:12] + " then more", (AZURE_LIKE,)) == AZURE_LIKE[:12] + " then more"


@pytest.mark.parametrize("http2", [False, True])
def test_a_certificate_that_fails_verification_is_not_tried_again(http2: bool) -> None:
    """TLS is verified, and a certificate that failed verification fails again: one
    attempt, a ``ProviderConnectionError`` that says so, no backoff (sync and async,
    through srt's pool and through httpx's HTTP/2 transport)."""
    ca = trustme.CA()  # a CA the system does not know
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_tls)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.socket = server_tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"https://localhost:{srv.server_address[1]}"
    waits: list[float] = []
    t = Transport(sleep=waits.append, http2=http2)
    awaited: list[float] = []

    async def no_wait(seconds: float) -> None:
        awaited.append(seconds)

    at = AsyncTransport(http2=http2, sleep=no_wait)
    try:
        with pytest.raises(srt.ProviderConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            t.open(_req(url))

        async def go() -> None:
            with pytest.raises(srt.ProviderConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await at.open(_req(url))
            await at.aclose()

        asyncio.run(go())
        assert waits == [] and awaited == []
    finally:
        t.close()
        srv.shutdown()
        srv.server_close()


def test_rate_limit_error_carries_retry_after(
    server: str, transport: Callable[..., Transport]
) -> None:
    t = transport(retry=RetryPolicy(max_retries=0))
    _Handler.plan = [(429, {"retry-after": "7"}, b"{}")]
    with pytest.raises(srt.RateLimitError) as err:
        t.open(_req(server))
    assert err.value.retry_after == 7.0


def test_own_client_sends_what_an_httpx_client_would(
    server: str, transport: Callable[..., Transport]
) -> None:
    """srt's own client hands requests straight to its pool: the server sees the same
    headers as from a caller's ``httpx.Client`` (its defaults, the request's, the
    Content-Length of a chunked body), and a cookie set by one reply goes with the next."""
    own = transport()
    theirs = transport(client=httpx.Client(follow_redirects=False))
    body = Body([b'{"a":', b"1}"], None)
    for t in (own, theirs):
        _Handler.plan = [(200, {"set-cookie": "lb=abc; Path=/"}, b"{}")]
        req = HTTPRequest("POST", server + "/v1/x", {"x-key": "v"}, body)
        assert t.open(req).read() == b"{}"
        assert t.open(_req(server)).read() == b"{}"
    own_body, own_next, their_body, their_next = _Handler.heads
    assert own_body == their_body and own_next == their_next
    assert own_body["content-length"] == "7" and own_body["x-key"] == "v"
    assert "user-agent" in own_body and "accept-encoding" in own_body
    assert "cookie" not in own_body and own_next["cookie"] == "lb=abc"
    own.close()
    with pytest.raises(RuntimeError):  # as httpx says of a closed client
        own.open(_req(server))


def test_connection_refused_is_typed_and_retried(transport: Callable[..., Transport]) -> None:
    waits: list[float] = []
    t = transport(sleep=waits.append, rand=lambda: 0.0, timeouts=Timeouts(connect=1.0))
    with pytest.raises(srt.ProviderConnectionError):
        t.open(_req("http://127.0.0.1:9"))
    assert waits == [0.5, 1.0]


def _slow_receiver(into: bytearray, done: threading.Event) -> tuple[str, threading.Thread]:
    """A one-request HTTP server on 127.0.0.1 with a small receive buffer that reads the
    body slowly into ``into`` (allocated by the caller), then answers ``{}``."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(1)
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            view = memoryview(into)
            got = 0
            while got < length:
                got += conn.recv_into(view[got:length], min(256 * 1024, length - got))
                time.sleep(0.0005)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/v1", thread


def test_a_large_chunked_body_is_not_copied_on_its_way_to_the_socket() -> None:
    """The default transport hands each chunk of a ``Body`` to the socket whole
    (``sendall``): httpcore's own loop copied what a partial send left, again and again,
    so a 12 MB body sent to a slow reader allocated megabytes per call."""
    import tracemalloc

    from srt import _core

    chunks = [bytes([65 + k]) * (4 * 1024 * 1024) for k in range(3)]
    body = _core.Body(chunks)
    into = bytearray(len(body))
    done = threading.Event()
    url, thread = _slow_receiver(into, done)
    t = Transport()
    tracemalloc.start()
    try:
        resp = t.open(HTTPRequest("POST", url, {"content-type": "application/json"}, body))
        assert resp.read() == b"{}"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        t.close()
    thread.join(10)
    assert done.is_set() and bytes(into) == b"".join(chunks)
    assert peak < 1024 * 1024, peak


def test_the_watchdog_keeps_nothing_it_expired_alive() -> None:
    import gc
    import weakref

    from srt.providers import _watchdog

    class Watched:
        def __init__(self) -> None:
            self.fired = threading.Event()

        def expire(self) -> None:
            self.fired.set()

    gc.disable()  # only plain references may keep it: no cycle collector to hide one
    try:
        watched = Watched()
        fired = watched.fired
        _watchdog.watch(watched.expire, time.monotonic())
        assert fired.wait(10 * _watchdog.POLL_S + 5)
        gone = weakref.ref(watched)
        del watched
        deadline = time.monotonic() + 2
        while gone() is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread may still be returning from the call
        assert gone() is None
    finally:
        gc.enable()


class _Counting(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_threads_reuse_their_connections(transport: Callable[..., Transport]) -> None:
    """More threads than httpx keeps alive by default (20): every connection given back is
    kept, so 32 threads sending 20 calls each open 32 connections, not one a call."""
    import concurrent.futures

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        t = transport()
        url = f"http://127.0.0.1:{srv.server_address[1]}"

        def call(_: int) -> bytes:
            return t.open(HTTPRequest("POST", url + "/v1/x", {}, b"{}")).read()

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            assert set(pool.map(call, range(640))) == {b"{}"}
        assert _Counting.connections <= 32
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_client_and_a_pool_together_are_a_config_error() -> None:
    import httpx

    with httpx.Client() as client, pytest.raises(srt.ConfigError, match="not both"):
        Transport(client=client, pool=httpx.HTTPTransport())
