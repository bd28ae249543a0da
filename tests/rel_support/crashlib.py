"""The crash loops' shared parts: run a child, tally what a kill did, check a store.

``run_child`` spawns ``crash_child.py`` and SIGKILLs it a moment after a marker line;
``Tally`` counts kills, acknowledged turns and every problem found; ``check_turn_store``
checks a file written by the ``append``-style children against the turns they
acknowledged (as an outsider, with ``verify_store``); ``run_lanes`` runs a loop per
lane in threads (two children at a time, on two cores).
"""

from __future__ import annotations

import functools
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rel_support.common import (
    SOAK,
    SUPPORT,
    StoreReport,
    child_env,
    percentile,
    turn_payload,
    verify_store,
)
from rel_support.waits import joined

CHILD = str(SUPPORT / "crash_child.py")
LANES = 2  # two children at a time, each on its own file (2 cores)
# Kill lanes run minutes on a loaded machine: bounded just inside pytest-timeout's 15
# minutes (four hours in a soak), so a lane that never ends is named.
LANES_WAIT_S = 4 * 3600.0 if SOAK else 840.0


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
    from_reader: bool = False,
) -> Child:
    """Spawn a child; ``delay`` s after it prints ``marker`` (or after spawn) SIGKILL it.

    With ``kill=False`` the child is left to finish (or to kill itself). With
    ``from_reader`` the thread reading the child's output kills it, without waking
    another thread first (which can take a GIL switch interval or two, 5 ms each,
    while another lane runs Python code): for kills aimed at a short moment.
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
    reader_killed: list[bool] = []

    def reader() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            if not line.endswith("\n"):
                break  # a line cut by the kill is not an acknowledgement
            lines.append(line.rstrip("\n"))
            if marker is not None and line.startswith(marker):
                if from_reader and kill and not reader_killed:
                    time.sleep(delay)
                    if p.poll() is None:
                        os.kill(p.pid, signal.SIGKILL)
                        reader_killed.append(True)
                seen.set()
        seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    killed = False
    if kill and from_reader:
        seen.wait(timeout)
        p.wait(timeout)
        killed = bool(reader_killed)
    elif kill:
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
    rep: StoreReport | None = None,
    ever_acked: set[str] | None = None,
) -> StoreReport:
    """Check a file written by ``append``/``iokill`` children against what they acknowledged
    (``rep``: the file's ``verify_store`` report, when the caller has it already;
    ``ever_acked``: every turn acknowledged, also in sessions deleted since, which forks
    still hold)."""
    t0 = time.monotonic()
    rep = rep or verify_store(path)
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
    tally.committed_not_acked += len(stored - (ever_acked or set(acked)))
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
    joined(*threads, timeout=LANES_WAIT_S)
    total = Tally()
    for r in results:
        if isinstance(r, BaseException):
            raise r
        total.merge(r)
    return total, time.monotonic() - t0


def split(n: int, lanes: int = LANES) -> list[int]:
    return [n // lanes + (1 if i < n % lanes else 0) for i in range(lanes)]
