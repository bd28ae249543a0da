"""srt's asyncio HTTP/1.1 pool (``srt.providers.apool``) against real servers on 127.0.0.1.

The servers are ``test_transport_pool``'s: plain sockets that answer with exactly the
bytes a case needs, so the async pool meets what the sync one meets on the wire. Each
case runs its own event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest
import trustme

import srt
from srt._core import Body
from srt.providers.apool import AsyncPool, AsyncResponseStream
from srt.providers.http1 import Target
from srt.providers.transport import (
    AsyncTransport,
    HTTPRequest,
    RetryPolicy,
    Timeouts,
    Transport,
)
from test_transport_pool import (
    _alpn_server,
    _keepalive,
    _OffersH2,
    _ok,
    _Reader,
    _reset,
    _Server,
    serve,
)

__all__ = ["serve"]  # the fixture, imported for the cases here

_T = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def _run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(main())


async def _post(pool: httpx.AsyncBaseTransport, url: str, content: Any = b"{}", **kw: Any) -> bytes:
    timeouts = kw.pop("timeouts", _T)
    req = httpx.Request("POST", url, content=content, extensions={"timeout": timeouts}, **kw)
    resp = await pool.handle_async_request(req)
    try:
        return await resp.aread()
    finally:
        await resp.aclose()


async def _open(transport: AsyncTransport, url: str, body: bytes | Body = b"{}") -> bytes:
    resp = await transport.open(HTTPRequest("POST", url, {}, body))
    return await resp.read()


def test_kept_alive_connections_are_reused(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b'{"n":%d}' % n))))

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
    serve: Callable[..., _Server],
) -> None:
    replies = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        _ok(b"fghij"),
        b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"after an interim response"),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 99\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the close",
    ]
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        for reply in replies if index == 0 else [_ok(b"")]:
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
    serve: Callable[..., _Server],
) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok())))
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
    serve: Callable[..., _Server],
) -> None:
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(_ok(b"%d" % index))  # keep-alive, then closes: an idle timeout

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
    serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the sync pool's case: the pool does not look at idle connections here, so the
    reset one is taken; its request goes again on a new connection. Once a request's
    bytes went out (the server closed with only a FIN), it is never sent again."""
    monkeypatch.setattr("srt.providers.apool.readable", lambda sock: False)
    box: list[_Server] = []
    read = [threading.Event(), threading.Event()]

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        conn.sendall(_ok(b"%d" % index))
        read[index].wait(10)
        if index == 0:
            _reset(conn)

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


def test_read_and_pool_timeouts(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    answer = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
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
    serve: Callable[..., _Server],
) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b"%d" % n))))

    async def main() -> list[bytes]:
        pool = AsyncPool(limits=httpx.Limits(max_connections=1))
        try:
            return list(await asyncio.gather(*(_post(pool, box[0].url()) for _ in range(4))))
        finally:
            await pool.aclose()

    assert sorted(_run(main)) == [b"0", b"1", b"2", b"3"]
    assert box[0].accepted == 1


def test_a_write_to_a_server_that_does_not_read_times_out(serve: Callable[..., _Server]) -> None:
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
    serve: Callable[..., _Server], reply: bytes
) -> None:
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
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
    serve: Callable[..., _Server],
) -> None:
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


def test_a_body_cut_short_is_an_interrupted_stream(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
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
    serve: Callable[..., _Server],
) -> None:
    """The deadline ends the pool's waits: on the body (no timer per chunk) and on the
    head (no ``asyncio.wait_for``), each reported as the total cap."""
    box: list[_Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        box[0].read(reader)
        if index == 0:
            conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        stop.wait(10)

    box.append(serve(handle))

    async def main() -> None:
        transport = AsyncTransport(timeouts=Timeouts(idle=30.0, total=0.3))
        try:
            resp = await transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
            started = time.monotonic()
            with pytest.raises(srt.ProviderTimeoutError, match="total time cap while reading"):
                await resp.read()
            assert time.monotonic() - started < 5
            started = time.monotonic()
            with pytest.raises(srt.ProviderTimeoutError, match="total time cap before a reply"):
                await transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}"))
            assert time.monotonic() - started < 5
        finally:
            await transport.aclose()

    try:
        _run(main)
    finally:
        stop.set()
    assert box[0].accepted == 2  # the stalled stream's connection was not reused


def test_the_idle_timeout_ends_a_silent_stream(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    stop = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
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


def test_a_cancelled_task_closes_its_connection(serve: Callable[..., _Server]) -> None:
    """Cancelled while waiting for the head, and while reading the body: each
    connection is closed (the server sees it), its socket left registered on the loop
    for nothing, and the next request goes on a new connection."""
    box: list[_Server] = []

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
        while box[0].read(reader):
            if index == 1:
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
            elif index > 1:
                conn.sendall(_ok(b"fresh"))
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
    serve: Callable[..., _Server],
) -> None:
    """The server does not read until the client gives up: the task waits to write, is
    cancelled there, and its connection is closed (the server reads to its end)."""
    go = threading.Event()

    def handle(conn: socket.socket, reader: _Reader, index: int) -> None:
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
    serve: Callable[..., _Server],
) -> None:
    """A provider's async transport used under ``asyncio.run`` twice: the second loop
    opens a connection of its own (the first one's is closed, not reused)."""
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b"%d" % n))))
    transport = AsyncTransport()
    got = [_run(lambda: _open(transport, box[0].url())) for _ in range(2)]
    got.append(_run(lambda: _open(transport, box[0].url())))
    _run(transport.aclose)
    assert got == [b"0", b"0", b"0"]
    assert box[0].accepted == 3
    box[0].wait_closed(3)


