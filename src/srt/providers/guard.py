"""Shutting a response's socket from another thread (``transport.Response.abort``, and
the total cap's watchdog) without ever shutting a connection already handed back to its
pool: the body of a response from one of httpx's transports (a caller's client, a
proxy's, HTTP/2-capable https) is wrapped so that its close and the shutdown take one
lock. (srt's own pool does the same under its lock: ``pool.ResponseStream.abort``.)"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import httpx

__all__ = ["Guarded", "socket_of"]


def socket_of(resp: httpx.Response) -> socket.socket | None:
    """The socket a response's body is read from, if its transport tells it."""
    stream = resp.extensions.get("network_stream")
    if stream is None:
        return None
    with contextlib.suppress(Exception):
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            return sock
    return None


class Guarded(httpx.SyncByteStream):
    """The body of a response from one of httpx's transports, whose connection goes back
    to its pool when the body is closed: ``close`` and ``abort`` take one lock, so an
    abort never shuts a connection handed back (another call's by then)."""

    def __init__(self, inner: httpx.SyncByteStream, resp: httpx.Response) -> None:
        self._inner = inner
        self._resp = resp
        self._lock = threading.Lock()
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)  # (no layer per chunk)

    def abort(self) -> None:
        """Shut the socket, if the body is not closed yet (a blocked read returns)."""
        with self._lock:
            if self._closed:
                return
            sock = socket_of(self._resp)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            else:  # pragma: no cover - every httpx sync transport exposes its socket
                with contextlib.suppress(Exception):
                    self._inner.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._inner.close()
