"""AWS event-stream framing (``application/vnd.amazon.eventstream``), decoded incrementally.

Bedrock's ConverseStream answers with a sequence of binary frames::

    total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32

all big-endian; ``prelude_crc`` is the CRC32 of the first 8 bytes and
``message_crc`` the CRC32 of everything before it. A header is ``name_len u8,
name (UTF-8), type u8, value``; the ten value types are decoded as botocore
decodes them: 0/1 ``True``/``False``, 2/3/4/5 signed 8/16/32/64-bit ``int``,
6 ``bytes`` (u16 length), 7 ``str`` (u16 length, UTF-8), 8 timestamp as ``int``
milliseconds, 9 UUID as 16 raw ``bytes``.

Bytes may arrive split anywhere. Every malformed frame raises
``ProviderResponseError`` (a CRC mismatch, a length out of bounds, a bad header);
a stream that ends inside a frame raises ``StreamInterruptedError`` from
``close()``. Nothing else escapes for bad input.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ProviderResponseError, StreamInterruptedError

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_HEADERS_BYTES",
    "MAX_PAYLOAD_BYTES",
    "Event",
    "EventStreamDecoder",
    "encode_frame",
]

MAX_HEADERS_BYTES = 128 * 1024
"""The largest ``headers_length`` accepted (botocore's limit)."""
MAX_PAYLOAD_BYTES = 24 * 1024 * 1024
"""The largest payload accepted (botocore's limit): ``total_length - headers_length - 16``."""
MAX_FRAME_BYTES = 16 + MAX_HEADERS_BYTES + MAX_PAYLOAD_BYTES
"""The largest ``total_length`` any frame within both limits can have. A prelude over a
limit is rejected from its 12 bytes, never buffered."""

_PRELUDE = struct.Struct(">III")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_MIN_FRAME = 16  # prelude (12) + message CRC (4)
# Fixed-size header values: type -> decoder (types 0, 1, 6, 7 are handled apart).
_FIXED = {
    2: struct.Struct(">b"),
    3: struct.Struct(">h"),
    4: _I32,
    5: struct.Struct(">q"),
    8: struct.Struct(">q"),
}
_UUID = 9


def _bad(message: str) -> ProviderResponseError:
    return ProviderResponseError(f"event-stream {message}")


@dataclass(frozen=True)
class Event:
    """One decoded frame: its headers (name -> value) and its raw payload."""

    headers: dict[str, object]
    payload: bytes

    def _text(self, name: str) -> str | None:
        value = self.headers.get(name)
        if value is None or isinstance(value, str):
            return value
        raise _bad(f"header {name} is not a string")

    @property
    def event_type(self) -> str | None:
        """``:event-type``, e.g. ``"contentBlockDelta"``; ``None`` when absent."""
        return self._text(":event-type")

    @property
    def message_type(self) -> str:
        """``:message-type``: ``"event"`` (the default), ``"exception"`` or ``"error"``."""
        value = self._text(":message-type")
        return "event" if value is None else value

    @property
    def exception_type(self) -> str | None:
        """``:exception-type``, e.g. ``"throttlingException"``; ``None`` when absent."""
        return self._text(":exception-type")

    def json(self) -> Any:
        """The payload parsed as JSON; ``ProviderResponseError`` if it is not JSON."""
        try:
            return json.loads(self.payload)
        except (ValueError, RecursionError):
            kind = self.headers.get(":event-type")
            raise _bad(f"payload of a {kind!r} frame is not valid JSON") from None


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(f"{what} is not valid UTF-8") from None


def _parse_headers(data: bytes) -> dict[str, object]:
    headers: dict[str, object] = {}
    pos, end = 0, len(data)
    while pos < end:
        name_end = pos + 1 + data[pos]
        if name_end >= end:  # the name and its type byte must both fit
            raise _bad("headers truncated")
        name = _utf8(data[pos + 1 : name_end], "header name")
        kind = data[name_end]
        pos = name_end + 1
        value: object
        if kind in (0, 1):
            value = kind == 0
        elif kind in _FIXED:
            fmt = _FIXED[kind]
            if pos + fmt.size > end:
                raise _bad("headers truncated")
            (value,) = fmt.unpack_from(data, pos)
            pos += fmt.size
        elif kind in (6, 7):
            if pos + 2 > end:
                raise _bad("headers truncated")
            size = _U16.unpack_from(data, pos)[0]
            if pos + 2 + size > end:
                raise _bad("headers truncated")
            raw = data[pos + 2 : pos + 2 + size]
            value = raw if kind == 6 else _utf8(raw, f"value of header {name!r}")
            pos += 2 + size
        elif kind == _UUID:
            if pos + 16 > end:
                raise _bad("headers truncated")
            value = data[pos : pos + 16]
            pos += 16
        else:
            raise _bad(f"header {name!r} has unknown value type {kind}")
        if name in headers:
            raise _bad(f"header {name!r} is repeated")
        headers[name] = value
    return headers


class EventStreamDecoder:
    """Feed bytes as they arrive, get complete events back.

    Bytes are appended to one buffer and consumed through an offset; the consumed
    front is dropped once it is at least half the buffer, so decoding stays linear
    however the stream is chunked. A frame's prelude is checked as soon as its
    first 12 bytes are in, so a bad length is reported at once, never waited for.

    When a chunk holds good frames followed by a bad one, ``feed`` returns the good
    ones and the next ``feed`` (or ``close``) raises the error.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._total: int | None = None  # total_length of the frame at _pos, once checked

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as events (an unfinished frame)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Append ``data``; return every event it completes, in stream order."""
        self._buf += data
        events: list[Event] = []
        try:
            while (event := self._next()) is not None:
                events.append(event)
        except ProviderResponseError:
            if not events:
                raise
            # Deliver the good frames; the bad one stays at _pos and raises next time.
        if self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        return events

    def close(self) -> None:
        """End of stream: raise if a bad frame or part of a frame is left."""
        self.feed(b"")
        if self.buffered:
            raise StreamInterruptedError(
                f"event-stream truncated: the stream ended {self.buffered} bytes into a frame"
            )

    def _next(self) -> Event | None:
        buf, start = self._buf, self._pos
        avail = len(buf) - start
        total = self._total
        if total is None:
            if avail < 12:
                return None
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf, start)
            if zlib.crc32(buf[start : start + 8]) != prelude_crc:
                raise _bad("prelude CRC mismatch")
            if total < _MIN_FRAME:
                raise _bad(f"frame length {total} is below the minimum of {_MIN_FRAME}")
            if total > MAX_FRAME_BYTES:
                raise _bad(f"frame length {total} exceeds the maximum of {MAX_FRAME_BYTES}")
            if headers_len > total - _MIN_FRAME:
                raise _bad(f"headers length {headers_len} does not fit a frame of {total}")
            if headers_len > MAX_HEADERS_BYTES:
                raise _bad(
                    f"headers length {headers_len} exceeds the maximum of {MAX_HEADERS_BYTES}"
                )
            if total - _MIN_FRAME - headers_len > MAX_PAYLOAD_BYTES:
                raise _bad(
                    f"payload length {total - _MIN_FRAME - headers_len} exceeds the maximum "
                    f"of {MAX_PAYLOAD_BYTES}"
                )
            self._total = total
        if avail < total:
            return None
        end = start + total
        with memoryview(buf) as view:
            message_crc = _U32.unpack_from(view, end - 4)[0]
            if zlib.crc32(view[start : end - 4]) != message_crc:
                raise _bad("message CRC mismatch")
            headers_end = start + 12 + _U32.unpack_from(view, start + 4)[0]
            raw_headers = bytes(view[start + 12 : headers_end])
            payload = bytes(view[headers_end : end - 4])
        headers = _parse_headers(raw_headers)
        self._pos = end
        self._total = None
        return Event(headers, payload)


