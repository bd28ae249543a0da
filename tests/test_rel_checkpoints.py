"""Crash loop through checkpoints: SIGKILL writers of long-lived files inside checkpoints.

A checkpoint copies the ``-wal``'s pages into the database file in page order, page 1
(the header, with the new page count) first. A process killed inside it leaves a file
shorter than its header says, whose missing pages are still in the ``-wal``; srt used
to refuse such a file as truncated (issue 13). Small files that start afresh every
few kills almost never reach a checkpoint, so this loop keeps each file for
``ROTATE`` kills and aims the kills at checkpoints:

* the child (``crash_child.py ckpt``) appends turns of 0-20 KB to three sessions with
  a fork every seventh turn; 60% of the children also run explicit checkpoints of every
  mode, retire sessions and run ``gc`` (which ends in a TRUNCATE checkpoint), and now
  and then ``vacuum``; the others leave the WAL to grow past 1,000 pages (16 MB) to
  SQLite's automatic checkpoint;
* ``CheckpointVFS`` makes the child print ``CKPT+`` before its first write to the
  database file (which in WAL mode only a checkpoint writes) and ``CKPT-`` after the
  sync that ends the checkpoint. The parent kills 0-2 ms after a ``CKPT+`` (45% of
  kills), or the child kills itself at its k-th write to the database file (45%), or
  the kill lands at a random moment (10%: half 0-1.5 s after the child is ready, half
  0-0.6 s after it was spawned, during import and open). A kill counts as
  landing in a checkpoint when the child's last marker was ``CKPT+``.

After every kill srt itself opens the file first, as a user would: ``srt verify`` and
``srt show`` through the CLI (after one in three of the kills that left the file shorter
than its header says, and one kill in ten otherwise), then the API reads every session.
Then the outside checker (``verify_store``): integrity ok, every chain recomputes,
every acknowledged turn is there, whole, and no stored turn is half-written.

CI: 200 kills, at least 100 in checkpoints. ``SRT_SOAK=1``: 2,000, at least 1,000.
Pass: 0 acknowledged turns lost, 0 half-written, 0 stores srt refuses.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import srt
from rel_support.common import SOAK, emit, header_short, verify_store
from rel_support.crashlib import Tally, check_turn_store, expected_turn, run_child, run_lanes, split
from srt import cli
from srt.store.sqlite import db as _db

KILLS = int(os.environ.get("SRT_REL_KILLS") or (2000 if SOAK else 200))
ROTATE = 8  # kills per database file
AIMED = 0.45  # the parent kills 0-MAX_AIM_S after the child prints CKPT+
SELF = 0.45  # the child kills itself at its k-th write to the database file
MAX_AIM_S = 0.002
MAX_SELF_K = 200
_CLI_LOCK = threading.Lock()  # the CLI prints to sys.stdout: one call at a time


@dataclass
class FileState:
    """What the children acknowledged on one file, across its kills."""

    acked: dict[str, str] = field(default_factory=dict)  # turn id -> session
    forks: dict[str, str] = field(default_factory=dict)  # fork -> the turn it ends at
    maybe_gone: set[str] = field(default_factory=set)  # a kill came mid-delete
    ever: set[str] = field(default_factory=set)  # every turn acknowledged on this file


@dataclass
class Extra:
    """This loop's own figures, beyond ``Tally``'s."""

    in_checkpoint: int = 0
    how: dict[str, int] = field(default_factory=dict)
    short_files: int = 0  # files shorter than their header said after the kill
    refused: int = 0
    cli_runs: int = 0
    srt_mismatch: int = 0
    max_wal_frames: int = 0
    max_db_bytes: int = 0
    checkpoints_seen: int = 0
    examples: list[str] = field(default_factory=list)

    def merge(self, other: Extra) -> None:
        for name in (
            "in_checkpoint",
            "short_files",
            "refused",
            "cli_runs",
            "srt_mismatch",
            "checkpoints_seen",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for k, v in other.how.items():
            self.how[k] = self.how.get(k, 0) + v
        self.max_wal_frames = max(self.max_wal_frames, other.max_wal_frames)
        self.max_db_bytes = max(self.max_db_bytes, other.max_db_bytes)
        self.examples += other.examples[: 20 - len(self.examples)]


def parse(lines: list[str], state: FileState) -> tuple[str, bool, int, int]:
    """Record acknowledgements and deletions; return (where the kill landed, whether
    inside a checkpoint, acknowledged turns, checkpoints begun)."""
    ready = in_ckpt = False
    op: str | None = None
    begun: str | None = None
    deleting: str | None = None
    acks = checkpoints = 0
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "READY":
            ready = True
        elif kind in ("CKPT+", "CKPT-"):
            in_ckpt = kind == "CKPT+"
            checkpoints += in_ckpt
        elif kind == "OP":
            op = None if rest == "done" else rest.split()[0]
        elif kind == "BEGIN":
            begun = rest
        elif kind == "ACK":
            tid, name, _head = rest.split(" ")
            state.acked[tid] = name
            state.ever.add(tid)
            begun = None
            acks += 1
        elif kind == "FORK":
            name, _parent, tid = rest.split(" ")
            state.forks[name] = tid
        elif kind == "DELETING":
            deleting = rest
        elif kind == "DEL":
            deleting = None
            state.acked = {t: s for t, s in state.acked.items() if s != rest}
            state.forks.pop(rest, None)
    if deleting is not None:
        state.maybe_gone.add(deleting)
    if not ready:
        return "starting or opening", False, acks, checkpoints
    if op is not None:
        what = op
    elif begun is not None:
        what = "append"
    else:
        what = "fork or between appends"
    return (("checkpoint in " if in_ckpt else "") + what), in_ckpt, acks, checkpoints


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with _CLI_LOCK, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def srt_reads(path: str, state: FileState, extra: Extra, run_the_cli: bool) -> dict[str, Any]:
    """Open the file with srt, as a user would: the CLI's verify and show, then the API."""
    if run_the_cli:
        extra.cli_runs += 1
        code, text = run_cli("--db", path, "verify")
        if code != 0 or not text.startswith("ok:"):
            extra.refused += 1
            extra.examples.append(f"{path}: srt verify: {code} {text[:300]}")
        name = next(iter(state.acked.values()), None)
        if name is not None:
            code, text = run_cli("--db", path, "show", name)
            if code != 0:
                extra.refused += 1
                extra.examples.append(f"{path}: srt show {name}: {code} {text[:300]}")
    try:
        with srt.Runtime(path) as rt:
            return {i.name: rt.session(i.name, create=False).messages() for i in rt.sessions()}
    except srt.SrtError as exc:
        extra.refused += 1
        extra.examples.append(f"{path}: srt refused it: {type(exc).__name__}: {exc}")
        return {}


