"""A forward HTTP proxy on 127.0.0.1 for the proxy tests, recording what it sees.

Absolute-form requests (``POST http://127.0.0.1:PORT/v1/... HTTP/1.1``, what a client
sends an http:// URL through a proxy) are forwarded to the origin in origin form; a
``CONNECT host:port`` (an https:// URL) is answered ``200`` and, when the proxy was given
a TLS context, the tunnel's TLS is ended here and the requests in it are forwarded the
same way (a test CA signs its certificate, so the client's ``verify`` decides). Given a
``listen_tls`` context, the proxy is an https:// one: TLS on every connection to it, before
the request (a tunnel's TLS then runs inside it, through memory buffers). Each response
goes back with ``Connection: close``: one request a connection.

Only loopback origins are forwarded to (``localhost`` is 127.0.0.1); any other host is
refused with 403, so no test reaches beyond loopback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_LOOPBACK = {"127.0.0.1", "localhost"}


@dataclass
class Seen:
    """One request line and its headers (names lower-cased) as the proxy read them."""

    method: str
    target: str
    headers: dict[str, str]


class ForwardProxy:
    """``auth=(user, password)``: requests without that ``Proxy-Authorization`` get 407.
    ``hang_up=True``: every connection is closed as soon as its request is read.
    ``connections`` counts the connections accepted (with ``listen_tls``, those whose TLS
    handshake succeeded), ``seen`` the requests read."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        hang_up: bool = False,
        tls: ssl.SSLContext | None = None,
        listen_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.seen: list[Seen] = []
        self.connections = 0
        self._auth = auth
        self._hang_up = hang_up
        self._tls = tls
        self._listen_tls = listen_tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with ``listen_tls``), with
        ``user:password@`` (already URL-encoded) if given."""
        who = f"{user}:{password}@" if user is not None else ""
        scheme = "http" if self._listen_tls is None else "https"
        return f"{scheme}://{who}127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        self._accepter.join(2.0)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in list(self._threads):
            thread.join(2.0)

    def __enter__(self) -> ForwardProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        self._listener.settimeout(0.05)  # to see ``close`` soon
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(30)
            with self._lock:
                self._socks.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._listen_tls is not None:  # a refused handshake is an OSError
                conn = self._listen_tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._socks.append(conn)
            with self._lock:
                self.connections += 1
            reader = conn.makefile("rb")
            head = self._head(reader, "")
            if head is None:
                return
            method, target, headers = head
            if self._hang_up:
                return
            if self._auth is not None and headers.get("proxy-authorization") != _basic(*self._auth):
                conn.sendall(_reply(407, b"proxy authentication required"))
                return
            if method == "CONNECT":
                self._tunnel(conn, target)
                return
            url = urlsplit(target)
            if url.scheme != "http" or url.hostname not in _LOOPBACK:
                conn.sendall(_reply(403, b"this proxy forwards to loopback only"))
                return
            path = url.path + (f"?{url.query}" if url.query else "")
            _forward(conn, reader, method, path, headers, url.port or 80, self._socks)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _head(self, reader: object, label: str) -> tuple[str, str, dict[str, str]] | None:
        """The next request's head from ``reader``, recorded in ``seen`` (its target
        after ``label``); None at the end of the connection."""
        head = _read_head(reader)
        if head is not None:
            method, target, headers = head
            with self._lock:
                self.seen.append(Seen(method, label + target, headers))
        return head

    def _tunnel(self, conn: socket.socket, target: str) -> None:
        host, _, port = target.rpartition(":")
        if host not in _LOOPBACK or self._tls is None:
            conn.sendall(_reply(403, b"no tunnel to there"))
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        inner: Any
        if isinstance(conn, ssl.SSLSocket):  # TLS inside the proxy's own TLS
            inner = _InnerTLS(conn, self._tls)
            reader: Any = io.BufferedReader(inner)
        else:
            inner = self._tls.wrap_socket(conn, server_side=True)
            with self._lock:
                self._socks.append(inner)
            reader = inner.makefile("rb")
        try:
            head = self._head(reader, "(tunnel) ")
            if head is None:
                return
            method, path, headers = head
            _forward(inner, reader, method, path, headers, int(port), self._socks)
        finally:
            with contextlib.suppress(OSError):
                inner.close()


class _InnerTLS(io.RawIOBase):
    """The server's end of a TLS session carried inside another (an https:// proxy's
    socket), through memory buffers: ``sendall`` and, as a raw stream, ``readinto``."""

    def __init__(self, outer: ssl.SSLSocket, context: ssl.SSLContext) -> None:
        self._outer = outer
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self._until_done(self._tls.do_handshake)

    def _until_done(self, step: Any, *args: Any) -> Any:
        while True:
            try:
                result = step(*args)
            except ssl.SSLWantReadError:
                self._flush()
                data = self._outer.recv(65536)
                if not data:
                    raise ConnectionResetError("the client hung up inside the tunnel") from None
                self._in.write(data)
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        pending = self._out.read()
        if pending:
            self._outer.sendall(pending)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._until_done(self._tls.read, len(buffer))
        except (ssl.SSLZeroReturnError, ConnectionResetError):
            return 0
        buffer[: len(data)] = data
        return len(data)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._until_done(self._tls.write, view) :]

    def close(self) -> None:
        if not self.closed:  # a close_notify, without waiting for the client's
            with contextlib.suppress(ssl.SSLError, OSError):
                self._tls.unwrap()
            with contextlib.suppress(OSError):
                self._flush()
        super().close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _read_head(reader: object) -> tuple[str, str, dict[str, str]] | None:
    readline = reader.readline  # type: ignore[attr-defined]
    line = readline(65536)
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = readline(65536)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


def _reply(status: int, body: bytes) -> bytes:
    reason = {403: "Forbidden", 407: "Proxy Authentication Required"}[status]
    extra = 'Proxy-Authenticate: Basic realm="test"\r\n' if status == 407 else ""
    return (
        f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body


_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}


def _forward(
    client: Any,
    reader: object,
    method: str,
    path: str,
    headers: dict[str, str],
    port: int,
    opened: list[socket.socket],
) -> None:
    """The request (its body by Content-Length) to the origin on 127.0.0.1:``port``, and
    the origin's response back with ``Connection: close``. The origin's socket is put in
    ``opened``."""
    body = reader.read(int(headers.get("content-length", "0")))  # type: ignore[attr-defined]
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k not in _HOP]
    lines.append("Connection: close")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as origin:
        opened.append(origin)  # for ``close`` to shut
        origin.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        upstream = origin.makefile("rb")
        status = upstream.readline(65536)
        out = [status]
        while True:
            raw = upstream.readline(65536)
            if raw in (b"\r\n", b"\n", b""):
                break
            if raw.split(b":", 1)[0].strip().lower() not in {b"connection", b"keep-alive"}:
                out.append(raw)
        out.append(b"Connection: close\r\n\r\n")
        client.sendall(b"".join(out))
        while True:
            chunk = upstream.read1(65536)
            if not chunk:
                break
            client.sendall(chunk)
