"""HTTP transport for providers: httpx, timeouts, the retry policy and error mapping.

The policy (``RetryPolicy``) and the timeouts (``Timeouts``) are in ``policy.py``; this
module applies them. **It never retries once a 2xx response has begun**: generation is
not idempotent, so a stream that fails after its first byte is reported, not repeated.
The total cap of a call ends every wait of it: srt's sync and asyncio pools take the
call's deadline (connecting, each write, the head, each read of the body end by it);
httpx's transports and a caller's client get timeouts cut to the time left; a body from
them is ended by a watchdog that shuts its socket (sync, ``response.py``) or
``asyncio.wait_for`` on its reads (``aresponse.py``). No attempt starts past the
deadline, and a timeout at it is the total cap's ``ProviderTimeoutError``.

Every ``httpx`` error is mapped to the ``ProviderError`` tree here and nowhere
else. Secret values given in ``HTTPRequest.secrets`` are scrubbed from any text
that reaches an exception.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from .._core import Body
from ..errors import (
    ConfigError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ProxyAuthError,
)
from .apool import AsyncPool
from .aresponse import AsyncResponse
from .http1 import Stop, Target, request_headers
from .policy import Missing, RetryPolicy, Timeouts, redact, shown_url, status_error
from .pool import Pool
from .proxies import Proxies, ProxyRefusedError, tls_context
from .response import Response, past
from .sendall import HTTPTransport

if TYPE_CHECKING:
    from ..wire.overflow import Overflow

__all__ = [
    "AsyncResponse",
    "AsyncTransport",
    "HTTPRequest",
    "Response",
    "RetryPolicy",
    "Timeouts",
    "Transport",
    "redact",
    "shown_url",
]

_ERROR_BODY_LIMIT = 64 * 1024


@dataclass
class HTTPRequest:
    """One provider call. ``secrets`` are values to scrub from any error text."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | Body  # a Body goes to the socket chunk by chunk, with a Content-Length
    stream: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False)
    #: Called once the whole body has been handed to the socket (each attempt), while
    #: the provider works on it: a caller's work that waits for the reply without
    #: depending on it runs then instead of after the reply.
    sent: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    #: Tells an error answer (status, body text, headers) that refuses the prompt as
    #: longer than the model's context window (the provider's ``context_overflow``):
    #: raised as ``ProviderContextOverflowError``.
    overflow: Callable[[int, str, Mapping[str, str]], Overflow | None] | None = field(
        default=None, repr=False, compare=False
    )
    #: Tells an error answer that says the model, deployment, api-version or path does
    #: not exist (the provider's ``not_found``): ``status_error`` leads with its hint.
    not_found: Callable[[int, str, Mapping[str, str]], Missing | None] | None = field(
        default=None, repr=False, compare=False
    )
    #: The caller's stop (a stream's ``cancel()``): on srt's sync pool, stopping it
    #: shuts the connection while the request waits for its head, and no attempt
    #: follows; ``Transport.open`` then raises ``ProviderConnectionError``.
    stop: Stop | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        where = shown_url(self.url, self.secrets)
        return f"<HTTPRequest {self.method} {where} {len(self.body)} bytes>"


class _Attempts:
    """The retry policy applied to one call, shared by the sync and async transports:
    after a failed attempt, how long to wait before the next, or that it was the last."""

    def __init__(self, retry: RetryPolicy, deadline: float, rand: Callable[[], float]) -> None:
        self.retry = retry
        self.rand = rand
        self.deadline = deadline  # (the call's total cap: a time.monotonic())
        self.count = 0  # retries so far

    def failed(self, err: ProviderError, retryable: bool, headers: Mapping[str, str]) -> float:
        """Seconds to wait before retrying; raises ``err`` if there is no retry left."""
        if not retryable or self.count >= self.retry.max_retries:
            raise err
        wait = self.retry.delay(self.count, headers, self.rand())
        if time.monotonic() + wait > self.deadline:
            raise err
        self.count += 1
        return wait

    def refused(
        self, resp: httpx.Response, body: bytes, req: HTTPRequest
    ) -> tuple[ProviderError, bool, Mapping[str, str]]:
        """A non-2xx answer as ``failed``'s arguments."""
        headers = resp.headers
        err = status_error(resp.status_code, body, headers, req)
        return err, self.retry.retryable(resp.status_code, headers), headers


