"""Crash loop: SIGKILL a writer at random moments, reopen, and check every promise.

A fresh ``python tests/rel_support/crash_child.py`` is spawned for every kill (no
process survives a kill or is reused). The child prints each turn id only after
its commit has returned; the parent kills it, then checks the file as an outsider
(``rel_support.common.verify_store``):

* 0 acknowledged turns lost: every ``ACK`` turn is in its session's chain;
* 0 half-written turns: every stored turn is a whole question and answer whose
  text equals the deterministic payload of its id, in order, at every depth;
* ``PRAGMA integrity_check`` is ``ok`` after every kill, the prefix chain
  recomputes, and the files are still 0600.

Kills also land at every write and sync of an append and of a schema migration
(the child kills itself through ``FaultVFS``), and in the middle of a streamed
reply from the local provider server, and at I/O points of ``srt.maintenance.gc``.

CI: 200 kills at random moments (plus the I/O-point, migration and stream kills).
``SRT_SOAK=1``: 2,000 random kills and more of each other kind.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import srt
from rel_support.common import (
    SOAK,
    SUPPORT,
    StoreReport,
    child_env,
    connect,
    emit,
    make_old_db,
    percentile,
    turn_payload,
    verify_store,
)
from srt.store.sqlite import db as _db
from srt.testing import ProviderServer

CHILD = str(SUPPORT / "crash_child.py")
RANDOM_KILLS = 2000 if SOAK else 200
LANES = 2  # two children at a time, each on its own file (2 cores)
ROTATE = 5  # kills per database file before a new one is started
MAX_DELAY_S = 0.15  # a kill lands up to this long after the child is ready
EARLY = 0.05  # this share of kills lands at a random moment from spawn (import, open)


@dataclass
class Child:
    lines: list[str]
    returncode: int
    stderr: str
    killed_by_parent: bool
    seconds: float


def run_child(
    args: list[str],
    *,
    marker: str | None,
    delay: float,
    timeout: float = 60.0,
    kill: bool = True,
) -> Child:
    """Spawn a child; ``delay`` s after it prints ``marker`` (or after spawn) SIGKILL it.

    With ``kill=False`` the child is left to finish (or to kill itself).
    """
    t0 = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        text=True,
        bufsize=1,
    )
    assert p.stdout is not None and p.stderr is not None
    lines: list[str] = []
    seen = threading.Event()

    def reader() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            if not line.endswith("\n"):
                break  # a line cut by the kill is not an acknowledgement
            lines.append(line.rstrip("\n"))
            if marker is not None and line.startswith(marker):
                seen.set()
        seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    killed = False
    if kill:
        if marker is not None:
            seen.wait(timeout)
        time.sleep(delay)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            killed = True
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise
    t.join(timeout)
    err = p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    return Child(lines, p.returncode, err, killed, time.monotonic() - t0)


@functools.cache
def expected_turn(tid: str) -> tuple[str, str]:
    """``turn_payload`` memoised: the checker recomputes each turn's text once."""
    return turn_payload(tid)


def check_modes(path: str) -> list[str]:
    bad = []
    for suffix in ("", "-wal", "-shm"):
        f = path + suffix
        if os.path.exists(f) and stat.S_IMODE(os.stat(f).st_mode) != 0o600:
            bad.append(f"{f}: mode {stat.S_IMODE(os.stat(f).st_mode):o}")
    return bad