def encode_frame(headers: Mapping[str, str | bytes | bool | int], payload: bytes) -> bytes:
    """One frame: ``str`` headers as type 7, ``bytes`` 6, ``bool`` 0/1, ``int`` 4 (int32).

    For tests and the local test server; raises ``ValueError`` for what the
    format cannot hold (a name over 255 bytes, a value over 65535, an int
    outside int32, headers over ``MAX_HEADERS_BYTES``, a payload over
    ``MAX_PAYLOAD_BYTES``).
    """
    parts: list[bytes] = []
    for name, value in headers.items():
        raw_name = name.encode("utf-8")
        if len(raw_name) > 255:
            raise ValueError("an event-stream header name is at most 255 bytes")
        parts += (bytes((len(raw_name),)), raw_name)
        if isinstance(value, bool):
            parts.append(b"\x00" if value else b"\x01")
        elif isinstance(value, int):
            if not -(2**31) <= value < 2**31:
                raise ValueError("an event-stream integer header must fit in int32")
            parts += (b"\x04", _I32.pack(value))
        else:
            raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            if len(raw) > 0xFFFF:
                raise ValueError("an event-stream header value is at most 65535 bytes")
            parts += (b"\x07" if isinstance(value, str) else b"\x06", _U16.pack(len(raw)), raw)
    raw_headers = b"".join(parts)
    if len(raw_headers) > MAX_HEADERS_BYTES:
        raise ValueError(f"an event-stream frame's headers are at most {MAX_HEADERS_BYTES} bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"an event-stream payload is at most {MAX_PAYLOAD_BYTES} bytes")
    total = _MIN_FRAME + len(raw_headers) + len(payload)
    lengths = struct.pack(">II", total, len(raw_headers))
    frame = b"".join((lengths, _U32.pack(zlib.crc32(lengths)), raw_headers, payload))
    return frame + _U32.pack(zlib.crc32(frame))
