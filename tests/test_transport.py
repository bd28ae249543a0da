"""The retry policy and error mapping, against real HTTP on 127.0.0.1."""

from __future__ import annotations

import email.utils
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

import srt
from srt.providers.transport import HTTPRequest, RetryPolicy, Timeouts, Transport


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


def test_delays_follow_the_policy() -> None:
    p = RetryPolicy()
    assert p.delay(0, {"retry-after": "2"}, 0.5) == 2.0
    # Above 120 s the server's wish is ignored in favour of backoff.
    assert p.delay(0, {"retry-after": "500"}, 0.0) == 0.5
    assert [p.backoff(a, 0.0) for a in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert p.backoff(0, 0.999) == pytest.approx(0.5 * 0.75, rel=1e-2)
    assert p.retryable(429, {}) and p.retryable(503, {}) and p.retryable(408, {})
    assert not p.retryable(400, {}) and not p.retryable(401, {})
    assert p.retryable(400, {"x-should-retry": "true"}) and not p.retryable(
        500, {"x-should-retry": "false"}
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plan: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    seen: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).seen.append(time.monotonic())
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
    _Handler.plan, _Handler.seen = [], []
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


def test_rate_limit_error_carries_retry_after(
    server: str, transport: Callable[..., Transport]
) -> None:
    t = transport(retry=RetryPolicy(max_retries=0))
    _Handler.plan = [(429, {"retry-after": "7"}, b"{}")]
    with pytest.raises(srt.RateLimitError) as err:
        t.open(_req(server))
    assert err.value.retry_after == 7.0


def test_connection_refused_is_typed_and_retried(transport: Callable[..., Transport]) -> None:
    waits: list[float] = []
    t = transport(sleep=waits.append, rand=lambda: 0.0, timeouts=Timeouts(connect=1.0))
    with pytest.raises(srt.ProviderConnectionError):
        t.open(_req("http://127.0.0.1:9"))
    assert waits == [0.5, 1.0]
