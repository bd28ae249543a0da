"""srt's asyncio HTTP/1.1 pool (``srt.providers.apool``) when things go wrong: refused or
slow connections, malformed or cut-short replies, the total cap and the idle timeout,
cancelled tasks, and a second event loop.

The servers are ``pool_support``'s: plain sockets that answer with exactly the
bytes a case needs, so the async pool meets what the sync one meets on the wire. Each
case runs its own event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable

import httpx
import pytest

import srt
from apool_support import _T, _open, _post, _run
from pool_support import (
    Reader,
    Server,
    keepalive,
    ok,
    serve,
)
from srt.providers.apool import AsyncPool
from srt.providers.transport import (
    AsyncTransport,
    HTTPRequest,
    RetryPolicy,
    Timeouts,
)

__all__ = ["serve"]  # the fixture, imported for the cases here


def test_a_refused_connection_is_a_connect_error_and_a_typed_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/v1/x"
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        pool = AsyncPool()
        try:
            with pytest.raises(httpx.ConnectError):
                await _post(pool, url)
        finally:
            await pool.aclose()
        transport = AsyncTransport(retry=RetryPolicy(max_retries=1), sleep=sleep)
        try:
            with pytest.raises(srt.ProviderConnectionError, match="ConnectError"):
                await _open(transport, url)
        finally:
            await transport.aclose()

    _run(main)
    assert len(waits) == 1


def test_a_connection_that_is_not_accepted_in_time_is_a_connect_timeout() -> None:
    """A listener whose queue is full (backlog 0, one connection waiting) lets no other
    connection in: the connect timeout ends the wait, a typed error through srt."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    waiting = socket.create_connection(listener.getsockname())
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/x"

    async def main() -> None:
        pool = AsyncPool()
        try:
            with pytest.raises(httpx.ConnectTimeout):
                await _post(pool, url, timeouts={**_T, "connect": 0.2})
        finally:
            await pool.aclose()
        timeouts = Timeouts(connect=0.2)
        transport = AsyncTransport(timeouts=timeouts, retry=RetryPolicy(max_retries=0))
        try:
            with pytest.raises(srt.ProviderTimeoutError, match="timed out"):
                await _open(transport, url)
        finally:
            await transport.aclose()

    try:
        _run(main)
    finally:
        waiting.close()
        listener.close()


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
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        pool = AsyncPool()
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                await _post(pool, box[0].url())
        finally:
            await pool.aclose()
        # Through srt's AsyncTransport: a typed, retried connection error.
        transport = AsyncTransport(retry=RetryPolicy(max_retries=1), sleep=sleep)
        try:
            with pytest.raises(srt.ProviderConnectionError, match="RemoteProtocolError"):
                await _open(transport, box[0].url())
        finally:
            await transport.aclose()

    _run(main)
    assert len(waits) == 1


def test_a_response_head_that_never_ends_is_a_protocol_error(
    serve: Callable[..., Server],
) -> None:
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

    async def main() -> None:
        pool = AsyncPool()
        try:
            with pytest.raises(httpx.RemoteProtocolError, match="head is longer"):
                await _post(pool, box[0].url())
        finally:
            await pool.aclose()

    try:
        _run(main)
    finally:
        stop.set()


def test_a_body_cut_short_is_an_interrupted_stream(serve: Callable[..., Server]) -> None:
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")

    box.append(serve(handle))

    async def main() -> None:
        transport = AsyncTransport()
        try:
            resp = await transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
            with pytest.raises(srt.StreamInterruptedError, match="RemoteProtocolError"):
                await resp.read()
        finally:
            await transport.aclose()

    _run(main)


