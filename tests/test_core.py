"""``srt._core`` against its pure-Python twin ``reference_core``: identical bytes.

The core is compiled Cython working on raw pointers; every function is compared
with the obvious Python spelling over arbitrary binary input, and the fragment
cache is compared with an ``OrderedDict`` LRU under random operation sequences.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

import reference_core as ref
from srt import _core

FAST = settings(max_examples=2000)

digests = st.binary(min_size=16, max_size=16)
parts_lists = st.lists(st.binary(max_size=64), max_size=20)


# -- constants ---------------------------------------------------------------------


def test_constants_match_reference() -> None:
    assert _core.DIGEST_SIZE == ref.DIGEST_SIZE == 16
    assert _core.ROOT == ref.ROOT == b"\x00" * 16
    assert isinstance(_core.ROOT, bytes)


# -- digest and chain -------------------------------------------------------------


@FAST
@given(st.binary(max_size=4096))
def test_digest_matches_reference(data: bytes) -> None:
    got = _core.digest(data)
    assert isinstance(got, bytes)
    assert len(got) == 16
    assert got == ref.digest(data)


def test_digest_known_vectors() -> None:
    # XXH3-128, seed 0, canonical (big-endian) form.
    assert _core.digest(b"a").hex() == "a96faf705af16834e6c632b61e964e1f"
    assert _core.digest(b"").hex() == "99aa06d3014798d86001c324468d497f"
    assert ref.digest(b"a").hex() == "a96faf705af16834e6c632b61e964e1f"


def test_digest_of_large_input_matches_reference() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB crosses every XXH3 code path
    assert _core.digest(data) == ref.digest(data)


@FAST
@given(digests, digests)
def test_chain_matches_reference(parent: bytes, message_hash: bytes) -> None:
    got = _core.chain(parent, message_hash)
    assert len(got) == 16
    assert got == ref.chain(parent, message_hash)
    assert got == _core.digest(parent + message_hash)


@FAST
@given(digests, st.lists(digests, max_size=30))
def test_chain_many_matches_reference(parent: bytes, hashes: list[bytes]) -> None:
    got = _core.chain_many(parent, hashes)
    assert got == ref.chain_many(parent, hashes)
    assert len(got) == len(hashes)
    # chain_many is chain folded over the list.
    cur = parent
    for h, p in zip(hashes, got, strict=True):
        cur = _core.chain(cur, h)
        assert p == cur


@FAST
@given(
    st.binary().filter(lambda b: len(b) != 16),
    digests,
    st.booleans(),
)
def test_chain_rejects_inputs_that_are_not_16_bytes(bad: bytes, good: bytes, first: bool) -> None:
    args = (bad, good) if first else (good, bad)
    with pytest.raises(ValueError, match="16 bytes"):
        _core.chain(*args)
    with pytest.raises(ValueError, match="16 bytes"):
        ref.chain(*args)
    with pytest.raises(ValueError, match="16 bytes"):
        _core.chain_many(good, [good, bad] if not first else [bad])


def test_chain_many_of_nothing_is_empty() -> None:
    assert _core.chain_many(_core.ROOT, []) == [] == ref.chain_many(ref.ROOT, [])


@pytest.mark.parametrize(
    "call",
    [
        "c.digest(bytearray(b'a'))",
        "c.chain(bytearray(16), bytes(16))",
        "c.chain_many(bytes(16), [bytearray(16)])",
        "c.assemble(b'', [bytearray(b'x')], b',', b'')",
        "c.assembled_length(b'', ['x'], b',', b'')",
    ],
)
def test_core_rejects_non_bytes(call: str) -> None:
    with pytest.raises(TypeError):
        eval(call, {"c": _core})


@pytest.mark.parametrize(
    "call",
    [
        "c.chain(None, bytes(16))",
        "c.chain(bytes(16), None)",
        "c.chain_many(None, [bytes(16)])",
        "c.assemble(None, [b'x'], b',', b'')",
        "c.assemble(b'', [b'x'], None, b'')",
        "c.assemble(b'', [b'x'], b',', None)",
        "c.assembled_length(None, [b'x'], b',', b'')",
        "c.OutputBuffer(0).build(None, [b'x'], b',', b'')",
        "c.OutputBuffer(0).build(b'', [b'x', None], b',', b'')",
        "c.OutputBuffer(0).build(b'', [b'x'], None, b'')",
        "c.OutputBuffer(0).build(b'', [b'x'], b',', None)",
        "c.common_prefix(None, [b'x'])",
        "c.find_in_any([b'x', None], b'y')",
        "c.find_in_any([b'x'], None)",
    ],
)
def test_core_rejects_none_instead_of_bytes(call: str) -> None:
    """``None`` must be a TypeError, never read as a bytes object.

    Cython lets ``None`` through a ``bytes`` argument unless it is declared
    ``not None``; ``PyBytes_GET_SIZE``/``PyBytes_AS_STRING`` on ``None`` read
    memory that is not a bytes object. Run in a child process so an invalid
    read cannot take the test run down with it.
    """
    script = textwrap.dedent(
        f"""
        import srt._core as c
        try:
            r = {call}
        except TypeError:
            print("TypeError")
        else:
            print("accepted", repr(r))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "TypeError"


