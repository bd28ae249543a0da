"""``SrtSaver.delete_thread`` while another saver writes the thread (a SQLite file; a
PostgreSQL schema). Whichever order they land in, what is left reads back whole: a
checkpoint either is gone or reads back byte for byte as it was put, with its writes;
and a thread written again after another saver deleted it is listed with every thread."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

import srt
from rel_support import waits
from srt.integrations.langgraph import SrtSaver

SERDE = JsonPlusSerializer()
JOIN_S = 300.0  # for a race's threads to end (seconds, in all): past it, a hang


def joined(threads: Iterable[threading.Thread], stop: threading.Event | None = None) -> None:
    """``rel_support.waits.joined`` over ``threads``, ``JOIN_S`` in all (the threads are
    daemons, so one stuck in a call does not hold the run at exit)."""
    waits.joined(*threads, timeout=JOIN_S, stop=stop)


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


def _cfg(thread: str = "t") -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def _first(tag: str) -> Any:
    c = empty_checkpoint()
    c["channel_values"] = {"messages": [HumanMessage(tag, id=tag)], "big": tag * 300}
    c["channel_versions"] = {"messages": 1, "big": 1}
    return c


def test_a_thread_written_again_after_another_saver_deleted_it_is_listed(db: str) -> None:
    """The writer's saver remembered registering the thread and did not register it
    again: ``list(None)`` (and ``delete_for_runs``, which walks it) missed the thread."""
    writer, deleter = SrtSaver(db), SrtSaver(db)
    writer.put(_cfg(), _first("a"), {"run_id": "r1"}, {"messages": 1, "big": 1})
    deleter.delete_thread("t")
    again = writer.put(_cfg(), _first("b"), {"run_id": "r2"}, {"messages": 1, "big": 1})
    fresh = SrtSaver(db)
    assert [t.config for t in fresh.list(None)] == [again]
    fresh.delete_for_runs(["r2"])
    assert writer.get_tuple(_cfg()) is None
    for s in (writer, deleter, fresh):
        s.close()


def _bytes(checkpoint: Any) -> Any:
    """Each channel value serialized, and the rest (key order aside: LangGraph's own
    ``InMemorySaver`` gives the keys back in another order too)."""
    values = checkpoint["channel_values"]
    rest = {k: v for k, v in checkpoint.items() if k != "channel_values"}
    return {k: SERDE.dumps_typed(v) for k, v in values.items()}, rest


def _history(saver: SrtSaver, rounds: int, told: dict[str, Any]) -> None:
    """Checkpoint chains of six steps, with writes, each recorded as the saver wrote it
    (its serialized checkpoint) once ``put`` returned."""
    for r in range(rounds):
        c = _first(f"q{r}")
        conf = saver.put(_cfg(), c, {"step": 0}, {"messages": 1, "big": 1})
        told[conf["configurable"]["checkpoint_id"]] = _bytes(c)
        msgs = list(c["channel_values"]["messages"])
        for i in range(5):
            msgs.append(AIMessage(f"a{r}-{i}", id=f"a{r}-{i}"))
            c = create_checkpoint(c, None, i + 1)
            c["channel_values"] = {"messages": list(msgs), "big": f"q{r}" * 300, "i": i}
            c["channel_versions"] = {"messages": i + 2, "big": 1, "i": i + 1}
            conf = saver.put(conf, c, {"step": i + 1}, {"messages": i + 2, "i": i + 1})
            told[conf["configurable"]["checkpoint_id"]] = _bytes(c)
            saver.put_writes(conf, [("w", f"v{r}-{i}" * 60)], f"task{i}")


def test_delete_thread_while_another_saver_writes_leaves_it_whole(db: str) -> None:
    """The deleter deleted records, then the thread's values, one at a time: a record
    the writer put in between (packed against a parent about to go, or naming a value
    about to go) stayed, and no longer read ("a stored value ... is missing")."""
    writer, deleter = SrtSaver(db), SrtSaver(db)
    told: dict[str, Any] = {}
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            _history(writer, 12, told)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    def delete() -> None:
        while not done.is_set():
            try:
                deleter.delete_thread("t")
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (write, delete)]
    try:
        for t in threads:
            t.start()
        joined(threads, done)
        assert errors == []
        # And written once more, the deleter done: that chain is there whole too.
        last: dict[str, Any] = {}
        _history(writer, 1, last)
    finally:  # (a failure leaves no open saver to the tests after it)
        writer.close()
        deleter.close()
    fresh = SrtSaver(db)
    try:
        left = list(fresh.list(_cfg()))
        assert set(last) <= {t.config["configurable"]["checkpoint_id"] for t in left}
        told.update(last)
        for tup in left:
            cid = tup.config["configurable"]["checkpoint_id"]
            assert _bytes(tup.checkpoint) == told[cid]
            assert len(tup.pending_writes or []) == (0 if tup.metadata["step"] == 0 else 1)
    finally:
        fresh.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok
