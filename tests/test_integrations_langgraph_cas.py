"""Two ``SrtSaver``s on one store (a SQLite file; a PostgreSQL schema) writing the same
checkpoint at the same moment: every task's writes are kept (each record write is a
compare-and-swap on its scope's version object, and a saver that lost the race reads the
scope again and redoes its write). And the srt session a (thread, namespace) maps to."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

import srt
from srt.integrations.langgraph import SrtSaver


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


_WAIT_S = 300.0  # for the threads of one round to end (seconds): past it, a hang


def _cfg(thread: str = "t", ns: str = "", **more: Any) -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns, **more}}


def _checkpoint(text: str) -> Any:
    c = empty_checkpoint()
    c["channel_values"] = {"messages": [HumanMessage(text, id=text)], "step": 0}
    c["channel_versions"] = {"messages": 1, "step": 1}
    return c


def _at_once(*calls: Any) -> None:
    """Run each call on a thread of its own, all released at the same moment."""
    start = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def go(fn: Any) -> None:
        try:
            start.wait(_WAIT_S)  # (broken, if a thread never came: reported below)
            fn()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(fn,), daemon=True) for fn in calls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + _WAIT_S
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"thread(s) {alive} did not end within {_WAIT_S:.0f} s"
    assert errors == []


def test_two_savers_adding_writes_to_one_checkpoint_at_once_lose_none(db: str) -> None:
    """Round after round, both savers add a task's writes to the same checkpoint at the
    same moment. Before the compare-and-swap each read the record, added its writes and
    wrote it back, and the later write dropped the earlier one's."""
    one, two = SrtSaver(db), SrtSaver(db)
    cp = one.put(_cfg(), _checkpoint("q"), {}, {"messages": 1, "step": 1})
    assert two.get_tuple(cp) is not None
    rounds = 30
    for r in range(rounds):
        _at_once(
            lambda r=r: one.put_writes(cp, [("a", r)], f"one-{r}"),
            lambda r=r: two.put_writes(cp, [("b", r)], f"two-{r}"),
        )
    want = sorted([(f"one-{r}", "a", r) for r in range(rounds)])
    want = sorted(want + [(f"two-{r}", "b", r) for r in range(rounds)])
    fresh = SrtSaver(db)
    for saver in (one, two, fresh):
        back = saver.get_tuple(cp)
        assert back is not None and sorted(back.pending_writes or []) == want
        saver.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok


def test_a_checkpoint_put_again_while_another_saver_adds_writes_keeps_them(db: str) -> None:
    """One saver puts a checkpoint again (same id) while the other adds writes to it: the
    record put again carries the writes it had read, and those added meanwhile."""
    one, two = SrtSaver(db), SrtSaver(db)
    checkpoint = _checkpoint("q")
    cp = one.put(_cfg(), checkpoint, {}, {"messages": 1, "step": 1})
    assert two.get_tuple(cp) is not None
    rounds = 20
    for r in range(rounds):
        _at_once(
            lambda r=r: one.put(_cfg(), checkpoint, {"round": r}, {}),
            lambda r=r: two.put_writes(cp, [("b", r)], f"two-{r}"),
        )
    fresh = SrtSaver(db)
    back = fresh.get_tuple(cp)
    assert back is not None
    assert sorted(back.pending_writes or []) == sorted((f"two-{r}", "b", r) for r in range(rounds))
    assert back.metadata["round"] == rounds - 1
    for saver in (one, two, fresh):
        saver.close()


# -- the session a scope maps to ---------------------------------------------------------------


def _texts(rt: srt.Runtime, name: str) -> list[str]:
    row = rt.store.get_session(name)
    assert row is not None
    return [json.loads(r[2])["content"] for r in rt.store.chain(row.head)]


def test_a_thread_with_a_slash_and_a_namespace_get_sessions_of_their_own(db: str) -> None:
    """Thread ``"a/b"`` and thread ``"a"`` with namespace ``"b"`` were both session
    ``langgraph/a/b``: the second wrote its messages into the first's session."""
    saver = SrtSaver(db)
    saver.put(_cfg("a/b"), _checkpoint("in thread a/b"), {}, {"messages": 1, "step": 1})
    saver.put(_cfg("a", "b"), _checkpoint("in a, namespace b"), {}, {"messages": 1, "step": 1})
    saver.put(_cfg("#1"), _checkpoint("in thread #1"), {}, {"messages": 1, "step": 1})
    saver.put(_cfg("plain"), _checkpoint("in thread plain"), {}, {"messages": 1, "step": 1})
    saver.close()
    with srt.Runtime(db) as rt:
        assert _texts(rt, "langgraph/a%2Fb") == ["in thread a/b"]
        assert _texts(rt, "langgraph/a/b") == ["in a, namespace b"]
        assert _texts(rt, "langgraph/%231") == ["in thread #1"]
        assert _texts(rt, "langgraph/plain") == ["in thread plain"]  # as before


def test_a_store_named_the_old_way_keeps_its_names(db: str) -> None:
    """A store where thread ``"a/b"`` got session ``langgraph/a/b`` (as savers named it
    before; made here by renaming the session and its record): the thread still reads
    and writes that session, and a new thread ``"a"`` with namespace ``"b"`` (whose new
    name it is) gets a session of its own."""
    saver = SrtSaver(db)
    first = saver.put(_cfg("a/b"), _checkpoint("q1"), {}, {"messages": 1, "step": 1})
    saver.close()
    with srt.Runtime(db) as rt:
        rt.store.rename_session("langgraph/a%2Fb", "langgraph/a/b")
        rt.store.put_object("lg.ns", "a/b", "ns:", b"langgraph/a/b")  # the old record
    saver = SrtSaver(db)
    back = saver.get_tuple(first)
    assert back is not None
    assert [m.content for m in back.checkpoint["channel_values"]["messages"]] == ["q1"]
    later = _checkpoint("q1")
    later["channel_values"]["messages"] = [HumanMessage("q1", id="q1"), HumanMessage("q2")]
    saver.put(first, later, {}, {"messages": 2})
    saver.put(_cfg("a", "b"), _checkpoint("other"), {}, {"messages": 1, "step": 1})
    saver.close()
    with srt.Runtime(db) as rt:
        assert _texts(rt, "langgraph/a/b") == ["q1", "q2"]
        assert rt.store.get_session("langgraph/a%2Fb") is None  # no rename, no second name
        names = [s.name for s in rt.store.list_sessions()]
        (own,) = [n for n in names if n.startswith("langgraph/#")]
        assert _texts(rt, own) == ["other"]
    again = SrtSaver(db)  # the names are read back, not worked out again
    tip = again.get_tuple(_cfg("a", "b"))
    assert tip is not None and tip.checkpoint["channel_values"]["messages"][0].content == "other"
    again.delete_thread("a")
    again.close()
    with srt.Runtime(db) as rt:
        assert _texts(rt, "langgraph/a/b") == ["q1", "q2"]  # thread a/b's, left alone
        assert rt.store.get_session(own) is None


def test_a_write_landing_between_a_savers_commit_and_its_look_is_read(db: str) -> None:
    """After its write a saver noted the thread's state (its session row) to know later
    whether another saver had written since; another saver's write committed between
    the two was counted as its own, and its reads kept the scope without that write
    (the "two savers" test lost a write about one run in twenty on PostgreSQL)."""
    one, two = SrtSaver(db), SrtSaver(db)
    try:
        cp = one.put(_cfg(), _checkpoint("q"), {}, {"messages": 1, "step": 1})
        assert two.get_tuple(cp) is not None
        scopes = one._scopes  # noqa: SLF001 (a write landing at this one moment)
        noted = scopes.wrote

        def between(sc: Any) -> None:
            scopes.wrote = noted  # (once)
            two.put_writes(cp, [("b", 1)], "two-1")
            noted(sc)

        scopes.wrote = between  # type: ignore[method-assign]
        one.put_writes(cp, [("a", 1)], "one-1")
        for saver in (one, two):
            back = saver.get_tuple(cp)
            assert back is not None
            assert sorted(back.pending_writes or []) == [("one-1", "a", 1), ("two-1", "b", 1)]
    finally:
        one.close()
        two.close()
