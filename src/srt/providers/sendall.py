"""httpx's HTTP transport, with connections that hand each write to the socket whole.

httpcore writes a request to a plain socket with ``send`` in a loop, and after a
partial send it slices off what was sent (``buffer = buffer[n:]``), a copy of the rest.
A request body of many megabytes sent as a few large chunks (``_core.Body``) over
plain HTTP, to a local server, a loopback proxy or ``srt.testing``, meets a full
socket buffer and is then copied again and again, in memory that grows with the
body. Here a plain TCP connection writes with ``socket.sendall``, which loops in C
over the same buffer and copies nothing. A TLS connection is left as httpcore has it
(``SSLSocket.send`` takes the whole buffer, encrypting as it goes).

``HTTPTransport`` is ``httpx.HTTPTransport`` with its connection pool on that
backend; ``Transport`` uses it for HTTP/2, and srt's HTTP/1.1 pool (``pool.py``) for
the requests it leaves to httpx (HEAD, ``Expect``, ``Upgrade``).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["HTTPTransport", "SendallBackend"]


class _Stream(httpcore.NetworkStream):
    """A connection whose writes go out with ``sendall`` when it is plain TCP (and are
    told to ``on_write`` with their size, if given)."""

    def __init__(
        self, inner: httpcore.NetworkStream, on_write: Callable[[int], None] | None = None
    ) -> None:
        self._inner = inner
        self._on_write = on_write
        sock = inner.get_extra_info("socket")
        plain = (
            isinstance(sock, socket.socket)
            and not isinstance(sock, ssl.SSLSocket)
            and inner.get_extra_info("ssl_object") is None
        )
        self._sock: socket.socket | None = sock if plain else None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer and self._on_write is not None:
            self._on_write(len(buffer))
        sock = self._sock
        if sock is None or not buffer:
            self._inner.write(buffer, timeout)
            return
        try:
            sock.settimeout(timeout)
            sock.sendall(buffer)
        except TimeoutError as exc:  # socket.timeout
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._on_write)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class SendallBackend(httpcore.NetworkBackend):
    """httpcore's sync backend (or ``inner``), its plain TCP connections writing with
    ``sendall``. ``on_write`` is told the size of every write (the bench counts them)."""

    def __init__(
        self,
        inner: httpcore.NetworkBackend | None = None,
        on_write: Callable[[int], None] | None = None,
    ) -> None:
        self._inner = inner or httpcore.SyncBackend()
        self._on_write = on_write

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream, self._on_write)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _Stream(stream, self._on_write)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class HTTPTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (no proxy) whose connections come from ``network_backend``
    (by default a ``SendallBackend``). Everything else, the exception mapping included,
    is httpx's."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        http2: bool = False,
        limits: httpx.Limits | None = None,
        network_backend: httpcore.NetworkBackend | None = None,
    ) -> None:
        # Every connection a call gives back is kept for the next (httpx keeps 20 of
        # 100): with more threads than that, each extra call opened a new connection.
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=100)
        context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=context, http2=http2, limits=limits)
        # httpx builds its pool without a way to choose the network backend: this one is
        # the same pool, on ``network_backend``.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=network_backend or SendallBackend(),
        )
