"""``list`` and the latest checkpoint under two concurrent writers (a SQLite file; a
PostgreSQL schema). Two savers, each on a thread of its own, write one LangGraph thread:
each makes its checkpoint (LangGraph's ids go by the clock) and the other's ``put`` may
land first. ``list`` gave the order the store took the records in, so a checkpoint made
first but stored last came first, and ``before=`` paging from it passed over the other
writer's newer checkpoint. It now goes by checkpoint id, newest first (as LangGraph's
``PostgresSaver`` does), and ``get_tuple`` without an id gives the newest id."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

import srt
from rel_support import waits
from srt.integrations.langgraph import SrtSaver
from test_lg29_delete_races import _cfg
from test_lgread29_reads import _by_id

_ROUNDS = 6  # checkpoints each writer puts
_WAIT_S = 120.0  # for the other writer's turn (seconds): past it, a hang


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


def _ids(tuples: Any) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


def _paged(saver: SrtSaver, size: int) -> list[str]:
    """Every checkpoint of thread ``t``, ``size`` at a time, each page ``before`` the
    last one's oldest."""
    out: list[str] = []
    before: Any = None
    for _ in range(1000):
        page = _ids(saver.list(_cfg(), before=before, limit=size))
        if not page:
            return out
        out += page
        before = _by_id(page[-1])
    raise AssertionError("paging never ended")


class _Chain:
    """One writer's chain of checkpoints on thread ``t``, made and put in two steps."""

    def __init__(self, db: str, k: int) -> None:
        self.saver, self.k = SrtSaver(db), k
        self.conf: Any = _cfg()
        self.cp: Any = None
        self.msgs: list[Any] = []
        self.put_ids: list[str] = []

    def make(self) -> Any:
        """The next checkpoint, its id taken now."""
        i = len(self.put_ids)
        self.msgs += [HumanMessage(f"q{self.k}-{i}", id=f"q{self.k}-{i}"), AIMessage(f"a{i}")]
        cp = empty_checkpoint() if self.cp is None else create_checkpoint(self.cp, None, i)
        cp["channel_values"] = {"messages": list(self.msgs)}
        cp["channel_versions"] = {"messages": i + 1}
        return cp

    def put(self, cp: Any) -> None:
        i = len(self.put_ids)
        self.conf = self.saver.put(self.conf, cp, {"k": self.k, "i": i}, {"messages": i + 1})
        self.cp = cp
        self.put_ids.append(cp["id"])


def test_list_pages_by_id_when_writers_store_out_of_id_order(db: str) -> None:
    """Writer 0 takes its checkpoint's id, then writer 1 makes and puts one, then writer
    0 puts its own, each round, on two threads (each step waits for the other's): the
    store holds every round's records against their ids' order. Before, ``list`` put
    writer 0's older checkpoint first and one-by-one paging lost writer 1's."""
    a, b = _Chain(db, 0), _Chain(db, 1)
    made = [threading.Event() for _ in range(_ROUNDS)]  # writer 0 took its id
    stored = [threading.Event() for _ in range(_ROUNDS)]  # writer 1 put its own
    errors: list[BaseException] = []
    stop = threading.Event()

    def first() -> None:
        try:
            for r in range(_ROUNDS):
                cp = a.make()
                made[r].set()
                if not stored[r].wait(_WAIT_S) or stop.is_set():
                    raise AssertionError(f"writer 1 did not put round {r}")
                a.put(cp)
        except BaseException as exc:  # reported below
            errors.append(exc)
            stop.set()

    def second() -> None:
        try:
            for r in range(_ROUNDS):
                if not made[r].wait(_WAIT_S) or stop.is_set():
                    raise AssertionError(f"writer 0 did not make round {r}")
                b.put(b.make())
                stored[r].set()
        except BaseException as exc:  # reported below
            errors.append(exc)
            stop.set()
            for e in made + stored:
                e.set()

    threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (first, second)]
    reader = SrtSaver(db)
    try:
        for t in threads:
            t.start()
        waits.joined(*threads, timeout=2 * _WAIT_S, stop=stop, what="the two writers")
        assert errors == []
        every = sorted(a.put_ids + b.put_ids, reverse=True)
        assert len(set(every)) == 2 * _ROUNDS
        # (each round: writer 0's id is the older, stored last)
        assert all(x < y for x, y in zip(a.put_ids, b.put_ids, strict=True))
        for saver in (reader, a.saver, b.saver):
            assert _ids(saver.list(_cfg())) == every
            for size in (1, 2, 5):
                assert _paged(saver, size) == every
            latest = saver.get_tuple(_cfg())
            assert latest is not None
            assert latest.config["configurable"]["checkpoint_id"] == every[0]
        assert _ids(reader.list(None)) == every
    finally:
        stop.set()
        for saver in (a.saver, b.saver, reader):
            saver.close()


def test_paging_while_two_writers_write_misses_none(db: str) -> None:
    """Two writer threads put chains at once while a reader pages through the thread
    two at a time. Each pass is in strictly descending id order, and holds every
    checkpoint stored before it began (none is passed over) exactly once."""
    chains = [_Chain(db, k) for k in range(2)]
    errors: list[BaseException] = []
    done = threading.Event()

    def write(chain: _Chain) -> None:
        try:
            for _ in range(3 * _ROUNDS):
                if done.is_set():  # (the reader failed: stop)
                    return
                chain.put(chain.make())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(c,), name=f"writer-{c.k}", daemon=True) for c in chains
    ]
    reader = SrtSaver(db)
    passes = 0
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or passes == 0:
            known = set(chains[0].put_ids) | set(chains[1].put_ids)
            seen = _paged(reader, 2)
            assert seen == sorted(set(seen), reverse=True)
            assert known <= set(seen)
            passes += 1
        waits.joined(*threads, timeout=_WAIT_S, what="the two writers")
        assert errors == []
        every = sorted(chains[0].put_ids + chains[1].put_ids, reverse=True)
        assert _paged(reader, 2) == every
    finally:
        done.set()  # (writers stopped before their savers and store go)
        waits.joined(*threads, timeout=_WAIT_S, what="the two writers")
        for saver in (reader, *(c.saver for c in chains)):
            saver.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok
