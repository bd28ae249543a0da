"""The gateway bench's upstream: srt.testing's provider server in a child process.

The server parses every request body and counts its tokens, which at 1,000 turns is tens
of milliseconds of Python per request. In the client's own process it would share the
interpreter (the GIL, and a cyclic collector walking every body it had parsed) with the
client whose wall time is being measured; in a child process it shares neither.

For each request the server records its own time: from the moment its handler is called
(the request line and headers read) to the end of its reply, its reading of the body
included (``upstream``), and the part of that spent reading the body (``read``). It keeps
a light record of each request (endpoint, prompt tokens, tokens read from the cache, the
reply's text) and the last raw body, and nothing else, so its memory stays flat.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..testing import ProviderServer

__all__ = ["Seen", "Upstream"]


@dataclass(frozen=True)
class Seen:
    """One request as the upstream served it."""

    endpoint: str
    path: str
    prompt_tokens: int
    cache_read: int
    reply_text: str
    upstream_s: float  # the server's whole time on the request, reading the body included
    read_s: float  # of which reading the body


class _TimedServer(ProviderServer):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seen: list[Seen] = []
        self.last_body = b""
        self.last_path = ""
        self._seen_lock = threading.Lock()

    def dispatch(self, h: Any, method: str) -> None:
        t0 = time.perf_counter()
        read = h.read_body
        spans = [0.0, 0.0]

        def read_body() -> bytes:
            spans[0] = time.perf_counter()
            raw: bytes = read()
            spans[1] = time.perf_counter()
            self.last_body, self.last_path = raw, h.path
            return raw

        h.read_body = read_body  # this request only: the handler serves its connection's
        try:
            super().dispatch(h, method)
        finally:
            del h.read_body
            elapsed = time.perf_counter() - t0
            with self._lock:
                recs, self.log[:] = list(self.log), []
            with self._seen_lock:
                for rec in recs:
                    self.seen.append(
                        Seen(
                            rec.endpoint,
                            rec.path,
                            int(rec.prompt_tokens or 0),
                            int(rec.cache.read) if rec.cache else 0,
                            rec.reply.text if rec.reply else "",
                            elapsed,
                            spans[1] - spans[0],
                        )
                    )

    def since(self, n: int) -> list[Seen]:
        with self._seen_lock:
            return self.seen[n:]


def _child(conn: Connection, api_key: str) -> None:
    srv = _TimedServer(api_key=api_key)
    conn.send(srv.url)
    try:
        while True:
            op, args = conn.recv()
            if op == "close":
                break
            if op == "count":
                conn.send(len(srv.seen))
            elif op == "since":
                conn.send(srv.since(*args))
            elif op == "last":
                conn.send((srv.last_path, srv.last_body))
            elif op == "fault":
                srv.fault(*args[0], **args[1])
                conn.send(None)
            elif op == "clear":
                srv.clear()
                conn.send(None)
    finally:
        srv.close()


class Upstream:
    """The parent's handle on the child's server."""

    def __init__(self, api_key: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child, api_key), daemon=True)
        self._proc.start()
        self.url: str = self._conn.recv()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return int(self._proc.pid or 0)

    def _call(self, op: str, *args: Any) -> Any:
        with self._lock:
            self._conn.send((op, args))
            return self._conn.recv()

    def count(self) -> int:
        """Requests served so far (their times recorded)."""
        return int(self._call("count"))

    def since(self, n: int) -> list[Seen]:
        return list(self._call("since", n))

    def settle(self, expected: int, timeout: float = 5.0) -> int:
        """Wait until ``expected`` requests in all have been served (a request's time is
        recorded just after its reply is sent, so a fast client can be ahead); the count."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.count()
            if n >= expected or time.monotonic() > deadline:
                return n
            time.sleep(0.0002)

    def last(self) -> tuple[str, bytes]:
        """The path and raw body of the last request."""
        path, body = self._call("last")
        return str(path), bytes(body)

    def fault(self, *args: Any, **kw: Any) -> None:
        self._call("fault", args, kw)

    def clear(self) -> None:
        self._call("clear")

    def close(self) -> None:
        if self._proc.is_alive():
            with self._lock:
                self._conn.send(("close", ()))
            self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()