# -- assembly ---------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=64), parts_lists, st.binary(max_size=8), st.binary(max_size=64))
def test_assemble_matches_reference(
    head: bytes, parts: list[bytes], sep: bytes, tail: bytes
) -> None:
    got = _core.assemble(head, parts, sep, tail)
    expected = ref.assemble(head, parts, sep, tail)
    assert got == expected
    assert got == head + sep.join(parts) + tail
    assert _core.assembled_length(head, parts, sep, tail) == len(expected)
    assert ref.assembled_length(head, parts, sep, tail) == len(expected)


def test_assemble_large_fragments() -> None:
    parts = [bytes([i]) * (300_000 + i) for i in range(8)]
    got = _core.assemble(b"{", parts, b",", b"}")
    assert got == ref.assemble(b"{", parts, b",", b"}")
    assert _core.assembled_length(b"{", parts, b",", b"}") == len(got)


def test_assemble_does_not_alias_its_inputs() -> None:
    parts = [b"abc", b"def"]
    out = _core.assemble(b"", parts, b"", b"")
    assert out == b"abcdef"
    assert parts == [b"abc", b"def"]
    single = _core.assemble(b"", [b"x" * 100], b"", b"")
    assert single == b"x" * 100


@FAST
@given(st.lists(st.binary(max_size=40), max_size=8), st.binary(max_size=4))
def test_find_in_any_matches_reference(items: list[bytes], needle: bytes) -> None:
    assert _core.find_in_any(items, needle) == ref.find_in_any(items, needle)


@FAST
@given(st.lists(st.text(alphabet='ab,"', max_size=40).map(str.encode), max_size=8))
def test_find_in_any_small_alphabet(items: list[bytes]) -> None:
    for needle in (b',"a', b"a", b'""', b'ab,"ab'):
        assert _core.find_in_any(items, needle) == ref.find_in_any(items, needle)


@FAST
@given(
    st.lists(st.binary(max_size=4), max_size=12),
    st.lists(st.binary(max_size=4), max_size=6),
    st.lists(st.binary(max_size=4), max_size=6),
    st.integers(-1, 20),
)
def test_common_prefix_matches_reference(
    shared: list[bytes], a_tail: list[bytes], b_tail: list[bytes], limit: int
) -> None:
    a = shared + a_tail
    b = [bytes(bytearray(x)) for x in shared] + b_tail  # equal, and often not identical
    got = _core.common_prefix(a, b, limit)
    assert got == ref.common_prefix(a, b, limit)
    assert got >= min(len(shared), limit if limit >= 0 else len(shared))


@FAST
@given(st.lists(digests, max_size=12), st.lists(digests, max_size=6), st.integers(-1, 20))
def test_hash_seq_behaves_as_a_list(hashes: list[bytes], other: list[bytes], limit: int) -> None:
    """``HashSeq`` packs hashes; read back, it is the list it was given."""
    seq = _core.HashSeq(b"".join(hashes))
    assert len(seq) == len(hashes)
    assert list(seq) == hashes == seq[:]
    for i in range(-len(hashes), len(hashes)):
        assert seq[i] == hashes[i]
    assert seq[1:-1] == hashes[1:-1] and seq[::2] == hashes[::2]
    for h in hashes + other:
        assert (h in seq) == (h in hashes)
    assert b"short" not in seq and None not in seq
    grown = seq.head(len(hashes))
    grown.extend(other)
    assert list(grown) == hashes + other and list(seq) == hashes  # head() is a copy
    assert seq.packed() == b"".join(hashes)
    b = _core.HashSeq(b"".join(other))
    assert seq.common(b, limit) == ref.common_prefix(hashes, other, limit)
    assert seq.common(grown, limit) == ref.common_prefix(hashes, hashes + other, limit)
    with pytest.raises(IndexError):
        seq[len(hashes)]


@FAST
@given(
    st.lists(digests, max_size=12),
    st.integers(0, 14),
    st.lists(digests, max_size=4),
    st.lists(digests, max_size=4),
    st.integers(-1, 20),
)
def test_hash_seq_common_with_a_head_of_it(
    hashes: list[bytes], cut: int, more: list[bytes], new: list[bytes], limit: int
) -> None:
    """A head (a rewind or an edit) remembers how much it shares with its source, and
    both may grow after: ``common`` still equals the list comparison, either way round."""
    seq = _core.HashSeq(b"".join(hashes))
    head = seq.head(cut)
    seq.extend(more)
    head.extend(new)
    want = ref.common_prefix(hashes + more, hashes[:cut] + new, limit)
    assert seq.common(head, limit) == want == head.common(seq, limit)
    again = head.head(max(0, cut - 1))  # a head of a head
    assert again.common(seq, limit) == ref.common_prefix(list(again), list(seq), limit)


def test_hash_seq_rejects_what_is_not_a_hash() -> None:
    with pytest.raises(ValueError):
        _core.HashSeq(b"x" * 17)
    seq = _core.HashSeq()
    with pytest.raises(ValueError):
        seq.append(b"x" * 15)
    with pytest.raises(TypeError):
        seq.append(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        seq.head(-1)
    assert len(seq) == 0 and list(seq) == []


class OutputBufferMachine(RuleBasedStateMachine):
    """Drive ``_core.OutputBuffer`` the way a session does: a live list of parts that
    grows, is cut back in place (then ``truncate``), or is replaced by a new list when
    parts are dropped or marked; heads and
    tails that change; earlier results sometimes still held by the caller. Every
    result must equal ``assemble``'s, and no result the caller holds may change."""

    def __init__(self) -> None:
        super().__init__()
        self.buf: Any = None
        self.parts: list[bytes] = []
        self.head, self.tail = b"{", b"}"
        self.held: list[tuple[bytes, bytes]] = []  # (result, a copy of its bytes)

    @initialize(min_bytes=st.sampled_from([0, 8, 64]))
    def make(self, min_bytes: int) -> None:
        self.buf = _core.OutputBuffer(min_bytes)

    @rule(new=st.lists(st.binary(min_size=0, max_size=24), min_size=1, max_size=3))
    def append(self, new: list[bytes]) -> None:
        self.parts.extend(new)  # the same list: only appended to

    @rule(k=st.integers(0, 6))
    def drop(self, k: int) -> None:
        self.parts = self.parts[: max(0, len(self.parts) - k)]  # a new list

    @rule(k=st.integers(0, 6))
    def cut_in_place(self, k: int) -> None:
        keep = max(0, len(self.parts) - k)
        del self.parts[keep:]  # the same list, told
        self.buf.truncate(keep)

    @rule(i=st.integers(0, 30), data=st.binary(max_size=24))
    def mark(self, i: int, data: bytes) -> None:
        if self.parts:
            self.parts = list(self.parts)  # a new list with one part changed
            self.parts[i % len(self.parts)] = data

    @rule(head=st.sampled_from([b"{", b'{"model":"a",', b'{"model":"bb",']))
    def set_head(self, head: bytes) -> None:
        self.head = head

    @rule(tail=st.binary(max_size=12))
    def set_tail(self, tail: bytes) -> None:
        self.tail = tail

    @rule(sep=st.sampled_from([b"", b","]), hold=st.booleans())
    def build(self, sep: bytes, hold: bool) -> None:
        got = self.buf.build(self.head, self.parts, sep, self.tail)
        want = ref.OutputBuffer().build(self.head, self.parts, sep, self.tail)
        assert got == want
        if hold:
            self.held.append((got, bytes(bytearray(got))))

    @rule()
    def release(self) -> None:
        self.held.clear()

    @invariant()
    def held_results_unchanged(self) -> None:
        for got, copy in self.held:
            assert got == copy
            assert hash(got) == hash(copy)


OutputBufferMachine.TestCase.settings = settings(
    max_examples=400, stateful_step_count=40, deadline=None
)
TestOutputBufferAgainstReference = OutputBufferMachine.TestCase


def test_output_buffer_grows_the_released_body_in_place() -> None:
    """Dropped by the caller, the previous body's memory is reused and only the new
    bytes are written; held by the caller, it is left alone and new memory is used."""
    buf = _core.OutputBuffer(min_bytes=1024)
    parts = [bytes([65 + i % 26]) * 1000 for i in range(50)]
    body = buf.build(b"[", parts, b",", b"]")
    assert buf.holding == len(body)
    first_copied = buf.copied
    del body
    parts.append(b"z" * 10)
    body = buf.build(b"[", parts, b",", b"]")
    assert body == ref.assemble(b"[", parts, b",", b"]")
    assert buf.reused == 1 + 50 * 1000 + 49  # head, 50 old parts and their commas stayed
    assert buf.copied - first_copied == len(body) - buf.reused
    kept = body  # the caller still holds it: the next build must not touch it
    copy = bytes(bytearray(kept))
    parts.append(b"y" * 10)
    body = buf.build(b"[", parts, b",", b"]")
    assert kept == copy and kept is not body
    assert body == ref.assemble(b"[", parts, b",", b"]")


def test_output_buffer_returns_the_same_body_when_nothing_changed() -> None:
    """A build with nothing new since the last (a retry, a second look) returns that
    body itself, held or not, and copies nothing; a tail of the same length with other
    bytes is a new body."""
    buf = _core.OutputBuffer(min_bytes=1024)
    parts = [bytes([65 + i % 26]) * 1000 for i in range(50)]
    first = buf.build(b"[", parts, b",", b"]")
    copied = buf.copied
    again = buf.build(b"[", parts, b",", b"]")  # held: ``first`` is still alive
    assert again is first and buf.copied == copied
    del first, again
    again = buf.build(b"[", parts, b",", b"]")  # released
    assert again == ref.assemble(b"[", parts, b",", b"]") and buf.copied == copied
    other = buf.build(b"[", parts, b",", b")")  # same length, other tail
    assert other is not again and other == ref.assemble(b"[", parts, b",", b")")
    assert again.endswith(b"]") and hash(again) == hash(bytes(bytearray(again)))
    longer = buf.build(b"[", [*parts, b"x"], b",", b")")  # a new list, one part more
    assert longer == ref.assemble(b"[", [*parts, b"x"], b",", b")")
    # A new list each build (as cache marks make): the same parts give the same body,
    # a part with other bytes of the same length a new one.
    marked = [*parts, b"x"]
    marked[3] = bytes(bytearray(b"m" * 1000))
    first = buf.build(b"[", marked, b",", b")")
    assert buf.build(b"[", list(marked), b",", b")") is first
    again = list(marked)
    again[3] = b"n" * 1000
    other = buf.build(b"[", again, b",", b")")
    assert other is not first and other == ref.assemble(b"[", again, b",", b")")
    assert first == ref.assemble(b"[", marked, b",", b")")


def test_output_buffer_rewrites_an_equal_size_body_in_place_with_a_fresh_hash() -> None:
    """Released, a body of the same length but other bytes is written in the previous
    one's memory (only what changed), and its hash is the new bytes' hash, not a stale
    one cached from before."""
    buf = _core.OutputBuffer(min_bytes=1024)
    parts = [bytes([65 + i % 26]) * 1000 for i in range(50)]
    body = buf.build(b"[", parts, b",", b"]")
    stale = hash(body)  # cached in the bytes object
    del body
    copied = buf.copied
    body = buf.build(b"[", parts, b",", b")")
    assert body == ref.assemble(b"[", parts, b",", b")")
    assert buf.copied - copied == 1  # only the tail was written
    assert hash(body) == hash(bytes(bytearray(body))) != stale


def test_output_buffer_rewrites_only_after_an_in_place_cut() -> None:
    """Cut back in place and told, the buffer keeps the unchanged head of the body and
    writes from the cut on; the result is still assemble's."""
    buf = _core.OutputBuffer(min_bytes=1024)
    parts = [bytes([65 + i % 26]) * 1000 for i in range(50)]
    body = buf.build(b"[", parts, b",", b"]")
    del body
    del parts[40:]
    buf.truncate(40)
    parts += [b"new" * 10, b"more" * 10]
    reused = buf.reused
    body = buf.build(b"[", parts, b",", b"]")
    assert body == ref.assemble(b"[", parts, b",", b"]")
    assert buf.reused - reused == 1 + 40 * 1000 + 39  # head, 40 parts and their commas
    buf.truncate(99)  # past the end: nothing to forget
    parts.append(b"z")
    assert buf.build(b"[", parts, b",", b"]") == ref.assemble(b"[", parts, b",", b"]")


def test_output_buffer_grows_a_released_body_within_its_room() -> None:
    """A kept body is allocated with room to grow: released turn after turn and grown
    by a few small parts, it stays at one address and is never reallocated, whether the
    buffer made it in place or new (while the caller held the previous one); each
    result is assemble's bytes, with its own hash."""
    buf = _core.OutputBuffer(min_bytes=1024)
    parts = [bytes([65 + i % 26]) * 1000 for i in range(64)]
    body = buf.build(b"[", parts, b",", b"]")
    assert buf.holding == len(body) < buf.capacity  # 65,000 bytes and a sixteenth more
    assert buf.capacity == len(body) + len(body) // 16
    held = body  # the caller holds it: the next body is new, with room of its own
    parts.append(b"h" * 10)
    body = buf.build(b"[", parts, b",", b"]")
    assert body is not held and held == ref.assemble(b"[", parts[:-1], b",", b"]")
    del held
    address, room = id(body), buf.capacity
    assert room == len(body) + len(body) // 16
    for i in range(20):  # 20 x 51 bytes: well within a sixteenth of 65 kB
        stale = hash(body)
        del body
        parts.append(bytes([97 + i]) * 50)
        body = buf.build(b"[", parts, b",", b"]")
        assert id(body) == address and buf.capacity == room
        assert body == ref.assemble(b"[", parts, b",", b"]")
        assert hash(body) == hash(bytes(bytearray(body))) != stale
    assert buf.resized == 0


def test_output_buffer_takes_new_room_past_its_room_and_far_below_it() -> None:
    """Past its room the kept body is reallocated with room again; cut to under half of
    its room, it is reallocated smaller (no large allocation kept for a small body)."""
    buf = _core.OutputBuffer(min_bytes=1024)
    parts = [bytes([65 + i % 26]) * 1000 for i in range(64)]
    body = buf.build(b"[", parts, b",", b"]")
    room = buf.capacity
    del body
    parts.append(b"x" * (room - len(parts) * 1001))  # past the room by a few bytes
    body = buf.build(b"[", parts, b",", b"]")
    assert buf.resized == 1 and buf.capacity == len(body) + len(body) // 16
    assert body == ref.assemble(b"[", parts, b",", b"]")
    del body
    del parts[10:]
    buf.truncate(10)
    body = buf.build(b"[", parts, b",", b"]")
    assert buf.resized == 2 and buf.capacity == len(body) + len(body) // 16
    assert body == ref.assemble(b"[", parts, b",", b"]")
    assert hash(body) == hash(bytes(bytearray(body)))


def test_output_buffer_keeps_no_small_body() -> None:
    buf = _core.OutputBuffer(min_bytes=1 << 20)
    assert buf.build(b"", [b"abc"], b"", b"") == b"abc"
    assert buf.holding == 0
    buf = _core.OutputBuffer(min_bytes=0)
    buf.build(b"", [b"abc"], b"", b"")
    assert buf.holding == 3
    buf.clear()
    assert buf.holding == 0


# -- the fragment cache -----------------------------------------------------------------


class FragmentCacheMachine(RuleBasedStateMachine):
    """Drive ``_core.FragmentCache`` and the reference with the same operations."""

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.core: Any = None
        self.ref: Any = None

    @initialize(max_bytes=st.integers(min_value=0, max_value=96))
    def make(self, max_bytes: int) -> None:
        self.core = _core.FragmentCache(max_bytes)
        self.ref = ref.FragmentCache(max_bytes)

    @rule(
        target=keys,
        key=st.one_of(st.integers(0, 12), st.tuples(st.binary(max_size=2), st.just("f"))),
    )
    def new_key(self, key: object) -> object:
        return key

    @rule(key=keys, value=st.binary(max_size=40), nbytes=st.none() | st.integers(0, 60))
    def put(self, key: object, value: bytes, nbytes: int | None) -> None:
        if nbytes is None:
            assert self.core.put(key, value) is None
            self.ref.put(key, value)
        else:
            assert self.core.put(key, value, nbytes) is None
            self.ref.put(key, value, nbytes)

    @rule(key=keys)
    def put_none(self, key: object) -> None:
        with pytest.raises(ValueError):
            self.core.put(key, None)
        with pytest.raises(ValueError):
            self.ref.put(key, None)

    @rule(key=keys)
    def get(self, key: object) -> None:
        got = self.core.get(key)
        assert got == self.ref.get(key)
        assert got is None or isinstance(got, bytes)

    @rule(key=keys)
    def contains(self, key: object) -> None:
        assert (key in self.core) == (key in self.ref)

    @rule()
    def clear(self) -> None:
        self.core.clear()
        self.ref.clear()

    @invariant()
    def same_state(self) -> None:
        c, r = self.core, self.ref
        assert (len(c), c.nbytes, c.hits, c.misses, c.evictions) == (
            len(r),
            r.nbytes,
            r.hits,
            r.misses,
            r.evictions,
        )
        assert c.max_bytes == r.max_bytes
        assert 0 <= c.nbytes <= c.max_bytes


FragmentCacheMachine.TestCase.settings = settings(
    max_examples=400, stateful_step_count=50, deadline=None
)
TestFragmentCacheAgainstReference = FragmentCacheMachine.TestCase


ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 8), st.binary(max_size=32), st.just(-1)),
        st.tuples(st.just("put"), st.integers(0, 8), st.binary(max_size=8), st.integers(0, 40)),
        st.tuples(st.just("get"), st.integers(0, 8), st.just(b""), st.just(-1)),
        st.tuples(st.just("clear"), st.just(0), st.just(b""), st.just(-1)),
    ),
    max_size=80,
)


