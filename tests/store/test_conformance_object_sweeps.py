"""Store conformance: what a sweep of objects by a layer above needs, on every engine of
``engines_support.ENGINES``: ``scan_objects(kind=...)`` (every live object of one kind, in
insertion order) and ``delete_object(written_before=...)`` (a deletion that a writer
rewriting the object meanwhile wins)."""

from __future__ import annotations

import time

import pytest

import srt
from srt.store import Store


def test_scan_objects_of_one_kind_in_insertion_order(store: Store) -> None:
    made = []
    for i in range(9):
        kind, scope = ("text", f"t{i % 2}") if i % 3 else ("record", "t0")
        store.put_object(kind, scope, f"k{i}", bytes([i]))
        if kind == "text":
            made.append((scope, f"k{i}"))
    store.put_object("text", "t0", "gone", b"x", expires=time.time() - 1)
    store.put_object("text", "t1", "k1", b"again")  # replaced in place
    for batch in (1, 2, 500):
        got = [(o.scope, o.key) for o in store.scan_objects(batch=batch, kind="text")]
        assert got == made
    assert [o.kind for o in store.scan_objects(kind="record")] == ["record"] * 3
    assert list(store.scan_objects(kind="none")) == []
    assert len(list(store.scan_objects())) == 9  # every kind, as before


@pytest.mark.parametrize("kind", ["", 7, b"text"])
def test_scan_objects_refuses_a_bad_kind(store: Store, kind: object) -> None:
    with pytest.raises(srt.ConfigError, match="kind"):
        list(store.scan_objects(kind=kind))  # type: ignore[arg-type]


def test_delete_written_before_spares_an_object_written_since(store: Store) -> None:
    store.put_object("text", "t", "old", b"a")
    store.put_object("text", "t", "new", b"b")
    before = store.get_object("text", "t", "new")
    assert before is not None
    cut = before.updated  # "new" was written at this time: not before it
    assert store.delete_object("text", "t", "new", written_before=cut) is False
    store.put_object("text", "t", "new", b"b")  # rewritten (the same bytes): newer still
    assert store.delete_object("text", "t", "new", written_before=cut) is False
    assert store.get_object("text", "t", "new") is not None
    assert store.delete_object("text", "t", "old", written_before=cut + 1e-3) is True
    assert store.get_object("text", "t", "old") is None
    assert store.delete_object("text", "t", "old", written_before=time.time() + 60) is False
    later = time.time() + 60
    assert store.delete_object("text", "t", "new", written_before=later) is True
    assert store.delete_object("text", "t", "new") is False


@pytest.mark.parametrize("when", [True, "1", float("nan"), float("inf")])
def test_delete_written_before_refuses_what_is_no_time(store: Store, when: object) -> None:
    store.put_object("text", "t", "k", b"a")
    with pytest.raises(srt.ConfigError, match="written_before"):
        store.delete_object("text", "t", "k", written_before=when)  # type: ignore[arg-type]
    assert store.get_object("text", "t", "k") is not None