def test_what_the_pool_does_not_speak_goes_through_httpx(serve: Callable[..., _Server]) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b"" if n == 0 else b"x"))))

    async def main() -> None:
        pool = AsyncPool()
        try:
            req = httpx.Request("HEAD", box[0].url(), extensions={"timeout": _T})
            head = await pool.handle_async_request(req)
            assert head.status_code == 200 and await head.aread() == b""
            await head.aclose()
            assert await _post(pool, box[0].url(), headers={"expect": "100-continue"}) == b"x"
            with pytest.raises(httpx.LocalProtocolError, match="line break"):
                await _post(pool, box[0].url(), headers={"x-a": "1\r\nx-injected: 1"})
        finally:
            await pool.aclose()

    _run(main)
    assert [h.split(b" ")[0] for h in box[0].heads] == [b"HEAD", b"POST"]


def _tls_server(serve: Callable[..., _Server], body: bytes) -> tuple[trustme.CA, _Server, list]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(body)), tls=server_context))
    return ca, box[0], names


def test_tls_with_sni_and_the_verify_setting(serve: Callable[..., _Server]) -> None:
    ca, server, names = _tls_server(serve, b"secure")
    url = server.url(host="localhost")
    big = Body([b"{", b"x" * (2 * 1024 * 1024), b"}"])  # more than one TLS write takes

    async def main(ca_file: str) -> None:
        pool = AsyncPool(verify=ssl.create_default_context(cafile=ca_file))
        try:
            assert [await _post(pool, url) for _ in range(3)] == [b"secure"] * 3
        finally:
            await pool.aclose()
        assert server.accepted == 1 and names == ["localhost"]
        pool = AsyncPool()
        try:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
                await _post(pool, url)  # the system's CAs do not know this one
        finally:
            await pool.aclose()
        transport = AsyncTransport(verify=ca_file, http2=False)
        try:
            assert await _open(transport, url, big) == b"secure"
        finally:
            await transport.aclose()

    with ca.cert_pem.tempfile() as ca_file:
        asyncio.run(main(ca_file))
    assert server.bodies[-1] == b"{" + b"x" * (2 * 1024 * 1024) + b"}"


def test_a_shared_tls_context_offers_http1_on_every_connection_or_is_refused(
    serve: Callable[..., _Server],
) -> None:
    """As the sync pool's test of the same name: HTTP/1.1 offered at each connection,
    and h2 chosen all the same is a connection error with nothing sent."""
    ca, server, chosen = _alpn_server(serve)
    url = server.url(host="localhost")

    async def main(ca_file: str) -> None:
        shared = ssl.create_default_context(cafile=ca_file)
        pool = AsyncPool(verify=shared)
        try:
            assert await _post(pool, url) == b"secure"
            shared.set_alpn_protocols(["h2", "http/1.1"])
            assert await _post(pool, url) == b"secure"
        finally:
            await pool.aclose()
        stubborn = _OffersH2(ssl.PROTOCOL_TLS_CLIENT)
        stubborn.load_verify_locations(cafile=ca_file)
        pool = AsyncPool(verify=stubborn)
        try:
            with pytest.raises(httpx.ConnectError, match="'h2'"):
                await _post(pool, url)
        finally:
            await pool.aclose()

    with ca.cert_pem.tempfile() as ca_file:
        asyncio.run(main(ca_file))
    server.wait_closed(3)
    assert chosen == ["http/1.1", "http/1.1", "h2"] and len(server.heads) == 2


def test_with_a_tls_transport_https_goes_through_it_and_http_stays_on_the_pool(
    serve: Callable[..., _Server],
) -> None:
    """``AsyncPool(tls=...)``, as ``AsyncTransport`` makes it when HTTP/2 is on."""
    ca, secure, _ = _tls_server(serve, b"secure")
    plain: list[_Server] = []
    plain.append(serve(_keepalive(plain, lambda n: _ok(b"plain"))))
    urls: list[str] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            urls.append(str(request.url))
            return await super().handle_async_request(request)

    url = secure.url(host="localhost")

    async def main(ca_file: str) -> None:
        pool = AsyncPool(tls=Recording(verify=ssl.create_default_context(cafile=ca_file)))
        try:
            for where, expected in ((url, b"secure"), (plain[0].url(), b"plain")):
                target = Target.of(httpx.URL(where))
                assert target is not None
                head = [(b"Host", target.host), (b"Content-Length", b"2")]
                resp = await pool.send("POST", target, head, b"{}", _T)
                assert await resp.aread() == expected
                own = isinstance(resp.stream, AsyncResponseStream)
                assert own == (expected == b"plain")
                if not own:  # httpx's response, told of its request
                    assert resp.request.url == where
                await resp.aclose()
        finally:
            await pool.aclose()

    with ca.cert_pem.tempfile() as ca_file:
        asyncio.run(main(ca_file))
    assert urls == [url]


