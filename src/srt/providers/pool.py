"""srt's HTTP/1.1 connection pool: an ``httpx`` transport that does little per request.

httpx's own transport goes through httpcore's pool and h11's state machine: about 600
Python calls a request, each costly when a turn starts with cold caches after the
provider's wait. Here a request is one bytes join for its head and a ``sendall`` per
chunk of its body (nothing joined, nothing sliced: a large ``_core.Body`` goes to the
socket as it is), and the response is parsed in C by ``httptools`` (llhttp): status,
headers, and bodies with a Content-Length, chunked, or up to the close.

What it keeps from httpcore's pool: connections kept alive per origin and reused (the
most recently used first, none older than ``keepalive_expiry`` or with data or a close
waiting on it), at most ``max_connections`` open, thread-safe; TLS with the ``verify``
given (SNI, ALPN ``http/1.1``); the connect/read/write/pool timeouts of each request's
``extensions["timeout"]``; errors as httpx's exception types; a streamed body read as
the caller iterates, whose connection goes back to the pool only when read to its end
(closed early, it is closed); ``network_stream`` in the response's extensions (its
``get_extra_info("socket")`` lets the caller's watchdog shut the socket). A request on
a kept-alive connection that fails before a byte of it was taken is sent again on a new
connection. What it does not speak (HEAD, CONNECT, ``Expect``/``Upgrade`` requests) goes
to httpx's own transport (``sendall.HTTPTransport``), made on first need.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import httptools
import httpx

__all__ = ["Pool", "ResponseStream", "Target", "request_headers"]

_READ = 64 * 1024
#: A body chunk at most this size goes out in the same write as the head before it.
_COALESCE = 16 * 1024
_DEFAULT_PORT = {"http": 80, "https": 443}
_METHODS = {m: m.encode() for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
#: The request headers the pool acts on (found in the lowercased head).
_FRAMING = re.compile(rb"\r\n(expect|upgrade|transfer-encoding|connection)[ \t]*:([^\r]*)")

_Key = tuple[str, str, int]


class _Reply:
    """The response being parsed on one connection: ``httptools`` tells it each part."""

    __slots__ = (
        "body",
        "done",
        "encoded",
        "extra",
        "head",
        "headers",
        "keep",
        "parser",
        "reason",
        "status",
    )

    def __init__(self) -> None:
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.start()

    def start(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.head = False  # the head of the final (non-1xx) response is in
        self.done = False  # and its body
        self.extra = False  # data after the response: the connection is not reused
        self.keep = False  # the response lets the connection be kept (llhttp's reading)
        self.encoded = False  # it has a Content-Encoding

    def on_message_begin(self) -> None:
        if self.done:
            self.extra = True

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) == 16 and name.lower() == b"content-encoding":
            self.encoded = True

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if status < 200:  # an interim response (100 Continue...): dropped, as h11 does
            self.headers = []
            return
        self.status = status
        self.head = True

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        if self.head:
            assert self.parser is not None
            self.keep = self.parser.should_keep_alive()  # reset once the message is done
            self.done = True

    def feed(self, data: bytes) -> None:
        assert self.parser is not None
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise httpx.RemoteProtocolError(f"malformed response: {exc!r}") from exc

    def ends_at_close(self) -> bool:
        """Whether the body has neither a length nor chunks: it ends when the server closes."""
        names = {k.lower() for k, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names


class _Conn:
    """One connection, its parser, and the timeout its socket is set to."""

    __slots__ = ("idle_since", "key", "reply", "reused", "sock", "timeout")

    def __init__(self, sock: socket.socket, key: _Key) -> None:
        self.sock = sock
        self.key = key
        self.reply = _Reply()
        self.timeout = sock.gettimeout()
        self.reused = False
        self.idle_since = 0.0

    def settimeout(self, seconds: float | None) -> None:
        if seconds != self.timeout:
            self.sock.settimeout(seconds)
            self.timeout = seconds

    def stale(self) -> bool:
        """An idle connection with something to read (data, or the server's close)."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        poll = select.poll()
        poll.register(sock, select.POLLIN)
        return bool(poll.poll(0))

    def close(self) -> None:
        self.reply.parser = None  # the parser and its protocol refer to each other
        with contextlib.suppress(OSError):
            self.sock.close()

    def recv(self, timeout: float | None) -> bytes:
        self.settimeout(timeout)
        try:
            return self.sock.recv(_READ)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc


class _Sent(Exception):
    """A write failed; ``nothing`` when not a byte of the request had been taken."""

    def __init__(self, error: httpx.TransportError, nothing: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.nothing = nothing


class ResponseStream(httpx.SyncByteStream):
    """A response body read from its connection as the caller iterates. ``identity``:
    it has no Content-Encoding, so its bytes are the body's (no decoder needed)."""

    def __init__(self, pool: Pool, conn: _Conn, timeout: float | None, keep: bool) -> None:
        self.identity = not conn.reply.encoded
        self._pool = pool
        self._conn: _Conn | None = conn
        self.read_timeout = timeout
        self._keep = keep

    def __iter__(self) -> Iterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        reply = conn.reply
        try:
            while True:
                if reply.body:
                    chunks, reply.body = reply.body, []
                    yield from chunks
                if reply.done:
                    break
                data = conn.recv(self.read_timeout)
                if data:
                    reply.feed(data)
                elif reply.ends_at_close():
                    reply.done, self._keep = True, False
                else:
                    raise httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body"
                    )
        except BaseException:
            self.close()
            raise
        self._conn = None
        self._pool.release(conn, self._keep)

    def get_extra_info(self, info: str) -> Any:
        """The socket while this response holds its connection (``network_stream``)."""
        conn = self._conn
        return conn.sock if info == "socket" and conn is not None else None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:  # not read to its end: the connection is not reusable
            self._pool.release(conn, False)


class Pool(httpx.BaseTransport):
    """HTTP/1.1 connections kept alive per origin, for ``srt.providers.Transport``.

    ``on_write(size)``, if given, is told of every write to a socket (the bench counts
    them). ``limits`` as httpx's (by default every connection given back is kept)."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        limits: httpx.Limits | None = None,
        on_write: Callable[[int], None] | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None  # made on the first https request
        self._max = limits.max_connections or 1 << 30
        keep = limits.max_keepalive_connections
        self._max_idle = self._max if keep is None else keep
        self._expiry = limits.keepalive_expiry
        self._on_write = on_write
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)  # a connection was given back
        self._waiting = 0  # threads waiting on it
        self._idle: dict[_Key, list[_Conn]] = {}
        self._idle_count = 0
        self._open = 0  # connections open, idle or in use
        self._closed = False
        self._fallback: httpx.BaseTransport | None = None

    # -- the pool ---------------------------------------------------------------

    def _acquire(self, key: _Key, timeouts: Mapping[str, float | None]) -> _Conn:
        """A kept-alive connection to ``key``, or a new one when none is fit."""
        deadline: float | None = None
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("the connection pool is closed")
                idle = self._idle.get(key)
                while idle:
                    conn = idle.pop()  # the most recently used: its state is warmest
                    self._idle_count -= 1
                    expiry = self._expiry
                    if (
                        expiry is not None and time.monotonic() - conn.idle_since > expiry
                    ) or conn.stale():
                        conn.close()
                        self._open -= 1
                        continue
                    return conn
                if self._open < self._max:
                    self._open += 1
                    break
                other = next((c for c in self._idle.values() if c), None)
                if other is not None:  # at the limit: make room by closing another's
                    other.pop(0).close()
                    self._idle_count -= 1
                    self._open -= 1
                    continue
                wait = timeouts.get("pool")
                if wait is not None:
                    if deadline is None:
                        deadline = time.monotonic() + wait
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        raise httpx.PoolTimeout("no connection came free in time")
                self._waiting += 1
                try:
                    self._freed.wait(wait)
                finally:
                    self._waiting -= 1
        try:
            return self._connect(key, timeouts.get("connect"))
        except BaseException:
            with self._lock:
                self._open -= 1
                if self._waiting:
                    self._freed.notify()
            raise

    def release(self, conn: _Conn, keep: bool) -> None:
        """Take ``conn`` back: kept for reuse when ``keep`` and its last response allow."""
        reply = conn.reply
        keep = keep and reply.done and reply.keep and not reply.extra
        with self._lock:
            if keep and not self._closed and self._idle_count < self._max_idle:
                conn.reused = True
                conn.idle_since = time.monotonic()
                self._idle.setdefault(conn.key, []).append(conn)
                self._idle_count += 1
            else:
                conn.close()
                self._open -= 1
            if self._waiting:
                self._freed.notify()

    def _connect(self, key: _Key, timeout: float | None) -> _Conn:
        scheme, host, port = key
        try:
            sock = socket.create_connection((host, port), timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            try:
                sock = self._context().wrap_socket(sock, server_hostname=host)
            except TimeoutError as exc:
                sock.close()
                raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
            except OSError as exc:  # ssl.SSLError included
                sock.close()
                raise httpx.ConnectError(str(exc)) from exc
        return _Conn(sock, key)

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self._verify
            if isinstance(verify, str):  # a CA bundle or folder (httpx deprecates the str)
                if os.path.isdir(verify):
                    context = ssl.create_default_context(capath=verify)
                else:
                    context = ssl.create_default_context(cafile=verify)
            else:
                context = httpx.create_ssl_context(verify=verify)
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
                    self._open -= 1
            self._idle.clear()
            self._idle_count = 0
            fallback, self._fallback = self._fallback, None
        if fallback is not None:
            fallback.close()

    # -- one request ------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = Target.of(request.url)
        if target is None:
            return self._other().handle_request(request)
        assert isinstance(request.stream, httpx.SyncByteStream)  # as httpx's transport
        timeouts = request.extensions.get("timeout", {})
        return self._exchange(
            request.method, target, request.headers.raw, request.stream, timeouts, request
        )

    def send(
        self,
        method: str,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        body: bytes | Iterable[bytes],
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """``handle_request`` without an ``httpx.Request``: ``headers`` are all the
        request's (Host and Content-Length included), ``timeouts`` as httpx's."""
        return self._exchange(
            method, target, headers, (body,) if isinstance(body, bytes) else body, timeouts, None
        )

    def _exchange(
        self,
        method: str,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        stream: Iterable[bytes],
        timeouts: Mapping[str, float | None],
        request: httpx.Request | None,
    ) -> httpx.Response:
        verb = _METHODS.get(method)
        if verb is None:
            return self._other().handle_request(
                request or _rebuilt(method, target, headers, stream, timeouts)
            )
        head = _head(verb, target.path, headers)
        chunked, keep = False, True
        for name, value in _FRAMING.findall(head.lower()):
            if name == b"transfer-encoding":
                chunked = value.strip() == b"chunked"
            elif name == b"connection":
                keep = b"close" not in value
            else:  # Expect, Upgrade
                return self._other().handle_request(
                    request or _rebuilt(method, target, headers, stream, timeouts)
                )
        key = target.key
        body = iter(stream)
        first = next(body, b"")
        conn = self._acquire(key, timeouts)
        failed = self._send(conn, head, first, body, chunked, timeouts.get("write"))
        if failed is not None and failed.nothing and conn.reused:
            # The server closed the kept-alive connection as it was taken: a new one.
            self.release(conn, False)
            conn = self._acquire(key, timeouts)
            failed = self._send(conn, head, first, body, chunked, timeouts.get("write"))
        try:
            if failed is None:
                return self._response(conn, timeouts.get("read"), keep)
            # As httpcore: a server may answer (413...) before closing on a body it refused.
            try:
                return self._response(conn, timeouts.get("read"), False)
            except httpx.TransportError:
                raise failed.error from None
        except BaseException:
            self.release(conn, False)
            raise

    def _send(
        self,
        conn: _Conn,
        head: bytes,
        first: bytes,
        body: Iterator[bytes],
        chunked: bool,
        timeout: float | None,
    ) -> _Sent | None:
        """``_write``; its failure to write returned, any other error raised (the
        connection given back)."""
        try:
            self._write(conn, head, first, body, chunked, timeout)
        except _Sent as failed:
            return failed
        except BaseException:
            self.release(conn, False)
            raise
        return None

    def _write(
        self,
        conn: _Conn,
        head: bytes,
        first: bytes,
        body: Iterator[bytes],
        chunked: bool,
        timeout: float | None,
    ) -> None:
        """The head, then each chunk of the body with ``sendall`` (chunk-encoded if asked)."""
        sock, on_write = conn.sock, self._on_write
        conn.settimeout(timeout)
        data = head
        if chunked:
            chunks: Iterable[bytes] = _chunked(first, body)
        elif len(first) <= _COALESCE:
            data, chunks = head + first, body
        else:
            chunks = _prepend(first, body)
        try:
            sent = sock.send(data)
        except (TimeoutError, OSError) as exc:
            raise _Sent(_write_error(exc), nothing=True) from exc
        try:
            if on_write is not None:
                on_write(len(data))
            if sent < len(data):
                sock.sendall(memoryview(data)[sent:])
            for chunk in chunks:
                if chunk:
                    if on_write is not None:
                        on_write(len(chunk))
                    sock.sendall(chunk)
        except (TimeoutError, OSError) as exc:
            raise _Sent(_write_error(exc), nothing=False) from exc

    def _response(self, conn: _Conn, timeout: float | None, keep: bool) -> httpx.Response:
        """The response's head read from ``conn``; its body streamed from there."""
        reply = conn.reply
        reply.start()
        while not reply.head:
            data = conn.recv(timeout)
            if not data:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            reply.feed(data)
        stream = ResponseStream(self, conn, timeout, keep)
        return httpx.Response(
            reply.status,
            headers=reply.headers,
            stream=stream,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": reply.reason,
                "network_stream": stream,
            },
        )

    def _other(self) -> httpx.BaseTransport:
        """httpx's own transport, for the requests this pool does not speak."""
        from .sendall import HTTPTransport, SendallBackend

        with self._lock:
            if self._fallback is None:
                self._fallback = HTTPTransport(
                    verify=self._verify, network_backend=SendallBackend(on_write=self._on_write)
                )
            return self._fallback


