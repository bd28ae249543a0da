"""srt's HTTP/1.1 pool (``srt.providers.pool``) against real servers on 127.0.0.1.

Each server here is a plain socket that answers with exactly the bytes a case needs
(a chunked reply, a reply cut short, a close between requests, bytes that are not
HTTP), so the pool meets what a real server may do on the wire.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

import srt
from pool_support import (
    Reader,
    Server,
    keepalive,
    ok,
    post,
    reset,
    serve,
)
from srt._core import Body
from srt.bench.netcount import CountingTransport
from srt.providers.pool import Pool
from srt.providers.transport import HTTPRequest, RetryPolicy, Timeouts, Transport

__all__ = ["serve"]  # the fixture, imported for the cases here


def test_kept_alive_connections_are_reused(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b'{"n":%d}' % n))))
    with Pool() as pool:
        assert [post(pool, box[0].url()) for _ in range(5)] == [b'{"n":%d}' % n for n in range(5)]
    assert box[0].accepted == 1
    head = box[0].heads[0]
    assert head.startswith(b"POST /v1/x HTTP/1.1\r\n") and b"content-length: 2\r\n" in head.lower()
    assert box[0].bodies == [b"{}"] * 5


def test_chunked_content_length_and_close_delimited_replies(
    serve: Callable[..., Server],
) -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ok(b"fghij"),
        b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after an interim response"),
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the close",
    ]
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        for reply in replies if index == 0 else [ok(b"")]:
            box[0].read(reader)
            conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)

    box.append(serve(handle))
    with Pool() as pool:
        got = [post(pool, box[0].url()) for _ in replies]
        assert got == [b"abcde", b"fghij", b"after an interim response", b"until the close"]
        assert box[0].accepted == 1
        assert post(pool, box[0].url()) == b""  # a new connection: the last was closed
    assert box[0].accepted == 2


def test_a_request_body_goes_out_whole_chunk_by_chunk_or_chunk_encoded(
    serve: Callable[..., Server],
) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok())))
    big = [bytes([65 + k]) * (300 * 1024) for k in range(3)]
    with CountingTransport() as pool:
        body = Body([b'{"a":', *big, b"1}"])
        headers = {"content-length": str(len(body))}
        post(pool, box[0].url(), content=iter(body.chunks), headers=headers)  # type: ignore[arg-type]
        # The head, then one write per chunk: none joined.
        assert pool.writes.calls == 1 + len(big) + 2
        post(pool, box[0].url(), content=iter([b"ab", b"", b"cd"]))  # type: ignore[arg-type]
    assert box[0].bodies == [b"".join([b'{"a":', *big, b"1}"]), b"abcd"]
    assert b"transfer-encoding: chunked" in box[0].heads[1].lower()


def test_a_stream_closed_early_takes_its_connection_with_it(
    serve: Callable[..., Server],
) -> None:
    box: list[Server] = []
    release = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        while box[0].read(reader):
            if index == 0:
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
                release.wait(10)
                conn.sendall(b"4\r\nmore\r\n0\r\n\r\n")
            else:
                conn.sendall(ok())

    box.append(serve(handle))
    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    with Pool() as pool:
        resp = pool.handle_request(
            httpx.Request("POST", box[0].url(), content=b"{}", extensions={"timeout": t})
        )
        assert next(resp.iter_raw()) == b"first"
        resp.close()  # the rest unread: the connection must not serve the next request
        release.set()
        assert post(pool, box[0].url()) == b"{}"
    assert box[0].accepted == 2


def test_a_kept_alive_connection_the_server_closed_is_not_used(
    serve: Callable[..., Server],
) -> None:
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(ok(b"%d" % index))  # keep-alive, then closes: an idle timeout

    box.append(serve(handle))
    with Pool() as pool:
        assert post(pool, box[0].url()) == b"0"
        box[0].wait_closed(1)
        assert post(pool, box[0].url()) == b"1"
    assert box[0].accepted == 2 and len(box[0].heads) == 2


def test_a_request_is_sent_again_only_if_nothing_of_it_was_taken(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's close may arrive after the pool looked at an idle connection (here:
    it does not look). Refused before a byte was taken (a reset), the request goes on a
    new connection; once its bytes went out (only a FIN), it is never sent again."""
    monkeypatch.setattr("srt.providers.pool._Conn.stale", lambda self: False)
    box: list[Server] = []
    read = [threading.Event(), threading.Event()]  # the client has read reply 0, 1

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(ok(b"%d" % index))
        read[index].wait(10)
        if index == 0:
            reset(conn)

    box.append(serve(handle))
    with Pool() as pool:
        assert post(pool, box[0].url()) == b"0"
        read[0].set()
        box[0].wait_closed(1)
        assert post(pool, box[0].url()) == b"1"  # the reset connection, then a new one
        assert box[0].accepted == 2 and len(box[0].heads) == 2
        read[1].set()
        box[0].wait_closed(2)  # connection 1 was closed with a FIN after its reply
        # Its head went out (the socket took it): the write of the body or the read of
        # the reply fails, whichever meets the close first, and nothing is sent again.
        with pytest.raises((httpx.RemoteProtocolError, httpx.WriteError)):
            post(pool, box[0].url())
    assert box[0].accepted == 2 and len(box[0].heads) == 2


def test_read_and_pool_timeouts(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    answer = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
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


def test_a_write_to_a_server_that_does_not_read_times_out(serve: Callable[..., Server]) -> None:
    stop = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
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
    serve: Callable[..., Server], reply: bytes
) -> None:
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(reply)

    box.append(serve(handle))
    with Pool() as pool, pytest.raises(httpx.RemoteProtocolError):
        post(pool, box[0].url())
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
    serve: Callable[..., Server],
) -> None:
    """A server that keeps sending header lines, and keeps the connection open, meets the
    pool's limit on a head (not the read timeout, after the headers filled memory)."""
    box: list[Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
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
            post(pool, box[0].url())
    finally:
        stop.set()


def test_a_body_cut_short_is_an_interrupted_stream(serve: Callable[..., Server]) -> None:
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
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


def test_the_total_cap_shuts_a_stalled_response(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        stop.wait(10)

    box.append(serve(handle))
    transport = Transport(timeouts=Timeouts(idle=30.0, total=0.3))
    try:
        resp = transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
        # Ended by the total cap (its message), not by the idle timeout (30 s) nor by
        # the server letting go (its handler waits on ``stop``, set below).
        with pytest.raises(srt.ProviderTimeoutError, match="total time cap"):
            resp.read()
    finally:
        stop.set()
        transport.close()


def test_an_error_of_the_body_iterator_is_not_a_write_error(
    serve: Callable[..., Server],
) -> None:
    """What the request's body iterator raises (``HTTPRequest.sent`` runs in it) reaches
    the caller as it is, even an ``OSError``; the connection it left half-sent is closed."""
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok())))

    def body() -> Iterator[bytes]:
        yield b"x" * 20000
        raise PermissionError("the caller's own failure")

    with Pool() as pool:
        with pytest.raises(PermissionError, match="caller's own"):
            post(pool, box[0].url(), content=body(), headers={"content-length": "40000"})  # type: ignore[arg-type]
        assert post(pool, box[0].url()) == b"{}"
    assert box[0].accepted == 2
