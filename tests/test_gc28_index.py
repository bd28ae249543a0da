"""How the search index's cleanup after gc (``store.sqlite.gc.clean_index``) shares the
writer lock: each step's pages are checkpointed before the next step, so the WAL holds one
step at a time rather than the whole rewritten index, and a writer waiting for the lock
as a step lets go of it writes before the next step. Steps are one page each (many of
them over an index of ~20 segments); nothing is timed."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import srt
from rel_support.waits import joined, waited
from srt.store.sqlite import gc as batched
from test_gc_batches_pace import writer_clock
from test_gc_search_canary import _canary_session

#: gc's own connection: no checkpoint in its commits (``maintenance.gc``'s pragma).
_NO_AUTOCHECKPOINT = ["PRAGMA wal_autocheckpoint=0"]


def _clean(rt: srt.Runtime, hook: Callable[[str], None], monkeypatch: pytest.MonkeyPatch) -> int:
    """``clean_index`` on a connection of its own, as gc runs it, in one-page steps,
    with ``hook`` called after each step; the steps it took."""
    monkeypatch.setattr(batched, "MERGE_FIRST", 1)
    monkeypatch.setattr(batched, "MERGE_MOST", 1)
    monkeypatch.setattr(batched, "hook", hook)
    db = rt.store.db
    try:
        with db.job("cleaning the search index", _NO_AUTOCHECKPOINT) as conn:
            return batched.clean_index(db, conn)
    finally:
        monkeypatch.setattr(batched, "hook", None)


def test_each_index_step_checkpoints_so_the_wal_holds_one_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the step's checkpoint the WAL keeps every step's pages (gc's connection
    checkpoints none of its commits) and grows with each step: measured 49,760 bytes
    after the first of 15 steps, 615,416 after the last. With it, each step's pages
    are in the file before the next step starts the WAL over: it stays one step big
    (51,832 at most)."""
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path) as rt:
        _canary_session(rt, "qqcanarywal")
        assert rt.store.checkpoint()
        assert os.path.getsize(path + "-wal") == 0
        sizes: list[int] = []

        def hook(phase: str) -> None:
            if phase == "index":
                sizes.append(os.path.getsize(path + "-wal"))

        steps = _clean(rt, hook, monkeypatch)
        assert steps == len(sizes) >= 10
        assert sizes[0] > 0
        assert max(sizes) < 2 * sizes[0], sizes
        assert rt.store.verify().ok


def test_a_writer_waiting_as_an_index_step_lets_go_of_the_lock_writes_before_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that comes for the lock as a step of the cleanup lets go of it takes it
    before the next step (``_give_way``; without it the gc's thread, running on, takes
    the lock again before the writer's thread runs at all). The writer waits in a thread
    and is let go by the hook after the first step. The pause is bounded by the time the
    step held the lock and ``PAUSE``: gc's clock jumps an hour in the first step's
    checkpoint (under the lock) and ``PAUSE`` is two, so only the writer ends the pause:
    by holding the lock, or by moving the clock past it once it wrote: from then on every
    look at the clock moves it on (a writer done before gc first looked at it for the
    pause, its thread preempted after the hook, moved it once before the pause's end was
    set, and gc then waited out the hour)."""
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path) as rt:
        _canary_session(rt, "qqcanaryturn")
        monkeypatch.setattr(batched, "PAUSE", 7200.0)
        jump, wrote = writer_clock(monkeypatch)
        checkpoint = batched.passive_checkpoint
        checkpoints: list[int] = []

        def first_step_long(conn: object) -> None:  # (the first step "held" it an hour)
            checkpoint(conn)  # type: ignore[arg-type]
            checkpoints.append(1)
            if len(checkpoints) == 1:
                jump[0] += 3600.0

        monkeypatch.setattr(batched, "passive_checkpoint", first_step_long)
        go = threading.Event()

        def write() -> None:
            try:
                waited(go, "gc's first index step")
                rt.store.create_session("w", None, exist_ok=False)
            finally:
                wrote.set()

        writer = threading.Thread(target=write)
        written: list[bool] = []  # after each step: whether the writer's session is stored

        def hook(phase: str) -> None:
            if phase == "index":
                written.append(rt.store.get_session("w") is not None)
                if len(written) == 1:
                    writer.start()
                    go.set()

        steps = _clean(rt, hook, monkeypatch)
        joined(writer)
        assert steps >= 3
        assert written[:2] == [False, True], written
        assert rt.store.verify().ok
