"""HTTP/1.1 messages for srt's connection pools (``pool.py``, and ``apool.py`` for asyncio).

The request side: where a request goes (``Target``, worked out once per URL), the
headers an ``httpx.Client`` would send (``request_headers``), the request head as one
bytes join (``request_head``), the framing headers the pool acts on (``framing``) and
chunked encoding. The response side: ``Reply``, told of each part of a response by
``httptools`` (llhttp, in C): status, headers, and bodies with a Content-Length,
chunked, or up to the close; the head's reads and the ``httpx.Response`` it makes
(``Reply.feed_head``, ``Reply.response``). And what both pools share about a
connection: their settings, counts and idle connections (``PoolSettings``, a base of
both), the TLS context ``verify`` asks for (``tls_context``, which the proxies'
transports use too), whether an idle one has something waiting (``readable``), and a
failed write (``Sent``).
"""

from __future__ import annotations

import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from typing import Generic, NamedTuple, Protocol, TypeVar

import httptools
import httpx

__all__ = [
    "DEFAULT_PORT",
    "MAX_HEAD",
    "METHODS",
    "READ",
    "Key",
    "PoolSettings",
    "Pooled",
    "Reply",
    "Sent",
    "Stop",
    "Target",
    "achunked",
    "chunked",
    "framing",
    "readable",
    "request_head",
    "request_headers",
    "write_error",
]

DEFAULT_PORT = {"http": 80, "https": 443}
#: The methods the pool sends itself (HEAD and CONNECT go to httpx's transport).
METHODS = {m: m.encode() for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}
#: The request headers the pool acts on (found in the lowercased head).
_FRAMING = re.compile(rb"\r\n(expect|upgrade|transfer-encoding|connection)[ \t]*:([^\r]*)")

Key = tuple[str, str, int]

#: The most bytes a read from a socket asks for.
READ = 64 * 1024
#: The most bytes read for a response head (status line and headers) before it is a
#: protocol error: llhttp sets no limit of its own, and a server that never ends its head
#: would otherwise grow the header list until the read timeout (h11's limit is 16 KiB).
MAX_HEAD = 256 * 1024
_POLL = getattr(select, "poll", None)


def readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read now (data, or the server's close): an idle
    connection that has is not reused."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    if _POLL is None:  # pragma: no cover - Windows
        return bool(select.select([sock], [], [], 0)[0])
    poll = _POLL()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


def tls_context(verify: ssl.SSLContext | str | bool, trust_env: bool = True) -> ssl.SSLContext:
    """The TLS context ``verify`` asks for, as srt's pool makes it (httpx deprecates a
    CA bundle or folder given as a string); ``trust_env``: ``verify=True`` honours
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``. A context given is used as it is."""
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify, trust_env=trust_env)


def checked_alpn(sock: ssl.SSLSocket) -> None:
    """After the handshake: the server agreed to HTTP/1.1 (or to no protocol by ALPN),
    the only one srt's pools speak; a connection it took to another is an
    ``httpx.ConnectError`` (the context was changed meanwhile by a client that offers
    h2 on it)."""
    chosen = sock.selected_alpn_protocol()
    if chosen not in (None, "http/1.1"):
        raise httpx.ConnectError(
            f"the server chose {chosen!r} by ALPN, and this connection pool speaks HTTP/1.1 "
            "only: the TLS context offered more (is it shared with an HTTP/2 client?)"
        )


class Pooled(Protocol):
    """What the pools' bookkeeping needs of a connection (``pool._Conn``,
    ``apool._Conn``)."""

    key: Key
    reply: Reply
    reused: bool
    idle_since: float

    def close(self) -> None: ...


C = TypeVar("C", bound=Pooled)


