"""How the SQLite batched gc shares the writer lock with the writers going on meanwhile
(``store.sqlite.gc``): each batch sized by the time the last one held the lock, its
pages checkpointed before it lets go of the lock, and a writer waiting for the lock let
in before the next batch. Phases are driven by the gc's ``hook``; nothing is timed."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

import srt
from rel_support.waits import joined, waited
from srt.store.sqlite import gc as batched
from test_gc_batches import TEXTS, check, session


def writer_clock(monkeypatch: pytest.MonkeyPatch) -> tuple[list[float], threading.Event]:
    """gc's clock for the writer tests: ``jump[0]`` seconds ahead of the real one, and
    once ``wrote`` is set, two hours further at each look, so a pause ends whenever it
    began (a writer done before gc's first look at the clock for the pause must not
    leave gc waiting out the hour)."""
    jump = [0.0]
    wrote = threading.Event()

    def monotonic() -> float:
        if wrote.is_set():
            jump[0] += 7200.0
        return time.monotonic() + jump[0]

    monkeypatch.setattr(batched, "time", SimpleNamespace(monotonic=monotonic, sleep=time.sleep))
    return jump, wrote


def test_a_batch_is_sized_by_the_time_the_last_held_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The next batch's size is the last one's scaled by ``HOLD`` over the time it held
    the lock (its re-check, deletes, commit and checkpoint): at most doubled or halved,
    at most ``BATCH``, at least one node."""
    monkeypatch.setattr(batched, "HOLD", 0.0625)
    monkeypatch.setattr(batched, "BATCH", 3000)
    assert batched.next_size(1000, 0.0625) == 1000
    assert batched.next_size(1000, 0.078125) == 800
    assert batched.next_size(1000, 0.5) == 500  # halved at most
    assert batched.next_size(1000, 0.001) == 2000  # doubled at most
    assert batched.next_size(2000, 0.001) == 3000  # BATCH at most
    assert batched.next_size(1000, 0.0) == 2000
    assert batched.next_size(1, 10.0) == 1


def _session_gone(rt: srt.Runtime) -> None:
    """Garbage of ``len(TEXTS)`` nodes (a deleted session's), several batches of 2."""
    session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")


def test_a_writer_coming_as_a_batch_lets_go_of_the_lock_writes_before_the_next(
    rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that comes for the lock as a batch lets go of it takes it before the next
    batch (``_give_way``; without it the gc's thread, running on, takes the lock again
    before the writer's thread runs at all). The writer waits in a thread from the first
    batch on and is let go by the hook after that batch's commit. The pause is bounded by
    the time the batch held the lock and ``PAUSE``: gc's clock jumps an hour while the
    first batch holds it, and ``PAUSE`` is two, so only the writer ends the pause: by
    holding the lock, or by moving the clock past it once it wrote (it may come and go
    between two looks at the lock). From then on every look at the clock moves it on:
    a writer done before gc first looks at it for the pause (its thread preempted after
    the hook) moved the clock once, before the pause's end was set, and gc then waited
    out the hour. Nothing is timed."""
    _session_gone(rt)
    monkeypatch.setattr(batched, "BATCH", 2)
    monkeypatch.setattr(batched, "PAUSE", 7200.0)
    jump, wrote = writer_clock(monkeypatch)
    go = threading.Event()

    def write() -> None:
        try:
            waited(go, "gc's first batch")
            rt.store.create_session("w", None, exist_ok=False)
        finally:
            wrote.set()

    writer = threading.Thread(target=write)
    written: list[bool] = []  # at each batch's lock: whether the writer's session is there

    def hook(phase: str) -> None:
        if phase == "locked":
            written.append(rt.store.get_session("w") is not None)
            if len(written) == 1:
                writer.start()
                jump[0] += 3600.0
        elif phase == "batch":
            go.set()

    monkeypatch.setattr(batched, "hook", hook)
    report = rt.gc()
    joined(writer)
    assert written[:2] == [False, True]
    assert report.nodes == len(TEXTS)
    check(rt, {"w": []})


def _wal_start(path: str) -> bytes:
    """The WAL header's checkpoint sequence number and salts (bytes 12-23): SQLite
    changes them when a writer starts the WAL over from its first frame, which it does
    only when every frame in it has been copied into the database file."""
    with open(path + "-wal", "rb") as wal:
        return wal.read(24)[12:]


def test_each_batch_checkpoints_its_pages_before_it_lets_go_of_the_lock(
    rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc's connection checkpoints none of its commits by itself
    (``wal_autocheckpoint=0``): each batch copies its pages into the file (``PASSIVE``)
    before it lets go of the lock, so the first write after it starts the WAL over
    (without, the WAL grows by every batch until a writer's own commit copies them all,
    under the lock, with the other writers waiting)."""
    _session_gone(rt)
    monkeypatch.setattr(batched, "BATCH", 2)
    path = rt.store.db.path
    restarted: list[bool] = []

    def hook(phase: str) -> None:
        if phase == "batch":
            before = _wal_start(path)
            rt.store.create_session(f"w{len(restarted)}", None, exist_ok=False)
            restarted.append(_wal_start(path) != before)

    monkeypatch.setattr(batched, "hook", hook)
    assert rt.gc().nodes == len(TEXTS)
    assert len(restarted) >= 2 and all(restarted), restarted