@dataclass
class Tally:
    kills: int = 0
    acked: int = 0
    lost: int = 0
    half_written: int = 0
    integrity_ok: int = 0
    integrity_bad: int = 0
    chain_problems: int = 0
    mode_problems: int = 0
    committed_not_acked: int = 0
    where: Counter[str] = field(default_factory=Counter)
    cycle_s: list[float] = field(default_factory=list)
    check_s: list[float] = field(default_factory=list)
    max_db_bytes: int = 0
    max_turns: int = 0
    examples: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(text)

    def merge(self, other: Tally) -> None:
        for name in (
            "kills",
            "acked",
            "lost",
            "half_written",
            "integrity_ok",
            "integrity_bad",
            "chain_problems",
            "mode_problems",
            "committed_not_acked",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.where.update(other.where)
        self.cycle_s += other.cycle_s
        self.check_s += other.check_s
        self.max_db_bytes = max(self.max_db_bytes, other.max_db_bytes)
        self.max_turns = max(self.max_turns, other.max_turns)
        self.examples += other.examples[: 20 - len(self.examples)]

    def figures(self) -> dict[str, Any]:
        return {
            "kills": self.kills,
            "acknowledged_turns": self.acked,
            "acknowledged_turns_lost": self.lost,
            "half_written_turns": self.half_written,
            "integrity_ok": self.integrity_ok,
            "integrity_not_ok": self.integrity_bad,
            "chain_problems": self.chain_problems,
            "file_mode_problems": self.mode_problems,
            "committed_but_not_yet_acknowledged": self.committed_not_acked,
            "kill_landed": dict(self.where),
            "cycle_s_p50": round(percentile(self.cycle_s, 0.5), 3),
            "check_s_p50": round(percentile(self.check_s, 0.5), 3),
            "max_db_bytes": self.max_db_bytes,
            "problems": self.examples,
        }

    def assert_clean(self) -> None:
        assert self.lost == 0, self.examples
        assert self.half_written == 0, self.examples
        assert self.integrity_bad == 0, self.examples
        assert self.chain_problems == 0, self.examples
        assert self.mode_problems == 0, self.examples
        assert self.integrity_ok >= self.kills  # checked after every kill, all ok


def check_turn_store(
    path: str,
    tally: Tally,
    acked: dict[str, str],
    forks: dict[str, str],
) -> StoreReport:
    """Check a file written by ``append``/``iokill`` children against what they acknowledged."""
    t0 = time.monotonic()
    rep = verify_store(path)
    if rep.integrity == "ok":
        tally.integrity_ok += 1
    else:
        tally.integrity_bad += 1
        tally.problem(f"{path}: integrity_check: {rep.integrity[:200]}")
    tally.chain_problems += len(rep.problems)
    for p in rep.problems[:3]:
        tally.problem(f"{path}: {p}")
    present: dict[str, set[str]] = {}
    last_tid: dict[str, str | None] = {}
    for name, chain in rep.chains.items():
        tids: set[str] = set()
        tid = None
        if len(chain) % 2:
            tally.half_written += 1
            tally.problem(f"{name}: odd number of messages ({len(chain)})")
        for q, a in zip(chain[::2], chain[1::2], strict=False):
            qt, at = str(q.get("content", "")), str(a.get("content", ""))
            tid = qt[2:].split(" ", 1)[0]
            if (q.get("role"), a.get("role")) != ("user", "assistant") or (qt, at) != expected_turn(
                tid
            ):
                tally.half_written += 1
                tally.problem(f"{name}: turn {tid!r} is not whole")
            tids.add(tid)
        present[name] = tids
        last_tid[name] = tid
    for tid, name in acked.items():
        if tid not in present.get(name, set()):
            tally.lost += 1
            tally.problem(f"acknowledged turn {tid} missing from {name}")
    for name, tid in forks.items():
        if last_tid.get(name) != tid:
            tally.lost += 1
            tally.problem(f"acknowledged fork {name} does not end at turn {tid}")
    stored = set().union(*present.values()) if present else set()
    tally.committed_not_acked += len(stored - set(acked))
    bad_modes = check_modes(path)
    tally.mode_problems += len(bad_modes)
    for b in bad_modes:
        tally.problem(b)
    tally.max_db_bytes = max(
        tally.max_db_bytes,
        sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s)),
    )
    tally.check_s.append(time.monotonic() - t0)
    return rep


def parse_acks(lines: list[str], acked: dict[str, str], forks: dict[str, str]) -> tuple[str, int]:
    """Record ``ACK``/``FORK`` lines; return where the kill landed and how many ACKs came."""
    begun = None
    ready = False
    n = 0
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "READY":
            ready = True
        elif kind == "BEGIN":
            begun = rest
        elif kind == "ACK":
            tid, name, _head = rest.split(" ")
            acked[tid] = name
            begun = None
            n += 1
        elif kind == "FORK":
            name, _parent, tid = rest.split(" ")
            forks[name] = tid
    if not ready:
        return "starting or opening", n
    return ("inside an append" if begun is not None else "between appends"), n


def crash_lane(lane: int, cycles: int, root: Path, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    acked: dict[str, str] = {}
    forks: dict[str, str] = {}
    path = ""
    for c in range(cycles):
        if c % ROTATE == 0:
            path = str(root / f"lane{lane}-{c // ROTATE}" / "srt.db")
            acked, forks = {}, {}
            if lane == 0 and c % (ROTATE * 20) == 0:
                expected_turn.cache_clear()  # bounded memory in the soak
        args = ["append", path, f"{lane}-{c}"]
        if rng.random() < EARLY:
            child = run_child(args, marker=None, delay=rng.uniform(0, 0.6))
        else:
            child = run_child(args, marker="READY", delay=rng.uniform(0, MAX_DELAY_S))
        assert child.killed_by_parent and child.returncode == -signal.SIGKILL, child.stderr
        tally.kills += 1
        tally.cycle_s.append(child.seconds)
        where, n = parse_acks(child.lines, acked, forks)
        tally.acked += n
        if not os.path.exists(path):
            where = "before the file existed"
            tally.integrity_ok += 1  # nothing on disk yet: nothing to check
        else:
            check_turn_store(path, tally, acked, forks)
        tally.where[where] += 1
    return tally


def run_lanes(target: Any, counts: list[int]) -> tuple[Tally, float]:
    """Run ``target(lane, count)`` in one thread per lane; merge the tallies."""
    results: list[Tally | BaseException] = [Tally() for _ in counts]

    def run(i: int) -> None:
        try:
            results[i] = target(i, counts[i])
        except BaseException as exc:
            results[i] = exc

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(counts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Tally()
    for r in results:
        if isinstance(r, BaseException):
            raise r
        total.merge(r)
    return total, time.monotonic() - t0


def split(n: int, lanes: int = LANES) -> list[int]:
    return [n // lanes + (1 if i < n % lanes else 0) for i in range(lanes)]


def test_crash_loop_random_kills(tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    total, elapsed = run_lanes(
        lambda lane, n: crash_lane(lane, n, tmp_path, seed=1000 + lane), split(RANDOM_KILLS)
    )
    figures = {**total.figures(), "seconds": round(elapsed, 1), "lanes": LANES}
    emit("crash_random_kills", figures, capsys, tmp_path_factory.getbasetemp())
    assert total.kills == RANDOM_KILLS
    total.assert_clean()
    assert total.acked > total.kills  # the children did get work done between kills


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
