"""Store conformance: the usage ledger, objects, gc, verify, search and the rest of
maintenance, through the Store protocol alone (every engine of ``engines_support.ENGINES``)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from engines_support import EngineUnderTest
from helpers import body, call, conversation, counts, extend, head_of, new_session, nodes

import srt
from rel_support.waits import WAIT_S, joined
from srt.store import (
    CallRecord,
    GcReport,
    ObjectPut,
    ObjectRow,
    Store,
    StoredResponse,
    VacuumReport,
)

# -- the ledger --------------------------------------------------------------------------------


def test_record_call_round_trips_every_field(store: Store) -> None:
    sid, _ids = new_session(store, "a", conversation(1))
    full = call(
        sid,
        "a",
        input_tokens=10,
        cache_read_tokens=4,
        cache_write_tokens=2,
        output_tokens=3,
        predicted_cached_tokens=4,
        explain='{"reason":"cold"}',
        latency_ms=12.5,
        ttft_ms=3.25,
        retries=2,
        status="error",
        error="RateLimitError: slow down",
        response_id="resp_1",
        previous_response_id="resp_0",
        stored=1,
        fallback="expired",
        params='{"max_tokens":5}',
    )
    cid = store.record_call(full)
    (got,) = store.calls()
    assert isinstance(got, CallRecord) and got.id == cid
    assert dataclasses.replace(got, id=None) == full
    assert got.as_dict()["id"] == cid and got.as_dict()["params"] == '{"max_tokens":5}'


def test_calls_filter_by_session(store: Store) -> None:
    a, _ = new_session(store, "a", conversation(1))
    b, _ = new_session(store, "b", conversation(1, "b"))
    store.record_call(call(a, "a"))
    store.record_call(call(b, "b"))
    store.record_call(call(a, "a", status="error"))
    assert [c.status for c in store.calls(session=a)] == ["ok", "error"]
    assert [c.session for c in store.calls(session_name="b")] == [b]
    assert [c.id for c in store.calls()] == sorted(c.id or 0 for c in store.calls())
    store.delete_session("a")
    assert len(store.calls(session_name="a")) == 2  # the ledger outlives its session


def test_append_writes_its_call_atomically(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(1))
    prefix = store.node_prefix(ids[0])
    (reply,) = store.append(
        sid, ids[0], ids[0], 1, nodes([body("assistant", "hi")], prefix), call=call(sid, "a")
    )
    (row,) = store.calls()
    assert row.node == reply
    with pytest.raises(srt.ConflictError):  # a stale head: neither reply nor call
        store.append(
            sid, ids[0], ids[0], 1, nodes([body("assistant", "x")], prefix), call=call(sid, "a")
        )
    assert len(store.calls()) == 1


def test_last_response_is_the_newest_stored_one_nearest_the_head(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(4))
    fmt, model = "openai.responses", "gpt-4o"
    ok = {"format": fmt, "model": model, "stored": 1}
    store.record_call(call(sid, "a", node=ids[1], response_id="r1", **ok))
    store.record_call(call(sid, "a", node=ids[3], response_id="r3", **ok))
    store.record_call(call(sid, "a", node=ids[3], response_id="r3b", **ok))
    store.record_call(call(sid, "a", node=ids[2], response_id="r2", status="error", **ok))
    found = store.last_response(ids, fmt, model)
    assert isinstance(found, StoredResponse)
    assert (found.node, found.response_id) == (ids[3], "r3b")
    earlier = store.last_response(ids[:3], fmt, model)
    assert earlier is not None and (earlier.node, earlier.response_id) == (ids[1], "r1")
    assert store.last_response(ids, fmt, "other-model") is None
    assert store.last_response([], fmt, model) is None
    store.record_call(call(sid, "a", node=ids[0], response_id="r0", format=fmt, model=model))
    assert store.last_response(ids[:1], fmt, model) is None  # not stored server-side


# -- objects -------------------------------------------------------------------------------------


def test_put_get_replace_delete(store: Store) -> None:
    assert store.get_object("response", "", "r1") is None
    store.put_object("response", "", "r1", b"one")
    got = store.get_object("response", "", "r1")
    assert isinstance(got, ObjectRow)
    assert (got.kind, got.scope, got.key, got.value, got.node, got.expires) == (
        "response",
        "",
        "r1",
        b"one",
        None,
        None,
    )
    store.put_object("response", "", "r1", b"uno")
    again = store.get_object("response", "", "r1")
    assert again is not None and again.value == b"uno" and again.created == got.created
    assert store.delete_object("response", "", "r1") is True
    assert store.delete_object("response", "", "r1") is False
    assert store.get_object("response", "", "r1") is None


def test_kinds_and_scopes_are_separate(store: Store) -> None:
    store.put_object("item", "conv_a", "k", b"a")
    store.put_object("item", "conv_b", "k", b"b")
    store.put_object("blob", "conv_a", "k", b"c")
    assert [o.value for o in store.list_objects("item", "conv_a")] == [b"a"]
    assert [o.value for o in store.list_objects("item", "conv_b")] == [b"b"]
    assert store.get_object("blob", "conv_a", "k").value == b"c"  # type: ignore[union-attr]


def test_list_objects_in_insertion_order_by_pages(store: Store) -> None:
    keys = [f"k{i:02d}" for i in range(25)]
    for i, key in enumerate(reversed(keys)):  # keys inserted in descending name order
        store.put_object("item", "conv", key, str(i).encode())
    order = list(reversed(keys))
    store.put_object("item", "conv", order[3], b"replaced")  # keeps its place
    pages: list[str] = []
    after: str | None = None
    while True:
        page = store.list_objects("item", "conv", after=after, limit=10)
        if not page:
            break
        pages += [o.key for o in page]
        after = page[-1].key
    assert pages == order
    newest = store.list_objects("item", "conv", limit=5, descending=True)
    assert [o.key for o in newest] == order[::-1][:5]
    older = store.list_objects("item", "conv", after=newest[-1].key, limit=3, descending=True)
    assert [o.key for o in older] == order[::-1][5:8]
    assert store.list_objects("item", "conv", after="no-such-key") == []
    assert store.list_objects("item", "other") == []


def test_scan_objects_reads_every_kind_and_scope_in_insertion_order(store: Store) -> None:
    _sid, ids = new_session(store, "a", conversation(2))
    made = []
    for i in range(7):
        kind, scope = ("checkpoint", f"thread-{i % 3}") if i % 2 else ("response", "")
        store.put_object(kind, scope, f"k{i}", bytes([i]), node=ids[i % 2] if i % 3 else None)
        made.append((kind, scope, f"k{i}", bytes([i]), ids[i % 2] if i % 3 else None))
    store.put_object("response", "", "gone", b"x", expires=time.time() - 1)
    store.put_object("response", "", "k0", b"again")  # replaced in place
    made[0] = ("response", "", "k0", b"again", None)
    for batch in (1, 3, 500):
        got = [(o.kind, o.scope, o.key, o.value, o.node) for o in store.scan_objects(batch=batch)]
        assert got == made


def test_expired_objects_vanish_and_gc_removes_them(store: Store) -> None:
    past, future = time.time() - 1, time.time() + 3600
    store.put_object("response", "", "old", b"x", expires=past)
    store.put_object("response", "", "new", b"y", expires=future)
    assert store.get_object("response", "", "old") is None
    assert [o.key for o in store.list_objects("response", "")] == ["new"]
    dry = store.gc(dry_run=True)
    assert dry.objects == 1
    report = store.gc()
    assert isinstance(report, GcReport) and report.objects == 1
    assert store.gc().objects == 0
    assert store.get_object("response", "", "new") is not None


def test_an_object_keeps_its_node_alive_under_gc(store: Store) -> None:
    _sid, ids = new_session(store, "a", conversation(3))
    store.put_object("checkpoint", "thread", "c1", b"state", node=ids[1])
    store.delete_session("a")
    report = store.gc()
    assert (report.nodes, report.messages) == (1, 1)  # only the third message went
    assert [r[0] for r in store.chain(ids[1])] == ids[:2]
    store.delete_object("checkpoint", "thread", "c1")
    assert store.gc().nodes == 2
    assert counts(store)[:2] == (0, 0)


def test_an_object_on_a_missing_node_is_refused(store: Store) -> None:
    with pytest.raises(srt.ConflictError):
        store.put_object("checkpoint", "t", "c", b"x", node=987_654)
    assert store.get_object("checkpoint", "t", "c") is None


def test_append_writes_objects_atomically_at_the_new_head(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(1))
    prefix = store.node_prefix(ids[0])
    reply = nodes([body("assistant", "hello")], prefix)
    put = ObjectPut("response", "", "resp_1", b'{"id":"resp_1"}', at_head=True)
    (head,) = store.append(sid, ids[0], ids[0], 1, reply, objects=[put])
    got = store.get_object("response", "", "resp_1")
    assert got is not None and got.node == head
    late = ObjectPut("response", "", "resp_2", b"{}", at_head=True)
    with pytest.raises(srt.ConflictError):
        store.append(
            sid, ids[0], ids[0], 1, nodes([body("assistant", "x")], prefix), objects=[late]
        )
    assert store.get_object("response", "", "resp_2") is None


def test_a_bad_object_rolls_back_the_whole_append(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(1))
    before = counts(store)
    prefix = store.node_prefix(ids[0])
    bad = ObjectPut("response", "", "", b"x")  # an empty key
    with pytest.raises(srt.ConfigError):
        store.append(
            sid,
            ids[0],
            ids[0],
            1,
            nodes([body("assistant", "x")], prefix),
            call=call(sid, "a"),
            objects=[ObjectPut("ok", "", "k", b"v"), bad],
        )
    assert counts(store) == before
    assert head_of(store, "a") == ids[0]
    assert store.get_object("ok", "", "k") is None


@pytest.mark.parametrize(
    "args",
    [("", "s", "k", b"v"), ("k", 5, "k", b"v"), ("k", "s", None, b"v"), ("k", "s", "k", "text")],
)
def test_bad_object_arguments_are_config_errors(store: Store, args: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(srt.ConfigError):
        store.put_object(*args)


def test_bad_list_limits(store: Store) -> None:
    for limit in (0, -1, True):
        with pytest.raises(srt.ConfigError):
            store.list_objects("k", "s", limit=limit)


# -- gc and verify --------------------------------------------------------------------------------


def test_gc_never_harms_a_fork(store: Store) -> None:
    _sid, ids = new_session(store, "main", conversation(6))
    store.create_session("fork", ids[2], exist_ok=False)
    extend(store, "fork", [body("user", "fork only")])
    fork_before = store.chain(head_of(store, "fork"))
    store.delete_session("main")
    dry = store.gc(dry_run=True)
    assert (dry.nodes, dry.messages) == (3, 3)
    assert counts(store)[:2] == (7, 7)  # the dry run removed nothing
    report = store.gc()
    assert (report.nodes, report.messages, report.dry_run) == (3, 3, False)
    assert report.message_bytes == sum(len(b) for b in conversation(6)[3:])
    assert store.chain(head_of(store, "fork")) == fork_before
    assert store.gc().nodes == 0
    assert store.verify().ok


def test_gc_keeps_ledger_rows_and_clears_their_node(store: Store) -> None:
    sid, ids = new_session(store, "a", conversation(2))
    store.record_call(call(sid, "a", node=ids[1]))
    store.delete_session("a")
    report = store.gc()
    assert (report.nodes, report.ledger_rows) == (2, 1)
    (row,) = store.calls()
    assert row.node is None and row.session_name == "a"
    assert store.verify().ok


def test_verify_counts_a_healthy_store(store: Store) -> None:
    sid, _ = new_session(store, "a", conversation(3))
    store.create_session("b", None, exist_ok=False)
    store.record_call(call(sid, "a"))
    report = store.verify()
    assert report.ok and report.faults == ()
    assert (report.messages, report.nodes, report.sessions, report.calls) == (3, 3, 2, 1)


# -- search, vacuum, checkpoint, close -------------------------------------------------------------


def test_search_finds_words_where_sessions_use_them(store: Store) -> None:
    new_session(
        store, "zoo", [body("user", "Where do quokkas live?"), body("assistant", "Australia.")]
    )
    new_session(store, "other", [body("user", "nothing here")])
    hits = store.search("quokkas")
    assert [(h.role, h.text, h.places) for h in hits] == [
        ("user", "Where do quokkas live?", (("zoo", 1),))
    ]
    assert store.has_search_index()
    assert store.build_search_index() is None
    assert store.search("armadillo") == []
    with pytest.raises(srt.ConfigError):
        store.search("   ")
    assert store.drop_search_index() is True
    assert store.drop_search_index() is False
    built: list[int] = []
    assert len(store.search("Australia", announce=built.append)) == 1
    assert built == [3]


def test_vacuum_and_checkpoint_keep_everything(store: Store) -> None:
    _sid, ids = new_session(store, "a", conversation(4))
    report = store.vacuum()
    assert isinstance(report, VacuumReport)
    assert isinstance(store.checkpoint(), bool)
    assert [r[0] for r in store.chain(ids[-1])] == ids


def test_close_then_use_reopens(engine: EngineUnderTest) -> None:
    store = engine.open()
    _sid, ids = new_session(store, "a", conversation(2))
    store.close()
    assert [r[0] for r in store.chain(ids[-1])] == ids
    other = engine.open()
    assert other.get_session("a") == store.get_session("a")


def test_every_operation_of_the_protocol_is_covered() -> None:
    """The protocol's operations, as this suite knows them: a new operation needs tests."""
    from srt.store.base import store_protocol

    assert store_protocol() == sorted(
        [
            "append",
            "build_search_index",
            "calls",
            "chain",
            "checkpoint",
            "close",
            "create_session",
            "delete_object",
            "delete_session",
            "drop_search_index",
            "gc",
            "get_object",
            "get_session",
            "has_search_index",
            "last_response",
            "list_objects",
            "list_sessions",
            "move_head",
            "node_meta",
            "node_prefix",
            "overview",
            "put_object",
            "record_call",
            "rename_session",
            "scan_objects",
            "search",
            "tree",
            "vacuum",
            "verify",
        ]
    )


