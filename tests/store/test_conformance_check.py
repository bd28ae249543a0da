"""Store conformance: an append's checked object (``ObjectPut(check=True)``) writes
nothing of the object, and the append goes only while the object holds the expected
bytes, in each of an engine's ways to write an append's conditions (one condition, two,
with a deadline), on every engine of ``engines_support.ENGINES``."""

from __future__ import annotations

import time

import pytest
from helpers import conversation, new_session, nodes

import srt
from srt.store import ObjectPut, Store


@pytest.mark.parametrize("how", ["alone", "with a swap", "with a deadline"])
def test_a_checked_object_is_required_and_left_as_it_was(store: Store, how: str) -> None:
    sid, ids = new_session(store, "a", conversation(1))
    store.put_object("count", "s", "k", b"1")
    store.put_object("count", "s", "other", b"a")
    before = store.get_object("count", "s", "k")
    assert before is not None
    more = nodes(conversation(3)[1:], store.node_prefix(ids[-1]))
    extra = [ObjectPut("count", "s", "other", b"b", expect=b"a")] if how == "with a swap" else []
    soon = time.monotonic() + 30 if how == "with a deadline" else None

    def append(head: int, depth: int, expect: bytes) -> list[int]:
        check = ObjectPut("count", "s", "k", b"ignored", expect=expect, check=True)
        objects = [check, *extra]
        return store.append(
            sid, head, head, depth, more[depth - 1 : depth], objects=objects, deadline=soon
        )

    with pytest.raises(srt.ConflictError):
        append(ids[-1], 1, b"2")  # (another value: refused, nothing written)
    row = store.get_session("a")
    assert row is not None and row.head == ids[-1]
    assert store.get_object("count", "s", "other").value == b"a"  # type: ignore[union-attr]
    new = append(ids[-1], 1, b"1")
    row = store.get_session("a")
    assert row is not None and row.head == new[-1]
    after = store.get_object("count", "s", "k")
    assert after == before  # (value, node, expires, created and updated: not written)
    if how == "with a swap":
        assert store.get_object("count", "s", "other").value == b"b"  # type: ignore[union-attr]


def test_a_check_needs_its_expected_value(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(1))
    more = nodes(conversation(2)[1:], store.node_prefix(ids[-1]))
    bad = ObjectPut("count", "s", "k", b"1", check=True)
    with pytest.raises(srt.ConfigError, match="expected value"):
        store.append(sid, ids[-1], ids[-1], 1, more, objects=[bad])
    row = store.get_session("a")
    assert row is not None and row.head == ids[-1]
