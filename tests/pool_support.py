"""What the tests of srt's sync HTTP/1.1 pool share (``test_transport_pool``,
``test_transport_pool_tls``): a loopback server handing each connection to a handler that
answers with exactly the bytes a case needs, and one request through a pool."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme

Handler = Callable[[socket.socket, "Reader", int], None]


class Reader:
    """Requests read off one server-side connection: head, then the body (by its
    Content-Length or chunked)."""

    def __init__(self, conn: socket.socket) -> None:
        self.file = conn.makefile("rb")

    def request(self) -> tuple[bytes, bytes] | None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.file.readline()
            if not line:
                return None
            head += line
        fields = dict(
            (k.strip().lower(), v.strip())
            for k, v in (x.split(b":", 1) for x in head.split(b"\r\n")[1:] if b":" in x)
        )
        if fields.get(b"transfer-encoding") == b"chunked":
            body = b""
            while size := int(self.file.readline().strip(), 16):
                body += self.file.read(size)
                self.file.readline()
            self.file.readline()
            return head, body
        return head, self.file.read(int(fields.get(b"content-length", b"0")))


class Server:
    """A loopback server handing each connection (its index counted in ``accepted``) to
    ``handler`` in a thread of its own; ``heads`` collects the request heads it read."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handler = handler
        self.tls = tls
        self.accepted = 0
        self.closed = 0
        self.lock = threading.Lock()
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/v1/x", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            index, self.accepted = self.accepted, self.accepted + 1
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with conn:
                reader = Reader(conn)
                try:
                    self.handler(conn, reader, index)
                finally:
                    reader.file.close()  # the socket closes with its last file
        except OSError:
            pass
        finally:
            with self.lock:
                self.closed += 1

    def wait_closed(self, count: int) -> None:
        """Until ``count`` connections were closed on the server's side."""
        deadline = time.monotonic() + 10
        while self.closed < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.closed >= count

    def read(self, reader: Reader) -> bool:
        got = reader.request()
        if got is None:
            return False
        self.heads.append(got[0])
        self.bodies.append(got[1])
        return True

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """``serve(handler, tls=None)`` starts a server, closed when the test ends (a fixture:
    a module using it imports it and names it in ``__all__``)."""
    made: list[Server] = []

    def make(handler: Handler, tls: ssl.SSLContext | None = None) -> Server:
        made.append(Server(handler, tls))
        return made[-1]

    yield make
    for s in made:
        s.close()


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def keepalive(server: list[Server], reply: Callable[[int], bytes]) -> Handler:
    """Answer every request on a connection with ``reply(n)`` (n counts requests)."""

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        n = 0
        while server[0].read(reader):
            conn.sendall(reply(n))
            n += 1

    return handle


def post(pool: httpx.BaseTransport, url: str, content: bytes = b"{}", **kw: object) -> bytes:
    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    req = httpx.Request("POST", url, content=content, extensions={"timeout": t}, **kw)  # type: ignore[arg-type]
    resp = pool.handle_request(req)
    try:
        return resp.read()
    finally:
        resp.close()


def reset(conn: socket.socket) -> None:
    """Close with a reset, as a server dropping an idle connection may."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


def alpn_server(serve: Callable[..., Server]) -> tuple[trustme.CA, Server, list[str | None]]:
    """A TLS server that prefers h2 by ALPN, answers HTTP/1.1 and closes each connection;
    ``chosen`` gets the protocol each connection agreed on."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.set_alpn_protocols(["h2", "http/1.1"])
    chosen: list[str | None] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        assert isinstance(conn, ssl.SSLSocket)
        chosen.append(conn.selected_alpn_protocol())
        if box[0].read(reader):
            conn.sendall(ok(b"secure", b"connection: close\r\n"))

    box: list[Server] = []
    box.append(serve(handle, tls=server_context))
    return ca, box[0], chosen


class OffersH2(ssl.SSLContext):
    """A context whose ALPN list nobody can change from h2 (as if another client kept
    setting its own on a context it shares with srt)."""

    def set_alpn_protocols(self, protocols: Any) -> None:
        super().set_alpn_protocols(["h2"])
