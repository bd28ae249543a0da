"""Crash loop: SIGKILL a writer at every I/O point, mid-stream and mid-gc; reopen; check.

A fresh ``python tests/rel_support/crash_child.py`` is spawned for every kill (no
process survives a kill or is reused). The child prints each turn id only after
its commit has returned; the parent kills it, then checks the file as an outsider
(``rel_support.common.verify_store``):

* 0 acknowledged turns lost: every ``ACK`` turn is in its session's chain;
* 0 half-written turns: every stored turn is a whole question and answer whose
  text equals the deterministic payload of its id, in order, at every depth;
* ``PRAGMA integrity_check`` is ``ok`` after every kill, the prefix chain
  recomputes, and the files are still 0600.

Kills land at every write and sync of an append and of a schema migration (the
child kills itself through ``FaultVFS``), in the middle of a streamed reply from
the local provider server, and at I/O points of ``gc``. The loop of
kills at random moments and inside checkpoints, on long-lived files, is
``test_rel_checkpoints.py``.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import srt
from rel_support.common import (
    SOAK,
    connect,
    emit,
    make_old_db,
    turn_payload,
    verify_store,
)
from rel_support.crashlib import (
    LANES,
    Tally,
    check_modes,
    check_turn_store,
    parse_acks,
    run_child,
    run_lanes,
)
from srt.store.sqlite import db as _db
from srt.testing import ProviderServer

# -- a kill at every write and sync of an append and a fork ------------------------------

IO_TURNS = 12 if SOAK else 2  # sweep until a kill lands after this many acknowledged turns


def make_template(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """An srt file with sessions s0-s2 and three turns, checkpointed and closed."""
    acked = {}
    with srt.Runtime(path) as rt:
        for i in range(3):
            tid = f"t.{i}"
            q, a = turn_payload(tid)
            rt.session(f"s{i}").append(
                {"role": "user", "content": q}, {"role": "assistant", "content": a}
            )
            acked[tid] = f"s{i}"
    return acked, {}


def io_lane(lane: int, root: Path, template: str, base: dict[str, str], ks: list[int]) -> Tally:
    tally = Tally()
    for k in ks:
        path = str(root / f"io-{k}" / "srt.db")
        os.makedirs(os.path.dirname(path), mode=0o700)
        shutil.copy2(template, path)
        child = run_child(["iokill", path, f"k{k}", str(k)], marker=None, delay=0, kill=False)
        assert child.returncode == -signal.SIGKILL, child.stderr
        tally.kills += 1
        tally.cycle_s.append(child.seconds)
        acked, forks = dict(base), {}
        where, n = parse_acks(child.lines, acked, forks)
        tally.acked += n
        tally.where[where] += 1
        check_turn_store(path, tally, acked, forks)
        tally.max_turns = max(tally.max_turns, n)
    return tally


def _io_batch(
    lane: int, _n: int, *, root: Path, template: str, base: dict[str, str], ks: list[int]
) -> Tally:
    return io_lane(lane, root, template, base, [ks[lane]])


def test_crash_at_every_io_point_of_appends_and_forks(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    template = str(tmp_path / "template" / "srt.db")
    base, _ = make_template(template)
    total = Tally()
    k = 1
    elapsed = 0.0
    # Sweep k in batches of one per lane, until a kill lands after IO_TURNS turns.
    while True:
        ks = list(range(k, k + LANES))
        t, dt = run_lanes(
            functools.partial(_io_batch, root=tmp_path, template=template, base=base, ks=ks),
            [1] * LANES,
        )
        total.merge(t)
        elapsed += dt
        k += LANES
        if t.max_turns >= IO_TURNS:
            break
        assert k < 2000, "the sweep never reached its turn count"
    figures = {**total.figures(), "io_points": k - 1, "seconds": round(elapsed, 1)}
    emit("crash_io_points", figures, capsys, tmp_path_factory.getbasetemp())
    total.assert_clean()


# -- a kill at every write and sync of a schema migration --------------------------------


def check_migrated(path: str, old: int, expected: dict[str, Any], tally: Tally) -> int:
    """After a kill during migration: old or new schema, never between; data intact."""
    with connect(path) as conn:
        version = int(conn.execute("PRAGMA user_version").get)
    if version not in (old, _db.SCHEMA_VERSION):
        tally.chain_problems += 1
        tally.problem(f"{path}: schema version {version} after a kill migrating from {old}")
    rep = verify_store(path)
    if rep.integrity == "ok":
        tally.integrity_ok += 1
    else:
        tally.integrity_bad += 1
        tally.problem(f"{path}: integrity {rep.integrity[:200]}")
    tally.chain_problems += len(rep.problems)
    tally.problem("; ".join(rep.problems[:3])) if rep.problems else None
    for name, msgs in expected.items():
        if rep.chains.get(name) != msgs:
            tally.lost += 1
            tally.problem(f"{path}: session {name} changed by a killed migration")
    # And srt itself opens it (migrating now if the kill came first) with nothing lost.
    with srt.Runtime(path) as rt:
        for name, msgs in expected.items():
            if rt.session(name, create=False).messages() != msgs:
                tally.lost += 1
                tally.problem(f"{path}: srt reads session {name} wrongly after migration")
    with connect(path) as conn:
        if conn.execute("PRAGMA user_version").get != _db.SCHEMA_VERSION:
            tally.chain_problems += 1
            tally.problem(f"{path}: not migrated on reopen")
    bad = check_modes(path)
    tally.mode_problems += len(bad)
    for b in bad:
        tally.problem(b)
    tally.acked += sum(len(m) // 2 for m in expected.values())
    return version


def test_crash_at_every_io_point_of_a_migration(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    total = Tally()
    sweeps: dict[str, Any] = {}
    t0 = time.monotonic()
    for old in range(1, _db.SCHEMA_VERSION):
        template = str(tmp_path / f"v{old}" / "srt.db")
        expected = make_old_db(template, old)
        dry = str(tmp_path / f"v{old}-dry" / "srt.db")
        os.makedirs(os.path.dirname(dry), mode=0o700)
        shutil.copy2(template, dry)
        child = run_child(["migrate", dry, "dry", "1000000000"], marker=None, delay=0, kill=False)
        assert child.returncode == 0, child.stderr
        closed = next(x for x in child.lines if x.startswith("CLOSED"))
        counts = dict(kv.split("=") for kv in closed.split()[1:])
        n_ops = int(counts["writes"]) + int(counts["syncs"])
        assert n_ops > 0
        versions: Counter[int] = Counter()

        def lane_run(
            lane: int,
            _n: int,
            old: int = old,
            template: str = template,
            n_ops: int = n_ops,
            versions: Counter[int] = versions,
            expected: dict[str, Any] = expected,
        ) -> Tally:
            tally = Tally()
            # Every I/O point of the newest migration; in CI every other one of older ones.
            step = 1 if SOAK or old == _db.SCHEMA_VERSION - 1 else 2
            for k in list(range(1, n_ops + 2, step))[lane::LANES]:
                path = str(tmp_path / f"v{old}-k{k}" / "srt.db")
                os.makedirs(os.path.dirname(path), mode=0o700)
                shutil.copy2(template, path)
                child = run_child(
                    ["migrate", path, f"k{k}", str(k)], marker=None, delay=0, kill=False
                )
                tally.cycle_s.append(child.seconds)
                if k <= n_ops:
                    assert child.returncode == -signal.SIGKILL, (k, child.stderr)
                    tally.kills += 1
                    tally.where["during migration" if not child.lines else "during close"] += 1
                else:
                    assert child.returncode == 0, child.stderr  # past the last I/O: no kill
                    tally.where["no kill (after the last write)"] += 1
                versions[check_migrated(path, old, expected, tally)] += 1
            return tally

        t, _ = run_lanes(lane_run, [0] * LANES)
        total.merge(t)
        sweeps[f"from_v{old}"] = {
            "io_points": n_ops,
            "writes": int(counts["writes"]),
            "syncs": int(counts["syncs"]),
            "version_found_after_kill": {str(v): n for v, n in sorted(versions.items())},
        }
    figures = {**total.figures(), "sweeps": sweeps, "seconds": round(time.monotonic() - t0, 1)}
    emit("crash_migration", figures, capsys, tmp_path_factory.getbasetemp())
    total.assert_clean()


# -- a kill in the middle of a streamed reply ------------------------------------------------

STREAM_KILLS = 200 if SOAK else 12


def reply_text(tid: str) -> str:
    return f"R {tid} " + " ".join(f"word{i}" for i in range(150))


def test_crash_mid_stream(tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    rng = random.Random(5)
    path = str(tmp_path / "stream" / "srt.db")
    tally = Tally()
    acked_q: set[str] = set()
    acked_r: set[str] = set()
    t0 = time.monotonic()
    with ProviderServer() as srv:
        for c in range(STREAM_KILLS):
            tid = f"st{c}"
            srv.clear()
            srv.script("openai", [reply_text(tid)])
            endless = c % 2 == 0
            if endless:  # a reply that never ends: the kill always lands mid-stream
                srv.fault("openai", "endless", count=1, interval=0.01, after=3)
            delay = rng.uniform(0, 0.1 if endless else 0.003)
            child = run_child(
                ["stream", path, tid, srv.url], marker="DELTA", delay=delay, timeout=30
            )
            tally.cycle_s.append(child.seconds)
            if not child.killed_by_parent:
                assert child.returncode == 0, child.stderr
                tally.where["the stream finished first"] += 1
            else:
                assert child.returncode == -signal.SIGKILL, child.stderr
                tally.kills += 1
                if any(x.startswith("REPLY") for x in child.lines):
                    tally.where["after the reply was stored"] += 1
                elif "DELTA" in child.lines:
                    tally.where["mid-stream"] += 1
                else:
                    tally.where["before the first delta"] += 1
            for line in child.lines:
                kind, _, rest = line.partition(" ")
                if kind == "ACK":
                    acked_q.add(rest.split()[0])
                    tally.acked += 1
                elif kind == "REPLY":
                    acked_r.add(rest.split()[0])
            rep = verify_store(path)
            if rep.integrity == "ok":
                tally.integrity_ok += 1
            else:
                tally.integrity_bad += 1
            tally.chain_problems += len(rep.problems)
            chain = rep.chains.get("chat", [])
            seen_q, seen_r = set(), set()
            last_q = None
            for m in chain:
                text = str(m.get("content"))
                if m.get("role") == "user":
                    last_q = text[2:].split(" ", 1)[0]
                    if text != turn_payload(last_q, 2048)[0]:
                        tally.half_written += 1
                        tally.problem(f"question {last_q} is not whole")
                    seen_q.add(last_q)
                elif m.get("role") == "assistant" and last_q is not None:
                    if text != reply_text(last_q):
                        tally.half_written += 1
                        tally.problem(f"reply to {last_q} is not whole: {text[:40]!r}")
                    seen_r.add(last_q)
            statuses = [s for s in rep.status.values() if s is not None]
            if statuses:
                tally.half_written += len(statuses)
                tally.problem(f"partial replies stored after a SIGKILL: {statuses}")
            lost = (acked_q - seen_q) | (acked_r - seen_r)
            tally.lost += len(lost)
            if lost:
                tally.problem(f"acknowledged but missing: {sorted(lost)}")
            bad = check_modes(path)
            tally.mode_problems += len(bad)
        assert srv.errors == []
    tally.kills = max(tally.kills, 0)
    figures = {
        **tally.figures(),
        "cycles": STREAM_KILLS,
        "replies_acknowledged": len(acked_r),
        "seconds": round(time.monotonic() - t0, 1),
    }
    emit("crash_mid_stream", figures, capsys, tmp_path_factory.getbasetemp())
    assert tally.lost == 0 and tally.half_written == 0 and tally.chain_problems == 0
    assert tally.integrity_bad == 0 and tally.mode_problems == 0, tally.examples
    assert tally.where["mid-stream"] >= STREAM_KILLS // 2


# -- a kill at the writes and syncs of a garbage collection ------------------------------

GC_POINTS = 0 if SOAK else 12  # 0: every I/O point; else this many, spread evenly


def make_garbage(path: str) -> dict[str, list[dict[str, Any]]]:
    """Sessions to keep (with a fork) and deleted sessions whose turns are garbage."""
    with srt.Runtime(path) as rt:
        for i in range(3):
            s = rt.session(f"keep-{i}")
            d = rt.session(f"drop-{i}")
            for j in range(6):
                q, a = turn_payload(f"keep.{i}.{j}", 8192)
                s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
                q, a = turn_payload(f"drop.{i}.{j}", 8192)
                d.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
            s.fork(f"keep-{i}-fork", at=4)
            d.fork(f"drop-{i}-fork", at=6)
        for i in range(3):
            rt.delete(f"drop-{i}")
            rt.delete(f"drop-{i}-fork")
        return {i.name: rt.session(i.name).messages() for i in rt.sessions()}


def test_crash_at_io_points_of_gc(tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    template = str(tmp_path / "gc-template" / "srt.db")
    expected = make_garbage(template)
    dry = str(tmp_path / "gc-dry" / "srt.db")
    os.makedirs(os.path.dirname(dry), mode=0o700)
    shutil.copy2(template, dry)
    child = run_child(["gc", dry, "dry", "1000000000"], marker=None, delay=0, kill=False)
    assert child.returncode == 0, child.stderr
    gc_line = next(x for x in child.lines if x.startswith("GC "))
    closed = next(x for x in child.lines if x.startswith("CLOSED"))
    counts = dict(kv.split("=") for kv in closed.split()[1:])
    n_ops = int(counts["writes"]) + int(counts["syncs"])
    swept = dict(kv.split("=") for kv in gc_line.split()[1:])
    assert int(swept["nodes"]) > 0 and int(swept["messages"]) > 0
    if GC_POINTS and n_ops > GC_POINTS:
        ks = sorted({1 + round(i * (n_ops - 1) / (GC_POINTS - 1)) for i in range(GC_POINTS)})
    else:
        ks = list(range(1, n_ops + 1))

    def lane_run(lane: int, _n: int) -> Tally:
        tally = Tally()
        for k in ks[lane::LANES]:
            path = str(tmp_path / f"gc-k{k}" / "srt.db")
            os.makedirs(os.path.dirname(path), mode=0o700)
            shutil.copy2(template, path)
            child = run_child(["gc", path, f"k{k}", str(k)], marker=None, delay=0, kill=False)
            assert child.returncode == -signal.SIGKILL, (k, child.stderr)
            tally.kills += 1
            tally.cycle_s.append(child.seconds)
            tally.where["during gc (sweep, commit or checkpoint)"] += 1
            rep = verify_store(path)
            if rep.integrity == "ok":
                tally.integrity_ok += 1
            else:
                tally.integrity_bad += 1
                tally.problem(f"k={k}: integrity {rep.integrity[:100]}")
            tally.chain_problems += len(rep.problems)
            for p in rep.problems[:3]:
                tally.problem(f"k={k}: {p}")
            for name, msgs in expected.items():
                tally.acked += len(msgs) // 2
                if rep.chains.get(name) != msgs:
                    tally.lost += 1
                    tally.problem(f"k={k}: live session {name} changed by a killed gc")
            # srt's own verify agrees, and gc runs to the end afterwards.
            with srt.Runtime(path) as rt:
                if rt.store.verify().faults:
                    tally.chain_problems += 1
                    tally.problem(f"k={k}: srt verify found faults after the kill")
                rt.store.gc()
                for name, msgs in expected.items():
                    if rt.session(name, create=False).messages() != msgs:
                        tally.lost += 1
            bad = check_modes(path)
            tally.mode_problems += len(bad)
        return tally

    total, elapsed = run_lanes(lane_run, [0] * LANES)
    figures = {
        **total.figures(),
        "io_points_in_gc": n_ops,
        "io_points_killed": len(ks),
        "swept_nodes": int(swept["nodes"]),
        "swept_messages": int(swept["messages"]),
        "seconds": round(elapsed, 1),
    }
    emit("crash_gc", figures, capsys, tmp_path_factory.getbasetemp())
    total.assert_clean()