@FAST
@given(st.integers(min_value=0, max_value=80), ops)
def test_fragment_cache_op_lists_match_reference(
    max_bytes: int, seq: list[tuple[str, int, bytes, int]]
) -> None:
    core = _core.FragmentCache(max_bytes)
    model = ref.FragmentCache(max_bytes)
    for op, key, value, nbytes in seq:
        if op == "put":
            core.put(key, value, nbytes)
            model.put(key, value, nbytes)
        elif op == "get":
            assert core.get(key) == model.get(key)
        else:
            core.clear()
            model.clear()
        assert len(core) == len(model)
        assert core.nbytes == model.nbytes
        assert (core.hits, core.misses, core.evictions) == (
            model.hits,
            model.misses,
            model.evictions,
        )


def test_fragment_cache_lru_order_and_counters() -> None:
    cache = _core.FragmentCache(10)
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # a is now the most recent
    cache.put("c", b"cccc")  # 12 bytes > 10: evict b, the least recently used
    assert "b" not in cache
    assert "a" in cache
    assert "c" in cache
    assert cache.get("b") is None
    assert (cache.hits, cache.misses, cache.evictions, cache.nbytes, len(cache)) == (1, 1, 1, 8, 2)
    cache.put("big", b"x" * 11)  # larger than the whole budget: not stored, nothing evicted
    assert "big" not in cache
    assert len(cache) == 2
    cache.put("a", b"z" * 11)  # replacing with an oversize value drops the old entry
    assert "a" not in cache
    assert cache.nbytes == 4
    cache.clear()
    assert (len(cache), cache.nbytes) == (0, 0)
    assert cache.hits == 1  # counters survive clear()


