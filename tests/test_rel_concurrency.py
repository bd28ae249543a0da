"""Concurrency: many processes and threads on one file, a same-head race, a long reader.

* 4 processes x 4 threads append for 10 s (60 s with ``SRT_SOAK=1``), half to two
  shared sessions (``rebase=True``) and half each to its own session. Pass: 0
  errors reach a caller, 0 acknowledged turns lost, every stored turn whole and
  acknowledged, each thread's turns in its own order, every chain intact.
  Reported: commits/s and p50/p99 append latency.
* A same-head race between processes: per round exactly one append wins and
  every other gets ``ConflictError`` with nothing written; ``rebase=True`` then
  puts each loser's turn on top. Never a silent overwrite.
* A long-lived reader pins the WAL; once it is released the WAL is checkpointed,
  restarts from the top and is cut back to ``_db.JOURNAL_SIZE_LIMIT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import (
    SOAK,
    SUPPORT,
    child_env,
    connect,
    emit,
    percentile,
    turn_payload,
    verify_store,
)
from srt.store.sqlite import db as _db

WORKER = str(SUPPORT / "conc_worker.py")
PROCS, THREADS, SHARED = 4, 4, 2
SECONDS = 60.0 if SOAK else 10.0


def _spawn(mode: str, path: str, args: list[str]) -> list[subprocess.Popen[str]]:
    """``PROCS`` worker processes of ``conc_worker.py MODE PATH PROC *args``."""
    return [
        subprocess.Popen(
            [sys.executable, WORKER, mode, path, str(p), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            text=True,
        )
        for p in range(PROCS)
    ]


def _results(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Every worker's last JSON line, once all have exited 0."""
    outs = [p.communicate(timeout=SECONDS + 120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def _gather(procs: list[subprocess.Popen[str]], key: str) -> list[Any]:
    """Every worker's list ``key`` from its last JSON line, once all have exited 0."""
    return [x for result in _results(procs) for x in result[key]]


@pytest.mark.exclusive
def test_processes_and_threads_append_together(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    path = str(tmp_path / "conc" / "srt.db")
    srt.Runtime(path).close()  # created once here; the workers open it concurrently
    start = time.time() + 3.0  # every worker has imported srt and opened the file by then
    args = [str(THREADS), str(SECONDS), str(start), str(SHARED)]
    procs = _spawn("load", path, args)
    threads = _gather(procs, "threads")
    assert len(threads) == PROCS * THREADS

    errors = [e for t in threads for e in t["errors"]]
    lat = [x for t in threads for x in t["lat"]]
    lat_shared = [x for t in threads if not t["own"] for x in t["lat"]]
    lat_own = [x for t in threads if t["own"] for x in t["lat"]]
    acked: dict[str, list[str]] = {}
    for t in threads:
        acked.setdefault(t["session"], []).extend(t["acked"])

    rep = verify_store(path)
    lost = 0
    half = 0
    unacked = 0
    order = 0
    for name, chain in rep.chains.items():
        tids = []
        if len(chain) % 2:
            half += 1
        for q, a in zip(chain[::2], chain[1::2], strict=False):
            tid = str(q.get("content"))[2:].split(" ", 1)[0]
            if (q.get("content"), a.get("content")) != turn_payload(tid, 2048):
                half += 1
            tids.append(tid)
        want = acked.get(name, [])
        lost += len(set(want) - set(tids))
        unacked += len(set(tids) - set(want))
        if len(tids) != len(set(tids)):
            half += len(tids) - len(set(tids))  # a turn stored twice would be a retry bug
        # Each thread's turns appear in the order it appended them.
        by_thread: dict[str, list[int]] = {}
        for tid in tids:
            p, t, i = tid.split(".")
            by_thread.setdefault(f"{p}.{t}", []).append(int(i))
        order += sum(1 for seq in by_thread.values() if seq != sorted(seq))
        if name.startswith("own-"):
            order += tids != want
    commits = len(lat)
    figures = {
        "processes": PROCS,
        "threads_per_process": THREADS,
        "seconds": SECONDS,
        "commits": commits,
        "commits_per_s": round(commits / SECONDS, 1),
        "shared_commits": len(lat_shared),
        "own_commits": len(lat_own),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 3),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
        "max_ms": round(max(lat, default=0) * 1000, 3),
        "shared_p50_ms": round(percentile(lat_shared, 0.5) * 1000, 3),
        "shared_p99_ms": round(percentile(lat_shared, 0.99) * 1000, 3),
        "own_p50_ms": round(percentile(lat_own, 0.5) * 1000, 3),
        "own_p99_ms": round(percentile(lat_own, 0.99) * 1000, 3),
        "errors_reaching_caller": len(errors),
        "error_kinds": dict(Counter(e.split(":")[0] for e in errors)),
        "lost_turns": lost,
        "half_written_turns": half,
        "stored_but_unacknowledged": unacked,
        "order_violations": order,
        "integrity": rep.integrity,
        "chain_problems": len(rep.problems),
        "sessions": rep.sessions,
        "nodes": rep.nodes,
    }
    emit("concurrency_load", figures, capsys, tmp_path_factory.getbasetemp())
    assert errors == []
    assert lost == 0 and half == 0 and unacked == 0 and order == 0
    assert rep.ok, rep.problems[:5]
    assert len(lat_shared) > 0 and len(lat_own) > 0


REBASE_TIMEOUT = 0.0 if SOAK else 1.0  # 0: the default, the busy timeout (10 s)


def _one_commit_s(path: str, until: float) -> list[float]:
    """Appends of the same size to a file of its own, one every 20 ms until ``until``:
    what one commit costs on this machine while the workers load it."""
    out = []
    with srt.Runtime(path) as rt:
        s = rt.session("solo")
        i = 0
        while time.time() < until:
            q, a = turn_payload(f"solo.{i}", 2048)
            t0 = time.perf_counter()
            s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
            out.append(time.perf_counter() - t0)
            i += 1
            time.sleep(0.02)
    return out


@pytest.mark.exclusive
def test_rebase_gives_up_at_its_deadline_under_contention(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    """4 processes x 4 threads all append to one session with ``rebase=True``: each call
    stores its turn or gives up with a typed error; no step of a call (a commit attempt,
    a re-read of the head) begins after its deadline, later than a thread of theirs
    waited to run; and none takes longer than its deadline plus the longest step's work
    (timed in the workers, under the same load: a commit from the moment it held the
    write lock, a re-read whole), plus the longest a thread of theirs waited to run."""
    path = str(tmp_path / "hot" / "srt.db")
    srt.Runtime(path).close()
    start = time.time() + 3.0
    args = [str(THREADS), str(SECONDS), str(start), str(REBASE_TIMEOUT)]
    procs = _spawn("deadline", path, args)
    solo = _one_commit_s(str(tmp_path / "solo" / "srt.db"), start + SECONDS)
    results = _results(procs)
    calls = [call for result in results for call in result["calls"]]
    # How late the workers' threads woke from a sleep (conc_worker.py): past the deadline
    # the call's last step (a commit, or the read of a rebase) can wait that long for a
    # core or the GIL on top of its own time.
    late = max(x for result in results for x in result["late"])
    # What a step past the deadline can still do: finish the commit it holds the write
    # lock for, or the re-read it began (measured where they ran, so a commit's waits
    # for the GIL among four threads count; the solo commits above are a figure only).
    step = max(max(result["work_max"].values()) for result in results)
    began_late = max(result["began_after_deadline_max"] for result in results)
    deadline = REBASE_TIMEOUT or _db.BUSY_TIMEOUT_MS / 1000
    lat = [x for x, _ in calls]
    outcomes = Counter(o for _, o in calls)
    gave_up = [x for x, o in calls if o != "ok"]
    one_commit = max(solo)
    rep = verify_store(path)
    figures = {
        "processes": PROCS,
        "threads_per_process": THREADS,
        "seconds": SECONDS,
        "deadline_s": deadline,
        "calls": len(calls),
        "outcomes": dict(outcomes),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 1),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
        "max_ms": round(max(lat) * 1000, 1),
        "gave_up_min_ms": round(min(gave_up, default=0) * 1000, 1),
        "one_commit_p50_ms": round(percentile(solo, 0.5) * 1000, 1),
        "one_commit_max_ms": round(one_commit * 1000, 1),
        "max_over_deadline_ms": round((max(lat) - deadline) * 1000, 1),
        "wake_late_max_ms": round(late * 1000, 1),
        "step_work_max_ms": round(step * 1000, 1),
        "step_began_after_deadline_max_ms": round(began_late * 1000, 1),
        "slowest": [(round(x * 1000, 1), o) for x, o in sorted(calls, reverse=True)[:5]],
        "stored_turns": len(rep.chains.get("hot", [])) // 2,
        "integrity": rep.integrity,
    }
    emit("concurrency_rebase_deadline", figures, capsys, tmp_path_factory.getbasetemp())
    assert set(outcomes) <= {"ok", "ConflictError", "StoreBusyError"}, outcomes
    assert outcomes["ok"] == len(rep.chains["hot"]) // 2 and rep.ok
    assert began_late <= late, figures
    assert max(lat) <= deadline + max(step, one_commit) + late, figures


def test_same_head_race_between_processes(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    path = str(tmp_path / "race" / "srt.db")
    rounds = 200 if SOAK else 25
    with srt.Runtime(path) as rt:
        rt.session("race").append({"role": "system", "content": "race"})
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "race", path, str(p)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            text=True,
            bufsize=1,
        )
        for p in range(PROCS)
    ]

    def say(line: str) -> None:
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(line + "\n")
            p.stdin.flush()

    def hear(p: subprocess.Popen[str]) -> str:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line, p.stderr.read() if p.stderr else ""
        return line.strip()

    wins = conflicts = rebased = 0
    try:
        assert [hear(p) for p in procs] == ["READY"] * PROCS
        for r in range(rounds):
            say(f"ROUND {r}")
            heads = {hear(p).split()[2] for p in procs}
            assert len(heads) == 1, heads  # every handle saw the same head
            say(f"GO {r}")
            results = [hear(p) for p in procs]
            kinds = Counter(x.split()[0] for x in results)
            assert kinds == {"WIN": 1, "CONFLICT": PROCS - 1}, results
            wins += 1
            conflicts += PROCS - 1
            for p, res in zip(procs, results, strict=True):
                if res.startswith("CONFLICT"):
                    assert hear(p).startswith(f"REBASED {r}")
                    rebased += 1
        say("END")
        for p in procs:
            p.wait(30)
            assert p.returncode == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    f.close()
    with srt.Runtime(path) as rt:
        texts = [m["content"] for m in rt.session("race").messages()[1:]]
    want = sorted(f"r{r} p{p}" for r in range(rounds) for p in range(PROCS))
    assert sorted(texts) == want  # every turn once: the losers' turns rebased, none lost
    for r in range(rounds):  # rounds do not interleave: each round's turns are together
        block = texts[r * PROCS : (r + 1) * PROCS]
        assert {t.split()[0] for t in block} == {f"r{r}"}
    rep = verify_store(path)
    assert rep.ok, rep.problems[:5]
    figures = {
        "processes": PROCS,
        "rounds": rounds,
        "winners": wins,
        "conflict_errors": conflicts,
        "rebased_after_conflict": rebased,
        "silent_overwrites": len(want) - len(set(texts) & set(want)),
        "integrity": rep.integrity,
    }
    emit("concurrency_same_head_race", figures, capsys, tmp_path_factory.getbasetemp())


def test_wal_is_checkpointed_after_a_long_reader_is_released(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    path = str(tmp_path / "wal" / "srt.db")
    wal = path + "-wal"
    turns = 1000 if SOAK else 150
    with srt.Runtime(path) as rt:
        s = rt.session("w")

        def write(n: int, tag: str) -> None:
            for i in range(n):
                q, a = turn_payload(f"{tag}.{i}", 20 * 1024)
                s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})

        write(10, "warm")
        with connect(path) as reader:
            reader.execute("BEGIN")
            pinned = reader.execute("SELECT count(*) FROM messages").get
            write(turns, "held")
            held = os.path.getsize(wal)
            # The reader's snapshot never moved while the writer went on.
            assert reader.execute("SELECT count(*) FROM messages").get == pinned
            reader.execute("COMMIT")
        # Released: the next commits checkpoint the WAL and start it again from the top.
        write(turns, "after")
        after = os.path.getsize(wal)
        with connect(path) as probe:
            busy, log, done = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        write(turns, "again")
        again = os.path.getsize(wal)
    figures = {
        "turns_per_phase": turns,
        "wal_bytes_while_reader_held": held,
        "wal_bytes_after_release_and_as_many_turns": after,
        "wal_bytes_after_another_round": again,
        "checkpoint_busy": busy,
        "checkpoint_log_frames": log,
        "checkpoint_done_frames": done,
        "autocheckpoint_pages": 1000,
        "journal_size_limit": _db.JOURNAL_SIZE_LIMIT,
    }
    emit("concurrency_long_reader_wal", figures, capsys, tmp_path_factory.getbasetemp())
    # While the reader held its snapshot the WAL had to grow past the autocheckpoint size.
    assert held > 1000 * _db.PAGE_SIZE
    # Released: checkpointed, restarted from the top and cut back to the size limit, and
    # it grows no further for the same work.
    assert busy == 0 and log == done
    assert after <= _db.JOURNAL_SIZE_LIMIT
    assert again <= _db.JOURNAL_SIZE_LIMIT
    assert verify_store(path).ok
