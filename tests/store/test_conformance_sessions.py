"""Store conformance: sessions, chains, compare-and-swap, dedup and forks.

Every test runs on each engine of ``engines_support.ENGINES`` through the Store protocol
alone: no SQL, no file, nothing engine-specific.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from engines_support import EngineUnderTest
from helpers import body, conversation, counts, extend, head_of, new_session, nodes

import srt
from rel_support.waits import joined
from srt import _core
from srt.store import Fault, NewNode, ObjectPut, SessionRow, Store

# -- sessions ------------------------------------------------------------------------------


def test_create_get_and_list(store: Store) -> None:
    assert store.get_session("a") is None
    row = store.create_session("a", None, exist_ok=False)
    assert isinstance(row, SessionRow)
    assert (row.name, row.head) == ("a", None) and row.created <= row.updated
    assert store.get_session("a") == row
    _sid, ids = new_session(store, "b", conversation(3))
    infos = store.list_sessions()
    assert [i.name for i in infos] == ["a", "b"]
    assert [i.messages for i in infos] == [0, 3]
    assert infos[0].head_prefix is None
    assert infos[1].head_prefix == store.node_prefix(ids[-1]).hex()
    # A session row read back may carry its head's prefix hash (a new handle then need
    # not read it); when it does, it is the stored one.
    got = store.get_session("b")
    assert got is not None and got.head == ids[-1]
    assert got.head_prefix in (None, store.node_prefix(ids[-1]))


def test_node_depth_counts_the_chain(store: Store) -> None:
    _sid, ids = new_session(store, "a", conversation(4))
    assert [store.node_depth(n) for n in ids] == [1, 2, 3, 4]
    assert store.node_depth(ids[-1]) == Store.node_depth(store, ids[-1])  # the default agrees
    with pytest.raises(srt.CorruptionError):
        store.node_depth(ids[-1] + 10_000)


def test_create_an_existing_name(store: Store) -> None:
    first = store.create_session("a", None, exist_ok=False)
    assert store.create_session("a", None, exist_ok=True) == first
    with pytest.raises(srt.SessionExistsError):
        store.create_session("a", None, exist_ok=False)
    assert [i.name for i in store.list_sessions()] == ["a"]


def test_create_at_a_head_checks_its_prefix(store: Store) -> None:
    _sid, ids = new_session(store, "a", conversation(2))
    prefix = store.node_prefix(ids[-1])
    fork = store.create_session("fork", ids[-1], exist_ok=False, head_prefix=prefix)
    assert fork.head == ids[-1]
    with pytest.raises(srt.ConflictError):
        store.create_session("stale", ids[-1], exist_ok=False, head_prefix=b"\x07" * 16)
    assert store.get_session("stale") is None


def test_delete_and_rename(store: Store) -> None:
    new_session(store, "a", conversation(2))
    store.create_session("b", None, exist_ok=False)
    with pytest.raises(srt.SessionExistsError):
        store.rename_session("a", "b")
    with pytest.raises(srt.SessionNotFoundError):
        store.rename_session("nope", "c")
    store.rename_session("a", "c")
    assert store.get_session("a") is None
    assert [i.name for i in store.list_sessions()] == ["b", "c"]
    store.delete_session("c")
    with pytest.raises(srt.SessionNotFoundError):
        store.delete_session("c")
    assert [i.name for i in store.list_sessions()] == ["b"]


def test_a_deleted_sessions_id_is_never_given_again(store: Store) -> None:
    """Objects scoped by a session's id (a task's started tool calls) may outlive it: the
    next session must not inherit them. SQLite gave the highest id again (before v9)."""
    first = store.create_session("a", None, exist_ok=False).id
    last = store.create_session("b", None, exist_ok=False).id
    store.delete_session("b")
    store.delete_session("a")
    again = store.create_session("b", None, exist_ok=False).id
    assert again not in (first, last) and again > last


def test_overview_and_tree(store: Store) -> None:
    bodies = conversation(4)
    _sid, ids = new_session(store, "main", bodies)
    store.create_session("alt", ids[1], exist_ok=False)
    extend(store, "alt", [body("user", "a different question")])
    store.create_session("empty", None, exist_ok=False)
    rows = {o.name: o for o in store.overview()}
    assert (rows["main"].messages, rows["main"].turns, rows["main"].branches) == (4, 2, 2)
    assert (rows["alt"].messages, rows["alt"].turns, rows["alt"].branches) == (3, 2, 2)
    assert rows["main"].tokens == sum((len(b) + 3) // 4 for b in bodies)
    assert (rows["empty"].messages, rows["empty"].head_prefix) == (0, None)
    top = store.tree("alt")
    assert top is not None and top.role == "user" and top.text == "t message 0"
    (second,) = top.children
    assert sorted(c.text for c in second.children) == ["a different question", "t message 2"]
    assert store.tree("empty") is None
    with pytest.raises(srt.SessionNotFoundError):
        store.tree("nope")


# -- chains ----------------------------------------------------------------------------------


def test_chain_round_trip(store: Store) -> None:
    bodies = conversation(5)
    _sid, ids = new_session(store, "a", bodies)
    rows = store.chain(ids[-1])
    assert [r[0] for r in rows] == ids
    assert [r[2] for r in rows] == bodies
    assert [r[1] for r in rows] == [_core.digest(b) for b in bodies]
    assert [r[3] for r in rows] == _core.chain_many(_core.ROOT, [r[1] for r in rows])
    assert [r[6] for r in rows] == [1, 2, 3, 4, 5]
    assert all(type(r[2]) is bytes for r in rows)
    assert store.chain(None) == []
    assert store.chain(ids[2]) == rows[:3]


def test_chain_extension_reads_what_followed_a_known_prefix(store: Store) -> None:
    _sid, _ids = new_session(store, "a", conversation(3))
    more = extend(store, "a", conversation(4, "more"))
    full = store.chain(more[-1])
    assert store.chain_extension(more[-1], 3, full[2][3]) == full[3:]
    assert store.chain_extension(more[-1], 1, full[0][3]) == full[1:]
    assert store.chain_extension(more[-1], 0, _core.ROOT) == full
    # another branch, or the wrong depth: None (the caller reloads the whole chain)
    _other, fork = new_session(store, "b", conversation(2, "other"))
    other = store.chain(fork[-1])
    assert store.chain_extension(more[-1], 2, other[1][3]) is None
    assert store.chain_extension(more[-1], 2, full[2][3]) is None
    assert store.chain_extension(more[-1], 7, full[6][3]) is None  # nothing deeper


def test_a_refresh_after_other_writers_reads_only_the_new_messages(
    engine: EngineUnderTest,
) -> None:
    with srt.Runtime(store=engine.open()) as a, srt.Runtime(store=engine.open()) as b:
        sa, sb = a.session("s"), b.session("s")
        sa.append({"role": "user", "content": "one"}, {"role": "assistant", "content": "1"})
        sb.refresh()
        sb.append({"role": "user", "content": "two", "metadata": {"pinned": True}})
        sb.append({"role": "assistant", "content": "2"})
        sa.refresh()
        assert [m["content"] for m in sa.messages()] == ["one", "1", "two", "2"]
        assert sa.messages() == sb.messages()
        assert sa.prefix_hash == sb.prefix_hash
        fresh = a.session("s")
        assert fresh.request("openai.chat", model="m") == sa.request("openai.chat", model="m")


def test_node_prefix_and_meta(store: Store) -> None:
    b = body("user", "with metadata")
    sid = store.create_session("a", None, exist_ok=False).id
    (nid,) = store.append(sid, None, None, 0, nodes([b], meta=b'{"pinned":true}'))
    assert store.node_prefix(nid) == _core.chain(_core.ROOT, _core.digest(b))
    meta = store.node_meta(nid)
    assert meta is not None and b'"pinned":true' in (
        meta if isinstance(meta, bytes) else meta.encode()
    )
    with pytest.raises(srt.CorruptionError):
        store.node_prefix(nid + 10_000)


def test_a_damaged_body_is_caught_by_chain_and_verify(engine: EngineUnderTest) -> None:
    bodies = conversation(3)
    fault = _damaged(
        engine,
        bodies,
        lambda: engine.tamper_body(
            _core.digest(bodies[1]), bodies[1].replace(b"message", b"MESSAGE")
        ),
        "message",
    )
    assert fault.places == (("a", 2),)


def test_a_broken_prefix_chain_is_caught_by_chain_and_verify(engine: EngineUnderTest) -> None:
    bodies = conversation(3)
    prefix = _core.chain_many(_core.ROOT, [_core.digest(b) for b in bodies])[1]
    fault = _damaged(engine, bodies, lambda: engine.tamper_prefix(prefix, b"\x0b" * 16), "node")
    assert "does not chain" in fault.detail
    assert fault.places == (("a", 2),)


def _damaged(
    engine: EngineUnderTest, bodies: list[bytes], tamper: Callable[[], None], kind: str
) -> Fault:
    """Session ``a`` holding ``bodies``, damaged by ``tamper`` behind the engine's back:
    ``chain`` refuses it and ``verify`` finds one fault of ``kind``."""
    store = engine.open()
    _sid, ids = new_session(store, "a", bodies)
    store.close()
    tamper()
    store = engine.open()
    with pytest.raises(srt.CorruptionError):
        store.chain(ids[-1])
    report = store.verify()
    assert not report.ok
    (fault,) = [f for f in report.faults if f.kind == kind]
    return fault


# -- compare-and-swap ---------------------------------------------------------------------------


def test_a_stale_head_conflicts_and_writes_nothing(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(2))
    before = counts(store)
    stale = ids[0]
    more = nodes([body("user", "late")], store.node_prefix(stale))
    with pytest.raises(srt.ConflictError):
        store.append(sid, stale, stale, 1, more)
    assert counts(store) == before
    assert head_of(store, "a") == ids[-1]


def test_two_handles_race_one_wins(engine: EngineUnderTest) -> None:
    one, two = engine.open(), engine.open()
    sid, ids = new_session(one, "a", conversation(1))
    prefix = one.node_prefix(ids[0])
    one.append(sid, ids[0], ids[0], 1, nodes([body("user", "first")], prefix))
    with pytest.raises(srt.ConflictError):
        two.append(sid, ids[0], ids[0], 1, nodes([body("user", "second")], prefix))
    assert [r[2] for r in two.chain(head_of(two, "a"))][-1] == body("user", "first")


def test_appends_between_another_handles_writes_keep_every_body(engine: EngineUnderTest) -> None:
    """A handle's appends after another handle wrote (other sessions' bodies, this
    session's head) start from what the file holds, not from what the first handle last
    wrote: no body is overwritten and a stale head still conflicts."""
    one, two = engine.open(), engine.open()
    new_session(one, "a", conversation(3, "a"))
    new_session(two, "b", conversation(3, "b"))
    extend(two, "b", [body("user", "b more")])
    extend(one, "a", [body("user", "a more"), body("assistant", "a reply")])
    stale = head_of(one, "a")
    extend(two, "a", [body("user", "a from two")])
    assert stale is not None
    with pytest.raises(srt.ConflictError):
        one.append(
            one.get_session("a").id,  # type: ignore[union-attr]
            stale,
            stale,
            6,
            nodes([body("user", "late")], one.node_prefix(stale)),
        )
    extend(one, "a", [body("user", "a last")])
    want_a = [
        *conversation(3, "a"),
        body("user", "a more"),
        body("assistant", "a reply"),
        body("user", "a from two"),
        body("user", "a last"),
    ]
    want_b = [*conversation(3, "b"), body("user", "b more")]
    for store in (one, two):
        assert [r[2] for r in store.chain(head_of(store, "a"))] == want_a
        assert [r[2] for r in store.chain(head_of(store, "b"))] == want_b
    counts(one)


def test_an_append_after_a_refused_one_keeps_every_body(store: Store) -> None:
    """A refused append (its first bodies already written inside its transaction) leaves
    nothing the next append starts from."""
    sid, ids = new_session(store, "a", conversation(2))
    prefix = store.node_prefix(ids[-1])
    good = nodes([body("user", "x" * 3000), body("assistant", "y" * 5000)], prefix)
    forged = NewNode(
        _core.digest(body("user", "t message 0")), body("user", "forged"), b"\x05" * 16
    )
    with pytest.raises(srt.CorruptionError):
        store.append(sid, ids[-1], ids[-1], 2, [*good, forged])
    extend(store, "a", [body("user", "after"), body("assistant", "w" * 2500)])
    want = [*conversation(2), body("user", "after"), body("assistant", "w" * 2500)]
    assert [r[2] for r in store.chain(head_of(store, "a"))] == want
    counts(store)


def test_appending_to_a_deleted_session(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(1))
    store.delete_session("a")
    with pytest.raises(srt.SessionNotFoundError):
        store.append(sid, ids[0], ids[0], 1, nodes([body("user", "x")], store.node_prefix(ids[0])))


def test_move_head_is_compare_and_swap(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(3))
    with pytest.raises(srt.ConflictError):
        store.move_head(sid, ids[0], ids[1])
    store.move_head(sid, ids[2], ids[0])
    assert head_of(store, "a") == ids[0]
    store.move_head(sid, ids[0], None)
    assert head_of(store, "a") is None
    assert store.chain(ids[2])[-1][0] == ids[2]  # rewinding removes nothing


def test_an_append_of_no_messages_moves_the_head_with_its_objects(store: Store) -> None:
    """A rewind that records the head it leaves (``srt.history``): the move and the
    object naming the old head are one compare-and-swap write, or nothing."""
    sid, ids = new_session(store, "a", conversation(3))
    left = ObjectPut("srt.head", str(sid), "k1", b"{}", node=ids[2], expires=time.time() + 60)
    with pytest.raises(srt.ConflictError):
        store.append(sid, ids[1], ids[0], 1, [], objects=[left])
    assert head_of(store, "a") == ids[2] and store.get_object("srt.head", str(sid), "k1") is None
    assert store.append(sid, ids[2], ids[0], 1, [], objects=[left]) == []
    assert head_of(store, "a") == ids[0]
    kept = store.get_object("srt.head", str(sid), "k1")
    assert kept is not None and kept.node == ids[2]
    assert store.tail(ids[2], 1) == [(ids[1], conversation(3)[1]), (ids[2], conversation(3)[2])]
    assert store.gc().nodes == 0  # the object keeps the old head's chain
    assert store.append(sid, ids[0], None, 0, []) == [] and head_of(store, "a") is None


def test_threads_on_many_handles_lose_no_turn(engine: EngineUnderTest) -> None:
    stores = [engine.open() for _ in range(3)]
    sid = stores[0].create_session("a", None, exist_ok=False).id
    per_thread = 15
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        store = stores[k % len(stores)]
        try:
            for i in range(per_thread):
                msg = body("user", f"thread {k} turn {i}")
                while True:
                    row = store.get_session("a")
                    assert row is not None
                    chain = store.chain(row.head)
                    after = chain[-1][3] if chain else _core.ROOT
                    try:
                        store.append(sid, row.head, row.head, len(chain), nodes([msg], after))
                        break
                    except srt.ConflictError:
                        continue
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    joined(*threads)
    assert not errors
    got = [r[2] for r in stores[0].chain(head_of(stores[0], "a"))]
    want = {body("user", f"thread {k} turn {i}") for k in range(6) for i in range(per_thread)}
    assert len(got) == len(want) and set(got) == want


def test_sessions_on_a_store_rebase_through_the_runtime(engine: EngineUnderTest) -> None:
    with srt.Runtime(store=engine.open()) as a, srt.Runtime(store=engine.open()) as b:
        sa, sb = a.session("s"), b.session("s")
        sa.append({"role": "user", "content": "one"})
        with pytest.raises(srt.ConflictError):
            sb.append({"role": "user", "content": "two"})
        sb.append({"role": "user", "content": "two"}, rebase=True)
        sa.refresh()
        assert [m["content"] for m in sa.messages()] == ["one", "two"]


# -- dedup and forks ---------------------------------------------------------------------------


def test_a_shared_message_is_stored_once(store: Store) -> None:
    system = body("system", "a long shared system prompt " * 50)
    for i in range(100):
        new_session(store, f"s{i}", [system, body("user", f"question {i}")])
    messages, node_count, sessions, _ = counts(store)
    assert sessions == 100
    assert messages == 1 + 100
    assert node_count == 1 + 100  # the system prompt's node is shared too


def test_equal_histories_share_nodes(store: Store) -> None:
    bodies = conversation(4)
    _a, ids_a = new_session(store, "a", bodies)
    _b, ids_b = new_session(store, "b", bodies)
    assert ids_a == ids_b
    assert counts(store)[:2] == (4, 4)


def test_a_repeated_message_is_stored_once_on_two_nodes(store: Store) -> None:
    same = body("user", "again")
    _sid, ids = new_session(store, "a", [same, body("assistant", "ok"), same])
    assert len(set(ids)) == 3
    assert counts(store)[:2] == (2, 3)


def test_a_fork_copies_nothing_and_diverges_alone(store: Store) -> None:
    _sid, ids = new_session(store, "main", conversation(4))
    before = counts(store)
    store.create_session("fork", ids[1], exist_ok=False)
    assert counts(store)[:2] == before[:2]
    assert store.chain(head_of(store, "fork")) == store.chain(ids[1])
    extend(store, "fork", [body("user", "only in the fork")])
    assert [r[0] for r in store.chain(head_of(store, "main"))] == ids
    assert len(store.chain(head_of(store, "fork"))) == 3


def test_metadata_is_never_hashed(store: Store) -> None:
    b = body("user", "same words")
    s1 = store.create_session("a", None, exist_ok=False).id
    s2 = store.create_session("b", None, exist_ok=False).id
    (n1,) = store.append(s1, None, None, 0, nodes([b], meta=b'{"k":1}'))
    (n2,) = store.append(s2, None, None, 0, nodes([b], meta=b'{"k":2}'))
    assert n1 == n2  # the first writer's metadata stays on the shared node


def test_a_complete_reply_completes_a_partial_node(store: Store) -> None:
    reply = body("assistant", "half")
    sid, ids = new_session(store, "a", conversation(1))
    prefix = store.node_prefix(ids[0])
    (partial,) = store.append(sid, ids[0], ids[0], 1, nodes([reply], prefix, status="incomplete"))
    assert store.chain(partial)[-1][4] == "incomplete"
    store.move_head(sid, partial, ids[0])
    (again,) = store.append(sid, ids[0], ids[0], 1, nodes([reply], prefix))
    assert again == partial and store.chain(again)[-1][4] is None


# -- refusals: nothing half-written ------------------------------------------------------------


def test_a_hash_reused_for_other_bytes_links_nothing(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(2))
    before = counts(store)
    prefix = store.node_prefix(ids[-1])
    good = nodes([body("user", "fine"), body("assistant", "fine too")], prefix)
    forged = NewNode(
        _core.digest(body("user", "t message 0")), body("user", "forged"), b"\x05" * 16
    )
    with pytest.raises(srt.CorruptionError):
        store.append(sid, ids[-1], ids[-1], 2, [*good, forged])
    assert counts(store) == before
    assert head_of(store, "a") == ids[-1]


def test_a_prefix_reused_for_another_parent_links_nothing(store: Store) -> None:
    _sid, ids = new_session(store, "a", conversation(2))
    sid_b = store.create_session("b", None, exist_ok=False).id
    before = counts(store)
    b = body("user", "elsewhere")
    forged = NewNode(_core.digest(b), b, store.node_prefix(ids[1]))
    with pytest.raises(srt.CorruptionError):
        store.append(sid_b, None, None, 0, [*nodes([body("user", "x")]), forged])
    assert counts(store) == before
    assert head_of(store, "b") is None


# -- the prefix chain: each new node chains from its parent as stored -----------------------


def test_an_append_that_does_not_chain_from_its_stored_parent_links_nothing(store: Store) -> None:
    """A caller with a stale history (here: its items chain from the parent's parent,
    as after a node id was collected and reused) or a forged one is refused, at the head
    or below it, when it does not say what it chained from (the store reads it)."""
    sid, ids = new_session(store, "a", conversation(3))
    before = counts(store)
    more = [body("user", "next"), body("assistant", "reply")]
    for wrong in (store.node_prefix(ids[1]), b"\x07" * 16):
        with pytest.raises(srt.CorruptionError):
            store.append(sid, ids[-1], ids[-1], 3, nodes(more, wrong))
        with pytest.raises(srt.CorruptionError):  # an edit: below a node not the head
            store.append(sid, ids[-1], ids[0], 1, nodes(more, wrong))
        with pytest.raises(srt.CorruptionError):  # below no parent: from the root
            store.append(sid, ids[-1], None, 0, nodes(more, wrong))
    assert counts(store) == before
    assert head_of(store, "a") == ids[-1]
    assert [r[0] for r in store.chain(ids[-1])] == ids


def test_a_stale_parent_prefix_links_nothing(store: Store) -> None:
    """The same when the caller says what it chained from (``parent_prefix``, the one
    round trip on PostgreSQL)."""
    sid, ids = new_session(store, "a", conversation(3))
    before = counts(store)
    more = [body("user", "next"), body("assistant", "reply")]
    for wrong in (store.node_prefix(ids[1]), b"\x07" * 16):
        with pytest.raises(srt.CorruptionError):
            store.append(sid, ids[-1], ids[-1], 3, nodes(more, wrong), parent_prefix=wrong)
        with pytest.raises(srt.CorruptionError):
            store.append(sid, ids[-1], ids[0], 1, nodes(more, wrong), parent_prefix=wrong)
    assert counts(store) == before
    assert head_of(store, "a") == ids[-1]


def test_a_parent_prefix_the_parent_does_not_carry_links_nothing(store: Store) -> None:
    """``parent_prefix`` names what the caller chained from: a parent stored with another
    is refused even when the items chain from the stored one, and so is any prefix but
    the root's below no parent, with no items too."""
    sid, ids = new_session(store, "a", conversation(2))
    before = counts(store)
    right = store.node_prefix(ids[-1])
    more = nodes([body("user", "next")], right)
    with pytest.raises(srt.CorruptionError):
        store.append(sid, ids[-1], ids[-1], 2, more, parent_prefix=b"\x07" * 16)
    with pytest.raises(srt.CorruptionError):
        store.append(sid, ids[-1], ids[0], 1, [], parent_prefix=right)
    with pytest.raises(srt.CorruptionError):
        store.append(sid, ids[-1], None, 0, nodes([body("user", "x")]), parent_prefix=right)
    assert counts(store) == before
    assert head_of(store, "a") == ids[-1]
    # the right prefix hash: written
    new = store.append(sid, ids[-1], ids[-1], 2, more, parent_prefix=right)
    assert head_of(store, "a") == new[-1]
    assert store.node_prefix(new[-1]) == more[-1].prefix
    assert store.append(sid, new[-1], None, 0, nodes([body("user", "x")]), parent_prefix=_core.ROOT)