def test_an_encoded_reply_is_decoded_and_a_plain_one_read_as_it_came(
    serve: Callable[..., _Server],
) -> None:
    packed = gzip.compress(b'{"packed": true}')
    replies = [_ok(packed, b"content-encoding: gzip\r\n"), _ok(b'{"plain": true}')]
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: replies[n])))

    async def main() -> list[bytes]:
        transport = AsyncTransport()
        try:
            return [await _open(transport, box[0].url()) for _ in replies]
        finally:
            await transport.aclose()

    assert _run(main) == [b'{"packed": true}', b'{"plain": true}']
    assert b"gzip" in box[0].heads[0].lower() and box[0].accepted == 1


def test_cookies_a_server_sets_go_back_with_the_next_request(
    serve: Callable[..., _Server],
) -> None:
    replies = [_ok(b"1", b"set-cookie: sid=abc; Path=/\r\n"), _ok(b"2")]
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: replies[n])))

    async def main() -> list[bytes]:
        transport = AsyncTransport()
        try:
            return [await _open(transport, box[0].url()) for _ in replies]
        finally:
            await transport.aclose()

    assert _run(main) == [b"1", b"2"]
    assert b"cookie: sid=abc" not in box[0].heads[0].lower()
    assert b"cookie: sid=abc" in box[0].heads[1].lower()


def test_an_error_of_the_body_iterator_is_not_a_write_error(
    serve: Callable[..., _Server],
) -> None:
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok())))

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 20000
        raise PermissionError("the caller's own failure")

    async def main() -> bytes:
        pool = AsyncPool()
        try:
            with pytest.raises(PermissionError, match="caller's own"):
                await _post(pool, box[0].url(), content=body(), headers={"content-length": "40000"})
            return await _post(pool, box[0].url())
        finally:
            await pool.aclose()

    assert _run(main) == b"{}"
    assert box[0].accepted == 2


def test_a_url_no_proxy_exempts_goes_to_the_pool_and_another_through_the_proxy(
    serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``HTTP_PROXY`` set (to a port where nothing listens) and ``NO_PROXY`` naming
    127.0.0.1, a request there goes straight to the pool; one to ``localhost`` goes
    through the proxy, and fails naming it."""
    box: list[_Server] = []
    box.append(serve(_keepalive(box, lambda n: _ok(b"direct"))))
    listener = socket.create_server(("127.0.0.1", 0))
    dead = listener.getsockname()[1]
    listener.close()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    async def main() -> None:
        transport = AsyncTransport(retry=RetryPolicy(max_retries=0))
        try:
            assert await _open(transport, box[0].url()) == b"direct"
            with pytest.raises(srt.ProviderConnectionError, match="through the proxy"):
                await _open(transport, box[0].url(host="localhost"))
        finally:
            await transport.aclose()

    _run(main)
    assert box[0].accepted == 1 and len(box[0].heads) == 1


def test_tls_contexts_are_made_on_the_first_https_request_and_follow_trust_env(
    serve: Callable[..., _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither transport loads a CA bundle before its first https request (an app that
    only talks to a local server never does), and ``trust_env=False`` leaves
    ``SSL_CERT_FILE`` alone on both, as httpx does."""
    made: list[bool] = []
    create = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(kwargs.get("trust_env", True))
        return create(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    ca, secure, _ = _tls_server(serve, b"secure")
    plain: list[_Server] = []
    plain.append(serve(_keepalive(plain, lambda n: _ok(b"plain"))))
    url = secure.url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)

        async def main(trust_env: bool) -> bytes:
            transport = AsyncTransport(http2=False, trust_env=trust_env)
            before = len(made)
            try:
                assert await _open(transport, plain[0].url()) == b"plain"
                assert len(made) == before
                return await _open(transport, url)
            finally:
                await transport.aclose()

        assert asyncio.run(main(True)) == b"secure"  # the CA came from SSL_CERT_FILE
        assert made == [True]
        with pytest.raises(srt.ProviderConnectionError, match="CERTIFICATE"):
            asyncio.run(main(False))
        assert made == [True, False]
        made.clear()
        sync = Transport(http2=False, trust_env=False)
        try:
            assert sync.open(HTTPRequest("POST", plain[0].url(), {}, b"{}")).read() == b"plain"
            assert made == []
            with pytest.raises(srt.ProviderConnectionError, match="CERTIFICATE"):
                sync.open(HTTPRequest("POST", url, {}, b"{}"))
            assert made == [False]
        finally:
            sync.close()