class Target(NamedTuple):
    """Where a request goes, as the pool needs it (worked out once per URL)."""

    url: httpx.URL
    key: _Key  # scheme, host, port: the connections it may use
    path: bytes  # the request target (path and query)
    host: bytes  # the Host header's value

    @staticmethod
    def of(url: httpx.URL) -> Target | None:
        """``url``'s target; None if not http or https."""
        scheme = url.scheme
        port = _DEFAULT_PORT.get(scheme)
        if port is None:
            return None
        return Target(url, (scheme, url.host, url.port or port), url.raw_path, url.netloc)


def request_headers(
    defaults: list[tuple[bytes, bytes]],
    given: Mapping[str, str],
    target: Target,
    length: int,
) -> list[tuple[bytes, bytes]]:
    """The headers an ``httpx.Client`` with ``defaults`` sends with ``given`` and a body of
    ``length`` bytes: Host, Content-Length (unless given), the defaults not overridden
    (names compared without case), then ``given``."""
    mine = [(k.encode("ascii"), v.encode("ascii")) for k, v in given.items()]
    names = {k.lower() for k, _ in mine}
    out = [] if b"host" in names else [(b"Host", target.host)]
    if b"content-length" not in names and b"transfer-encoding" not in names:
        out.append((b"Content-Length", b"%d" % length))
    out += [h for h in defaults if h[0].lower() not in names]
    out += mine
    return out


def _rebuilt(
    method: str,
    target: Target,
    headers: list[tuple[bytes, bytes]],
    stream: Iterable[bytes],
    timeouts: Mapping[str, float | None],
) -> httpx.Request:
    """The ``httpx.Request`` that ``send`` was not given, for httpx's transport."""
    return httpx.Request(
        method, target.url, headers=headers, content=iter(stream), extensions={"timeout": timeouts}
    )


def _head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, refused if a name or value would end a line."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    lines = len(headers) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise httpx.LocalProtocolError("a request header holds a line break")
    return head


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _chunked(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """The body in HTTP/1.1 chunked encoding."""
    for chunk in _prepend(first, rest):
        if chunk:
            yield b"%x\r\n" % len(chunk)
            yield chunk
            yield b"\r\n"
    yield b"0\r\n\r\n"


def _write_error(exc: OSError) -> httpx.TransportError:
    if isinstance(exc, TimeoutError):
        return httpx.WriteTimeout(str(exc) or "timed out")
    return httpx.WriteError(str(exc))