def test_a_later_link_that_does_not_chain_links_nothing(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(2))
    before = counts(store)
    right = store.node_prefix(ids[-1])
    good = nodes([body("user", "one"), body("assistant", "two"), body("user", "three")], right)
    for forged in (b"\x07" * 16, good[0].prefix):
        bad = [good[0], good[1]._replace(prefix=forged), good[2]]
        with pytest.raises(srt.CorruptionError):
            store.append(sid, ids[-1], ids[-1], 2, bad)
        with pytest.raises(srt.CorruptionError):
            store.append(sid, ids[-1], ids[-1], 2, bad, parent_prefix=right)
    assert counts(store) == before
    assert head_of(store, "a") == ids[-1]


def test_a_moved_head_or_a_lost_parent_conflicts_before_the_chain_is_blamed(
    store: Store,
) -> None:
    """As on any append, the compare-and-swap speaks first: a stale head is a
    ``ConflictError`` (a deleted session ``SessionNotFoundError``) even when the chain
    is broken too; a parent that is not stored is a ``ConflictError``."""
    sid, ids = new_session(store, "a", conversation(3))
    extend(store, "a", [body("user", "moved on")])
    before = counts(store)
    stale = nodes([body("user", "next")], store.node_prefix(ids[1]))
    for given in (None, stale[0].prefix):
        with pytest.raises(srt.ConflictError):
            store.append(sid, ids[-1], ids[-1], 3, stale, parent_prefix=given)
    head = head_of(store, "a")
    missing = max(ids) + 10_000
    for given in (None, b"\x07" * 16):
        with pytest.raises(srt.ConflictError):
            store.append(
                sid, head, missing, 9, nodes([body("user", "x")], b"\x07" * 16), parent_prefix=given
            )
    assert counts(store) == before
    store.delete_session("a")
    for given in (None, stale[0].prefix):
        with pytest.raises(srt.SessionNotFoundError):
            store.append(sid, ids[-1], ids[-1], 3, stale, parent_prefix=given)
