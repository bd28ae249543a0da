"""Server-sent events decoding: every line ending, any split, UTF-8 across chunks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srt.errors import ProviderResponseError
from srt.wire.sse import ServerSentEvent, SSEDecoder


def decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    d = SSEDecoder()
    out = []
    for c in chunks:
        out.extend(d.feed(c))
    return out


def render(events: list[tuple[str, str]], eol: bytes) -> bytes:
    out = b""
    for name, data in events:
        if name != "message":
            out += b"event: " + name.encode() + eol
        for line in data.split("\n"):
            out += b"data: " + line.encode() + eol
        out += eol
    return out


names = st.sampled_from(["message", "message_start", "content_block_delta", "ping"])
datas = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"))


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(st.tuples(names, datas), max_size=8),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.lists(st.integers(0, 10_000), max_size=12),
)
def test_any_line_ending_and_any_split(
    events: list[tuple[str, str]], eol: bytes, cuts: list[int]
) -> None:
    raw = render(events, eol)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    got = [(e.event, e.data) for e in decode(chunks)]
    assert got == events


def test_utf8_split_inside_a_character_and_comments() -> None:
    data = json.dumps({"text": "héllo 世界 🎉"}, ensure_ascii=False).encode()
    raw = b": keep-alive\n\ndata: " + data + b"\n\n"
    i = raw.index("🎉".encode()) + 2
    events = decode([raw[:i], raw[i:]])
    assert [e.json() for e in events] == [{"text": "héllo 世界 🎉"}]


def test_multiline_data_and_id() -> None:
    (e,) = decode([b"id: 7\nevent: x\ndata: a\ndata: b\n\n"])
    assert (e.id, e.event, e.data) == ("7", "x", "a\nb")


def test_an_unfinished_event_is_not_dispatched() -> None:
    d = SSEDecoder()
    assert d.feed(b'data: {"a": 1}\n') == []
    assert d.pending


def test_bad_json_and_bad_utf8_are_typed_errors() -> None:
    (e,) = decode([b"data: {not json\n\n"])
    with pytest.raises(ProviderResponseError):
        e.json()
    with pytest.raises(ProviderResponseError):
        decode([b"data: \xff\xfe\n\n"])
