"""srt's HTTP/1.1 pool (``srt.providers.pool``) against real servers on 127.0.0.1.

Each server here is a plain socket that answers with exactly the bytes a case needs
(a chunked reply, a reply cut short, a close between requests, bytes that are not
HTTP), so the pool meets what a real server may do on the wire.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme

import srt
from srt._core import Body
from srt.bench.netcount import CountingTransport
from srt.providers.http1 import Target
from srt.providers.pool import Pool, ResponseStream
from srt.providers.sendall import HTTPTransport
from srt.providers.transport import HTTPRequest, RetryPolicy, Timeouts, Transport

Handler = Callable[[socket.socket, "_Reader", int], None]


class _Reader:
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


class _Server:
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
                reader = _Reader(conn)
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

    def read(self, reader: _Reader) -> bool:
        got = reader.request()
        if got is None:
            return False
        self.heads.append(got[0])
        self.bodies.append(got[1])
        return True

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., _Server]]:
    made: list[_Server] = []

    def make(handler: Handler, tls: ssl.SSLContext | None = None) -> _Server:
        made.append(_Server(handler, tls))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def _keepalive(server: list[_Server], reply: Callable[[int], bytes]) -> Handler:
    """Answer every request on a connection with ``reply(n)`` (n counts requests)."""

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        n = 0
        while server[0].read(reader):
            conn.sendall(reply(n))
            n += 1

    return handle


def _post(pool: httpx.BaseTransport, url: str, content: bytes = b"{}", **kw: object) -> bytes:
    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    req = httpx.Request("POST", url, content=content, extensions={"timeout": t}, **kw)  # type: ignore[arg-type]
    resp = pool.handle_request(req)
    try:
        return resp.read()
    finally:
        resp.close()


def test_kept_alive_connections_are_reused(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b'{"n":%d}' % n))))
    with Pool() as pool:
        assert [_post(pool, box[0].url()) for _ in range(5)] == [b'{"n":%d}' % n for n in range(5)]
    assert box[0].accepted == 1
    head = box[0].heads[0]
    assert head.startswith(b"POST /v1/x HTTP/1.1\r\n") and b"content-length: 2\r\n" in head.lower()
    assert box[0].bodies == [b"{}"] * 5


def test_chunked_content_length_and_close_delimited_replies(
    serve: Callable[..., _Server],
) -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        _ok(b"fghij"),
        b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"after an interim response"),
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the close",
    ]
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        for reply in replies if index == 0 else [_ok(b"")]:
            box[0].read(reader)
            conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)

    box.append(serve(handle))
    with Pool() as pool:
        got = [_post(pool, box[0].url()) for _ in replies]
        assert got == [b"abcde", b"fghij", b"after an interim response", b"until the close"]
        assert box[0].accepted == 1
        assert _post(pool, box[0].url()) == b""  # a new connection: the last was closed
    assert box[0].accepted == 2


def test_a_request_body_goes_out_whole_chunk_by_chunk_or_chunk_encoded(
    serve: Callable[..., _Server],
) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok())))
    big = [bytes([65 + k]) * (300 * 1024) for k in range(3)]
    with CountingTransport() as pool:
        body = Body([b'{"a":', *big, b"1}"])
        headers = {"content-length": str(len(body))}
        _post(pool, box[0].url(), content=iter(body.chunks), headers=headers)  # type: ignore[arg-type]
        # The head, then one write per chunk: none joined.
        assert pool.writes.calls == 1 + len(big) + 2
        _post(pool, box[0].url(), content=iter([b"ab", b"", b"cd"]))  # type: ignore[arg-type]
    assert box[0].bodies == [b"".join([b'{"a":', *big, b"1}"]), b"abcd"]
    assert b"transfer-encoding: chunked" in box[0].heads[1].lower()


def test_a_stream_closed_early_takes_its_connection_with_it(
    serve: Callable[..., _Server],
) -> None:
    box: list[_Server] = []
    release = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        while box[0].read(reader):
            if index == 0:
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                release.wait(10)
                conn.sendall(b"4\r\nmore\r\n0\r\n\r\n")
            else:
                conn.sendall(_ok())

    box.append(serve(handle))
    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    with Pool() as pool:
        resp = pool.handle_request(
            httpx.Request("POST", box[0].url(), content=b"{}", extensions={"timeout": t})
        )
        assert next(resp.iter_raw()) == b"first"
        resp.close()  # the rest unread: the connection must not serve the next request
        release.set()
        assert _post(pool, box[0].url()) == b"{}"
    assert box[0].accepted == 2


def test_a_kept_alive_connection_the_server_closed_is_not_used(
    serve: Callable[..., _Server],
) -> None:
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(_ok(b"%d" % index))  # keep-alive, then closes: an idle timeout

    box.append(serve(handle))
    with Pool() as pool:
        assert _post(pool, box[0].url()) == b"0"
        box[0].wait_closed(1)
        assert _post(pool, box[0].url()) == b"1"
    assert box[0].accepted == 2 and len(box[0].heads) == 2


def _reset(conn: socket.socket) -> None:
    """Close with a reset, as a server dropping an idle connection may."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


