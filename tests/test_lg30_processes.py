"""Two processes writing one LangGraph thread through ``SrtSaver``s of their own (a SQLite
file; a PostgreSQL schema): each puts a chain of checkpoints with writes, and both add
writes to one shared checkpoint at the same time. Savers in one process were raced on
threads only; here the compare-and-swap on the thread's version is all they share.
Afterwards every checkpoint either process was told it wrote reads back as it was put,
with every write, and ``list`` gives them all (newest id first)."""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

import srt
from srt.integrations.langgraph import SrtSaver
from test_lg29_delete_races import _bytes, _cfg
from test_lgread29_reads import _by_id

_STEPS = 12  # checkpoints per process
_WAIT_S = 300.0  # for a child to finish (spawning imports LangGraph: seconds each)


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


def _writer(db: str, k: int, shared: str, go: Any, out: str) -> None:
    """Child ``k``: a chain of checkpoints on thread ``t`` (messages, a large value,
    writes of two tasks each), and one write more to ``shared`` at every step; what it
    was told it wrote goes to ``out``."""
    if not go.wait(120):
        raise SystemExit("the parent never said go")
    saver = SrtSaver(db)
    told: dict[str, Any] = {}
    try:
        conf: Any = _cfg()
        cp: Any = None
        msgs: list[Any] = []
        for i in range(_STEPS):
            msgs += [HumanMessage(f"q{k}-{i}", id=f"q{k}-{i}"), AIMessage(f"a{k}-{i}")]
            cp = empty_checkpoint() if cp is None else create_checkpoint(cp, None, i)
            cp["channel_values"] = {"messages": list(msgs), "big": f"p{k}-{i}/" * 200}
            cp["channel_versions"] = {"messages": i + 1, "big": i + 1}
            meta = {"k": k, "step": i}
            conf = saver.put(conf, cp, meta, {"messages": i + 1, "big": i + 1})
            cid = conf["configurable"]["checkpoint_id"]
            writes = []
            for task in ("a", "b"):
                pairs = [("w", f"{task}{k}-{i}" * 40), ("n", i)]
                saver.put_writes(conf, pairs, f"task-{task}")
                writes += [(f"task-{task}", ch, v) for ch, v in pairs]
            saver.put_writes(_by_id(shared), [(f"c{k}", i)], f"shared-{k}-{i}")
            told[cid] = (_bytes(cp), meta, sorted(writes))
    finally:
        saver.close()
    Path(out).write_bytes(pickle.dumps(told))


def test_two_processes_writing_one_thread_lose_nothing(db: str, tmp_path: Path) -> None:
    saver = SrtSaver(db)
    try:
        root = empty_checkpoint()
        root["channel_values"] = {"messages": [HumanMessage("root", id="root")]}
        root["channel_versions"] = {"messages": 1}
        shared = saver.put(_cfg(), root, {"step": -1}, {"messages": 1})
        shared_id: str = shared["configurable"]["checkpoint_id"]
    finally:
        saver.close()
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    outs = [str(tmp_path / f"told-{k}.pkl") for k in range(2)]
    procs = [
        ctx.Process(target=_writer, args=(db, k, shared_id, go, outs[k]), daemon=True)
        for k in range(2)
    ]
    try:
        for p in procs:
            p.start()
        go.set()
        for p in procs:
            p.join(_WAIT_S)
        alive = [k for k, p in enumerate(procs) if p.is_alive()]
        assert not alive, f"writer process(es) {alive} did not finish in {_WAIT_S:.0f} s"
        assert [p.exitcode for p in procs] == [0, 0], "a writer process failed (see stderr)"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(10)
    told: dict[str, Any] = {}
    for out in outs:
        told.update(pickle.loads(Path(out).read_bytes()))
    assert len(told) == 2 * _STEPS

    fresh = SrtSaver(db)
    try:
        listed = list(fresh.list(_cfg()))
        ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
        assert len(set(ids)) == len(ids) and set(ids) == set(told) | {shared_id}
        # Newest id first, across both processes (``tests/test_lg31_order.py``).
        assert ids == sorted(ids, reverse=True)
        latest = fresh.get_tuple(_cfg())
        assert latest is not None and latest.config == listed[0].config
        for tup in listed:
            cid = tup.config["configurable"]["checkpoint_id"]
            if cid == shared_id:
                continue
            want, meta, writes = told[cid]
            assert _bytes(tup.checkpoint) == want
            assert {k: tup.metadata[k] for k in meta} == meta
            assert sorted(tup.pending_writes or []) == writes
            again = fresh.get_tuple(_by_id(cid))
            assert again is not None and _bytes(again.checkpoint) == want
            assert sorted(again.pending_writes or []) == writes
        # Both processes' writes to the one checkpoint they shared, every one.
        back = fresh.get_tuple(shared)
        assert back is not None
        want_shared = [(f"shared-{k}-{i}", f"c{k}", i) for k in range(2) for i in range(_STEPS)]
        assert sorted(back.pending_writes or []) == sorted(want_shared)
        # Each process's chain is whole: every checkpoint's parent is its own last one.
        for k in range(2):
            chain = sorted(c for c, (_b, m, _w) in told.items() if m["k"] == k)
            parents = {t.config["configurable"]["checkpoint_id"]: t.parent_config for t in listed}
            assert parents[chain[0]] is None
            for before, cid in itertools.pairwise(chain):
                parent = parents[cid]
                assert parent is not None
                assert parent["configurable"]["checkpoint_id"] == before
    finally:
        fresh.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok
