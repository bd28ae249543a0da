"""``srt.wire.eventstream``: round trips, botocore as the oracle, and hostile bytes.

botocore has a decoder (``EventStreamBuffer``) but no encoder, so the cross-checks
run our frames and hand-built frames (all ten header types) through both decoders.
Every malformed input must end in ``ProviderResponseError`` (or, for a stream cut
inside a frame, ``StreamInterruptedError`` from ``close()``), never anything else.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from srt.errors import ProviderResponseError, StreamInterruptedError
from srt.wire.eventstream import (
    MAX_FRAME_BYTES,
    MAX_HEADERS_BYTES,
    MAX_PAYLOAD_BYTES,
    Event,
    EventStreamDecoder,
    encode_frame,
)

# -- helpers -----------------------------------------------------------------------


def raw_header(name: str | bytes, kind: int, value: bytes = b"") -> bytes:
    """One header, byte by byte: any type code, any value bytes (valid or not)."""
    raw = name.encode() if isinstance(name, str) else name
    return bytes([len(raw)]) + raw + bytes([kind]) + value


def frame_from_raw(raw_headers: bytes, payload: bytes) -> bytes:
    """A frame with correct lengths and CRCs around arbitrary header bytes."""
    lengths = struct.pack(">II", 16 + len(raw_headers) + len(payload), len(raw_headers))
    body = lengths + struct.pack(">I", zlib.crc32(lengths)) + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def prelude(total: int, headers_len: int) -> bytes:
    lengths = struct.pack(">II", total, headers_len)
    return lengths + struct.pack(">I", zlib.crc32(lengths))


def typed(headers: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Headers with value types spelled out, since ``True == 1`` for dict equality."""
    return sorted((k, type(v).__name__, v) for k, v in headers.items())


def split(data: bytes, draw: st.DataObject) -> list[bytes]:
    mode = draw.draw(st.sampled_from(["whole", "bytes", "cuts"]), label="split")
    if mode == "whole":
        return [data]
    if mode == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=12), label="cuts")
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def decode(chunks: list[bytes]) -> list[Event]:
    dec = EventStreamDecoder()
    events = [ev for chunk in chunks for ev in dec.feed(chunk)]
    dec.close()
    return events


def botocore_decode(chunks: list[bytes]) -> list[tuple[dict[str, Any], bytes]]:
    buf = EventStreamBuffer()
    out = []
    for chunk in chunks:
        buf.add_data(chunk)
        out += [(m.headers, m.payload) for m in buf]
    return out


# -- strategies --------------------------------------------------------------------

names = st.text(max_size=20)
values = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
)
header_dicts = st.dictionaries(names, values, max_size=6)
frames = st.tuples(header_dicts, st.binary(max_size=300))
frame_lists = st.lists(frames, min_size=1, max_size=4)


def _fixed(kind: int, fmt: str, lo: int, hi: int) -> st.SearchStrategy[tuple[int, bytes, Any]]:
    return st.integers(lo, hi).map(lambda v: (kind, struct.pack(fmt, v), v))


def _sized(kind: int, raw: bytes, value: Any) -> tuple[int, bytes, Any]:
    return (kind, struct.pack(">H", len(raw)) + raw, value)


# (type code, value bytes, the decoded value botocore gives) for all ten types.
typed_values = st.one_of(
    st.just((0, b"", True)),
    st.just((1, b"", False)),
    _fixed(2, ">b", -(2**7), 2**7 - 1),
    _fixed(3, ">h", -(2**15), 2**15 - 1),
    _fixed(4, ">i", -(2**31), 2**31 - 1),
    _fixed(5, ">q", -(2**63), 2**63 - 1),
    st.binary(max_size=60).map(lambda v: _sized(6, v, v)),
    st.text(max_size=30).map(lambda v: _sized(7, v.encode(), v)),
    _fixed(8, ">q", -(2**63), 2**63 - 1),
    st.binary(min_size=16, max_size=16).map(lambda v: (9, v, v)),
)


# -- round trips -------------------------------------------------------------------


@settings(max_examples=2000)
@given(frame_lists, st.data())
def test_round_trip_at_any_split(items: list[tuple[dict[str, Any], bytes]], data: Any) -> None:
    stream = b"".join(encode_frame(h, p) for h, p in items)
    events = decode(split(stream, data))
    assert [(typed(e.headers), e.payload) for e in events] == [(typed(h), p) for h, p in items]


@settings(max_examples=500)
@given(frame_lists, st.data())
def test_botocore_decodes_our_frames_identically(
    items: list[tuple[dict[str, Any], bytes]], data: Any
) -> None:
    stream = b"".join(encode_frame(h, p) for h, p in items)
    chunks = split(stream, data)
    ours = [(typed(e.headers), e.payload) for e in decode(chunks)]
    theirs = [(typed(h), p) for h, p in botocore_decode(chunks)]
    assert ours == theirs == [(typed(h), p) for h, p in items]


def test_all_ten_header_types_match_botocore() -> None:
    raw = b"".join(
        [
            raw_header("t", 0),
            raw_header("f", 1),
            raw_header("byte", 2, struct.pack(">b", -7)),
            raw_header("short", 3, struct.pack(">h", -300)),
            raw_header("int", 4, struct.pack(">i", -70000)),
            raw_header("long", 5, struct.pack(">q", -(2**40))),
            raw_header("bytes", 6, struct.pack(">H", 3) + b"\x00\xff\x10"),
            raw_header(":event-type", 7, struct.pack(">H", 17) + b"contentBlockDelta"),
            raw_header("ts", 8, struct.pack(">q", 1_700_000_000_123)),
            raw_header("uuid", 9, bytes(range(16))),
        ]
    )
    frame = frame_from_raw(raw, b'{"delta":{"text":"hi"}}')
    (event,) = decode([frame])
    expected = {
        "t": True,
        "f": False,
        "byte": -7,
        "short": -300,
        "int": -70000,
        "long": -(2**40),
        "bytes": b"\x00\xff\x10",
        ":event-type": "contentBlockDelta",
        "ts": 1_700_000_000_123,
        "uuid": bytes(range(16)),
    }
    assert typed(event.headers) == typed(expected)
    ((headers, payload),) = botocore_decode([frame])
    assert typed(headers) == typed(expected)
    assert payload == event.payload
    assert event.event_type == "contentBlockDelta"
    assert event.json() == {"delta": {"text": "hi"}}


@settings(max_examples=500)
@given(
    st.dictionaries(st.text(max_size=12), typed_values, max_size=8),
    st.binary(max_size=50),
    st.data(),
)
def test_hand_built_frames_of_every_type_match_botocore(
    spec: dict[str, tuple[int, bytes, Any]], payload: bytes, data: Any
) -> None:
    frame = frame_from_raw(b"".join(raw_header(n, k, v) for n, (k, v, _) in spec.items()), payload)
    chunks = split(frame, data)
    expected = typed({n: value for n, (_, _, value) in spec.items()})
    (event,) = decode(chunks)
    ((headers, theirs),) = botocore_decode(chunks)
    assert typed(event.headers) == typed(headers) == expected
    assert event.payload == theirs == payload


def _mangle(raw: bytes, how: int, at: int, byte: int) -> bytes:
    at = at % (len(raw) + 1)
    if how == 0:
        return raw[:at]  # truncated
    if how == 1 and at < len(raw):
        return raw[:at] + bytes([byte]) + raw[at + 1 :]  # one byte replaced
    return raw[:at] + bytes([byte]) + raw[at:]  # one byte inserted


@settings(max_examples=1000)
@given(
    st.lists(st.tuples(st.text(max_size=6), typed_values), max_size=4),
    st.integers(0, 3),
    st.integers(0, 2000),
    st.integers(0, 255),
)
def test_arbitrary_header_bytes_agree_with_botocore_or_fail_cleanly(
    spec: list[tuple[str, tuple[int, bytes, Any]]], how: int, at: int, byte: int
) -> None:
    """CRC-valid frames around mangled header bytes: we never accept what botocore
    rejects, agree with it when we accept, and fail only with ProviderResponseError.
    (botocore silently accepts a string or UUID cut short; we reject it.)"""
    raw = b"".join(raw_header(n, k, v) for n, (k, v, _) in spec)
    if how < 3:
        raw = _mangle(raw, how, at, byte)
    frame = frame_from_raw(raw, b"payload")
    try:
        ours: list[Any] | None = [(typed(e.headers), e.payload) for e in decode([frame])]
    except ProviderResponseError as exc:
        assert str(exc).startswith("event-stream ")
        ours = None
    try:
        theirs: list[Any] | None = [(typed(h), p) for h, p in botocore_decode([frame])]
    except Exception:
        theirs = None
    if ours is not None:
        assert ours == theirs


