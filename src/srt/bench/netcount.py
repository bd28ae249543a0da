"""An httpx transport that counts what reaches the socket, for the ``send`` workload.

It is httpx's own HTTP/1.1 path (an ``httpcore.ConnectionPool`` behind an
``httpx.BaseTransport``), with the pool's network streams wrapped so that every
``write()`` the HTTP layer makes on a socket is counted with its size. h11 hands the
stream one write for the request head and one for each piece of the body it is given,
so the count is how many pieces a body reached the socket in.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator

import httpcore
import httpx

__all__ = ["CountingTransport", "Writes"]


class Writes:
    """Socket writes so far (calls and bytes), shared by every stream of a pool."""

    __slots__ = ("bytes", "calls")

    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, writes: Writes) -> None:
        self._inner = inner
        self._writes = writes

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._writes.calls += 1
            self._writes.bytes += len(buffer)
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._writes)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, writes: Writes) -> None:
        self._inner = httpcore.SyncBackend()
        self._writes = writes

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream, self._writes)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options), self._writes)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _Body(httpx.SyncByteStream):
    def __init__(self, parts: Iterable[bytes]) -> None:
        self._parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts

    def close(self) -> None:
        close = getattr(self._parts, "close", None)
        if close is not None:
            close()


class CountingTransport(httpx.BaseTransport):
    """httpx's default HTTP/1.1 transport, counting socket writes in ``writes``."""

    def __init__(self) -> None:
        self.writes = Writes()
        self._pool = httpcore.ConnectionPool(network_backend=_Backend(self.writes))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        resp = self._pool.handle_request(req)
        stream = typing.cast(Iterable[bytes], resp.stream)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_Body(stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self._pool.close()
