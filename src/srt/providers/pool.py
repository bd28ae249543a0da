"""srt's HTTP/1.1 connection pool: an ``httpx`` transport that does little per request.

httpx's own transport goes through httpcore's pool and h11's state machine: with
httpx's request and response models, about 700 Python calls a request, each costly when
a turn starts with cold caches after the provider's wait. Here a request is one bytes
join for its head and a ``sendall`` per chunk of its body (nothing joined, nothing
sliced: a large ``_core.Body`` goes to the socket as it is), and the response is parsed
in C by ``httptools`` (llhttp): status, headers, and bodies with a Content-Length,
chunked, or up to the close. ``Transport`` hands it requests as header bytes
(``Pool.send``): about 100 Python calls a request in all.

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
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import httpx

from .http1 import (
    METHODS,
    READ,
    Key,
    PoolSettings,
    Reply,
    Sent,
    Stop,
    Target,
    checked_alpn,
    chunked,
    framing,
    readable,
    request_head,
    tls_context,
    write_error,
)

__all__ = ["Pool", "ResponseStream"]


class _Conn:
    """One connection, its parser, the timeout its socket is set to, and the deadline of
    the request holding it."""

    __slots__ = ("deadline", "idle_since", "key", "reply", "reused", "sock", "stop", "timeout")

    def __init__(self, sock: socket.socket, key: Key) -> None:
        self.sock = sock
        self.key = key
        self.reply = Reply()
        self.timeout = sock.gettimeout()
        self.reused = False
        self.idle_since = 0.0
        #: The stop of the request holding this connection (``Pool._shut``), until the
        #: connection is handed back.
        self.stop: Stop | None = None
        #: A ``time.monotonic()`` that no read or write of the request holding this
        #: connection goes past (None: none), until it is handed back.
        self.deadline: float | None = None

    def settimeout(self, seconds: float | None) -> None:
        if seconds != self.timeout:
            self.sock.settimeout(seconds)
            self.timeout = seconds

    def stale(self) -> bool:
        """An idle connection with something to read (data, or the server's close)."""
        return readable(self.sock)

    def close(self) -> None:
        self.reply.parser = None  # the parser and its protocol refer to each other
        with contextlib.suppress(OSError):
            self.sock.close()

    def capped(self, timeout: float | None, error: type[httpx.TimeoutException]) -> float | None:
        """``timeout``, or less if ``deadline`` comes first; ``error`` if it has passed.
        Far from the deadline, ``timeout`` as it is (the socket's is not set again)."""
        deadline = self.deadline
        if deadline is None:
            return timeout
        rest = deadline - time.monotonic()
        if rest <= 0:
            raise error("the call's deadline passed")
        return rest if timeout is None or rest < timeout else timeout

    def recv(self, timeout: float | None) -> bytes:
        self.settimeout(self.capped(timeout, httpx.ReadTimeout))
        try:
            return self.sock.recv(READ)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc


class _Out(NamedTuple):
    """A request as it goes out: its head, then its body's chunks."""

    head: bytes
    body: Iterator[bytes]
    encode: bool  # chunked encoding
    timeout: float | None  # for each write


class ResponseStream(httpx.SyncByteStream):
    """A response body read from its connection as the caller iterates. ``identity``:
    it has no Content-Encoding, so its bytes are the body's (no decoder needed)."""

    def __init__(
        self, pool: Pool, lock: threading.Lock, conn: _Conn, timeout: float | None, keep: bool
    ) -> None:
        self.identity = not conn.reply.encoded
        self._pool = pool
        self._lock = lock  # the pool's
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
                if not reply.take(conn.recv(self.read_timeout)):
                    self._keep = False
        except BaseException:
            self.close()
            raise
        self._give_back(self._keep)

    def get_extra_info(self, info: str) -> Any:
        """The socket while this response holds its connection (``network_stream``)."""
        conn = self._conn
        return conn.sock if info == "socket" and conn is not None else None

    def abort(self) -> None:
        """Shut the socket from any thread, if this response still holds its connection
        (a blocked read returns): under the pool's lock, so never once the connection is
        back in the pool (another request's by then), and an aborted one is not kept."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            self._keep = False
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._conn is not None:  # not read to its end: the connection is not reusable
            self._give_back(False)

    def _give_back(self, keep: bool) -> None:
        with self._lock:  # (as ``abort``: the hand-over and a shutdown never interleave)
            conn, self._conn = self._conn, None
            if conn is not None:
                self._pool.release(conn, keep and self._keep, locked=True)


class Pool(PoolSettings[_Conn], httpx.BaseTransport):
    """HTTP/1.1 connections kept alive per origin, for ``srt.providers.Transport``.

    ``on_write(size)``, if given, is told of every write to a socket (the bench counts
    them). ``limits`` as httpx's (by default every connection given back is kept)."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        limits: httpx.Limits | None = None,
        on_write: Callable[[int], None] | None = None,
        tls: httpx.BaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self._settle(verify, limits, on_write, trust_env)
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)  # a connection was given back
        self._waiting = 0  # threads waiting on it
        self._fallback: httpx.BaseTransport | None = None
        #: Where https requests go instead, if given (httpx's transport with HTTP/2).
        self._tls = tls

    # -- the pool ---------------------------------------------------------------

    def _acquire(
        self, key: Key, timeouts: Mapping[str, float | None], until: float | None = None
    ) -> _Conn:
        """A kept-alive connection to ``key``, or a new one when none is fit; no wait for
        one (nor the connecting) goes past ``until`` (a ``time.monotonic()``)."""
        deadline: float | None = None
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("the connection pool is closed")
                conn = self._reuse(key, _Conn.stale)
                if conn is not None:
                    return conn
                if self._room():
                    break
                wait = timeouts.get("pool")
                if wait is not None or until is not None:
                    if deadline is None:
                        deadline = _sooner(until, wait)
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        raise httpx.PoolTimeout("no connection came free in time")
                self._waiting += 1
                try:
                    self._freed.wait(wait)
                finally:
                    self._waiting -= 1
        try:
            return self._connect(key, _within(timeouts.get("connect"), until))
        except BaseException:
            with self._lock:
                self._open -= 1
                if self._waiting:
                    self._freed.notify()
            raise

    def release(self, conn: _Conn, keep: bool, locked: bool = False) -> None:
        """Take ``conn`` back: kept for reuse when ``keep`` and its last response allow
        (``locked``: the caller holds the pool's lock)."""
        if not locked:
            with self._lock:
                self.release(conn, keep, True)
            return
        conn.deadline = None
        stop = conn.stop
        if stop is not None:  # (``_shut``: from now on, never this connection)
            conn.stop = None
            stop.hold(None)  # (and the stop forgets it: no cycle through its ``_shut``)
        self._put_back(conn, keep)
        if self._waiting:
            self._freed.notify()

    def _held(self, conn: _Conn, stop: Stop | None, deadline: float | None) -> _Conn:
        """``conn``, which the request ``stop`` may stop, whose reads and writes end at
        ``deadline``, holds until it is handed back."""
        conn.deadline = deadline
        if stop is not None:
            conn.stop = stop
            stop.hold(lambda: self._shut(conn, stop))
        return conn

    def _shut(self, conn: _Conn, stop: Stop) -> None:
        """Shut ``conn``'s socket from any thread (``Stop.stop``: a blocked write or read
        of the head returns), under the lock its hand-over takes: only while the request
        of ``stop`` still holds it, never once it is back in the pool (another's by then)."""
        with self._lock:
            if conn.stop is stop:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)

    def _connect(self, key: Key, timeout: float | None) -> _Conn:
        scheme, host, port = key
        end = None if timeout is None else time.monotonic() + timeout
        try:
            sock = _dial(host, port, end)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            try:
                sock.settimeout(_left(end))  # (the handshake too: within ``connect``)
                sock = self._context().wrap_socket(sock, server_hostname=host)
                checked_alpn(sock)
            except TimeoutError as exc:
                sock.close()
                raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
            except OSError as exc:  # ssl.SSLError included
                sock.close()
                raise httpx.ConnectError(str(exc)) from exc
            except httpx.ConnectError:
                sock.close()
                raise
        return _Conn(sock, key)

    def close(self) -> None:
        with self._lock:
            self._close_idle()
            fallback, self._fallback = self._fallback, None
        for other in (fallback, self._tls):
            if other is not None:
                other.close()

    # -- one request ------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = Target.of(request.url)
        if target is None:
            return self._delegate(self._other(), request)
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
        stop: Stop | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        """``handle_request`` without an ``httpx.Request``: ``headers`` are all the
        request's (Host and Content-Length included), ``timeouts`` as httpx's; ``stop``
        shuts the connection while the request holds it (``Stop``); no wait goes past
        ``deadline`` (a ``time.monotonic()``: the connecting, the writes, the head's
        reads and the body's), whose passing raises httpx's timeout error of the step
        it stopped."""
        chunks = (body,) if isinstance(body, bytes) else body
        return self._exchange(method, target, headers, chunks, timeouts, None, stop, deadline)

    def _exchange(
        self,
        method: str,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        stream: Iterable[bytes],
        timeouts: Mapping[str, float | None],
        request: httpx.Request | None,
        stop: Stop | None = None,
        deadline: float | None = None,
    ) -> httpx.Response:
        verb = METHODS.get(method)
        tls = self._tls if target.key[0] == "https" else None
        if verb is None or tls is not None:
            return self._delegate(
                tls or self._other(), request or _rebuilt(method, target, headers, stream, timeouts)
            )
        head = request_head(verb, target.path, headers)
        encode, keep, other = framing(head)
        if other:
            return self._delegate(
                self._other(), request or _rebuilt(method, target, headers, stream, timeouts)
            )
        key = target.key
        out = _Out(head, iter(stream), encode, timeouts.get("write"))
        conn = self._held(self._acquire(key, timeouts, deadline), stop, deadline)
        failed = self._send(conn, out)
        while failed is not None and failed.nothing and conn.reused:
            # The server closed the kept-alive connection as it was taken: the next one
            # (in the end a new one, which is not retried).
            self.release(conn, False)
            conn = self._held(self._acquire(key, timeouts, deadline), stop, deadline)
            failed = self._send(conn, out)
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

    def _send(self, conn: _Conn, out: _Out) -> Sent | None:
        """``_write``; its failure to write returned, any other error raised (the
        connection given back)."""
        try:
            self._write(conn, out)
        except Sent as failed:
            return failed
        except BaseException:
            self.release(conn, False)
            raise
        return None

    def _write(self, conn: _Conn, out: _Out) -> None:
        """The head, then each chunk of the body with ``sendall`` (chunk-encoded if asked)."""
        sock, on_write, timeout = conn.sock, self._on_write, out.timeout
        try:
            conn.settimeout(conn.capped(timeout, httpx.WriteTimeout))
        except httpx.WriteTimeout as exc:
            raise Sent(exc, nothing=True) from None
        data = out.head
        chunks = chunked(out.body) if out.encode else out.body
        # Only the socket's own errors are write errors: one raised by the body's iterator
        # (``HTTPRequest.sent`` runs in it) goes to the caller as it is.
        try:
            sent = sock.send(data)
        except OSError as exc:  # TimeoutError included
            raise Sent(write_error(exc), nothing=True) from exc
        if on_write is not None:
            on_write(len(data))
        try:
            if sent < len(data):
                sock.sendall(memoryview(data)[sent:])
        except OSError as exc:
            raise Sent(write_error(exc), nothing=False) from exc
        for chunk in chunks:
            if chunk:
                if on_write is not None:
                    on_write(len(chunk))
                try:
                    conn.settimeout(conn.capped(timeout, httpx.WriteTimeout))
                    sock.sendall(chunk)
                except httpx.WriteTimeout as exc:
                    raise Sent(exc, nothing=False) from None
                except OSError as exc:
                    raise Sent(write_error(exc), nothing=False) from exc

    def _response(self, conn: _Conn, timeout: float | None, keep: bool) -> httpx.Response:
        """The response's head read from ``conn``; its body streamed from there."""
        reply = conn.reply
        reply.start()
        got = 0
        while not reply.head:
            got = reply.feed_head(conn.recv(timeout), got)
        return reply.response(ResponseStream(self, self._lock, conn, timeout, keep))

    @staticmethod
    def _delegate(transport: httpx.BaseTransport, request: httpx.Request) -> httpx.Response:
        """``request`` sent by one of httpx's transports (``tls``, or ``_other``), its
        response told of it."""
        resp = transport.handle_request(request)
        resp.request = request
        return resp

    def _other(self) -> httpx.BaseTransport:
        """httpx's own transport, for the requests this pool does not speak."""
        from .sendall import HTTPTransport, SendallBackend

        with self._lock:
            if self._fallback is None:
                self._fallback = HTTPTransport(
                    verify=tls_context(self._verify, self._trust_env),
                    network_backend=SendallBackend(on_write=self._on_write),
                )
            return self._fallback


