"""PostgreSQL's batched gc over node ids out of parent-before-child order among the
candidates only (``store.postgres.gc``'s docstring): the store stays in the batches (the
one-transaction walk is for a live node whose parent id is not smaller), a candidate's
parent of a larger id goes with it in one batch, and in separate batches is kept, with
its ancestors, for this gc and collected by the next."""

from __future__ import annotations

import pytest

import srt
from srt.store.postgres import gc as pg_gc
from test_gc_random import by_hand


def _dead_chain_renumbered(url: str) -> None:
    """Sessions "live" and "dead" of three messages each, "dead" deleted and its nodes
    (ids 4, 5, 6, root first) renumbered 106, 105, 104: each parent's id is larger."""
    with srt.Runtime(url) as rt:
        rt.session("live").append([{"role": "user", "content": f"live {i}"} for i in range(3)])
        rt.session("dead").append([{"role": "user", "content": f"dead {i}"} for i in range(3)])
        rt.delete("dead")
    by_hand(url, ["UPDATE nodes SET id = 110 - id, parent = 110 - parent WHERE id >= 4"])


@pytest.mark.parametrize(("batch", "per_gc"), [(1000, [3, 0]), (1, [1, 1, 1, 0])])
def test_candidates_out_of_order_are_collected_in_batches(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, batch: int, per_gc: list[int]
) -> None:
    _dead_chain_renumbered(pg_url)
    monkeypatch.setattr(pg_gc, "BATCH", batch)
    phases: list[str] = []
    monkeypatch.setattr(pg_gc, "hook", phases.append)
    with srt.Runtime(pg_url) as rt:
        got = []
        for _ in per_gc:
            report = rt.gc()
            got.append(report.nodes)
            assert report.messages == report.nodes
        assert got == per_gc
        assert phases.count("marked") == len(per_gc)  # (the batches', never ``once``)
        assert [m["content"] for m in rt.session("live").messages()] == [
            "live 0",
            "live 1",
            "live 2",
        ]
        assert rt.store.verify().ok
