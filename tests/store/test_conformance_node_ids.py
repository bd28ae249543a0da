"""Store conformance: node ids outlive transactions (a handle's head, a user's cursor, a
gateway's response id), so a node id is never given again once gc collected it; and
``move_head`` moves a head only onto a stored node.

Every test runs on each engine of ``engines_support.ENGINES`` through the Store protocol alone.
"""

from __future__ import annotations

import pytest
from engines_support import EngineUnderTest
from helpers import body, conversation, counts, head_of, new_session, nodes

import srt
from srt.store import Store


def _replace_newest(store: Store, sid: int, ids: list[int]) -> tuple[int, bytes]:
    """Another writer rewinds the session off its newest node, collects it, and appends
    a different reply below the same parent: (the new node's id, its prefix hash)."""
    store.move_head(sid, ids[-1], ids[-2])
    assert store.gc().nodes == 1  # the newest node (the largest id) is gone
    prefix = store.node_prefix(ids[-2])
    (new,) = store.append(
        sid, ids[-2], ids[-2], len(ids) - 1, nodes([body("assistant", "another")], prefix)
    )
    return new, store.node_prefix(new)


def test_a_collected_node_id_is_never_given_again(engine: EngineUnderTest) -> None:
    """A handle holding the old head (another process's) must see that the head moved:
    its compare-and-swap fails, its append is a conflict, not a damaged file, and the old
    id reads as gone rather than as the new node's history."""
    ours, theirs = engine.open(), engine.open()
    sid, ids = new_session(ours, "a", conversation(3))
    old_prefix = ours.node_prefix(ids[-1])
    new, new_prefix = _replace_newest(theirs, sid, ids)
    assert new_prefix != old_prefix
    # a rewind from the head this handle saw: the other writer's reply must stay the head
    with pytest.raises(srt.ConflictError):
        ours.move_head(sid, ids[-1], ids[0])
    assert head_of(ours, "a") == new
    # an append below the head this handle saw: a conflict (refresh and retry)
    with pytest.raises(srt.ConflictError):
        ours.append(
            sid,
            ids[-1],
            ids[-1],
            3,
            nodes([body("user", "next")], old_prefix),
            parent_prefix=old_prefix,
        )
    assert head_of(ours, "a") == new
    # the collected id names nothing now, never the other writer's reply
    with pytest.raises(srt.SrtError):
        ours.node_prefix(ids[-1])
    assert ours.chain(new)[-1][0] == new
    assert new > ids[-1]


def test_ids_stay_new_after_a_reopen(engine: EngineUnderTest) -> None:
    """The promise holds across handles opened after the collection (the file or the
    database remembers the largest id given, not a handle)."""
    store = engine.open()
    sid, ids = new_session(store, "a", conversation(4))
    store.move_head(sid, ids[-1], ids[0])
    assert store.gc().nodes == 3
    store.close()
    again = engine.open()
    (new,) = again.append(
        sid, ids[0], ids[0], 1, nodes([body("assistant", "x")], again.node_prefix(ids[0]))
    )
    assert new > ids[-1]


# -- move_head's target ------------------------------------------------------------------


def test_move_head_refuses_a_node_that_is_not_stored(store: Store) -> None:
    """A head names a stored node or nothing: a target never stored, or collected by gc,
    is a ConflictError (refresh and retry), and nothing is written."""
    sid, ids = new_session(store, "a", conversation(3))
    before = counts(store)
    row = store.get_session("a")
    for missing in (ids[-1] + 1000, -1, 0):
        with pytest.raises(srt.ConflictError, match="not stored"):
            store.move_head(sid, ids[-1], missing)
    assert store.get_session("a") == row and counts(store) == before
    # a node gc collected
    store.move_head(sid, ids[-1], ids[0])
    assert store.gc().nodes == 2
    with pytest.raises(srt.ConflictError, match="not stored"):
        store.move_head(sid, ids[0], ids[-1])
    assert head_of(store, "a") == ids[0]


def test_move_head_onto_another_sessions_chain_is_a_fork(store: Store) -> None:
    """Nodes belong to no session: moving a head onto a node of another session's
    chain is allowed (as a fork's head is), and the session then reads and extends that
    chain, the prefix hash following its new head."""
    sid, ids = new_session(store, "a", conversation(3))
    _other, others = new_session(store, "b", conversation(2, "u"))
    store.move_head(sid, ids[-1], others[-1])
    row = store.get_session("a")
    assert row is not None and row.head == others[-1]
    assert row.head_prefix in (None, store.node_prefix(others[-1]))
    assert [r[0] for r in store.chain(row.head)] == others
    prefix = store.node_prefix(others[-1])
    (added,) = store.append(
        sid, others[-1], others[-1], 2, nodes([body("user", "on b")], prefix), parent_prefix=prefix
    )
    assert [r[0] for r in store.chain(added)] == [*others, added]
    assert head_of(store, "b") == others[-1]  # the other session is untouched
    # the old chain is garbage now: gc collects it, and neither session loses a node
    assert store.gc().nodes == 3
    assert store.chain(added)[-1][0] == added