def lane_run(lane: int, cycles: int, root: Path) -> tuple[Tally, Extra]:
    rng = random.Random(7000 + lane)
    tally, extra = Tally(), Extra()
    state = FileState()
    path = ""
    for c in range(cycles):
        if c % ROTATE == 0:
            path = str(root / f"lane{lane}-{c // ROTATE}" / "srt.db")
            state = FileState()
            expected_turn.cache_clear()
        cycle = f"{lane}-{c}"
        ops = "ops" if rng.random() < 0.6 else "none"
        r = rng.random()
        if r < AIMED:
            args = ["ckpt", path, cycle, ops]
            delay = rng.uniform(0, MAX_AIM_S)
            child = run_child(args, marker="CKPT+", delay=delay, timeout=120, from_reader=True)
            how = "parent, aimed at a checkpoint"
        elif r < AIMED + SELF:
            k = rng.randint(1, MAX_SELF_K)
            args = ["ckpt", path, cycle, f"{ops},kill={k}"]
            child = run_child(args, marker=None, delay=0, kill=False, timeout=120)
            how = "self, at a write to the database file"
        elif rng.random() < 0.5:
            args = ["ckpt", path, cycle, ops]
            child = run_child(args, marker="READY", delay=rng.uniform(0, 1.5), timeout=120)
            how = "parent, at a random moment"
        else:
            args = ["ckpt", path, cycle, ops]
            child = run_child(args, marker=None, delay=rng.uniform(0, 0.6), timeout=120)
            how = "parent, at a random moment from spawn (import, open)"
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        tally.kills += 1
        tally.cycle_s.append(child.seconds)
        where, in_ckpt, acks, checkpoints = parse(child.lines, state)
        tally.acked += acks
        tally.where[where] += 1
        extra.how[how] = extra.how.get(how, 0) + 1
        extra.in_checkpoint += in_ckpt
        extra.checkpoints_seen += checkpoints
        if not os.path.exists(path):
            tally.integrity_ok += 1  # killed before the file existed: nothing to check
            continue
        if os.path.exists(path + "-wal"):
            frames = (os.path.getsize(path + "-wal") - 32) // (_db.PAGE_SIZE + 24)
            extra.max_wal_frames = max(extra.max_wal_frames, frames)
        extra.max_db_bytes = max(extra.max_db_bytes, os.path.getsize(path))
        short = header_short(path)
        extra.short_files += short
        seen = srt_reads(path, state, extra, run_the_cli=(short and c % 3 == 0) or c % 10 == 0)
        rep = verify_store(path)
        for name in list(state.maybe_gone):
            if name not in rep.chains:
                state.acked = {t: s for t, s in state.acked.items() if s != name}
                state.forks.pop(name, None)
        state.maybe_gone.clear()
        check_turn_store(path, tally, state.acked, state.forks, rep, state.ever)
        if seen and seen != rep.chains:
            extra.srt_mismatch += 1
            extra.examples.append(f"{path}: srt read other messages than the file holds")
    return tally, extra


def test_crash_loop_through_checkpoints(tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    extras: list[Extra] = []
    guard = threading.Lock()

    def run(lane: int, n: int) -> Tally:
        tally, extra = lane_run(lane, n, tmp_path)
        with guard:
            extras.append(extra)
        return tally

    total, elapsed = run_lanes(run, split(KILLS))
    extra = Extra()
    for e in extras:
        extra.merge(e)
    figures = {
        **total.figures(),
        "kills_in_checkpoints": extra.in_checkpoint,
        "kills_by": extra.how,
        "files_shorter_than_their_header_after_the_kill": extra.short_files,
        "stores_srt_refused": extra.refused,
        "srt_read_differs_from_file": extra.srt_mismatch,
        "cli_verify_and_show_runs": extra.cli_runs,
        "checkpoints_begun_in_children": extra.checkpoints_seen,
        "max_wal_frames": extra.max_wal_frames,
        "max_wal_bytes": 32 + extra.max_wal_frames * (_db.PAGE_SIZE + 24),
        "max_db_file_bytes": extra.max_db_bytes,
        "kills_per_file": ROTATE,
        "seconds": round(elapsed, 1),
        "srt_problems": extra.examples,
    }
    emit("crash_checkpoints", figures, capsys, tmp_path_factory.getbasetemp())
    assert total.kills == KILLS
    total.assert_clean()
    assert extra.refused == 0, extra.examples
    assert extra.srt_mismatch == 0, extra.examples
    assert extra.in_checkpoint >= KILLS // 2, figures
    # Files lived past the automatic checkpoint: a WAL of 1,000 pages (16 MB).
    assert extra.max_wal_frames >= 1000, figures