def _left(end: float | None) -> float | None:
    """Seconds until ``end`` (None: no end); ``TimeoutError`` if it has passed."""
    if end is None:
        return None
    rest = end - time.monotonic()
    if rest <= 0:
        raise TimeoutError("timed out")
    return rest


def _lookup(host: str, port: int, end: float | None) -> list[Any]:
    """``socket.getaddrinfo`` for ``host``, ending at ``end``: an IP address at once; a
    name in a daemon thread (a lookup cannot be interrupted: one that outlives its
    caller finishes on its own, its answer dropped). ``socket.create_connection`` looks
    a name up with no timeout at all: a resolver that does not answer held the call
    past its ``connect`` timeout and its ``total`` (for as long as the resolver's own
    retries take, 10 s and more)."""
    kind = socket.SOCK_STREAM
    try:
        return socket.getaddrinfo(host, port, type=kind, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    if end is None:
        return socket.getaddrinfo(host, port, type=kind)
    done = threading.Event()
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(socket.getaddrinfo(host, port, type=kind))
        except BaseException as exc:  # (handed to the caller)
            out.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True, name="srt-lookup").start()
    if not done.wait(_left(end)):
        raise TimeoutError(f"looking up {host} timed out")
    found = out[0]
    if isinstance(found, BaseException):
        raise found
    return found  # type: ignore[no-any-return]


def _dial(host: str, port: int, end: float | None) -> socket.socket:
    """A connected socket to ``host``: its addresses tried in turn (as
    ``socket.create_connection``), the lookup and every attempt ending at ``end``."""
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in _lookup(host, port, end):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(end))
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise  # (the time is up: no other address is tried)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


def _sooner(until: float | None, wait: float | None) -> float:
    """The earlier of ``until`` and ``wait`` seconds from now (one of them is given)."""
    if wait is None:
        assert until is not None
        return until
    end = time.monotonic() + wait
    return end if until is None or end < until else until


def _within(timeout: float | None, until: float | None) -> float | None:
    """``timeout``, or the seconds left until ``until`` if fewer; ``ConnectTimeout`` if
    ``until`` has passed."""
    if until is None:
        return timeout
    rest = until - time.monotonic()
    if rest <= 0:
        raise httpx.ConnectTimeout("the call's deadline passed")
    return rest if timeout is None or rest < timeout else timeout


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
