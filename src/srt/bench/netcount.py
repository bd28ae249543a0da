"""An httpx transport that counts what reaches the socket, for the ``send`` workload.

It is the transport srt's providers use by default (``srt.providers.sendall``: httpx's
own HTTP/1.1 path, writing with ``sendall``), with its network streams wrapped so that
every ``write()`` the HTTP layer makes on a socket is counted with its size. h11 hands the
stream one write for the request head and one for each piece of the body it is given,
so the count is how many pieces a body reached the socket in.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable

import httpcore

from ..providers.sendall import HTTPTransport, SendallBackend

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
        self._inner = SendallBackend()
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


class CountingTransport(HTTPTransport):
    """srt's default HTTP/1.1 transport (``srt.providers.sendall``), counting socket
    writes in ``writes``."""

    def __init__(self) -> None:
        self.writes = Writes()
        super().__init__(network_backend=_Backend(self.writes))
