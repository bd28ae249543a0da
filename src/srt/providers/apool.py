"""srt's HTTP/1.1 connection pool for asyncio: ``pool.py``'s ``Pool`` on the event loop.

``AsyncTransport`` hands it requests as header bytes (``AsyncPool.send``). The socket is
non-blocking and written and read directly: the head is one bytes join, each chunk of
the body (a memoryview of a ``_core.Body``'s fragment) goes to the socket as it is, and
only what the socket did not take is offered again, as a slice of the same memory; the
response is parsed in C by ``httptools`` (``http1.Reply``). Only when a read or write
would block does it wait, with the loop's ``add_reader``/``add_writer`` and a timer: no
task, no ``asyncio.wait_for``, no stream or protocol objects per request.

It keeps what ``Pool`` keeps (see there), and for ``send`` a deadline that ends every
wait. An idle connection made under another event loop is closed, not reused; a task
cancelled mid-request closes its connection. One event loop at a time uses a pool (it
has no locks). HEAD, CONNECT, ``Expect``/``Upgrade`` (and all, under Windows' proactor
loop) go to httpx's ``AsyncHTTPTransport``; with ``tls``, https requests go there."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
)
from typing import Any, NamedTuple

import httpx

from .http1 import (
    METHODS,
    READ,
    Key,
    PoolSettings,
    Reply,
    Sent,
    Target,
    achunked,
    checked_alpn,
    chunked,
    framing,
    readable,
    request_head,
    tls_context,
    write_error,
)

__all__ = ["AsyncPool", "AsyncResponseStream"]

Body = Iterable[bytes] | AsyncIterable[bytes]
_BLOCKED = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_PROACTOR = getattr(asyncio, "ProactorEventLoop", None)


def _ready(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


def _capped(timeout: float | None, deadline: float | None) -> float | None:
    """``timeout``, or less if ``deadline`` (a ``time.monotonic()``) comes first."""
    if deadline is None:
        return timeout
    rest = deadline - time.monotonic()
    return rest if timeout is None or rest < timeout else timeout


class _Conn:
    """One non-blocking connection, its parser, and the deadline of its request."""

    __slots__ = ("deadline", "fd", "idle_since", "key", "loop", "reply", "reused", "sock")

    def __init__(self, sock: socket.socket, key: Key, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.key = key
        self.loop = loop
        self.reply = Reply()
        self.reused = False
        self.idle_since = 0.0
        self.deadline: float | None = None  # a time.monotonic() no wait goes past

    def close(self) -> None:
        self.reply.parser = None  # the parser and its protocol refer to each other
        with contextlib.suppress(OSError):
            self.sock.close()

    async def wait(self, write: bool, timeout: float | None) -> bool:
        """Until the socket can be written (``write``) or read; False if ``timeout``
        seconds passed first. Cancelled, it leaves nothing registered on the loop."""
        if timeout is not None and timeout <= 0:
            return False
        loop, fd = asyncio.get_running_loop(), self.fd
        fut: asyncio.Future[bool] = loop.create_future()
        (loop.add_writer if write else loop.add_reader)(fd, _ready, fut, True)
        timer = None if timeout is None else loop.call_later(timeout, _ready, fut, False)
        try:
            return await fut
        finally:
            (loop.remove_writer if write else loop.remove_reader)(fd)
            if timer is not None:
                timer.cancel()

    async def recv(self, timeout: float | None) -> bytes:
        """One read, ending after ``timeout`` or at ``deadline``; nothing is read once
        the deadline has passed (a reply that came after it, or that the loop, busy
        elsewhere, got to only after it, is not taken for one in time)."""
        sock, deadline = self.sock, self.deadline
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise httpx.ReadTimeout("the call's deadline passed")
            try:
                return sock.recv(READ)
            except _BLOCKED as exc:
                write = isinstance(exc, ssl.SSLWantWriteError)
            except OSError as exc:
                raise httpx.ReadError(str(exc)) from exc
            if not await self.wait(write, _capped(timeout, self.deadline)):
                raise httpx.ReadTimeout("timed out")

    async def sendall(
        self, data: bytes, timeout: float | None, on_write: Callable[[int], None] | None
    ) -> None:
        """All of ``data`` written (told to ``on_write``); ``Sent`` if not (``nothing``
        when the socket took none of it)."""
        if not data:
            return
        if on_write is not None:
            on_write(len(data))
        sock, view, taken = self.sock, memoryview(data), 0
        size = view.nbytes
        if view.itemsize != 1:
            view = view.cast("B")
        while True:
            try:
                taken += sock.send(view[taken:] if taken else view)
            except _BLOCKED as exc:
                write = not isinstance(exc, ssl.SSLWantReadError)
            except OSError as exc:
                raise Sent(write_error(exc), nothing=not taken) from exc
            else:
                if taken >= size:
                    return
                continue
            if not await self.wait(write, _capped(timeout, self.deadline)):
                raise Sent(httpx.WriteTimeout("timed out"), nothing=not taken)


def _unfit(loop: asyncio.AbstractEventLoop, conn: _Conn) -> bool:
    """An idle connection not to reuse on ``loop``: another loop's, or one with something
    to read (data, or the server's close)."""
    return conn.loop is not loop or readable(conn.sock)


class _Out(NamedTuple):
    """A request as it goes out: its head, then its body's chunks."""

    head: bytes
    body: Body
    encode: bool  # chunked encoding
    timeout: float | None  # for each write


class AsyncResponseStream(httpx.AsyncByteStream):
    """A response body read from its connection as the caller iterates. ``identity``:
    it has no Content-Encoding, so its bytes are the body's (no decoder needed)."""

    def __init__(self, pool: AsyncPool, conn: _Conn, timeout: float | None, keep: bool) -> None:
        self.identity = not conn.reply.encoded
        self._pool = pool
        self._conn: _Conn | None = conn
        self.read_timeout = timeout
        self._keep = keep

    @property
    def deadline(self) -> float | None:
        """The ``deadline`` the request was sent with, which caps every read (None:
        none, or the body was read)."""
        return None if self._conn is None else self._conn.deadline

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        conn = self._conn
        if conn is None:
            return
        reply = conn.reply
        try:
            while True:
                if reply.body:
                    chunks, reply.body = reply.body, []
                    for chunk in chunks:
                        yield chunk
                if reply.done:
                    break
                await self._fill(conn)
        except BaseException:
            self.close()
            raise
        self._conn = None
        self._pool.release(conn, self._keep)

    async def aread(self) -> bytes:
        """The rest of the body at once (no generator)."""
        conn = self._conn
        if conn is None:
            return b""
        reply = conn.reply
        try:
            while not reply.done:
                await self._fill(conn)
        except BaseException:
            self.close()
            raise
        body, reply.body, self._conn = b"".join(reply.body), [], None
        self._pool.release(conn, self._keep)
        return body

    async def _fill(self, conn: _Conn) -> None:
        """One read of the body into ``conn.reply``."""
        if not conn.reply.take(await conn.recv(self.read_timeout)):
            self._keep = False

    def get_extra_info(self, info: str) -> Any:
        """The socket while this response holds its connection (``network_stream``)."""
        conn = self._conn
        return conn.sock if info == "socket" and conn is not None else None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # not read to its end: the connection is not reusable
            self._pool.release(conn, False)

    async def aclose(self) -> None:
        self.close()


class AsyncPool(PoolSettings[_Conn], httpx.AsyncBaseTransport):
    """HTTP/1.1 connections kept alive per origin, for ``srt.providers.AsyncTransport``.

    ``verify``, ``limits``, ``on_write`` and ``tls`` as ``Pool``'s (``tls``: an
    ``httpx.AsyncBaseTransport`` that https requests go to)."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        limits: httpx.Limits | None = None,
        on_write: Callable[[int], None] | None = None,
        tls: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self._settle(verify, limits, on_write, trust_env)
        self._waiters: list[asyncio.Future[bool]] = []  # tasks waiting for a connection
        self._fallback: httpx.AsyncBaseTransport | None = None
        self._tls = tls

    # -- the pool ---------------------------------------------------------------

    async def _acquire(
        self, key: Key, timeouts: Mapping[str, float | None], deadline: float | None
    ) -> _Conn:
        """A kept-alive connection to ``key``, or a new one when none is fit."""
        loop = asyncio.get_running_loop()
        until: float | None = None
        unfit = functools.partial(_unfit, loop)
        while True:
            if self._closed:
                raise RuntimeError("the connection pool is closed")
            conn = self._reuse(key, unfit)
            if conn is not None:
                conn.deadline = deadline
                return conn
            if self._room():
                break
            wait = timeouts.get("pool")
            if wait is not None:
                if until is None:
                    until = time.monotonic() + wait
                wait = until - time.monotonic()
            if not await self._freed(loop, _capped(wait, deadline)):
                raise httpx.PoolTimeout("no connection came free in time")
        try:
            conn = await self._connect(key, timeouts.get("connect"), loop, deadline)
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        conn.deadline = deadline
        return conn

    async def _freed(self, loop: asyncio.AbstractEventLoop, wait: float | None) -> bool:
        """Until a connection is given back (True) or ``wait`` seconds passed (False)."""
        if wait is not None and wait <= 0:
            return False
        fut: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(fut)
        timer = None if wait is None else loop.call_later(wait, _ready, fut, False)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def _wake(self) -> None:
        """Tell the first task waiting for a connection that one may be free."""
        while self._waiters:
            fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(True)
                return

    def release(self, conn: _Conn, keep: bool) -> None:
        """Take ``conn`` back: kept for reuse when ``keep`` and its last response allow."""
        conn.deadline = None
        self._put_back(conn, keep)
        if self._waiters:
            self._wake()

    async def _connect(
        self,
        key: Key,
        timeout: float | None,
        loop: asyncio.AbstractEventLoop,
        deadline: float | None,
    ) -> _Conn:
        try:
            return await asyncio.wait_for(self._open_conn(key, loop), _capped(timeout, deadline))
        except asyncio.TimeoutError as exc:
            raise httpx.ConnectTimeout("timed out") from exc
        except OSError as exc:  # ssl.SSLError included
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc

    async def _open_conn(self, key: Key, loop: asyncio.AbstractEventLoop) -> _Conn:
        scheme, host, port = key
        try:  # an IP address needs no lookup (and no thread for it)
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except socket.gaierror:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            break
        else:
            raise error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme != "https":
            return _Conn(sock, key, loop)
        try:
            wrapped = self._context().wrap_socket(
                sock, server_hostname=host, do_handshake_on_connect=False
            )
        except BaseException:
            sock.close()
            raise
        conn = _Conn(wrapped, key, loop)
        try:
            while True:
                try:
                    wrapped.do_handshake()
                    checked_alpn(wrapped)
                    return conn
                except ssl.SSLWantReadError:
                    await conn.wait(False, None)
                except ssl.SSLWantWriteError:
                    await conn.wait(True, None)
        except BaseException:
            conn.close()
            raise

    def close_idle(self) -> None:
        """Close the idle connections and the pool, without a loop (``AsyncTransport.close``)."""
        self._close_idle()

    async def aclose(self) -> None:
        self._close_idle()
        fallback, self._fallback = self._fallback, None
        for other in (fallback, self._tls):
            if other is not None:
                await other.aclose()

    # -- one request ------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = Target.of(request.url)
        if target is None:
            return await self._delegate(self._other(), request)
        timeouts = request.extensions.get("timeout", {})
        return await self._exchange(
            request.method, target, request.headers.raw, request.stream, timeouts, None, request
        )

    async def send(
        self,
        method: str,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        body: bytes | Body,
        timeouts: Mapping[str, float | None],
        deadline: float | None = None,
    ) -> httpx.Response:
        """``handle_async_request`` without an ``httpx.Request``: ``headers`` are all the
        request's (Host and Content-Length included), ``timeouts`` as httpx's; no wait
        goes past ``deadline`` (a ``time.monotonic()``; the response's reads included:
        see ``AsyncResponseStream.deadline``), whose passing raises httpx's timeout
        error of the step it stopped."""
        chunks = (body,) if isinstance(body, bytes) else body
        return await self._exchange(method, target, headers, chunks, timeouts, deadline)

    async def _exchange(
        self,
        method: str,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        body: Body,
        timeouts: Mapping[str, float | None],
        deadline: float | None,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        verb = METHODS.get(method)
        tls = self._tls if target.key[0] == "https" else None
        if _PROACTOR is not None and isinstance(asyncio.get_running_loop(), _PROACTOR):
            verb = None  # pragma: no cover - Windows
        if verb is None or tls is not None:
            return await self._delegate(
                tls or self._other(), request or _rebuilt(method, target, headers, body, timeouts)
            )
        head = request_head(verb, target.path, headers)
        encode, keep, other = framing(head)
        if other:
            return await self._delegate(
                self._other(), request or _rebuilt(method, target, headers, body, timeouts)
            )
        key = target.key
        out = _Out(head, body, encode, timeouts.get("write"))
        conn = await self._acquire(key, timeouts, deadline)
        failed = await self._send(conn, out)
        while failed is not None and failed.nothing and conn.reused:
            # The server closed the kept-alive connection as it was taken: the next one
            # (in the end a new one, which is not retried).
            self.release(conn, False)
            conn = await self._acquire(key, timeouts, deadline)
            failed = await self._send(conn, out)
        try:
            if failed is None:
                return await self._response(conn, timeouts.get("read"), keep)
            # As httpcore: a server may answer (413...) before closing on a body it refused.
            try:
                return await self._response(conn, timeouts.get("read"), False)
            except httpx.TransportError:
                raise failed.error from None
        except BaseException:
            self.release(conn, False)
            raise

    async def _send(self, conn: _Conn, out: _Out) -> Sent | None:
        """``_write``; its failure to write returned, any other error (or a
        cancellation) raised with the connection closed."""
        try:
            await self._write(conn, out)
        except Sent as failed:
            return failed
        except BaseException:
            self.release(conn, False)
            raise
        return None

    async def _write(self, conn: _Conn, out: _Out) -> None:
        """The head, then each chunk of the body (chunk-encoded if asked). What the body's
        iterator raises (``HTTPRequest.sent`` runs in it) goes to the caller as it is."""
        on_write, timeout = self._on_write, out.timeout
        await conn.sendall(out.head, timeout, on_write)
        body = out.body
        try:
            if isinstance(body, Iterable):
                for chunk in chunked(iter(body)) if out.encode else body:
                    await conn.sendall(chunk, timeout, on_write)
            else:
                async for chunk in achunked(body) if out.encode else body:
                    await conn.sendall(chunk, timeout, on_write)
        except Sent as failed:
            failed.nothing = False  # the head was taken
            raise

    async def _response(self, conn: _Conn, timeout: float | None, keep: bool) -> httpx.Response:
        """The response's head read from ``conn``; its body streamed from there."""
        reply = conn.reply
        reply.start()
        got = 0
        while not reply.head:
            got = reply.feed_head(await conn.recv(timeout), got)
        return reply.response(AsyncResponseStream(self, conn, timeout, keep))

    @staticmethod
    async def _delegate(
        transport: httpx.AsyncBaseTransport, request: httpx.Request
    ) -> httpx.Response:
        """``request`` sent by one of httpx's transports (``tls``, or ``_other``), its
        response told of it."""
        resp = await transport.handle_async_request(request)
        resp.request = request
        return resp

    def _other(self) -> httpx.AsyncBaseTransport:
        """httpx's own transport, for the requests this pool does not speak."""
        if self._fallback is None:
            self._fallback = httpx.AsyncHTTPTransport(
                verify=tls_context(self._verify, self._trust_env),
                limits=httpx.Limits(max_connections=self._max, max_keepalive_connections=100),
            )
        return self._fallback


async def _aiter(body: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in body:
        yield chunk


def _rebuilt(
    method: str,
    target: Target,
    headers: list[tuple[bytes, bytes]],
    body: Body,
    timeouts: Mapping[str, float | None],
) -> httpx.Request:
    """The ``httpx.Request`` that ``send`` was not given, for httpx's transport."""
    content = _aiter(body) if isinstance(body, Iterable) else body
    return httpx.Request(
        method, target.url, headers=headers, content=content, extensions={"timeout": timeouts}
    )