# -- corruption and truncation -----------------------------------------------------


@settings(max_examples=1000)
@given(frames, frames, frames, st.data())
def test_any_single_byte_flip_is_a_crc_error(
    before: tuple[dict[str, Any], bytes],
    target: tuple[dict[str, Any], bytes],
    after: tuple[dict[str, Any], bytes],
    data: Any,
) -> None:
    bad = bytearray(encode_frame(*target))
    index = data.draw(st.integers(0, len(bad) - 1), label="index")
    bad[index] ^= data.draw(st.integers(1, 255), label="mask")
    first = encode_frame(*before)
    chunks = split(first + bytes(bad) + encode_frame(*after), data)
    dec = EventStreamDecoder()
    events: list[Event] = []
    with pytest.raises(ProviderResponseError, match="CRC mismatch"):
        for chunk in chunks:
            events += dec.feed(chunk)
        dec.close()
    # The good frame before is delivered; nothing after the bad one is.
    assert [(typed(e.headers), e.payload) for e in events] == [(typed(before[0]), before[1])]


@settings(max_examples=500)
@given(st.binary(max_size=400), st.data())
def test_garbage_fails_only_with_provider_errors(garbage: bytes, data: Any) -> None:
    try:
        events = decode(split(garbage, data))
    except (ProviderResponseError, StreamInterruptedError):
        return
    assert garbage == b"" and events == []  # nothing else can pass two CRC checks


@settings(max_examples=500)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=200), st.data())
def test_any_prelude_with_a_valid_crc_fails_cleanly(
    total: int, headers_len: int, rest: bytes, data: Any
) -> None:
    stream = prelude(total, headers_len) + rest
    sane = (
        16 <= total <= MAX_FRAME_BYTES
        and headers_len <= min(total - 16, MAX_HEADERS_BYTES)
        and total - 16 - headers_len <= MAX_PAYLOAD_BYTES
    )
    dec = EventStreamDecoder()
    try:
        for chunk in split(stream, data):
            assert dec.feed(chunk) == []
    except ProviderResponseError as exc:
        message = str(exc)
        assert ("message CRC mismatch" in message) if sane else ("length" in message)
        return
    assert sane and len(stream) < total  # still waiting for the rest of the frame
    with pytest.raises(StreamInterruptedError, match="truncated"):
        dec.close()


@settings(max_examples=500)
@given(st.lists(frames, max_size=3), frames, st.data())
def test_a_stream_cut_inside_a_frame_is_interrupted(
    complete: list[tuple[dict[str, Any], bytes]], last: tuple[dict[str, Any], bytes], data: Any
) -> None:
    tail = encode_frame(*last)
    cut = data.draw(st.integers(1, len(tail) - 1), label="cut")
    stream = b"".join(encode_frame(h, p) for h, p in complete) + tail[:cut]
    dec = EventStreamDecoder()
    events = [e for chunk in split(stream, data) for e in dec.feed(chunk)]
    assert [(typed(e.headers), e.payload) for e in events] == [(typed(h), p) for h, p in complete]
    assert dec.buffered == cut
    with pytest.raises(StreamInterruptedError, match=f"truncated.* {cut} bytes"):
        dec.close()