def test_the_total_cap_ends_a_stalled_response_and_a_missing_head(
    serve: Callable[..., Server],
) -> None:
    """The deadline ends the pool's waits: on the body (no timer per chunk) and on the
    head (no ``asyncio.wait_for``), each reported as the total cap."""
    box: list[Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        if index == 0:
            conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        stop.wait(10)

    box.append(serve(handle))

    async def main() -> None:
        transport = AsyncTransport(timeouts=Timeouts(idle=30.0, total=0.3))
        try:
            resp = await transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
            # Each ends by the total cap (its message), not by the idle timeout (30 s)
            # nor by the server letting go (its handler waits on ``stop``, set below).
            with pytest.raises(srt.ProviderTimeoutError, match="total time cap while reading"):
                await resp.read()
            with pytest.raises(srt.ProviderTimeoutError, match="total time cap before a reply"):
                await transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
        finally:
            await transport.aclose()

    try:
        _run(main)
    finally:
        stop.set()
    assert box[0].accepted == 2  # the stalled stream's connection was not reused


def test_the_idle_timeout_ends_a_silent_stream(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        stop.wait(10)

    box.append(serve(handle))

    async def main() -> list[bytes]:
        transport = AsyncTransport(timeouts=Timeouts(idle=0.2, total=30.0))
        got: list[bytes] = []
        try:
            resp = await transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
            with pytest.raises(srt.ProviderTimeoutError, match=r"no data for 0\.2 s"):
                async for chunk in resp.aiter_bytes():
                    got.append(chunk)
        finally:
            await transport.aclose()
        return got

    try:
        assert _run(main) == [b"hi"]
    finally:
        stop.set()


def test_a_cancelled_task_closes_its_connection(serve: Callable[..., Server]) -> None:
    """Cancelled while waiting for the head, and while reading the body: each
    connection is closed (the server sees it), its socket left registered on the loop
    for nothing, and the next request goes on a new connection."""
    box: list[Server] = []

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        while box[0].read(reader):
            if index == 1:
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
            elif index > 1:
                conn.sendall(ok(b"fresh"))
                continue
            conn.settimeout(10)
            assert conn.recv(1) == b""  # (0: no reply) until the client closes

    box.append(serve(handle))

    async def main() -> bytes:
        pool = AsyncPool()
        try:
            head = asyncio.create_task(_post(pool, box[0].url()))
            while not box[0].heads:
                await asyncio.sleep(0.01)
            head.cancel()
            with pytest.raises(asyncio.CancelledError):
                await head
            req = httpx.Request("POST", box[0].url(), content=b"{}", extensions={"timeout": _T})
            resp = await pool.handle_async_request(req)
            fd = resp.extensions["network_stream"].get_extra_info("socket").fileno()

            async def body() -> list[bytes]:
                return [c async for c in resp.aiter_raw()]

            reading = asyncio.create_task(body())
            await asyncio.sleep(0.05)  # "hi" read, then waiting for more
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            assert resp.extensions["network_stream"].get_extra_info("socket") is None
            assert not asyncio.get_running_loop().remove_reader(fd)  # nothing left there
            return await _post(pool, box[0].url())
        finally:
            await pool.aclose()

    assert _run(main) == b"fresh"
    box[0].wait_closed(2)  # both cancelled requests' connections, seen closed at once
    assert box[0].accepted == 3


def test_a_task_cancelled_while_its_body_is_written_closes_the_connection(
    serve: Callable[..., Server],
) -> None:
    """The server does not read until the client gives up: the task waits to write, is
    cancelled there, and its connection is closed (the server reads to its end)."""
    go = threading.Event()

    def handle(conn: socket.socket, reader: Reader, index: int) -> None:
        go.wait(10)
        conn.settimeout(30)  # longer than wait_closed waits: a connection left open fails
        with contextlib.suppress(ConnectionResetError):
            while conn.recv(1 << 20):
                pass

    server = serve(handle)

    async def main() -> None:
        pool = AsyncPool()
        try:
            body = [b"x" * (32 * 1024 * 1024)]  # more than the socket buffers take
            headers = {"content-length": str(len(body[0]))}
            task = asyncio.create_task(_post(pool, server.url(), iter(body), headers=headers))
            await asyncio.sleep(0.1)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            go.set()
            await pool.aclose()

    _run(main)
    server.wait_closed(1)


def test_a_second_event_loop_does_not_reuse_the_first_loops_connections(
    serve: Callable[..., Server],
) -> None:
    """A provider's async transport used under ``asyncio.run`` twice: the second loop
    opens a connection of its own (the first one's is closed, not reused)."""
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b"%d" % n))))
    transport = AsyncTransport()
    got = [_run(lambda: _open(transport, box[0].url())) for _ in range(2)]
    got.append(_run(lambda: _open(transport, box[0].url())))
    _run(transport.aclose)
    assert got == [b"0", b"0", b"0"]
    assert box[0].accepted == 3
    box[0].wait_closed(3)
