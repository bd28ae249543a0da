"""``srt._core.OutputBuffer`` against ``reference_core``'s assembly: a state machine that
drives it as a session does, and the body grown, rewritten or kept in place (the same
``bytes`` object when nothing changed), never changed while its caller holds it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

import reference_core as ref
from srt import _core


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