def test_lengths_out_of_bounds_are_rejected_from_the_prelude_alone() -> None:
    cases = [
        (MAX_FRAME_BYTES + 1, 0, "exceeds the maximum"),
        (2**32 - 1, 0, "exceeds the maximum"),
        (15, 0, "below the minimum"),
        (0, 0, "below the minimum"),
        (100, 85, "headers length 85 does not fit"),
        (16 + MAX_PAYLOAD_BYTES + 1, 0, f"payload length {MAX_PAYLOAD_BYTES + 1} exceeds"),
        (16 + 143 * 1024, 143 * 1024, f"headers length {143 * 1024} exceeds"),
        (MAX_FRAME_BYTES, MAX_HEADERS_BYTES + 1, "headers length .* exceeds"),
    ]
    for total, headers_len, message in cases:
        with pytest.raises(ProviderResponseError, match=message):
            EventStreamDecoder().feed(prelude(total, headers_len))
    # The largest legal frames are waited for, not rejected.
    for total, headers_len in (
        (MAX_FRAME_BYTES, MAX_HEADERS_BYTES),
        (16 + MAX_PAYLOAD_BYTES, 0),
        (16 + MAX_HEADERS_BYTES, MAX_HEADERS_BYTES),
    ):
        dec = EventStreamDecoder()
        assert dec.feed(prelude(total, headers_len)) == []
        with pytest.raises(StreamInterruptedError):
            dec.close()


def _botocore_accepts(frame: bytes) -> bool:
    try:
        botocore_decode([frame])
    except Exception as exc:
        assert "exceeded the maximum" in str(exc), exc
        return False
    return True


def _ours_accepts(frame: bytes) -> bool:
    try:
        events = EventStreamDecoder().feed(frame)
    except ProviderResponseError as exc:
        assert "exceeds the maximum" in str(exc), exc
        return False
    assert len(events) == 1
    return True


def test_the_size_limits_are_botocores() -> None:
    """24 MiB of payload and 128 KiB of headers, as botocore's decoder: a 17 MiB payload
    and the largest legal frame decode in both, one byte over either limit in neither."""
    assert (MAX_PAYLOAD_BYTES, MAX_HEADERS_BYTES) == (24 * 1024 * 1024, 128 * 1024)

    def blob(name: str, size: int) -> bytes:  # a bytes header: 5 bytes around the value
        return raw_header(name, 6, struct.pack(">H", size) + b"v" * size)

    rest = MAX_HEADERS_BYTES - 2 * (5 + 60_000) - 5
    headers = blob("a", 60_000) + blob("b", 60_000) + blob("c", rest)
    over = blob("a", 60_000) + blob("b", 60_000) + blob("c", rest + 1)
    assert len(headers) == MAX_HEADERS_BYTES == len(over) - 1
    big = bytes(range(256)) * (MAX_PAYLOAD_BYTES // 256)
    cases = [
        (b"", b"x" * (17 * 1024 * 1024), True),
        (b"", big, True),
        (b"", big + b"x", False),
        (headers, big, True),
        (over, b"", False),
        (blob("a", 60_000) + blob("b", 60_000) + blob("c", 26_417), b"", False),  # 143 KiB
    ]
    for raw, payload, accepted in cases:
        frame = frame_from_raw(raw, payload)
        assert _botocore_accepts(frame) is accepted
        assert _ours_accepts(frame) is accepted


def test_a_frame_of_exactly_the_maximum_size_decodes() -> None:
    payload = (bytes(range(256)) * (MAX_PAYLOAD_BYTES // 256 + 1))[:MAX_PAYLOAD_BYTES]
    frame = encode_frame({}, payload)
    assert len(frame) == 16 + MAX_PAYLOAD_BYTES
    dec = EventStreamDecoder()
    events = [e for i in range(0, len(frame), 1 << 16) for e in dec.feed(frame[i : i + (1 << 16)])]
    assert len(events) == 1 and events[0].payload == payload
    dec.close()
    with pytest.raises(ValueError, match="at most"):
        encode_frame({}, payload + b"x")
    big = {f"h{i}": "v" * 0xFFFF for i in range(3)}
    with pytest.raises(ValueError, match="headers are at most"):
        encode_frame(big, b"")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (raw_header("x", 10), "unknown value type 10"),
        (raw_header("x", 255), "unknown value type 255"),
        (raw_header("x", 4, b"\x00\x00"), "headers truncated"),
        (raw_header("x", 7, b"\x00\x09abc"), "headers truncated"),
        (raw_header("x", 6, b"\x00"), "headers truncated"),
        (raw_header("x", 9, b"\x00" * 15), "headers truncated"),
        (b"\x05ab", "headers truncated"),
        (b"\x01a", "headers truncated"),
        (raw_header(b"\xff\xfe", 0), "header name is not valid UTF-8"),
        (raw_header("x", 7, b"\x00\x02\xc3\x28"), "value of header 'x' is not valid UTF-8"),
        (raw_header("x", 0) + raw_header("x", 1), "header 'x' is repeated"),
    ],
)
def test_bad_headers_are_precise_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ProviderResponseError, match=message):
        EventStreamDecoder().feed(frame_from_raw(raw, b"{}"))


def test_good_frames_before_a_bad_one_are_delivered_first() -> None:
    good = encode_frame({":event-type": "messageStart"}, b"{}")
    bad = bytearray(encode_frame({}, b"xyz"))
    bad[-6] ^= 1
    dec = EventStreamDecoder()
    (event,) = dec.feed(good + bad + good)
    assert event.event_type == "messageStart"
    with pytest.raises(ProviderResponseError, match="message CRC mismatch"):
        dec.feed(b"")
    with pytest.raises(ProviderResponseError, match="message CRC mismatch"):
        dec.close()


def test_buffer_stays_bounded_over_a_long_stream() -> None:
    frame = encode_frame({":event-type": "contentBlockDelta"}, b'{"delta":{"text":"x"}}' * 5)
    stream = frame * 2000
    dec = EventStreamDecoder()
    count = 0
    for i in range(0, len(stream), 7):
        count += len(dec.feed(stream[i : i + 7]))
        assert len(dec._buf) < 2 * len(frame) + 7
    assert count == 2000
    assert dec.buffered == 0
    dec.close()


def test_feed_accepts_bytearray_and_memoryview() -> None:
    frame = encode_frame({"a": 1}, b"p")
    dec = EventStreamDecoder()
    assert dec.feed(bytearray(frame[:5])) == []
    (event,) = dec.feed(memoryview(frame)[5:])
    assert event.headers == {"a": 1} and event.payload == b"p"


# -- Event -------------------------------------------------------------------------


def test_event_accessors() -> None:
    plain = Event({}, b"")
    assert (plain.event_type, plain.message_type, plain.exception_type) == (None, "event", None)
    (exc,) = decode(
        [
            encode_frame(
                {":message-type": "exception", ":exception-type": "throttlingException"},
                b'{"message":"slow down"}',
            )
        ]
    )
    assert exc.message_type == "exception"
    assert exc.exception_type == "throttlingException"
    assert exc.event_type is None
    assert exc.json() == {"message": "slow down"}


@pytest.mark.parametrize("name", [":event-type", ":message-type", ":exception-type"])
def test_a_non_string_type_header_is_a_response_error(name: str) -> None:
    event = Event({name: 7}, b"")
    attr = name[1:].replace("-", "_")
    with pytest.raises(ProviderResponseError, match=f"header {name} is not a string"):
        getattr(event, attr)


@pytest.mark.parametrize("payload", [b"", b"{", b"\xff\xfe\x00", b"[" * 100_000, b"nope"])
def test_json_of_a_bad_payload_is_a_response_error(payload: bytes) -> None:
    with pytest.raises(ProviderResponseError, match="not valid JSON"):
        Event({":event-type": "metadata"}, payload).json()


# -- encode_frame ------------------------------------------------------------------


def test_encode_frame_types_and_limits() -> None:
    frame = encode_frame({"s": "é", "b": b"\x00", "t": True, "f": False, "i": -5}, b"")
    assert (
        frame_from_raw(
            raw_header("s", 7, b"\x00\x02\xc3\xa9")
            + raw_header("b", 6, b"\x00\x01\x00")
            + raw_header("t", 0)
            + raw_header("f", 1)
            + raw_header("i", 4, struct.pack(">i", -5)),
            b"",
        )
        == frame
    )
    for headers in (
        {"n" * 256: "x"},
        {"x": "y" * 65536},
        {"x": b"y" * 65536},
        {"x": 2**31},
        {"x": -(2**31) - 1},
    ):
        with pytest.raises(ValueError):
            encode_frame(headers, b"")