def test_fragment_cache_shares_the_value_object() -> None:
    cache = _core.FragmentCache(1000)
    value = b"frozen" * 10
    cache.put(("h", "openai.chat"), value)
    assert cache.get(("h", "openai.chat")) is value


def test_fragment_cache_charges_explicit_sizes() -> None:
    cache, model = _core.FragmentCache(100), ref.FragmentCache(100)
    record = ("a record", b"holding bytes")
    for c in (cache, model):
        c.put("r", record, 60)
        c.put("s", "text")
        c.put("t", b"y" * 10, 50)  # 60 + 4 + 50 > 100: "r" is evicted
    assert (cache.nbytes, len(cache), cache.evictions) == (54, 2, 1)
    assert (model.nbytes, len(model), model.evictions) == (54, 2, 1)
    assert cache.get("r") is None
    assert cache.get("s") == "text"


def test_fragment_cache_refuses_none() -> None:
    cache = _core.FragmentCache(100)
    cache.put("k", b"v")
    with pytest.raises(ValueError):
        cache.put("k", None)
    assert cache.get("k") == b"v"
    assert (len(cache), cache.nbytes) == (1, 1)


def test_fragment_cache_rejects_negative_budget() -> None:
    with pytest.raises(ValueError):
        _core.FragmentCache(-1)
    with pytest.raises(ValueError):
        ref.FragmentCache(-1)
    assert _core.FragmentCache().max_bytes == ref.FragmentCache().max_bytes == 256 * 1024 * 1024


