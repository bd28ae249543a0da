"""Store conformance: compare-and-swap object writes (``put_object(expect=...)`` and an
append's ``ObjectPut(expect=...)``), on every engine of ``engines_support.ENGINES``."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import pytest
from engines_support import EngineUnderTest
from helpers import conversation, new_session, nodes

import srt
from rel_support.waits import WAIT_S, joined
from srt.store import ObjectPut, Store


def _value(store: Store, key: str = "k") -> bytes | None:
    got = store.get_object("count", "s", key)
    return None if got is None else got.value


def test_swap_writes_over_the_value_read_and_keeps_its_place(store: Store) -> None:
    _sid, ids = new_session(store, "a", conversation(2))
    store.put_object("count", "s", "first", b"x")
    store.put_object("count", "s", "k", b"1", expires=time.time() + 3600)
    store.put_object("count", "s", "last", b"y")
    assert store.put_object("count", "s", "k", b"2", node=ids[-1], expect=b"1") is True
    got = store.get_object("count", "s", "k")
    assert got is not None
    assert (got.value, got.node, got.expires) == (b"2", ids[-1], None)
    assert [r.key for r in store.list_objects("count", "s")] == ["first", "k", "last"]
    assert store.put_object("count", "s", "k", b"", expect=b"2") is True  # empty bytes too
    assert store.put_object("count", "s", "k", b"3", expect=b"") is True
    assert _value(store) == b"3"


def test_swap_refuses_a_value_another_writer_changed(store: Store) -> None:
    store.put_object("count", "s", "k", b"1")
    store.put_object("count", "s", "k", b"2")  # another writer, after our read of b"1"
    assert store.put_object("count", "s", "k", b"from 1", expect=b"1") is False
    assert _value(store) == b"2"
    # A prefix or an extension of the stored bytes is another value.
    assert store.put_object("count", "s", "k", b"x", expect=b"") is False
    assert store.put_object("count", "s", "k", b"x", expect=b"22") is False
    assert _value(store) == b"2"


def test_swap_refuses_an_object_deleted_expired_or_never_written(store: Store) -> None:
    # No object at all yet (on SQLite: not even the table).
    assert store.put_object("count", "s", "k", b"1", expect=b"0") is False
    assert store.get_object("count", "s", "k") is None
    store.put_object("count", "s", "k", b"1")
    assert store.delete_object("count", "s", "k") is True
    assert store.put_object("count", "s", "k", b"2", expect=b"1") is False
    assert store.get_object("count", "s", "k") is None
    store.put_object("count", "s", "old", b"1", expires=time.time() - 1)
    assert store.put_object("count", "s", "old", b"2", expect=b"1") is False
    assert store.get_object("count", "s", "old") is None  # still expired, not revived
    assert store.put_object("count", "s", "old", b"3", if_absent=True) is True


def test_swap_checks_its_arguments_and_node(store: Store) -> None:
    store.put_object("count", "s", "k", b"1")
    with pytest.raises(srt.ConfigError, match="expected value must be bytes"):
        store.put_object("count", "s", "k", b"2", expect="1")  # type: ignore[arg-type]
    with pytest.raises(srt.ConfigError, match="not both"):
        store.put_object("count", "s", "k", b"2", expect=b"1", if_absent=True)
    with pytest.raises(srt.ConflictError, match="not stored"):
        store.put_object("count", "s", "k", b"2", node=10**9, expect=b"1")
    assert _value(store) == b"1"


def test_append_with_a_swapped_object_writes_all_or_nothing(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(1))
    store.put_object("count", "s", "k", b"1")
    more = nodes(conversation(3)[1:], store.node_prefix(ids[-1]))
    stale = ObjectPut("count", "s", "k", b"3", expect=b"2")
    side = ObjectPut("count", "s", "side", b"x")
    with pytest.raises(srt.ConflictError, match="no longer the one read"):
        store.append(sid, ids[-1], ids[-1], 1, more[:1], objects=[side, stale])
    row = store.get_session("a")
    assert row is not None and row.head == ids[-1]  # the head did not move
    assert store.get_object("count", "s", "side") is None
    assert _value(store) == b"1"
    fresh = ObjectPut("count", "s", "k", b"2", expect=b"1", at_head=True)
    new = store.append(sid, ids[-1], ids[-1], 1, more[:1], objects=[side, fresh])
    got = store.get_object("count", "s", "k")
    assert got is not None and (got.value, got.node) == (b"2", new[-1])
    assert _value(store, "side") == b"x"
    taken = ObjectPut("count", "s", "k", b"9", if_absent=True)
    with pytest.raises(srt.ConflictError, match="no longer the one read"):
        store.append(sid, new[-1], new[-1], 2, more[1:], objects=[taken])
    row = store.get_session("a")
    assert row is not None and row.head == new[-1]
    late = ObjectPut("count", "s", "k", b"3", expect=b"1", at_head=True)  # filed at the head
    with pytest.raises(srt.ConflictError, match="no longer the one read"):
        store.append(sid, new[-1], new[-1], 2, more[1:], objects=[late])
    late = dataclasses.replace(late, at_head=False)
    soon = time.monotonic() + 5  # (with a deadline)
    with pytest.raises(srt.ConflictError, match="no longer the one read"):
        store.append(sid, new[-1], new[-1], 2, more[1:], objects=[late], deadline=soon)
    row = store.get_session("a")
    assert row is not None and row.head == new[-1]
    assert _value(store) == b"2"
    claim = ObjectPut("count", "s", "new", b"0", if_absent=True)
    store.append(sid, new[-1], new[-1], 2, more[1:], objects=[claim], deadline=soon)
    assert _value(store, "new") == b"0"


def test_an_append_whose_second_condition_fails_writes_neither(store: Store) -> None:
    # Two conditional objects, the first holding: the second's failure takes back the
    # first's write too, with the append's (in one statement or one transaction).
    sid, ids = new_session(store, "a", conversation(1))
    store.put_object("count", "s", "k", b"1")
    store.put_object("count", "s", "j", b"5")
    more = nodes(conversation(2)[1:], store.node_prefix(ids[-1]))
    holds = ObjectPut("count", "s", "k", b"2", expect=b"1")
    claim = ObjectPut("count", "s", "fresh", b"0", if_absent=True)
    stale = ObjectPut("count", "s", "j", b"7", expect=b"6")
    for objects in ([holds, stale], [claim, holds, stale], [holds, claim, stale]):
        with pytest.raises(srt.ConflictError, match="no longer the one read"):
            store.append(sid, ids[-1], ids[-1], 1, more, objects=objects)
        row = store.get_session("a")
        assert row is not None and row.head == ids[-1]
        assert (_value(store), _value(store, "j")) == (b"1", b"5")
        assert _value(store, "fresh") is None
    ok = ObjectPut("count", "s", "j", b"6", expect=b"5")
    new = store.append(sid, ids[-1], ids[-1], 1, more, objects=[holds, claim, ok])
    assert len(new) == len(more)
    assert (_value(store), _value(store, "j"), _value(store, "fresh")) == (b"2", b"6", b"0")


def _by_put(st: Store) -> Callable[[bytes, bytes], bool]:
    return lambda old, new: st.put_object("count", "s", "k", new, expect=old)


def _by_append(st: Store) -> Callable[[bytes, bytes], bool]:
    sid = st.create_session("counter", None, exist_ok=True).id

    def swap(old: bytes, new: bytes) -> bool:
        try:
            st.append(
                sid, None, None, 0, [], objects=[ObjectPut("count", "s", "k", new, expect=old)]
            )
        except srt.ConflictError:
            return False
        return True

    return swap


@pytest.mark.parametrize("way", [_by_put, _by_append], ids=["put_object", "append"])
@pytest.mark.parametrize("handles", [8, 1], ids=["8-handles", "1-handle"])
def test_read_modify_write_increments_race_to_the_exact_count(
    engine: EngineUnderTest, way: Callable[[Store], Callable[[bytes, bytes], bool]], handles: int
) -> None:
    """Eight threads (each on a handle of its own, i.e. its own connection, or all on one
    handle) each add 1 to a counter ``ROUNDS`` times by read, add, compare-and-swap,
    retrying when another got in first: no increment is lost."""
    rounds = 15
    stores = [engine.open() for _ in range(handles)]
    stores[0].put_object("count", "s", "k", b"0")
    swaps = [way(stores[i % handles]) for i in range(8)]
    start = threading.Barrier(8, timeout=WAIT_S)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        st, swap = stores[i % handles], swaps[i]
        try:
            start.wait()
            for _ in range(rounds):
                while True:
                    old = _value(st)
                    assert old is not None
                    if swap(old, str(int(old) + 1).encode()):
                        break
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    joined(*threads)
    assert errors == []
    assert _value(stores[0]) == str(8 * rounds).encode()
