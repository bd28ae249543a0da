"""``srt._core.Segments`` (a body as frozen chunks) and ``decode_messages`` against their
pure-Python twins in ``reference_core``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import reference_core as ref
from srt import _core
from srt.message import ROLES, canonicalize

ROLE_KEYS = {r.encode(): r for r in ROLES}


class SegmentsMachine(RuleBasedStateMachine):
    """Drive ``_core.Segments`` the way a session does: a live list of parts that grows,
    is cut back (in place, then ``truncate``) or replaced by a new list; marks on some
    parts; heads and tails that change. Every body must join to the reference's bytes,
    its digests must equal those of the joined bytes, and a chunk already handed out
    must never change. Its parts are joined with a separator, or none."""

    def __init__(self) -> None:
        super().__init__()
        self.seg: Any = None
        self.parts: list[bytes] = []
        self.head, self.tail = b"{", b"}"
        self.marks: dict[int, bytes] = {}
        self.seen: list[tuple[bytes, bytes]] = []  # (chunk, a copy of its bytes)

    @initialize(
        min_bytes=st.sampled_from([0, 16, 200]),
        segment_bytes=st.sampled_from([1, 8, 40]),
        merge=st.sampled_from([1, 3, 10]),
        sep=st.sampled_from([b"", b",", b"::"]),
    )
    def make(self, min_bytes: int, segment_bytes: int, merge: int, sep: bytes) -> None:
        self.seg = _core.Segments(min_bytes, segment_bytes, segment_bytes * merge, sep)

    @rule(new=st.lists(st.binary(max_size=24), min_size=1, max_size=4))
    def append(self, new: list[bytes]) -> None:
        self.parts.extend(new)

    @rule(k=st.integers(0, 6))
    def cut_in_place(self, k: int) -> None:
        keep = max(0, len(self.parts) - k)
        del self.parts[keep:]
        self.seg.truncate(keep)
        self.marks = {i: m for i, m in self.marks.items() if i < keep}

    @rule(k=st.integers(0, 6))
    def new_list(self, k: int) -> None:
        self.parts = self.parts[: max(0, len(self.parts) - k)]
        self.marks = {i: m for i, m in self.marks.items() if i < len(self.parts)}

    @rule(i=st.integers(0, 60), data=st.binary(max_size=24), keep=st.booleans())
    def mark(self, i: int, data: bytes, keep: bool) -> None:
        if not keep:
            self.marks = {}
        if self.parts:
            self.marks[i % len(self.parts)] = data

    @rule(head=st.sampled_from([b"{", b'{"model":"a",', b'{"model":"bb",']))
    def set_head(self, head: bytes) -> None:
        self.head = head

    @rule(tail=st.binary(max_size=12))
    def set_tail(self, tail: bytes) -> None:
        self.tail = tail

    @rule()
    def build(self) -> None:
        chunks = self.seg.build(self.head, self.parts, self.tail, dict(self.marks))
        want = ref.segments_body(self.head, self.parts, self.tail, self.marks, self.seg.sep)
        assert b"".join(chunks) == want
        assert self.seg.digest(chunks) == _core.digest(want)
        assert self.seg.sha256(chunks) == hashlib.sha256(want).digest()
        assert all(type(c) is bytes for c in chunks)
        # no frozen chunk is larger than merge_bytes, but for a single larger part (and
        # the separator before it)
        most = max(self.seg.merge_bytes, 24 + len(self.seg.sep))
        assert all(len(c) <= most for c in chunks[1:-1])
        self.seen += [(c, bytes(bytearray(c))) for c in chunks]

    @invariant()
    def chunks_never_change(self) -> None:
        for chunk, copy in self.seen:
            assert chunk == copy


SegmentsMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
TestSegmentsAgainstReference = SegmentsMachine.TestCase


def test_segments_reuse_frozen_chunks_and_copy_only_the_tail() -> None:
    """A growing list: the frozen chunks are the same objects turn after turn, and a
    turn copies about what is new (plus what waits for the next segment)."""
    seg = _core.Segments(min_bytes=1024, segment_bytes=4096, merge_bytes=64 * 1024)
    parts = [bytes([65 + i % 26]) * 500 for i in range(400)]
    first = seg.build(b"[", parts, b"]")
    # head, the whole history in runs of at most merge_bytes, the tail
    assert seg.frozen_parts == 400 and len(first) == 2 + 4
    assert all(len(c) <= 64 * 1024 for c in first[1:-1])
    copied = seg.copied
    for turn in range(200):
        parts.append(bytes([97 + turn % 26]) * 300)
        chunks = seg.build(b"[", parts, b"]")
        assert b"".join(chunks) == b"[" + b"".join(parts) + b"]"
        # the history is never joined again (the short last run may merge with new ones)
        assert all(a is b for a, b in zip(chunks[1:4], first[1:4], strict=True))
        assert len(chunks) <= 2 + 400 * 500 // 4096 + 16
    # about the new bytes, the waiting ones once each turn, and merges
    assert seg.copied - copied < 200 * (300 + 4096 + 300) + 3 * 200 * 300


def test_segments_small_body_is_one_chunk_and_keeps_nothing() -> None:
    seg = _core.Segments(min_bytes=1 << 20)
    assert seg.build(b"{", [b"a", b"b"], b"}") == [b"{ab}"]
    assert seg.holding == 0


def test_segments_marks_are_never_frozen() -> None:
    seg = _core.Segments(min_bytes=0, segment_bytes=1, merge_bytes=1)
    parts = [b"a", b"b", b"c", b"d"]
    chunks = seg.build(b"", parts, b"", {2: b"C"})
    assert b"".join(chunks) == b"abCd" and seg.frozen_parts == 2
    chunks = seg.build(b"", parts, b"", {1: b"B"})
    assert b"".join(chunks) == b"aBcd" and seg.frozen_parts <= 1
    chunks = seg.build(b"", parts, b"")
    assert b"".join(chunks) == b"abcd"


def test_segments_digest_of_foreign_chunks_is_still_right() -> None:
    seg = _core.Segments(min_bytes=0, segment_bytes=2)
    parts = [b"ab", b"cd", b"ef"]
    seg.build(b"<", parts, b">")
    other = [b"<", b"xy", b"z>"]
    assert seg.digest(other) == _core.digest(b"<xyz>")
    assert seg.sha256(other) == hashlib.sha256(b"<xyz>").digest()


def test_segments_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        _core.Segments(segment_bytes=0)
    with pytest.raises(ValueError):
        _core.Segments(segment_bytes=10, merge_bytes=5)
    seg = _core.Segments()
    with pytest.raises(TypeError):
        seg.build(b"", [b"a", None], b"")  # type: ignore[list-item]
    with pytest.raises(IndexError):
        seg.build(b"", [b"a"], b"", {3: b"x"})


texts = st.text(max_size=40)


@settings(max_examples=1000)
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda r, c: {"role": r, "content": c},
                st.sampled_from(sorted(ROLES - {"tool"})),
                texts,
            ),
            st.builds(
                lambda c, n: {"role": "user", "content": c, "name": n},
                texts,
                st.from_regex(r"[a-z]{1,8}", fullmatch=True),
            ),
            st.builds(
                lambda c: {"role": "tool", "content": c, "tool_call_id": "c1"},
                texts,
            ),
        ),
        max_size=8,
    )
)
def test_decode_messages_matches_json(messages: list[dict[str, Any]]) -> None:
    bodies = []
    for m in messages:
        try:
            bodies.append(canonicalize(m)[0])
        except Exception:
            continue  # e.g. a lone surrogate: never stored
    assert _core.decode_messages(bodies, ROLE_KEYS, json.loads) == ref.decode_messages(bodies)


def _decoded(data: bytes) -> tuple[str, str | None]:
    """``data`` decoded by CPython: ``("ok", text)`` or ``(error message, None)``."""
    try:
        return "ok", data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return str(exc), None


def _srt_decoded(data: bytes) -> tuple[str, str | None]:
    try:
        return "ok", _core.decode_utf8(data)
    except UnicodeDecodeError as exc:
        return str(exc), None


#: Text with runs of ASCII longer and shorter than the decoder's 16-byte blocks and
#: characters of every UTF-8 length, and byte strings that are mostly such text with a
#: few bytes changed (truncated, overlong, surrogate and out-of-range sequences).
_TEXTS = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=0, max_size=40),
        st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0xFF), max_size=5),
        st.text(
            alphabet=st.characters(
                min_codepoint=0x100, max_codepoint=0xFFFF, exclude_categories=("Cs",)
            ),
            max_size=5,
        ),
        st.text(alphabet=st.characters(min_codepoint=0x10000), max_size=3),
    ),
    max_size=12,
).map("".join)


@settings(max_examples=1000)
@given(_TEXTS)
def test_decode_utf8_matches_cpython_on_text(text: str) -> None:
    data = text.encode("utf-8")
    got = _core.decode_utf8(data)
    # CPython's str equality compares the kinds (1, 2 or 4 bytes a character) first, so
    # an equal str is also of the one kind CPython would have given it.
    assert got == text and hash(got) == hash(text)


@settings(max_examples=1000)
@given(_TEXTS, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3))
def test_decode_utf8_matches_cpython_on_damaged_bytes(
    text: str, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(text.encode("utf-8"))
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    assert _srt_decoded(bytes(data)) == _decoded(bytes(data))
    cut = bytes(data[: len(data) // 2])  # a sequence cut short at the end
    assert _srt_decoded(cut) == _decoded(cut)


def test_decode_utf8_refuses_what_cpython_refuses() -> None:
    for data in (
        b"\xff",
        b"\xc0\x80",  # overlong
        b"\xe0\x80\x80",  # overlong
        b"\xed\xa0\x80",  # a surrogate
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"a" * 20 + b"\xe6\x95",  # cut short
        b"\x80" * 17,  # continuation bytes alone
    ):
        assert _srt_decoded(data) == _decoded(data)
        assert _decoded(data)[1] is None


def test_decode_messages_falls_back_for_what_it_does_not_know() -> None:
    calls: list[bytes] = []

    def loads(b: bytes) -> Any:
        calls.append(b)
        return json.loads(b)

    bodies = [
        b'{"role":"user","content":"plain \xc3\xa9"}',
        b'{"role":"user","content":"esc\\"aped"}',
        b'{"role":"critic","content":"unknown role"}',
        b'{"role":"user","content":"x","name":"y"}',
        b'{"role":"user","content":[{"type":"text","text":"hi"}]}',
    ]
    got = _core.decode_messages(bodies, ROLE_KEYS, loads)
    assert got == [json.loads(b) for b in bodies]
    assert calls == bodies[1:]
    with pytest.raises(TypeError):
        _core.decode_messages(["text"], ROLE_KEYS, loads)  # type: ignore[list-item]


def test_decode_messages_finds_quotes_and_backslashes_anywhere_in_long_text() -> None:
    # The pass that finds a text's kind and length also looks for a quote or a
    # backslash (16 bytes at a time, then byte by byte): one at any place, in any mix
    # of characters, sends the body to ``loads``.
    calls: list[bytes] = []

    def loads(b: bytes) -> Any:
        calls.append(b)
        return json.loads(b)

    for body in ("a", "é", "λ✓"):
        text = body * 90
        for at in (0, 1, 15, 16, 17, 63, 64, len(text) - 1, len(text)):
            escaped = canonicalize({"role": "user", "content": text[:at] + '"' + text[at:]})[0]
            two_keys = (
                b'{"role":"user","content":"'
                + text[:at].encode()
                + b'","name":"'
                + text[at:].encode()
                + b'"}'
            )
            plain = canonicalize({"role": "assistant", "content": text[:at]})[0]
            calls.clear()
            bodies = [escaped, two_keys, plain]
            assert _core.decode_messages(bodies, ROLE_KEYS, loads) == [
                json.loads(b) for b in bodies
            ]
            assert calls == [escaped, two_keys]


@settings(max_examples=1000)
@given(
    st.lists(st.binary(min_size=1, max_size=12), min_size=1, max_size=10),
    st.lists(st.integers(0, 6), min_size=1, max_size=10),
    st.lists(st.tuples(st.integers(0, 150), st.integers(0, 30)), max_size=8),
)
def test_cut_matches_reference(
    rows: list[bytes], gaps: list[int], ranges: list[tuple[int, int]]
) -> None:
    """Ranges of a stream stored in rows (with gaps between some rows): the bytes, or
    ValueError for a range the rows do not cover, exactly as the reference says."""
    ids, at = [], 0
    for i, row in enumerate(rows):
        at += gaps[i % len(gaps)] if i else 0
        ids.append(at)
        at += len(row)
    ats = [a for a, _ in ranges]
    lens = [n for _, n in ranges]
    try:
        want = ref.cut(ids, rows, ats, lens)
    except ValueError:
        with pytest.raises(ValueError):
            _core.cut(ids, rows, ats, lens)
        return
    assert _core.cut(ids, rows, ats, lens) == want


@settings(max_examples=1000)
@given(
    st.lists(
        st.tuples(st.integers(1, 60), st.one_of(st.none(), st.integers(1, 60)), st.integers(1, 9)),
        max_size=30,
    ),
    st.integers(1, 60),
)
def test_walk_chain_matches_reference(raw: list[tuple[int, int | None, int]], head: int) -> None:
    rows = sorted({r[0]: r for r in raw}.values())
    try:
        want = ref.walk_chain(rows, head)
    except ValueError:
        with pytest.raises(ValueError):
            _core.walk_chain(rows, head)
        return
    assert _core.walk_chain(rows, head) == want


def test_segments_digest_after_a_cut_and_new_bytes() -> None:
    """A cut drops frozen bytes that the running digest had covered: it starts over."""
    seg = _core.Segments(min_bytes=0, segment_bytes=1, merge_bytes=1)
    parts = [b"\x01"]
    chunks = seg.build(b"", parts, b"")
    assert seg.digest(chunks) == _core.digest(b"\x01")
    del parts[0:]
    seg.truncate(0)
    parts.append(b"\x00")
    chunks = seg.build(b"", parts, b"")
    assert seg.digest(chunks) == _core.digest(b"\x00")
    assert seg.sha256(chunks) == hashlib.sha256(b"\x00").digest()


rows_st = st.lists(
    st.tuples(
        st.integers(1, 10**6),
        st.binary(min_size=16, max_size=16),
        st.binary(max_size=40),
        st.binary(min_size=16, max_size=16),
        st.one_of(st.none(), st.sampled_from(["cancelled", "incomplete"])),
        st.one_of(st.none(), st.just(b'{"pinned":true}'), st.just('{"pinned":true}'), st.binary()),
        st.integers(1, 99),
    ),
    max_size=12,
)


@settings(max_examples=500)
@given(rows_st, st.integers(0, 50))
def test_split_chain_matches_reference(rows: list[tuple[Any, ...]], intern_min: int) -> None:
    seen: dict[bytes, bytes] = {}

    def intern(h: bytes, body: bytes) -> bytes:
        return seen.setdefault(h, body)

    want = ref.split_chain(rows, intern, intern_min)
    seen.clear()
    assert _core.split_chain(rows, intern, intern_min) == want
    # Interning through a FragmentCache: the first body of each hash is kept.
    seen.clear()
    cache = _core.FragmentCache()
    got = _core.split_chain(rows, cache, intern_min)
    assert got == want
    for body, wanted in zip(got[2], want[2], strict=True):
        assert body is wanted or len(body) < intern_min
    bodies = [r[2] for r in rows]
    assert _core.short_bytes(bodies, intern_min, 33) == sum(
        len(b) + 33 for b in bodies if len(b) < intern_min
    )
