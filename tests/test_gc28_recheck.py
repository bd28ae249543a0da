"""The SQLite batched gc's re-check of heads and objects under the lock looks at the
batch's own candidates, not at every candidate the mark found (``store.sqlite.gc``):
each candidate is re-checked in the transaction that would delete it, which is when it
must be, and a batch's work no longer grows with the garbage left. Counted in SQLite's
virtual-machine steps of the re-check's statement (``SQLITE_STMTSTATUS_VM_STEP``), not
timed: the look-up of objects on the candidates probed the objects' index once per
candidate left, in every batch."""

from __future__ import annotations

from typing import Any

import apsw
import pytest

import srt
from srt.store.sqlite import gc as batched
from test_gc_batches import check, session

GONE = [f"gone {i} " + "g" * 40 for i in range(600)]


def _recheck_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The VM steps of each run of the re-check's look-up of heads and objects."""
    steps: list[int] = []
    sweep = batched.sweep

    def traced(db: Any, conn: apsw.Connection, s: batched.Sweep) -> bool:
        def profile(event: dict[str, Any]) -> None:
            if event["sql"].startswith("SELECT head FROM sessions WHERE head IN"):
                steps.append(event["stmt_status"]["SQLITE_STMTSTATUS_VM_STEP"])

        conn.trace_v2(apsw.SQLITE_TRACE_PROFILE, profile)
        try:
            return sweep(db, conn, s)
        finally:
            conn.trace_v2(0, None)

    monkeypatch.setattr(batched, "sweep", traced)
    return steps


def test_a_batch_rechecks_its_own_candidates_only(
    rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """600 candidates in batches of 20 (30 batches), beside an object on a live node
    (the objects table is there): each batch's re-check takes 108 steps, where it took
    2,428 (~4 per candidate the mark found, in every batch: their table did not shrink),
    72,840 over this gc against 3,240 now, and growing with the garbage squared."""
    session(rt.store, "gone", GONE)
    live = session(rt.store, "live", ["kept"])
    rt.store.put_object("gctest", "scope", "o", b"v", node=live[0])
    rt.store.delete_session("gone")
    monkeypatch.setattr(batched, "FIRST", 20)
    monkeypatch.setattr(batched, "BATCH", 20)
    monkeypatch.setattr(batched, "HOLD", 3600.0)  # (never halved by a slow batch)
    steps = _recheck_steps(monkeypatch)
    report = rt.gc()
    assert (report.nodes, report.messages) == (600, 600)
    assert len(steps) == 30
    assert max(steps) <= 20 * 20, steps  # 20 steps a candidate of the batch at most
    assert max(steps) - min(steps) <= 20, steps  # (the same for every batch)
    check(rt, {"live": ["kept"]})
