"""srt's asyncio HTTP/1.1 pool (``srt.providers.apool``) against real servers on 127.0.0.1:
kept-alive connections, reply framing, request bodies, retries and the pool's waits.
Errors, timeouts and cancellation are in ``test_async_pool_faults``; TLS and what goes
through httpx in ``test_async_pool_tls``.

The servers are ``pool_support``'s: plain sockets that answer with exactly the
bytes a case needs, so the async pool meets what the sync one meets on the wire. Each
case runs its own event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from apool_support import _T, _post, _run
from pool_support import (
    Reader,
    Server,
    keepalive,
    ok,
    reset,
    serve,
)
from srt.providers.apool import AsyncPool
from srt.providers.http1 import Target

__all__ = ["serve"]  # the fixture, imported for the cases here


def test_kept_alive_connections_are_reused(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b'{"n":%d}' % n))))

    async def main() -> list[bytes]:
        pool = AsyncPool()
        try:
            return [await _post(pool, box[0].url()) for _ in range(5)]
        finally:
            await pool.aclose()

    assert _run(main) == [b'{"n":%d}' % n for n in range(5)]
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
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the close",
    ]
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        for reply in replies if index == 0 else [ok(b"")]:
            box[0].read(reader)
            conn.sendall(reply)
        conn.shutdown(socket.SHUT_WR)

    box.append(serve(handle))

    async def main() -> tuple[list[bytes], int, bytes]:
        pool = AsyncPool()
        try:
            got = [await _post(pool, box[0].url()) for _ in replies]
            accepted = box[0].accepted
            return got, accepted, await _post(pool, box[0].url())
        finally:
            await pool.aclose()

    got, accepted, last = _run(main)
    assert got == [b"abcde", b"fghij", b"after an interim response", b"", b"", b"until the close"]
    assert accepted == 1  # 204 and 304 have no body: the connection served the next
    assert last == b"" and box[0].accepted == 2  # a new connection: the last was closed


def test_a_body_of_memoryview_chunks_goes_out_byte_exact_one_write_a_chunk(
    serve: Callable[..., Server],
) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok())))
    big = [bytes([65 + k]) * (3 * 1024 * 1024) for k in range(3)]  # more than a socket takes
    # Memoryviews, as a body's frozen fragments are, one of them a slice of a larger buffer.
    chunks = [b'{"a":', *map(memoryview, big[:2]), memoryview(b"--" + big[2] + b"--")[2:-2], b"1}"]
    sent = b"".join(chunks)
    writes: list[int] = []

    async def chunk_encoded() -> AsyncIterator[bytes]:
        for part in (b"ab", b"", b"cd"):
            yield part

    async def main() -> None:
        pool = AsyncPool(on_write=writes.append)
        try:
            target = Target.of(httpx.URL(box[0].url()))
            assert target is not None
            head = [(b"Host", target.host), (b"Content-Length", b"%d" % len(sent))]
            resp = await pool.send("POST", target, head, iter(chunks), _T)
            assert await resp.aread() == b"{}"
            assert await _post(pool, box[0].url(), content=chunk_encoded()) == b"{}"
        finally:
            await pool.aclose()

    _run(main)
    # The head, then one write per chunk: none joined, none sliced into copies.
    assert writes[: 1 + len(chunks)] == [writes[0], *(len(c) for c in chunks)]
    assert box[0].bodies == [b'{"a":' + b"".join(big) + b"1}", b"abcd"]
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

    async def main() -> bytes:
        pool = AsyncPool()
        try:
            req = httpx.Request("POST", box[0].url(), content=b"{}", extensions={"timeout": _T})
            resp = await pool.handle_async_request(req)
            assert await resp.aiter_raw().__anext__() == b"first"
            await resp.aclose()  # the rest unread: the connection must not serve the next
            release.set()
            return await _post(pool, box[0].url())
        finally:
            await pool.aclose()

    assert _run(main) == b"{}"
    assert box[0].accepted == 2


def test_a_kept_alive_connection_the_server_closed_is_not_used(
    serve: Callable[..., Server],
) -> None:
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(ok(b"%d" % index))  # keep-alive, then closes: an idle timeout

    box.append(serve(handle))

    async def main() -> list[bytes]:
        pool = AsyncPool()
        try:
            first = await _post(pool, box[0].url())
            box[0].wait_closed(1)
            return [first, await _post(pool, box[0].url())]
        finally:
            await pool.aclose()

    assert _run(main) == [b"0", b"1"]
    assert box[0].accepted == 2 and len(box[0].heads) == 2


def test_a_request_is_sent_again_only_if_nothing_of_it_was_taken(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the sync pool's case: the pool does not look at idle connections here, so the
    reset one is taken; its request goes again on a new connection. Once a request's
    bytes went out (the server closed with only a FIN), it is never sent again."""
    monkeypatch.setattr("srt.providers.apool.readable", lambda sock: False)
    box: list[Server] = []
    read = [threading.Event(), threading.Event()]

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(ok(b"%d" % index))
        read[index].wait(10)
        if index == 0:
            reset(conn)

    box.append(serve(handle))

    async def main() -> None:
        pool = AsyncPool()
        try:
            assert await _post(pool, box[0].url()) == b"0"
            read[0].set()
            box[0].wait_closed(1)
            assert await _post(pool, box[0].url()) == b"1"
            assert box[0].accepted == 2 and len(box[0].heads) == 2
            read[1].set()
            box[0].wait_closed(2)
            with pytest.raises((httpx.RemoteProtocolError, httpx.WriteError)):
                await _post(pool, box[0].url())
        finally:
            await pool.aclose()

    _run(main)
    assert box[0].accepted == 2 and len(box[0].heads) == 2