def _connection_error(exc: Exception, req: HTTPRequest) -> ProviderError:
    where = shown_url(req.url, req.secrets)
    detail = redact(str(exc), req.secrets) or type(exc).__name__
    # A proxy's 407 is never retried: the same credentials would be refused again. (A
    # caller's client raises httpx's ProxyError for a CONNECT's, "407 Proxy ...".)
    if isinstance(exc, ProxyRefusedError) or (
        isinstance(exc, httpx.ProxyError) and detail.startswith("407")
    ):
        return ProxyAuthError(f"{req.method} {where}: {detail}")
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError(f"{req.method} {where}: timed out ({detail})")
    return ProviderConnectionError(f"{req.method} {where}: {type(exc).__name__}: {detail}")


def _late() -> ProviderTimeoutError:
    """The call whose total time cap passed before a reply's head (no attempt starts then)."""
    return ProviderTimeoutError("the call passed its total time cap before a reply")


def _cut(timeouts: dict[str, float | None], deadline: float) -> dict[str, float | None] | None:
    """``timeouts`` (httpx's) each cut to the time left until ``deadline``, or None when
    none needs cutting (the deadline is further than every one of them)."""
    rest = deadline - time.monotonic()
    if all(t is not None and t <= rest for t in timeouts.values()):
        return None
    rest = max(rest, 0.001)  # (httpx's sockets take no timeout of 0 or less as one)
    return {k: rest if t is None or t > rest else t for k, t in timeouts.items()}


def _stopped(req: HTTPRequest) -> ProviderConnectionError:
    """The request its caller stopped (``HTTPRequest.stop``) before its response's head."""
    where = shown_url(req.url, req.secrets)
    return ProviderConnectionError(f"{req.method} {where}: stopped by the caller before a reply")


def _retryable(err: ProviderError, exc: BaseException) -> bool:
    """Whether a request that failed before any answer is tried again: not when a proxy
    refused its credentials, nor when the server's TLS certificate failed verification
    (the same certificate would fail again)."""
    if isinstance(err, ProviderAuthError):
        return False
    seen: BaseException | None = exc
    for _ in range(8):  # (the chain httpx and the pools raise: a few links)
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return False
        seen = seen.__cause__ or seen.__context__
    return True


def _headers(req: HTTPRequest) -> dict[str, str]:
    """The request's headers, with the Content-Length of a body sent as chunks."""
    if isinstance(req.body, bytes) and req.sent is None:
        return req.headers
    return {**req.headers, "content-length": str(len(req.body))}


def _content(req: HTTPRequest) -> bytes | Iterator[bytes]:
    """What httpx sends: the bytes, or a ``Body``'s chunks one by one (each a write to the
    socket; nothing is joined). The iterator lets go of the chunks when it is done, so
    nothing httpx keeps afterwards holds the body."""
    body = req.body
    chunks = (body,) if isinstance(body, bytes) else body.chunks
    if req.sent is not None:
        return _then(chunks, req.sent)
    return body if isinstance(body, bytes) else iter(chunks)


def _then(chunks: Iterable[bytes], sent: Callable[[], None]) -> Iterator[bytes]:
    """``chunks``, then ``sent()`` once httpx asks for more after the last went out."""
    yield from chunks
    del chunks
    sent()


def _acontent(req: HTTPRequest) -> bytes | AsyncIterator[bytes]:
    """``_content`` for the async client, which takes an async iterator."""
    body = req.body
    if isinstance(body, bytes) and req.sent is None:
        return body
    return _achunks((body,) if isinstance(body, bytes) else body.chunks, req.sent)


async def _achunks(
    chunks: Iterable[bytes], sent: Callable[[], None] | None
) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    del chunks
    if sent is not None:
        sent()


