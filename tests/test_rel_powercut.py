"""Durability as a choice (issue 13, item 7): ``Runtime(durability="normal" | "full")``
under simulated power cuts.

A SIGKILL cannot show what a power cut does: the operating system still writes what
the process handed it. ``PowerCutVFS`` (``rel_support/powercut.py``) can: at a random
write or sync (the K-th I/O after the child is ready) it undoes every write not yet
synced, in every file (or keeps each file's first few, as a disk flushing in order
might), and the child dies on the spot. Three cuts in five count every I/O, one only
syncs, one only writes to the database file (inside checkpoints). The child appends
turns of 0-20 KB to one session of a long-lived file and prints each turn's id once
``append`` returned.

After each cut the file is opened by srt (0 refusals) and checked as an outsider
(``integrity_check``, every hash and link), and its session must be the history
before this child, then a prefix of this child's acknowledged turns, then at most the
turn in flight, every turn whole. Pass:

* ``full``: 0 acknowledged turns lost;
* ``normal``: only a suffix of the newest turns lost, integrity always ok.

What each mode costs per append is timed too (the same turns, on this machine's disk).
CI: 20 cuts per mode; ``SRT_SOAK=1``: 300.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import srt
from rel_support.common import SOAK, emit, percentile, turn_payload, verify_store
from rel_support.crashlib import expected_turn, run_child

CUTS = int(os.environ.get("SRT_REL_CUTS") or (300 if SOAK else 20))
MAX_K = 1500  # the cut lands at one of the first MAX_K writes and syncs
ROTATE = 10  # cuts per file


def _tids(chain: list[dict[str, Any]]) -> tuple[list[str], int]:
    """The turn ids of a chain, and how many of its turns are not whole."""
    tids, bad = [], len(chain) % 2
    for q, a in zip(chain[::2], chain[1::2], strict=False):
        tid = str(q.get("content", ""))[2:].split(" ", 1)[0]
        if (q.get("content"), a.get("content")) != expected_turn(tid):
            bad += 1
        tids.append(tid)
    return tids, bad


def run_mode(durability: str, root: Path, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    f: dict[str, Any] = {
        "cuts": 0,
        "acknowledged": 0,
        "acknowledged_lost": 0,
        "not_a_prefix": 0,
        "half_written": 0,
        "integrity_not_ok": 0,
        "srt_refused": 0,
        "verify_not_ok": 0,
        "cut_at": {},
        "writes_undone": [],
        "lost_per_cut": [],
    }
    history: list[str] = []
    path = ""
    for c in range(CUTS):
        if c % ROTATE == 0:
            path = str(root / f"{durability}-{c // ROTATE}" / "srt.db")
            srt.Runtime(path).close()  # created and synced before the first cut
            history = []
            expected_turn.cache_clear()
        on = rng.choice(["any", "any", "any", "sync", "db"])
        k = rng.randint(1, {"any": MAX_K, "sync": 40, "db": 150}[on])
        keep = 0 if rng.random() < 0.5 else rng.randint(1, 20)
        child = run_child(
            ["powercut", path, f"{durability}{c}", f"{durability},k={k},keep={keep},on={on}"],
            marker=None,
            delay=0,
            kill=False,
            timeout=120,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        acked = [x.split()[1] for x in child.lines if x.startswith("ACK ")]
        begun = [x.split()[1] for x in child.lines if x.startswith("BEGIN ")]
        cut = next(x for x in child.lines if x.startswith("CUT "))
        _, io, file_kind, undone = cut.split()
        f["cuts"] += 1
        f["acknowledged"] += len(acked)
        f["cut_at"][f"{io} {file_kind}"] = f["cut_at"].get(f"{io} {file_kind}", 0) + 1
        f["writes_undone"].append(int(undone.split("=")[1]))
        try:
            with srt.Runtime(path, durability=durability) as rt:
                got = rt.session("p").messages()
                f["verify_not_ok"] += not rt.store.verify().ok
        except srt.SrtError:
            f["srt_refused"] += 1
            got = None
        rep = verify_store(path)
        f["integrity_not_ok"] += rep.integrity != "ok" or bool(rep.problems)
        chain = rep.chains.get("p", [])
        if got is not None and got != chain:
            f["srt_refused"] += 1
        tids, bad = _tids(chain)
        f["half_written"] += bad
        new = tids[len(history) :]
        inflight = begun[len(acked) :]
        kept = len(new) - (1 if new and new[-1:] == inflight[:1] else 0)
        if tids[: len(history)] != history or new[:kept] != acked[:kept]:
            f["not_a_prefix"] += 1
        lost = len(acked) - kept
        f["acknowledged_lost"] += max(0, lost)
        f["lost_per_cut"].append(max(0, lost))
        history = tids
    f["cuts_that_lost_turns"] = sum(1 for x in f["lost_per_cut"] if x)
    f["max_lost_in_one_cut"] = max(f["lost_per_cut"], default=0)
    f["writes_undone_p50"] = percentile([float(x) for x in f["writes_undone"]], 0.5)
    del f["lost_per_cut"], f["writes_undone"]
    return f


def append_cost(durability: str, path: str, n: int = 200) -> dict[str, float]:
    """Seconds per append of the same turns in ``durability`` mode, on a file of its own."""
    times = []
    with srt.Runtime(path, durability=durability) as rt:
        s = rt.session("t")
        for i in range(n):
            q, a = turn_payload(f"cost.{i}", 2048)
            t0 = time.perf_counter()
            s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
            times.append(time.perf_counter() - t0)
    return {
        "append_p50_us": round(percentile(times, 0.5) * 1e6, 1),
        "append_p99_us": round(percentile(times, 0.99) * 1e6, 1),
    }


def test_power_cuts_full_loses_nothing_normal_a_suffix(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    t0 = time.monotonic()
    full = run_mode("full", tmp_path, seed=71)
    normal = run_mode("normal", tmp_path, seed=72)
    cost = {m: append_cost(m, str(tmp_path / f"cost-{m}" / "srt.db")) for m in ("normal", "full")}
    figures = {
        "full": full,
        "normal": normal,
        "cost": cost,
        "load_average": os.getloadavg()[0],
        "seconds": round(time.monotonic() - t0, 1),
    }
    emit("durability_power_cuts", figures, capsys, tmp_path_factory.getbasetemp())
    for mode in (full, normal):
        assert mode["srt_refused"] == 0 and mode["verify_not_ok"] == 0, figures
        assert mode["integrity_not_ok"] == 0 and mode["half_written"] == 0, figures
        assert mode["not_a_prefix"] == 0, figures
    assert full["acknowledged_lost"] == 0, figures
    assert full["acknowledged"] > 0 and normal["acknowledged"] > 0