def test_put_if_absent_writes_only_a_name_no_live_object_has(store: Store) -> None:
    assert store.put_object("claim", "s", "k", b"first", if_absent=True) is True
    assert store.put_object("claim", "s", "k", b"second", if_absent=True) is False
    got = store.get_object("claim", "s", "k")
    assert got is not None and got.value == b"first"
    assert store.put_object("claim", "s", "k", b"third") is True  # a plain put replaces
    assert store.get_object("claim", "s", "k").value == b"third"  # type: ignore[union-attr]
    store.put_object("claim", "s", "gone", b"old", expires=time.time() - 1)
    assert store.put_object("claim", "s", "gone", b"new", if_absent=True) is True
    again = store.get_object("claim", "s", "gone")
    assert again is not None and (again.value, again.expires) == (b"new", None)
    with pytest.raises(srt.ConflictError, match="not stored"):
        store.put_object("claim", "s", "n", b"x", node=10**9, if_absent=True)
    assert store.get_object("claim", "s", "n") is None
    _sid, ids = new_session(store, "a", conversation(1))
    assert store.put_object("claim", "s", "n", b"x", node=ids[-1], if_absent=True) is True
    assert store.put_object("claim", "s", "n", b"y", node=ids[-1], if_absent=True) is False


def test_writers_racing_for_one_name_if_absent_one_wins(engine: EngineUnderTest) -> None:
    """Eight handles (eight connections), each putting the same name ``if_absent`` at once:
    exactly one is told it wrote, and the object holds that one's value."""
    import threading

    stores = [engine.open() for _ in range(8)]
    stores[0].put_object("claim", "s", "warm", b"")  # (the objects table exists)
    start = threading.Barrier(len(stores), timeout=WAIT_S)
    won: list[bytes] = []

    def race(i: int, st: Store) -> None:
        start.wait()
        if st.put_object("claim", "s", "k", f"{i}".encode(), if_absent=True):
            won.append(f"{i}".encode())

    threads = [threading.Thread(target=race, args=(i, st)) for i, st in enumerate(stores)]
    for t in threads:
        t.start()
    joined(*threads)
    assert len(won) == 1
    got = stores[0].get_object("claim", "s", "k")
    assert got is not None and got.value == won[0]