class Transport:
    """Pooled sync HTTP with retries. One per provider instance; thread-safe.

    ``client`` is an ``httpx.Client`` to send through instead of srt's own; ``pool`` an
    ``httpx`` transport for srt's own client to use (by default srt's HTTP/1.1 pool, or
    HTTP/2 when ``h2`` is installed, writing with ``sendall``).

    ``sleep(seconds)``, if given, waits between attempts (by default ``time.sleep``, or
    the request's ``stop``, whose stopping ends the wait).

    ``on_exchange(seconds)``, if given, is told how long each call took, from ``open``
    (retries and their waits included) until its response was closed: the gateway
    reports it as the upstream's time (``Server-Timing``).

    ``proxy`` sends every request through that proxy; otherwise, with ``trust_env``,
    ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` choose, as httpx reads them (``proxies.py``).
    A proxied request goes through an ``httpx.HTTPTransport`` for its proxy; the others
    take the direct path unchanged.
    """

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        verify: ssl.SSLContext | str | bool = True,
        http2: bool | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] = random.random,
        pool: httpx.BaseTransport | None = None,
        on_exchange: Callable[[float], None] | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._on_exchange = on_exchange
        if http2 is None:
            http2 = importlib.util.find_spec("h2") is not None
        if client is not None and proxy is not None:
            raise ConfigError("Transport: give a client or a proxy, not both")
        #: Where proxied URLs go (None: no URL is; a caller's client chooses for itself).
        self._proxies = None if client is not None else Proxies.of(proxy, trust_env, verify, http2)
        #: The connection pool a client built here sends through directly (see ``_send``);
        #: None for a caller's ``client``, which sends every request itself.
        self._pool: httpx.BaseTransport | None = None
        if client is None:
            # HTTP/1.1 goes through srt's own pool (pool.py); with HTTP/2, https goes
            # through httpx's (it negotiates HTTP/2 over TLS), its connections writing with
            # sendall (sendall.py), and plain http, which has no HTTP/2 here, stays on the
            # pool. Either way a large body is not copied again whenever the socket takes
            # only part of a chunk.
            self._pool = pool or Pool(
                verify=verify,
                tls=HTTPTransport(verify=tls_context(verify, trust_env), http2=True)
                if http2
                else None,
                trust_env=trust_env,
            )
            client = httpx.Client(
                timeout=self.timeouts.httpx(), transport=self._pool, follow_redirects=False
            )
        elif pool is not None:
            raise ConfigError("Transport: give a client or a pool, not both")
        self._client = client
        self._timeouts = self.timeouts.httpx().as_dict()
        self._timeout = {"timeout": self._timeouts}
        self._direct = self._pool if isinstance(self._pool, Pool) else None
        self._urls: dict[str, tuple[httpx.URL, Target | None, httpx.BaseTransport | None]] = {}
        self._sleep = sleep
        self._rand = rand

    def _url(self, url: str) -> tuple[httpx.URL, Target | None, httpx.BaseTransport | None]:
        """``url`` parsed once (a provider sends to a handful of URLs): its target on the
        direct path, or (target None) the transport of the proxy it goes through."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= 64:
                self._urls.clear()
            u = httpx.URL(url)
            via = None if self._proxies is None else self._proxies.transport_for(u)
            parsed = self._urls[url] = (u, None if via is not None else Target.of(u), via)
        return parsed

    def _send(self, req: HTTPRequest, deadline: float) -> httpx.Response:
        """One attempt: the response with its head read, its body not yet; no wait (to
        connect, write, or read the head) goes past ``deadline``: srt's pool ends each at
        it; httpx's transports and a caller's client are given timeouts cut to the time
        left when it is less (each of their reads ends by the deadline).

        Through a client built here, the request goes straight to its connection pool
        with what that client would add (its default headers, its cookies, the timeouts;
        it has no auth, hooks or redirects to follow; ``_url`` chose the proxy, if any):
        the client's own request
        building and response wrapping cost about 0.1 ms of CPU a request, more than the
        rest of a turn's HTTP work. srt's own pool is handed the headers as bytes, without
        an ``httpx.Request`` (about 20 us of CPU less, warm). A caller's client sends the
        request itself."""
        client, pool = self._client, self._pool
        if pool is None or client.is_closed:
            cut = _cut(client.timeout.as_dict(), deadline)
            hreq = client.build_request(
                req.method,
                req.url,
                headers=_headers(req),
                content=_content(req),
                timeout=httpx.USE_CLIENT_DEFAULT if cut is None else httpx.Timeout(**cut),
            )
            return client.send(hreq, stream=True)
        url, target, via = self._url(req.url)
        if self._direct is not None and target is not None and not client.cookies:
            raw = request_headers(client.headers.raw, _headers(req), target, len(req.body))
            body = _content(req)
            resp = self._direct.send(
                req.method, target, raw, body, self._timeouts, req.stop, deadline
            )
            if "set-cookie" in resp.headers:
                resp.request = httpx.Request(req.method, url, headers=raw)
                client.cookies.extract_cookies(resp)
            return resp
        headers = httpx.Headers(client.headers)
        headers.update(_headers(req))
        cut = _cut(self._timeouts, deadline)
        extensions = self._timeout if cut is None else {"timeout": cut}
        hreq = httpx.Request(
            req.method, url, headers=headers, content=_content(req), extensions=extensions
        )
        if client.cookies:
            client.cookies.set_cookie_header(hreq)
        resp = (pool if via is None else via).handle_request(hreq)
        resp.request = hreq
        if "set-cookie" in resp.headers:
            client.cookies.extract_cookies(resp)
        return resp

    def close(self) -> None:
        self._client.close()
        if self._proxies is not None:
            self._proxies.close()

    def open(self, req: HTTPRequest, deadline: float | None = None) -> Response:
        """Send ``req``; retry per policy until a 2xx head arrives; never after. The total
        cap ends at ``deadline`` if given (a clock started before: the local slot wait):
        every wait of an attempt (connecting, writing, the head, the body) ends by it, a
        retry whose backoff would pass it is not made, and none starts after it."""
        total = time.monotonic() + self.timeouts.total if deadline is None else deadline
        attempts = _Attempts(self.retry, total, self._rand)
        on_exchange, started = self._on_exchange, time.perf_counter()
        done = None if on_exchange is None else lambda: on_exchange(time.perf_counter() - started)
        stop = req.stop
        while True:
            failure: tuple[ProviderError, bool, Mapping[str, str]]
            try:
                if stop is not None and stop.stopped:
                    raise _stopped(req)
                if past(attempts.deadline):
                    raise httpx.ConnectTimeout("the call's deadline passed")
                resp = self._send(req, attempts.deadline)
            except httpx.HTTPError as exc:
                if stop is not None and stop.stopped:  # (its connection shut: ``Stop``)
                    raise _stopped(req) from None
                if isinstance(exc, httpx.TimeoutException) and past(attempts.deadline):
                    failure = (_late(), False, {})
                else:
                    err = _connection_error(exc, req)
                    failure = (err, _retryable(err, exc), {})
            else:
                if resp.status_code < 300:
                    return Response(resp, req, attempts.deadline, attempts.count, done)
                try:
                    body = resp.read()[:_ERROR_BODY_LIMIT]
                except httpx.HTTPError:
                    body = b""
                finally:
                    resp.close()
                failure = attempts.refused(resp, body, req)
            # Raised (if final) outside the except block: no httpx error is chained to it.
            try:
                wait = attempts.failed(*failure)
            except ProviderError:
                if done is not None:
                    done()
                raise
            if self._sleep is not None:
                self._sleep(wait)
            elif stop is not None:  # (the caller's stop ends the backoff)
                stop.pause(wait)
            else:
                time.sleep(wait)


class AsyncTransport:
    """Pooled asyncio HTTP with the same policy as ``Transport``."""

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        verify: ssl.SSLContext | str | bool = True,
        http2: bool | None = None,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        if http2 is None:
            http2 = importlib.util.find_spec("h2") is not None
        if client is not None and proxy is not None:
            raise ConfigError("AsyncTransport: give a client or a proxy, not both")
        self._own_client = client is None
        #: srt's asyncio pool, which a client built here sends through (and ``_send``
        #: directly); None for a caller's client. ``_proxies``: the URLs it does not take.
        self._pool: AsyncPool | None = None
        self._proxies: Proxies | None = None
        if client is None:
            # srt chooses the proxy as httpx would (a typed error naming a bad setting), and
            # mounts a transport for each that checks its TLS with ``verify`` too.
            self._proxies = proxies = Proxies.of(proxy, trust_env, verify, http2)
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
            # The pool makes its TLS context on its first https request (loading the CA
            # bundle takes 20-30 ms); httpx's HTTP/2 transport takes one made now.
            h2 = None
            if http2:
                h2 = httpx.AsyncHTTPTransport(verify=tls_context(verify, trust_env), http2=True)
            self._pool = AsyncPool(verify=verify, limits=limits, tls=h2, trust_env=trust_env)
            client = httpx.AsyncClient(
                timeout=self.timeouts.httpx(),
                transport=self._pool,
                follow_redirects=False,
                trust_env=False,
                mounts=None if proxies is None else proxies.mounts(trust_env, limits),
            )
        self._client = client
        self._timeouts = self.timeouts.httpx().as_dict()
        self._targets: dict[str, Target | None] = {}
        self._sleep = sleep
        self._rand = rand

    async def aclose(self) -> None:
        await self._client.aclose()

    def close(self) -> None:
        """Close what needs no event loop: srt's pool's idle connections (plain sockets,
        registered with no loop while idle). httpx's asyncio client, if a proxy or HTTP/2
        made one, is closed only by ``aclose()``."""
        if self._pool is not None:
            self._pool.close_idle()

    def _target(self, url: str) -> Target | None:
        """``url``'s target on the direct path (None: it goes through a proxy), parsed once."""
        try:
            return self._targets[url]
        except KeyError:
            pass
        if len(self._targets) >= 64:
            self._targets.clear()
        u = httpx.URL(url)
        proxies = self._proxies
        direct = proxies is None or proxies.proxy_for(u) is None
        target = self._targets[url] = Target.of(u) if direct else None
        return target

    async def _send(self, req: HTTPRequest, deadline: float) -> httpx.Response:
        """One attempt, as ``Transport._send``: through a client built here, straight to
        its pool with the header bytes that client would send, every wait ending at
        ``deadline``; otherwise (a caller's client, a proxy, cookies) through the client,
        its head awaited with ``asyncio.wait_for``."""
        client, pool = self._client, self._pool
        target = None
        if pool is not None and not client.is_closed and not client.cookies:
            target = self._target(req.url)
        if pool is not None and target is not None:
            raw = request_headers(client.headers.raw, _headers(req), target, len(req.body))
            resp = await pool.send(req.method, target, raw, _content(req), self._timeouts, deadline)
            if "set-cookie" in resp.headers:
                resp.request = httpx.Request(req.method, target.url, headers=raw)
                client.cookies.extract_cookies(resp)
            return resp
        hreq = client.build_request(
            req.method, req.url, headers=_headers(req), content=_acontent(req)
        )
        remaining = max(0.001, deadline - time.monotonic())
        return await asyncio.wait_for(client.send(hreq, stream=True), remaining)

    async def open(self, req: HTTPRequest, deadline: float | None = None) -> AsyncResponse:
        """The asyncio twin of ``Transport.open``."""
        total = time.monotonic() + self.timeouts.total if deadline is None else deadline
        attempts = _Attempts(self.retry, total, self._rand)
        while True:
            failure: tuple[ProviderError, bool, Mapping[str, str]]
            try:
                if past(attempts.deadline):
                    raise httpx.ConnectTimeout("the call's deadline passed")
                resp = await self._send(req, attempts.deadline)
            except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
                if past(attempts.deadline):
                    raise _late() from None
                err = _connection_error(exc, req)  # (asyncio's only at the deadline)
                failure = (err, True, {})
            except httpx.HTTPError as exc:
                err = _connection_error(exc, req)
                failure = (err, _retryable(err, exc), {})
            else:
                if resp.status_code < 300:
                    return AsyncResponse(
                        resp,
                        req,
                        attempts.deadline,
                        attempts.count,
                        self.timeouts.idle,
                        idle_in_reads=self._own_client,
                    )
                try:
                    body = (await resp.aread())[:_ERROR_BODY_LIMIT]
                except httpx.HTTPError:
                    body = b""
                finally:
                    await resp.aclose()
                failure = attempts.refused(resp, body, req)
            await self._sleep(attempts.failed(*failure))
