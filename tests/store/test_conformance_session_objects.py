"""Store conformance: objects filed under a session (``srt.store.owners``: a session's
earlier heads, a task's started tool calls). They go with the session's row, in its
deletion's transaction; none is written for a session that is gone; ``gc`` frees those
an earlier srt left under a deleted session's id, and never a living session's, even
one created while gc runs."""

from __future__ import annotations

import threading
import time

import pytest
from engines_support import EngineUnderTest
from helpers import conversation, head_of, new_session, nodes

from srt.errors import ConflictError
from srt.store import ObjectPut, Store, owners

HEAD = "srt.head"  # srt.store.heads.KIND
CALL = "srt.tool_call"  # srt._task.CLAIMS


@pytest.fixture
def undeclared(monkeypatch: pytest.MonkeyPatch) -> None:
    """As an srt before the declaration: no kind is filed under a session."""
    monkeypatch.setattr(owners, "_KINDS", set())


def _records(store: Store, sid: int) -> dict[str, bool]:
    """Which of the records ``_file`` makes under ``sid`` the store holds."""
    return {
        "head": store.get_object(HEAD, str(sid), "h1") is not None,
        "call": store.get_object(CALL, f"{sid}:{'ab' * 16}:c1", "start") is not None,
        "legacy call": store.get_object(CALL, str(sid), f"{'ab' * 16}:c1") is not None,
    }


def _file(store: Store, sid: int, node: int | None = None) -> None:
    """A session's records of each form: an earlier head (naming ``node``), a started
    call, and a started call as srt filed it before the call's own scope."""
    assert store.put_object(HEAD, str(sid), "h1", b"{}", node=node, expires=time.time() + 60)
    assert store.put_object(CALL, f"{sid}:{'ab' * 16}:c1", "start", b"1:0", if_absent=True)
    assert store.put_object(CALL, str(sid), f"{'ab' * 16}:c1", b"1:0")


def test_the_declared_kinds_and_the_scopes_they_are_filed_under() -> None:
    assert {HEAD, CALL} <= set(owners.session_kinds())
    assert owners.session_of(CALL, "12:ab:c1") == 12
    assert owners.session_of(HEAD, "12") == 12
    assert owners.session_of(HEAD, "0") == 0
    for scope in ("", "012", "12x", "x12", "-1", "1 2", "١٢", "1" * 19, ":12"):
        assert owners.session_of(HEAD, scope) is None, scope
    assert owners.session_of("response", "12") is None  # not a declared kind


def test_deleting_a_session_drops_its_records_and_no_other(store: Store) -> None:
    # Ten sessions, so that one id (1) is the first digits of another's (10).
    ids = [new_session(store, f"s{i}", conversation(2, f"s{i}"))[0] for i in range(10)]
    first, tenth = ids[0], ids[9]
    assert str(tenth).startswith(str(first))
    for sid in (first, tenth):
        _file(store, sid)
    store.put_object("response", str(first), "r", b"not filed under a session")
    store.put_object(CALL, f"{first}:", "start", b"an empty rest")
    store.delete_session("s0")
    assert store.get_object(CALL, f"{first}:", "start") is None
    assert _records(store, first) == dict.fromkeys(("head", "call", "legacy call"), False)
    assert _records(store, tenth) == dict.fromkeys(("head", "call", "legacy call"), True)
    assert store.get_object("response", str(first), "r") is not None
    assert store.gc().orphan_objects == 0


def test_no_record_is_written_for_a_session_that_is_gone(store: Store) -> None:
    """The store refuses a record under an id no session has, in the write's own
    transaction: a run that read its session before a deletion cannot win a start
    record that the deletion removed (the at-most-once promise of ``srt._task``)."""
    sid, _ = new_session(store, "a", conversation(2))
    scope = f"{sid}:{'cd' * 16}:c1"
    assert store.put_object(CALL, scope, "start", b"run A", if_absent=True)  # run A starts
    assert store.get_session("a") is not None  # run B reads the session ...
    store.delete_session("a")  # ... the session is deleted, with A's record ...
    assert store.list_objects(CALL, scope) == []
    # ... and B's start, which would now find no record, is refused.
    assert not store.put_object(CALL, scope, "start", b"run B", if_absent=True)
    assert not store.put_object(CALL, scope, "start", b"run B")
    assert not store.put_object(HEAD, str(sid), "h", b"{}")
    assert store.list_objects(CALL, scope) == [] and store.list_objects(HEAD, str(sid)) == []
    never = sid + 1000
    assert not store.put_object(CALL, f"{never}:x:c1", "start", b"x", if_absent=True)
    # Other kinds, and scopes that are not a session id, are not the rule's.
    assert store.put_object("response", str(never), "r", b"x")
    assert store.put_object(CALL, "tool-run-7", "start", b"x")