# -- stability across processes ---------------------------------------------------------

_FIXED_INPUTS = [b"", b"a", b"\x00" * 1000, "héllo ✓ 𝄞".encode(), bytes(range(256)) * 5]


def test_digests_are_stable_across_processes() -> None:
    script = textwrap.dedent(
        """
        import srt._core as c
        inputs = [b"", b"a", b"\\x00" * 1000, "héllo ✓ 𝄞".encode(), bytes(range(256)) * 5]
        prefix = c.ROOT
        for data in inputs:
            d = c.digest(data)
            prefix = c.chain(prefix, d)
            print(d.hex(), prefix.hex())
        print(*[p.hex() for p in c.chain_many(c.ROOT, [c.digest(x) for x in inputs])])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        # Another hash seed: str hashing differs, the digests must not.
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONIOENCODING": "utf-8"},
    )
    lines = proc.stdout.splitlines()
    prefix = _core.ROOT
    expected = []
    for data in _FIXED_INPUTS:
        d = _core.digest(data)
        prefix = _core.chain(prefix, d)
        expected.append(f"{d.hex()} {prefix.hex()}")
    hashes = [_core.digest(x) for x in _FIXED_INPUTS]
    expected.append(" ".join(p.hex() for p in _core.chain_many(_core.ROOT, hashes)))
    assert lines == expected
    assert lines[1].split()[0] == "a96faf705af16834e6c632b61e964e1f"
    assert lines[-1].split() == [p.hex() for p in ref.chain_many(ref.ROOT, hashes)]


def test_output_buffer_grows_the_body_before_last_when_the_caller_holds_each_body() -> None:
    """``body = build(...)`` in a loop holds each body until the next build returns:
    the buffer keeps the body before last (``spare``) and, once the caller lets it go,
    grows it in place, writing two turns' worth of new bytes; bodies the caller holds
    never change. A caller that drops each body first lets the spare go after eight
    such builds."""
    buf = _core.OutputBuffer(min_bytes=1024)
    parts = [bytes([65 + i % 26]) * 1000 for i in range(64)]
    body = buf.build(b"[", parts, b",", b"]")
    for turn in range(12):
        parts.append(bytes([97 + turn]) * 30)
        copied = buf.copied
        held = (body, bytes(bytearray(body)))
        body = buf.build(b"[", parts, b",", b"]")  # the previous body is still held here
        assert body == ref.assemble(b"[", parts, b",", b"]")
        assert held[0] == held[1] and held[0] is not body
        if turn >= 1:  # the body before last was free: grown, two new parts and the tail
            assert buf.copied - copied == 2 * 31 + 1
            assert buf.spare > 0
        del held
    assert buf.resized == 0
    ids = set()
    for turn in range(10):  # now dropped before each build: the last body is grown
        del body
        parts.append(b"z" * 30)
        body = buf.build(b"[", parts, b",", b"]")
        ids.add(id(body))
        assert body == ref.assemble(b"[", parts, b",", b"]")
        assert (buf.spare > 0) == (turn < 7)  # let go after eight such builds in a row
    assert len(ids) == 1
