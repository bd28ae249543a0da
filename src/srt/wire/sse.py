"""Server-sent events, decoded incrementally from raw bytes (WHATWG ``text/event-stream``).

Lines may end in CRLF, LF or CR; a chunk may split a line, or a multi-byte UTF-8
character, anywhere. Decoding happens per complete line, on bytes, so a split
character is never seen half-way. Comment lines (``:``) are dropped; an event is
dispatched at a blank line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ProviderResponseError
from ..message import LONE_SURROGATE

__all__ = ["SSEDecoder", "ServerSentEvent", "json_utf8", "sse_event"]

_MAX_LINE = 16 * 1024 * 1024


def json_utf8(text: str) -> bytes:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) as UTF-8, each lone surrogate
    (only a JSON string can hold one) written as its ``\\uXXXX`` escape: the JSON a
    provider sends when a model's reply stops half-way through an emoji."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text).encode("utf-8")


def sse_event(name: str | None, data: Any) -> bytes:
    """One event on the wire: ``event: NAME`` (if named) and ``data: JSON`` (``data`` as
    compact JSON, or as given when it is a str such as ``[DONE]``), then a blank line."""
    text = (
        data
        if isinstance(data, str)
        else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    )
    head = f"event: {name}\n" if name else ""
    return json_utf8(f"{head}data: {text}\n\n")


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.data)
        except ValueError:
            raise ProviderResponseError(
                f"a server-sent {self.event!r} event carried invalid JSON"
            ) from None


class SSEDecoder:
    """Feed bytes, get complete events."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._last_cr = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        buf = self._buf
        if self._last_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._last_cr = False
        buf += chunk
        out: list[ServerSentEvent] = []
        start = 0
        n = len(buf)
        while start < n:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                end, nxt = cr, cr + 1
                if nxt < n and buf[nxt] == 0x0A:
                    nxt += 1
                elif nxt == n:
                    self._last_cr = True
            else:
                end, nxt = lf, lf + 1
            ev = self._line(bytes(buf[start:end]))
            if ev is not None:
                out.append(ev)
            start = nxt
        del buf[:start]
        if len(buf) > _MAX_LINE:
            raise ProviderResponseError("a server-sent event line exceeded 16 MiB")
        return out

    def _line(self, raw: bytes) -> ServerSentEvent | None:
        if not raw:
            if not self._data and not self._event:
                return None
            ev = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return ev
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProviderResponseError("a server-sent event line is not valid UTF-8") from None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self._id = value
        return None

    @property
    def pending(self) -> bool:
        """True when the stream stopped inside an event (which is then not dispatched)."""
        return bool(self._buf or self._data or self._event)
