"""Earlier heads against hostile and careful use: listing and restoring after forks,
deletes and gc; a restore racing another handle; a delete that fails half way changes
nothing (the session row and its records go in one transaction)."""

from __future__ import annotations

from typing import Any

import pytest

import srt
from srt.history import KIND


def _chat(s: srt.Session, turns: int, tag: str) -> None:
    s.append({"role": "user", "content": f"first {tag}"})
    for i in range(turns):
        s.append({"role": "assistant", "content": f"a{i} {tag}"})
        s.append({"role": "user", "content": f"q{i} {tag}"})


def test_a_delete_that_fails_half_way_changes_nothing(
    rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session row and its records go in one transaction: a failure after the
    records were deleted inside it leaves the session whole, records and all."""
    import srt.store.sqlite.store as engine

    keep = rt.session("keep")
    _chat(keep, 2, "keep")
    old = rt.session("old")
    _chat(old, 3, "old")
    old.rewind(2)
    old.edit(1, {"role": "assistant", "content": "edited"})
    assert len(old.history()) == 2
    old_id = rt.store.get_session("old").id  # type: ignore[union-attr]
    real = engine.drop_session_objects

    def broken(conn: Any, session: int) -> int:
        assert real(conn, session) == 2  # gone, inside the transaction...
        raise srt.StoreError("the disk went away")  # ...which then fails

    monkeypatch.setattr(engine, "drop_session_objects", broken)
    with pytest.raises(srt.StoreError, match="the disk went away"):
        rt.delete("old")
    monkeypatch.setattr(engine, "drop_session_objects", real)
    assert [i.name for i in rt.sessions()] == ["keep", "old"]
    assert len(rt.session("old").history()) == 2
    new = rt.session("new")
    _chat(new, 1, "new")
    assert new.history() == []
    rt.delete("old")
    assert rt.store.list_objects(KIND, str(old_id)) == []


def test_earlier_heads_after_forks_deletes_and_gc(store_rt: srt.Runtime) -> None:
    rt = store_rt
    rt.set_history_retention(3600)
    parent = rt.session("parent")
    _chat(parent, 4, "p")
    full = parent.messages_bytes()
    parent.rewind(3)
    child = parent.fork("child")
    child.append({"role": "assistant", "content": "child's own"})
    child.rewind(2)
    parent_id = rt.store.get_session("parent").id  # type: ignore[union-attr]
    assert [r.action for r in parent.history()] == ["rewind"]
    assert [r.action for r in child.history()] == ["rewind"]  # a fork has its own list
    rt.delete("parent")
    assert rt.store.list_objects(KIND, str(parent_id)) == []
    rt.gc()
    # The child's earlier head is kept by its record through gc, and restores exactly.
    record = child.history()[0]
    assert record.messages == len(full) - 3 + 1
    child.restore(record)
    assert child.messages_bytes() == [*full[: len(full) - 3], child.messages_bytes()[-1]]
    assert child.messages()[-1] == {"role": "assistant", "content": "child's own"}
    # The restore recorded the head it left; restoring that brings it back.
    assert [r.action for r in child.history()] == ["restore", "rewind"]
    child.restore(child.history()[0].key)
    assert len(child) == len(full) - 3 - 1
    assert rt.store.verify().ok


def test_a_restore_racing_another_handle_writes_nothing(store_rt: srt.Runtime) -> None:
    rt = store_rt
    s = rt.session("race")
    _chat(s, 3, "r")
    s.rewind(2)
    other = rt.session("race")
    other.append({"role": "assistant", "content": "moved on"})
    head, records = other.head, other.history()
    with pytest.raises(srt.ConflictError):
        s.restore(s.history()[0])
    assert rt.session("race").head == head
    assert rt.session("race").history() == records


@pytest.mark.parametrize("key", [None, 5, "", "0000.0", b"x", 1.5])
def test_restoring_what_is_no_record_is_a_session_error(rt: srt.Runtime, key: Any) -> None:
    s = rt.session("keys")
    _chat(s, 2, "k")
    s.rewind(1)
    head = s.head
    with pytest.raises(srt.SessionError, match="no earlier head"):
        s.restore(key)
    assert s.head == head