def test_a_request_is_sent_again_only_if_nothing_of_it_was_taken(
    serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's close may arrive after the pool looked at an idle connection (here:
    it does not look). Refused before a byte was taken (a reset), the request goes on a
    new connection; once its bytes went out (only a FIN), it is never sent again."""
    monkeypatch.setattr("srt.providers.pool._Conn.stale", lambda self: False)
    box: list[_Server] = []
    read = [threading.Event(), threading.Event()]  # the client has read reply 0, 1

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(_ok(b"%d" % index))
        read[index].wait(10)
        if index == 0:
            _reset(conn)

    box.append(serve(handle))
    with Pool() as pool:
        assert _post(pool, box[0].url()) == b"0"
        read[0].set()
        box[0].wait_closed(1)
        assert _post(pool, box[0].url()) == b"1"  # the reset connection, then a new one
        assert box[0].accepted == 2 and len(box[0].heads) == 2
        read[1].set()
        box[0].wait_closed(2)  # connection 1 was closed with a FIN after its reply
        # Its head went out (the socket took it): the write of the body or the read of
        # the reply fails, whichever meets the close first, and nothing is sent again.
        with pytest.raises((httpx.RemoteProtocolError, httpx.WriteError)):
            _post(pool, box[0].url())
    assert box[0].accepted == 2 and len(box[0].heads) == 2


def test_read_and_pool_timeouts(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    answer = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        answer.wait(10)  # then close without a reply

    box.append(serve(handle))
    t = {"connect": 5.0, "read": 0.2, "write": 5.0, "pool": 0.2}
    with Pool(limits=httpx.Limits(max_connections=1)) as pool:
        req = httpx.Request("POST", box[0].url(), content=b"{}", extensions={"timeout": t})
        with pytest.raises(httpx.ReadTimeout):
            pool.handle_request(req)
        held: list[BaseException] = []

        def hold() -> None:
            longer = {**t, "read": 10.0}
            try:
                pool.handle_request(
                    httpx.Request("POST", box[0].url(), extensions={"timeout": longer})
                )
            except httpx.TransportError as exc:
                held.append(exc)

        thread = threading.Thread(target=hold)
        thread.start()
        deadline = time.monotonic() + 10
        while len(box[0].heads) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the other thread's request holds the one connection
        with pytest.raises(httpx.PoolTimeout):
            pool.handle_request(req)
        answer.set()
        thread.join(10)
    assert [type(e) for e in held] == [httpx.RemoteProtocolError]


def test_a_write_to_a_server_that_does_not_read_times_out(serve: Callable[..., _Server]) -> None:
    stop = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        stop.wait(10)

    server = serve(handle)
    t = {"connect": 5.0, "read": 0.2, "write": 0.2, "pool": 5.0}
    try:
        with Pool() as pool:
            body = [b"x" * (8 * 1024 * 1024)]
            req = httpx.Request(
                "POST",
                server.url(),
                content=iter(body),
                headers={"content-length": str(len(body[0]))},
                extensions={"timeout": t},
            )
            with pytest.raises(httpx.WriteTimeout):
                pool.handle_request(req)
    finally:
        stop.set()


@pytest.mark.parametrize(
    "reply",
    [b"not http at all\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", b""],
)
def test_a_malformed_or_missing_reply_is_a_protocol_error(
    serve: Callable[..., _Server], reply: bytes
) -> None:
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(reply)

    box.append(serve(handle))
    with Pool() as pool, pytest.raises(httpx.RemoteProtocolError):
        _post(pool, box[0].url())
    # Through srt's Transport: a typed, retried connection error.
    waits: list[float] = []
    transport = Transport(retry=RetryPolicy(max_retries=1), sleep=waits.append)
    try:
        with pytest.raises(srt.ProviderConnectionError, match="RemoteProtocolError"):
            transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
    finally:
        transport.close()
    assert len(waits) == 1


def test_a_response_head_that_never_ends_is_a_protocol_error(
    serve: Callable[..., _Server],
) -> None:
    """A server that keeps sending header lines, and keeps the connection open, meets the
    pool's limit on a head (not the read timeout, after the headers filled memory)."""
    box: list[_Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        with contextlib.suppress(OSError):
            for _ in range(4000):  # 4 MB of header lines, then silence
                if stop.is_set():
                    break
                conn.sendall(b"x-pad: " + b"a" * 1000 + b"\r\n")
        stop.wait(10)

    box.append(serve(handle))
    try:
        # (without the limit: 4 MB of headers read, then httpx.ReadTimeout after 5 s)
        with Pool() as pool, pytest.raises(httpx.RemoteProtocolError, match="head is longer"):
            _post(pool, box[0].url())
    finally:
        stop.set()


def test_a_body_cut_short_is_an_interrupted_stream(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")

    box.append(serve(handle))
    transport = Transport()
    try:
        resp = transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
        with pytest.raises(srt.StreamInterruptedError, match="RemoteProtocolError"):
            resp.read()
    finally:
        transport.close()


def test_the_total_cap_shuts_a_stalled_response(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        stop.wait(10)

    box.append(serve(handle))
    transport = Transport(timeouts=Timeouts(idle=30.0, total=0.3))
    try:
        resp = transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
        started = time.monotonic()
        with pytest.raises(srt.ProviderTimeoutError, match="total time cap"):
            resp.read()
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        transport.close()


def test_what_the_pool_does_not_speak_goes_through_httpx(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b"" if n == 0 else b"x"))))
    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    with Pool() as pool:
        head = pool.handle_request(httpx.Request("HEAD", box[0].url(), extensions={"timeout": t}))
        assert head.status_code == 200 and head.read() == b""
        assert _post(pool, box[0].url(), headers={"expect": "100-continue"}) == b"x"
        with pytest.raises(httpx.LocalProtocolError, match="line break"):
            _post(pool, box[0].url(), headers={"x-a": "1\r\nx-injected: 1"})
    assert [h.split(b" ")[0] for h in box[0].heads] == [b"HEAD", b"POST"]


def test_tls_with_sni_and_the_verify_setting(serve: Callable[..., _Server]) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b"secure")), tls=server_context))
    url = box[0].url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        with Pool(verify=ssl.create_default_context(cafile=ca_file)) as pool:
            assert [_post(pool, url) for _ in range(3)] == [b"secure"] * 3
        assert box[0].accepted == 1 and names == ["localhost"]
        with Pool() as pool, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
            _post(pool, url)  # the system's CAs do not know this one
        transport = Transport(verify=ca_file)
        try:
            assert transport.open(HTTPRequest("POST", url, {}, b"{}")).read() == b"secure"
        finally:
            transport.close()


def _alpn_server(serve: Callable[..., _Server]) -> tuple[trustme.CA, _Server, list[str | None]]:
    """A TLS server that prefers h2 by ALPN, answers HTTP/1.1 and closes each connection;
    ``chosen`` gets the protocol each connection agreed on."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.set_alpn_protocols(["h2", "http/1.1"])
    chosen: list[str | None] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        assert isinstance(conn, ssl.SSLSocket)
        chosen.append(conn.selected_alpn_protocol())
        if box[0].read(reader):
            conn.sendall(_ok(b"secure", b"connection: close\r\n"))

    box: list[_Server] = []
    box.append(serve(handle, tls=server_context))
    return ca, box[0], chosen


class _OffersH2(ssl.SSLContext):
    """A context whose ALPN list nobody can change from h2 (as if another client kept
    setting its own on a context it shares with srt)."""

    def set_alpn_protocols(self, protocols: Any) -> None:
        super().set_alpn_protocols(["h2"])


def test_a_shared_tls_context_offers_http1_on_every_connection_or_is_refused(
    serve: Callable[..., _Server],
) -> None:
    """srt's pool speaks HTTP/1.1: it offers only that by ALPN at each new connection,
    even when an HTTP/2 client changed the caller's context between two of them, and a
    server that still chose h2 is a connection error, never a request sent in the wrong
    protocol."""
    ca, server, chosen = _alpn_server(serve)
    url = server.url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        shared = ssl.create_default_context(cafile=ca_file)
        with Pool(verify=shared) as pool:
            assert _post(pool, url) == b"secure"
            shared.set_alpn_protocols(["h2", "http/1.1"])  # an HTTP/2 client's, meanwhile
            assert _post(pool, url) == b"secure"
        assert chosen == ["http/1.1", "http/1.1"] and len(server.heads) == 2
        stubborn = _OffersH2(ssl.PROTOCOL_TLS_CLIENT)
        stubborn.load_verify_locations(cafile=ca_file)
        with Pool(verify=stubborn) as pool, pytest.raises(httpx.ConnectError, match="'h2'"):
            _post(pool, url)
        server.wait_closed(3)
        assert chosen[2:] == ["h2"] and len(server.heads) == 2  # nothing was sent to it


def test_with_a_tls_transport_https_goes_through_it_and_http_stays_on_the_pool(
    serve: Callable[..., _Server],
) -> None:
    """``Pool(tls=...)``, as ``Transport`` makes it when HTTP/2 is on: https requests go
    through httpx's transport (which negotiates HTTP/2 over TLS), plain http through the
    pool itself, and a response through either knows its request."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    secure: list[_Server] = []
    secure.append(serve(_keepalive(secure, lambda n: _ok(b"secure")), tls=server_context))
    plain: list[_Server] = []
    plain.append(serve(_keepalive(plain, lambda n: _ok(b"plain"))))

    class Recording(HTTPTransport):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.urls: list[str] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.urls.append(str(request.url))
            return super().handle_request(request)

    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    url = secure[0].url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        tls = Recording(verify=ssl.create_default_context(cafile=ca_file))
        pool = Pool(tls=tls)
        transport = Transport(pool=pool)
        try:
            # Through Transport (the pool handed header bytes, no httpx.Request) ...
            assert transport.open(HTTPRequest("POST", url, {}, b"{}")).read() == b"secure"
            assert transport.open(HTTPRequest("POST", plain[0].url(), {}, b"{}")).read() == b"plain"
            # ... and through the pool's own entry, where the responses can be looked at.
            for where, expected in ((url, b"secure"), (plain[0].url(), b"plain")):
                target = Target.of(httpx.URL(where))
                assert target is not None
                head = [(b"Host", target.host), (b"Content-Length", b"2")]
                resp = pool.send("POST", target, head, b"{}", t)
                assert resp.read() == expected
                if expected == b"secure":  # httpx's response, told of its request
                    assert resp.request.url == where and not isinstance(resp.stream, ResponseStream)
                else:
                    assert isinstance(resp.stream, ResponseStream)  # the pool's own
        finally:
            transport.close()
    assert tls.urls == [url, url]
    assert all(h.startswith(b"POST /v1/x HTTP/1.1") for h in secure[0].heads + plain[0].heads)