def test_gc_frees_records_an_earlier_srt_left_under_deleted_sessions(
    store: Store, undeclared: None
) -> None:
    gone, gone_ids = new_session(store, "gone", conversation(3, "gone"))
    kept, kept_ids = new_session(store, "kept", conversation(2, "kept"))
    for sid, node in ((gone, gone_ids[1]), (kept, kept_ids[0])):
        _file(store, sid, node)
    for scope in (f"0{gone}", f"{gone}x", "tool-run-7"):  # no session's id
        store.put_object(CALL, scope, "start", b"x")
    store.put_object("response", str(gone), "r", b"another kind")
    store.delete_session("gone")  # (the earlier srt deleted the row alone)
    assert _records(store, gone) == dict.fromkeys(("head", "call", "legacy call"), True)
    owners.session_kind(HEAD), owners.session_kind(CALL)  # the srt of today opens it
    checked = store.verify()  # garbage, not damage
    assert checked.ok and checked.orphan_objects == 3
    dry = store.gc(dry_run=True)
    # Without the head record, nothing keeps the deleted session's nodes (1 without gc's
    # removing the records: the record named the second of three).
    assert (dry.orphan_objects, dry.nodes) == (3, 3)
    assert _records(store, gone) == dict.fromkeys(("head", "call", "legacy call"), True)
    report = store.gc()
    assert (report.orphan_objects, report.objects, report.nodes) == (3, 0, 3)
    assert _records(store, gone) == dict.fromkeys(("head", "call", "legacy call"), False)
    assert _records(store, kept) == dict.fromkeys(("head", "call", "legacy call"), True)
    for scope in (f"0{gone}", f"{gone}x", "tool-run-7"):
        assert store.get_object(CALL, scope, "start") is not None
    assert store.get_object("response", str(gone), "r") is not None
    assert store.gc().orphan_objects == 0
    assert store.verify().orphan_objects == 0


def test_gc_never_frees_the_records_of_a_session_made_while_it_runs(
    engine: EngineUnderTest, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creates a session and starts a tool call under it after gc has
    begun and before it deletes records of missing sessions: gc's transaction makes it
    wait (SQLite's write lock, PostgreSQL's table locks), and its records stay."""
    early, _ = new_session(store, "early", conversation(2))
    _file(store, early)
    other = engine.open()
    kinds = owners.session_kinds
    made: list[int] = []
    failed: list[BaseException] = []
    waited: list[bool] = []

    def create_and_start() -> None:
        try:
            row = other.create_session("late", None, exist_ok=False)
            made.append(row.id)
            _file(other, row.id)
        except BaseException as exc:  # (reported by the test's thread)
            failed.append(exc)

    writer = threading.Thread(target=create_and_start)

    def kinds_then_race() -> tuple[str, ...]:
        if writer.ident is None:  # gc's first look: the other process acts now
            writer.start()
            writer.join(0.5)
            waited.append(writer.is_alive())  # it waits for gc's transaction
        return kinds()

    monkeypatch.setattr(owners, "session_kinds", kinds_then_race)
    report = store.gc()
    monkeypatch.setattr(owners, "session_kinds", kinds)
    writer.join(30)
    assert not writer.is_alive() and failed == [] and len(made) == 1 and waited == [True]
    assert report.orphan_objects == 0
    assert _records(store, made[0]) == dict.fromkeys(("head", "call", "legacy call"), True)
    assert store.gc().orphan_objects == 0
    for sid in (early, made[0]):
        assert _records(store, sid) == dict.fromkeys(("head", "call", "legacy call"), True)


def test_an_append_writes_no_record_for_another_session_that_is_gone(store: Store) -> None:
    """An append's objects follow ``put_object``'s rule: one filed under a session that
    is gone (another than the one appended to) refuses the whole append, on every path
    of the write (plain, conditional, with a deadline, at the new head), and nothing of
    it is stored; under a living session, or the appended one, it is written."""
    sid, ids = new_session(store, "a", conversation(2))
    gone, _ = new_session(store, "gone", conversation(2, "gone"))
    store.delete_session("gone")
    more = nodes(conversation(4)[2:], store.node_prefix(ids[-1]))
    puts = [
        ObjectPut(HEAD, str(gone), "h1", b"{}"),
        ObjectPut(HEAD, str(gone), "h1", b"{}", at_head=True),
        ObjectPut(CALL, f"{gone}:{'ab' * 16}:c1", "start", b"1:0", if_absent=True),
        ObjectPut(CALL, f"{gone}:{'ab' * 16}:c1", "start", b"1:0", if_absent=True, at_head=True),
    ]
    for put in puts:
        for deadline in (None, time.monotonic() + 60):
            for with_it in ([], [ObjectPut("response", "", "r", b"x")]):
                gone_text = f"filed under session {gone}, which was deleted.*nothing was written"
                with pytest.raises(ConflictError, match=gone_text):
                    store.append(
                        sid, ids[-1], ids[-1], 2, more, objects=[*with_it, put], deadline=deadline
                    )
                assert head_of(store, "a") == ids[-1], (put, deadline)
                assert store.list_objects(put.kind, put.scope) == []
                assert store.get_object("response", "", "r") is None
    assert len(store.chain(ids[-1])) == 2 and store.verify().messages == 4
    live, _ = new_session(store, "live", conversation(2, "live"))
    own = ObjectPut(HEAD, str(sid), "h1", b"{}", at_head=True)
    other = ObjectPut(CALL, f"{live}:{'ab' * 16}:c1", "start", b"1:0", if_absent=True)
    new = store.append(sid, ids[-1], ids[-1], 2, more, objects=[own, other])
    assert head_of(store, "a") == new[-1]
    assert _records(store, sid)["head"] and _records(store, live)["call"]
