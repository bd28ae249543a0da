"""Node ids are never given again, on SQLite as on PostgreSQL (the engine-free promise is
in ``tests/store/test_conformance_node_ids.py``). Here: what a reused id did to a user's
session handle, and the floor SQLite's gc leaves (``statements.NODES_FLOOR_KEY``) kept
through an append that stores no node."""

from __future__ import annotations

import pytest

import srt
from support import connect


def test_a_stale_handle_cannot_rewind_over_another_writers_reply(db_path: str) -> None:
    """Two handles on one session (two processes): one rewinds off the newest message,
    its earlier head expires and gc collects it, then it appends another reply. The
    other handle still holds the old head's id; its rewind must be refused, not
    succeed because the new reply was given the same id and silently drop it."""
    with srt.Runtime(db_path) as ours, srt.Runtime(db_path, history_retention=0) as theirs:
        mine = ours.session("a")
        mine.append({"role": "user", "content": "one"})
        mine.append({"role": "assistant", "content": "two"})
        old_head = mine.head
        other = theirs.session("a")
        other.rewind(1)
        assert theirs.gc().nodes == 1
        other.append({"role": "assistant", "content": "another two"})
        with pytest.raises(srt.ConflictError):
            mine.rewind(1)
        assert [m["content"] for m in theirs.session("a").messages()] == ["one", "another two"]
        assert other.head != old_head


def test_no_collected_id_is_given_again_after_appends_that_store_no_node(
    db_path: str,
) -> None:
    """gc collects the largest ids; the next append finds its message already stored below
    its parent (a node reused, none stored), and the one after stores a node: it must get
    an id above every collected one (the floor gc left outlives the append that stored
    nothing, on the connection's fast path too), in one gc's batches or its one
    transaction alike."""
    with srt.Runtime(db_path, history_retention=0) as rt:
        x = rt.session("x")
        x.append({"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"})
        y = x.fork("y", at=1)
        y.append({"role": "assistant", "content": "B"})  # below u1, beside a1
        x.append({"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"})
        collected = x.head
        assert collected is not None
        x.rewind(2)
        assert rt.gc().nodes == 2
        w = x.fork("w", at=1)
        w.append({"role": "assistant", "content": "B"})  # y's node: nothing stored
        assert w.head == y.head
        w.append({"role": "user", "content": "C"})
        assert w.head is not None and w.head > collected
        assert [m["content"] for m in w.messages()] == ["u1", "B", "C"]
        with connect(db_path) as conn:
            assert conn.execute("SELECT count(*) FROM srt_meta WHERE key = 'nodes_floor'").get == 0
        assert rt.store.verify().ok