class PoolSettings(Generic[C]):
    """What both pools (``pool.Pool``, ``apool.AsyncPool``) keep of their settings and
    counts, their idle connections and the bookkeeping around them, and the TLS context
    they make from ``verify`` on the first https request (``trust_env``: as
    ``tls_context``'s). Only the waiting differs between the two (a condition variable
    or futures); the caller holds the sync pool's lock around each of these."""

    def _settle(
        self,
        verify: ssl.SSLContext | str | bool,
        limits: httpx.Limits | None,
        on_write: Callable[[int], None] | None,
        trust_env: bool = True,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=100)
        self._verify = verify
        self._trust_env = trust_env
        self._ssl: ssl.SSLContext | None = None  # made on the first https request
        self._max = limits.max_connections or 1 << 30
        keep = limits.max_keepalive_connections
        self._max_idle = self._max if keep is None else keep
        self._expiry = limits.keepalive_expiry
        self._on_write = on_write
        self._idle: dict[Key, list[C]] = {}
        self._idle_count = 0
        self._open = 0  # connections open, idle or in use
        self._closed = False

    def _context(self) -> ssl.SSLContext:
        """The TLS context for a new connection, offering only HTTP/1.1 by ALPN. Set at
        each connection, as httpcore does: a context the caller gave may be shared with
        a client that offers h2 on it meanwhile (``checked_alpn`` catches the rest)."""
        context = self._ssl
        if context is None:
            context = self._ssl = tls_context(self._verify, self._trust_env)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _reuse(self, key: Key, unfit: Callable[[C], bool]) -> C | None:
        """The most recently used idle connection to ``key`` (its state is warmest) that
        is neither past the keep-alive expiry nor ``unfit``; those it meets that are, it
        closes. None: there is none."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            expiry = self._expiry
            if (expiry is not None and time.monotonic() - conn.idle_since > expiry) or unfit(conn):
                conn.close()
                self._open -= 1
                continue
            return conn
        return None

    def _room(self) -> bool:
        """Count one more open connection if the limit allows, closing the longest idle
        connection to another origin to make room at the limit. False: every connection
        is in use, and the caller waits for one to be given back."""
        while self._open >= self._max:
            other = next((c for c in self._idle.values() if c), None)
            if other is None:
                return False
            other.pop(0).close()
            self._idle_count -= 1
            self._open -= 1
        self._open += 1
        return True

    def _put_back(self, conn: C, keep: bool) -> None:
        """Keep ``conn`` for reuse when ``keep``, its last response and the limit on idle
        connections allow; otherwise close it."""
        reply = conn.reply
        if (
            keep
            and reply.done
            and reply.keep
            and not reply.extra
            and not self._closed
            and self._idle_count < self._max_idle
        ):
            conn.reused = True
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.key, []).append(conn)
            self._idle_count += 1
        else:
            conn.close()
            self._open -= 1

    def _close_idle(self) -> None:
        """Mark the pool closed and close every idle connection."""
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
                self._open -= 1
        self._idle.clear()
        self._idle_count = 0


class Stop:
    """A caller's stop for a request whose response's head has not come yet (a stream's
    ``cancel()`` from another thread, ``Call.cancel``): the pool holding the request's
    connection gives ``hold`` what shuts it (``Pool._shut``, under the pool's lock, so
    never a connection already handed back), and ``stop`` runs that at once, so the
    wait for the head ends now, not when the head comes or the idle timeout passes.
    A stop that comes first is run by ``hold`` itself. A wait between attempts
    (``pause``: a retry's backoff) ends at the stop too."""

    __slots__ = ("_lock", "_paused", "_shut", "stopped")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shut: Callable[[], None] | None = None
        self._paused: threading.Event | None = None  # made by the first ``pause``
        self.stopped = False

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or until ``stop()`` if it comes first."""
        with self._lock:
            if self.stopped:
                return
            if self._paused is None:
                self._paused = threading.Event()
            paused = self._paused
        paused.wait(seconds)

    def hold(self, shut: Callable[[], None] | None) -> None:
        """``shut()`` now stops the request (None: nothing does)."""
        with self._lock:
            self._shut = shut
            if not self.stopped or shut is None:
                return
        shut()

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            shut, paused = self._shut, self._paused
        if paused is not None:
            paused.set()
        if shut is not None:
            shut()


class Sent(Exception):
    """A write failed; ``nothing`` when not a byte of the request had been taken (the
    request may go again on a new connection)."""

    def __init__(self, error: httpx.TransportError, nothing: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.nothing = nothing


def write_error(exc: OSError) -> httpx.TransportError:
    """httpx's error for a failed write."""
    if isinstance(exc, TimeoutError):
        return httpx.WriteTimeout(str(exc) or "timed out")
    return httpx.WriteError(str(exc))


def framing(head: bytes) -> tuple[bool, bool, bool]:
    """(the body is chunk-encoded, the connection may be kept, the request asks for
    something the pool does not do: ``Expect`` or ``Upgrade``) from a request head."""
    chunk, keep = False, True
    for name, value in _FRAMING.findall(head.lower()):
        if name == b"transfer-encoding":
            chunk = value.strip() == b"chunked"
        elif name == b"connection":
            keep = b"close" not in value
        else:
            return chunk, keep, True
    return chunk, keep, False


class Reply:
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

    def feed_head(self, data: bytes, got: int) -> int:
        """Feed ``data``, a read of the response head after ``got`` bytes of it; return
        the bytes read so far. A server that closed before a head (no data), or a head
        longer than ``MAX_HEAD`` (llhttp sets no limit), is a protocol error."""
        if not data:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        got += len(data)
        self.feed(data)
        if not self.head and got > MAX_HEAD:
            raise httpx.RemoteProtocolError(f"the response head is longer than {MAX_HEAD} bytes")
        return got

    def response(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
        """The response this reply's head makes, its body read from ``stream`` (which is
        also its ``network_stream``)."""
        return httpx.Response(
            self.status,
            headers=self.headers,
            stream=stream,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": self.reason,
                "network_stream": stream,
            },
        )

    def ends_at_close(self) -> bool:
        """Whether the body has neither a length nor chunks: it ends when the server closes."""
        names = {k.lower() for k, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def take(self, data: bytes) -> bool:
        """One read of the body: its bytes parsed, or (none: the server closed) the end of
        a body that ends at the close, after which the connection is not kept (False).
        A close anywhere else is a ``RemoteProtocolError``."""
        if data:
            self.feed(data)
            return True
        if self.ends_at_close():
            self.done = True
            return False
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )


class Target(NamedTuple):
    """Where a request goes, as the pool needs it (worked out once per URL)."""

    url: httpx.URL
    key: Key  # scheme, host, port: the connections it may use
    path: bytes  # the request target (path and query)
    host: bytes  # the Host header's value

    @staticmethod
    def of(url: httpx.URL) -> Target | None:
        """``url``'s target; None if not http or https."""
        scheme = url.scheme
        port = DEFAULT_PORT.get(scheme)
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


def request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers (one join), refused if a name or value would end a
    line (the head has exactly one CR LF per line)."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    lines = len(headers) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise httpx.LocalProtocolError("a request header holds a line break")
    return head


def chunked(body: Iterator[bytes]) -> Iterator[bytes]:
    """The body in HTTP/1.1 chunked encoding."""
    for chunk in body:
        if chunk:
            yield b"%x\r\n" % len(chunk)
            yield chunk
            yield b"\r\n"
    yield b"0\r\n\r\n"


async def achunked(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """An async body in HTTP/1.1 chunked encoding (``chunked``, for the asyncio pool)."""
    async for chunk in body:
        if chunk:
            yield b"%x\r\n" % len(chunk)
            yield chunk
            yield b"\r\n"
    yield b"0\r\n\r\n"