def test_read_and_pool_timeouts(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    answer = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        answer.wait(10)  # then close without a reply

    box.append(serve(handle))
    t = {"connect": 5.0, "read": 0.2, "write": 5.0, "pool": 0.2}

    async def main() -> list[BaseException]:
        pool = AsyncPool(limits=httpx.Limits(max_connections=1))
        try:
            with pytest.raises(httpx.ReadTimeout):
                await _post(pool, box[0].url(), timeouts=t)
            holder = asyncio.create_task(_post(pool, box[0].url(), timeouts={**t, "read": 10.0}))
            deadline = time.monotonic() + 10
            while len(box[0].heads) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # until the other task's request holds the connection
            with pytest.raises(httpx.PoolTimeout):
                await _post(pool, box[0].url(), timeouts=t)
            answer.set()
            return list(await asyncio.gather(holder, return_exceptions=True))
        finally:
            await pool.aclose()

    assert [type(e) for e in _run(main)] == [httpx.RemoteProtocolError]


def test_a_task_waiting_for_a_connection_gets_the_one_given_back(
    serve: Callable[..., Server],
) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b"%d" % n))))

    async def main() -> list[bytes]:
        pool = AsyncPool(limits=httpx.Limits(max_connections=1))
        try:
            return list(await asyncio.gather(*(_post(pool, box[0].url()) for _ in range(4))))
        finally:
            await pool.aclose()

    assert sorted(_run(main)) == [b"0", b"1", b"2", b"3"]
    assert box[0].accepted == 1


def test_a_write_to_a_server_that_does_not_read_times_out(serve: Callable[..., Server]) -> None:
    stop = threading.Event()
    server = serve(lambda conn, reader, index: stop.wait(10))
    t = {"connect": 5.0, "read": 0.2, "write": 0.2, "pool": 5.0}

    async def main() -> None:
        pool = AsyncPool()
        try:
            body = [b"x" * (8 * 1024 * 1024)]
            headers = {"content-length": str(len(body[0]))}
            with pytest.raises(httpx.WriteTimeout):
                await _post(pool, server.url(), content=iter(body), headers=headers, timeouts=t)
        finally:
            await pool.aclose()

    try:
        _run(main)
    finally:
        stop.set()
