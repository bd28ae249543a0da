"""HTTP plumbing of the provider server: the handler, chunked writes and fault execution."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from ..wire.sse import json_utf8

__all__ = ["FAULT_KINDS", "Fault", "Handler", "Server", "StreamBody"]

FAULT_KINDS = frozenset(
    {
        "status",
        "reset_before_headers",
        "reset_after_events",
        "malformed_sse",
        "slow",
        "endless",
        "delay",
        "rewrite",
    }
)
VARIANTS = frozenset(
    {"bad_json", "crlf", "split_utf8", "error_event", "failed", "bad_crc", "truncated"}
)
_FAULT_KW = {
    "status": {
        "code",
        "headers",
        "retry_after",
        "retry_after_date",
        "retry_after_ms",
        "message",
        "body",
        "variant",
    },
    "reset_before_headers": set(),
    "reset_after_events": {"n"},
    "malformed_sse": {"variant", "after", "error_type", "message"},
    "slow": {"interval"},
    "endless": {"interval", "after"},
    "delay": {"seconds"},
    "rewrite": {"old", "new"},  # each event's (the body's) bytes ``old`` as ``new``
}


@dataclass
class Fault:
    """One queued fault: ``kind`` with its options, for the next ``count`` requests (None: all)."""

    kind: str
    count: int | None = 1
    kw: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        unknown = set(self.kw) - _FAULT_KW[self.kind]
        if unknown:
            raise ValueError(f"fault {self.kind!r} takes no {sorted(unknown)}")
        if self.kind == "status" and not isinstance(self.kw.get("code"), int):
            raise ValueError("fault 'status' needs code=<int>")
        if self.kind == "status" and self.kw.get("variant", "content_filter") != "content_filter":
            raise ValueError("fault 'status' takes variant='content_filter' (Azure's) or none")
        if self.kind == "malformed_sse" and self.kw.get("variant") not in VARIANTS:
            raise ValueError(f"malformed_sse needs variant= one of {sorted(VARIANTS)}")
        if self.kind == "reset_after_events" and not isinstance(self.kw.get("n"), int):
            raise ValueError("fault 'reset_after_events' needs n=<int>")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 or None")

    def describe(self) -> str:
        detail = self.kw.get("variant") or self.kw.get("code") or self.kw.get("n")
        return self.kind if detail is None else f"{self.kind}:{detail}"


@dataclass
class StreamBody:
    """An encoded stream and the extra pieces fault modes splice in: ``error`` the
    format's error event (or exception frame), ``broken`` an event of bad JSON, ``failed``
    a terminal failure event (Responses' ``response.failed``), ``bad_crc`` a frame whose
    CRC does not match (the last two only where the format has them)."""

    content_type: str
    events: list[bytes]
    keepalive: bytes
    error: bytes
    broken: bytes
    bad_crc: bytes | None = None
    failed: bytes | None = None


class App(Protocol):
    stopping: threading.Event

    def dispatch(self, handler: Handler, method: str) -> None: ...

    def stream_opened(self) -> None: ...

    def stream_closed(self) -> None: ...

    def record_error(self, text: str) -> None: ...


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a real server's accept backlog (socketserver's is 5)

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self.conns: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.lock = threading.Lock()
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = traceback.format_exc()
        if "ConnectionResetError" in exc or "BrokenPipeError" in exc or "TimeoutError" in exc:
            return
        self.app.record_error(exc)


class ClientGone(Exception):
    """The client closed the connection, or the server is stopping."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300
    disable_nagle_algorithm = True  # else each reply waits ~40 ms for a delayed ACK
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.conns.add(self.connection)
            self.server.threads.add(threading.current_thread())

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.server.lock:
                self.server.conns.discard(self.connection)
                self.server.threads.discard(threading.current_thread())

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.server.app.dispatch(self, "POST")

    def do_GET(self) -> None:
        self.server.app.dispatch(self, "GET")

    # -- reading -------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    # -- writing -------------------------------------------------------------------------

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def send_body(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.head(status, {**headers, "Content-Length": str(len(body))})
        self.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: dict[str, str]) -> None:
        body = json_utf8(json.dumps(obj, ensure_ascii=False))
        self.send_body(status, body, {"Content-Type": "application/json", **headers})

    def chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError as exc:
            raise ClientGone from exc

    def end_chunks(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:
            raise ClientGone from exc

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), without a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            linger = struct.pack("ii", 1, 0)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        # The buffered reader holds a reference to the socket: close it too, so the close
        # is real (the writer does not; it must stay open for the final flush()).
        with contextlib.suppress(OSError):
            self.rfile.close()
        self.connection.close()

    def wait(self, seconds: float) -> None:
        """Sleep, but raise ``ClientGone`` as soon as the client leaves or the server stops."""
        deadline = time.monotonic() + seconds
        stopping = self.server.app.stopping
        while True:
            if stopping.is_set():
                raise ClientGone
            left = deadline - time.monotonic()
            if left <= 0:
                return
            step = min(0.05, left)
            try:
                readable, _, _ = select.select([self.connection], [], [], step)
                if readable:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        raise ClientGone
                    time.sleep(step)
            except (OSError, ValueError) as exc:
                raise ClientGone from exc

    # -- fault execution ----------------------------------------------------------------

    def send_stream(self, body: StreamBody, fault: Fault | None, headers: dict[str, str]) -> None:
        app = self.server.app
        kind = fault.kind if fault else None
        kw = fault.kw if fault else {}
        events = list(body.events)
        variant = kw.get("variant") if kind == "malformed_sse" else None
        after = int(kw.get("after", 1))
        if kind == "rewrite":
            events = [_rewrite(e, kw) for e in events]
        if variant == "crlf":
            events = [e.replace(b"\n", b"\r\n") for e in events]
        elif variant == "bad_json":
            events.insert(min(after, len(events)), body.broken)
        elif variant == "bad_crc" and body.bad_crc is not None:
            events.insert(min(after, len(events)), body.bad_crc)
        elif variant == "error_event":
            events = [*events[:after], body.error]
        elif variant == "failed" and body.failed is not None:
            events = [*events[:after], body.failed]
        elif variant == "truncated":  # the body ends half-way through an event (or frame)
            whole = events[min(after, len(events) - 1)]
            events = [*events[:after], whole[: len(whole) // 2]]
        app.stream_opened()
        try:
            self.head(
                200, {"Content-Type": body.content_type, "Transfer-Encoding": "chunked", **headers}
            )
            if kind == "slow":
                interval = float(kw.get("interval", 30.0))
                for byte in b"".join(events):
                    self.chunk(bytes([byte]))
                    self.wait(interval)
            elif kind == "endless":
                interval = float(kw.get("interval", 0.5))
                for e in events[: int(kw.get("after", 1))]:
                    self.chunk(e)
                while True:
                    self.wait(interval)
                    self.chunk(body.keepalive)
            elif kind == "reset_after_events":
                for e in events[: int(kw["n"])]:
                    self.chunk(e)
                self.wait(0.05)
                self.reset()
                return
            else:
                for e in events:
                    if app.stopping.is_set():
                        raise ClientGone
                    if variant == "split_utf8" and _split_at(e) is not None:
                        cut = _split_at(e)
                        self.chunk(e[:cut])
                        self.wait(0.02)
                        self.chunk(e[cut:])
                    else:
                        self.chunk(e)
            self.end_chunks()
        except (ClientGone, OSError):
            self.close_connection = True
        finally:
            app.stream_closed()

    def send_plain(
        self, status: int, data: bytes, fault: Fault | None, headers: dict[str, str]
    ) -> None:
        """A non-stream reply, with the stream fault modes mapped onto its body."""
        kind = fault.kind if fault else None
        kw = fault.kw if fault else {}
        variant = kw.get("variant") if kind == "malformed_sse" else None
        if variant in ("bad_json", "truncated"):
            data = data[: len(data) // 2]
        if kind == "rewrite":
            data = _rewrite(data, kw)
        headers = {"Content-Type": "application/json", **headers}
        try:
            if kind == "endless":
                self.head(status, {**headers, "Transfer-Encoding": "chunked"})
                while True:
                    self.wait(float(kw.get("interval", 0.5)))
                    self.chunk(b" ")
            self.head(status, {**headers, "Content-Length": str(len(data))})
            write: Callable[[bytes], Any] = self.wfile.write
            if kind == "reset_after_events":
                if kw["n"] > 0:
                    write(data[: len(data) // 2])
                self.wait(0.05)
                self.reset()
            elif kind == "slow":
                for byte in data:
                    write(bytes([byte]))
                    self.wait(float(kw.get("interval", 30.0)))
            elif variant == "split_utf8" and _split_at(data) is not None:
                cut = _split_at(data)
                write(data[:cut])
                self.wait(0.02)
                write(data[cut:])
            else:
                write(data)
        except (ClientGone, OSError):
            self.close_connection = True


#: The first multi-byte character of the text the server adds to a ``split_utf8`` reply:
#: the split falls inside it, wherever it is (in an event-stream frame the first byte of
#: 0xC0 or more is more likely a length or a CRC than a character).
SPLIT_CHAR = "ü".encode()


def _rewrite(data: bytes, kw: dict[str, Any]) -> bytes:
    """``data`` with the fault's ``old`` text as its ``new`` (an upstream sending what
    srt.testing's encoders never write: ``NaN`` where a number goes, say)."""
    return data.replace(str(kw["old"]).encode(), str(kw["new"]).encode())


def _split_at(data: bytes) -> int | None:
    """An offset inside ``SPLIT_CHAR`` in ``data``, else inside its first multi-byte UTF-8
    character, if any."""
    at = data.find(SPLIT_CHAR)
    if at >= 0:
        return at + 1
    for i, b in enumerate(data):
        if b >= 0xC0:
            return i + 1
    return None