def test_an_encoded_reply_is_decoded_and_a_plain_one_read_as_it_came(
    serve: Callable[..., _Server],
) -> None:
    """Transport reads a plain body of srt's pool directly, and leaves a gzip-encoded one
    to httpx's decoders (the client asks for gzip, as httpx does)."""
    import gzip

    packed = gzip.compress(b'{"packed": true}')
    replies = [_ok(packed, b"content-encoding: gzip\r\n"), _ok(b'{"plain": true}')]
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: replies[n])))
    transport = Transport()
    try:
        got = [transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}")).read() for _ in replies]
    finally:
        transport.close()
    assert got == [b'{"packed": true}', b'{"plain": true}']
    assert b"gzip" in box[0].heads[0].lower() and box[0].accepted == 1


def test_an_error_of_the_body_iterator_is_not_a_write_error(
    serve: Callable[..., _Server],
) -> None:
    """What the request's body iterator raises (``HTTPRequest.sent`` runs in it) reaches
    the caller as it is, even an ``OSError``; the connection it left half-sent is closed."""
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok())))

    def body() -> Iterator[bytes]:
        yield b"x" * 20000
        raise PermissionError("the caller's own failure")

    with Pool() as pool:
        with pytest.raises(PermissionError, match="caller's own"):
            _post(pool, box[0].url(), content=body(), headers={"content-length": "40000"})  # type: ignore[arg-type]
        assert _post(pool, box[0].url()) == b"{}"
    assert box[0].accepted == 2
