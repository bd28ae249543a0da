"""What the cancel tests share (``test_streams_cancel*``, ``test_astream_cancel*``): an
upstream on 127.0.0.1 that takes a request and never answers, seen from its side."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class Silent:
    """An upstream that accepts connections, reads each request and never answers.

    ``request_in`` is set once a request's head has arrived, ``closed`` once the client
    closed (or shut) a connection that carried one; ``requests`` counts them. Events,
    not clocks: a test waits on them with a generous cap."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.request_in = threading.Event()
        self.closed = threading.Event()
        self.requests = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._hold, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _hold(self, conn: socket.socket) -> None:
        head, counted = b"", False  # (one request a connection: none is ever answered)
        with contextlib.suppress(OSError):
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                head = head if counted else head + data
                if not counted and b"\r\n\r\n" in head:
                    counted = True
                    with self._lock:
                        self.requests += 1
                    self.request_in.set()
        if counted:
            self.closed.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._accepting.join(5.0)
        for t in self._threads:
            t.join(5.0)

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def went(stream: Any) -> bool:
    """A stream's request body went to the socket (``Call.went``: the provider may bill it)."""
    return bool(stream._call.went)  # noqa: SLF001


def response_of(stream: Any) -> Any:
    """The weak reference a stream's call keeps to its response (``Call.response``)."""
    return stream._call.response  # noqa: SLF001


def pooled(transport: Any) -> tuple[int, int]:
    """(connections open, connections idle) in a transport's own pool."""
    pool = transport._pool  # noqa: SLF001
    return pool._open, pool._idle_count  # noqa: SLF001
