"""The ``many`` workload: many live sessions sharing a system prompt, and throughput.

Memory: ``sessions`` conversations of ``turns`` turns (user 50-200 chars, assistant
100-400) share one 4 KB system prompt (``workloads.many``) and are written to one
database. A fresh Python process then opens them all and holds them live, and its RSS
growth (``VmRSS`` in ``/proc/self/status``, after minus before) is compared with the
unique bytes (each distinct canonical message body once, the shared system prompt
once). Three states are measured, each in its own process:

* ``loaded``: every session opened and its chain loaded (``len(session)``);
* ``hot``: loaded, and its next request built once (the assembly kept for the next);
* ``hot2``: loaded, and built once for OpenAI Chat and once for Anthropic Messages;
* ``dropped``: ``hot2``, then every handle dropped: what stays (it should be the
  runtime's bounded caches only);
* ``budget``: ``Runtime(memory_budget=...)``, every session opened, held and built
  once for both formats (the ``budget`` workload, with 100,000 sessions);
* ``stateless``: the baseline, a client holding the same conversations as lists of
  dicts (the system prompt dict shared), no database.

Throughput: ``P`` processes x ``T`` threads, each thread driving its own sessions in the
same database file (append the user message, build the request, append the reply);
turns per second over the wall time of the whole run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from ..message import canonicalize
from ..runtime import Runtime
from ..store.sqlite import SQLiteStore
from . import workloads
from .naive import MODEL


def rss() -> int:
    """Resident set size of this process in bytes (Linux), else 0."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


ANTHROPIC_MODEL = "claude-sonnet-4-5"


def _measure(path: str, mode: str, sessions: int, turns: int, seed: int, budget: int = 0) -> None:
    """Run in a child process: print the RSS growth of holding every session live."""
    import gc

    if mode == "stateless":
        gc.collect()
        before = rss()
        system, convs = workloads.many(sessions, turns, seed=seed)
        held = [[system, *msgs] for msgs in convs]
        gc.collect()
        after = rss()
        print(json.dumps({"rss": after - before, "n": len(held)}))
        return
    rt = Runtime(path, memory_budget=budget) if budget else Runtime(path)
    names = [f"s{i}" for i in range(sessions)]
    gc.collect()
    before = rss()
    live = [rt.session(n) for n in names]
    for s in live:
        len(s)
        if mode == "hot":
            s.request("openai.chat", model=MODEL)
        elif mode in ("hot2", "dropped", "budget"):
            s.request("openai.chat", model=MODEL)
            s.request("anthropic.messages", model=ANTHROPIC_MODEL, max_tokens=1024)
    n = len(live)
    if mode == "dropped":
        live.clear()
    gc.collect()
    after = rss()
    print(json.dumps({"rss": after - before, "n": n}))


def _child(path: str, mode: str, sessions: int, turns: int, seed: int, budget: int = 0) -> int:
    code = (
        "import sys; from srt.bench.many import _measure; "
        "_measure(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:]))"
    )
    out = subprocess.run(
        [
            *(sys.executable, "-c", code, path, mode),
            *(str(sessions), str(turns), str(seed), str(budget)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["rss"])


def _worker(path: str, prefix: str, threads: int, turns: int, seed: int) -> None:
    """Run in a child process: ``threads`` threads, each driving its own session."""
    rt = Runtime(path)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def drive(k: int) -> None:
        s = rt.session(f"{prefix}-{k}")
        system, convs = workloads.many(1, turns, seed=seed + k)
        msgs = next(iter(convs))
        s.append(system)
        t0 = time.time()
        for i in range(0, len(msgs), 2):
            s.append(msgs[i])
            s.request("openai.chat", model=MODEL)
            s.append(msgs[i + 1])
        with lock:
            spans.append((t0, time.time()))

    ts = [threading.Thread(target=drive, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rt.close()
    print(json.dumps({"start": min(a for a, _ in spans), "end": max(b for _, b in spans)}))


def throughput(path: str, procs: int, threads: int, turns: int, seed: int) -> float:
    """Turns per second with ``procs`` processes x ``threads`` threads on one file."""
    Runtime(path).close()  # create the file first: the workers only open it
    code = (
        "import sys; from srt.bench.many import _worker; "
        "_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))"
    )
    children = [
        subprocess.Popen(
            [
                *(sys.executable, "-c", code, path, f"p{procs}x{threads}-{p}"),
                *(str(threads), str(turns), str(seed + 100 * p)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    spans = []
    for c in children:
        out, _ = c.communicate(timeout=600)
        if c.returncode:
            raise RuntimeError(f"throughput worker failed with exit code {c.returncode}")
        d = json.loads(out.strip().splitlines()[-1])
        spans.append((d["start"], d["end"]))
    wall = max(b for _, b in spans) - min(a for a, _ in spans)
    return float(procs * threads * turns / wall)


def write_sessions(
    path: str, sessions: int, turns: int, seed: int, progress: Any = None
) -> tuple[int, float]:
    """Write ``workloads.many``'s conversations to ``path``: (unique bytes, seconds).

    This is the workload's set-up, not a measurement: it writes without waiting for the
    disk (``synchronous=OFF``), which would otherwise take most of its time."""
    rt = Runtime(path)
    store = rt.store
    if isinstance(store, SQLiteStore):
        store.db.connection().execute("PRAGMA synchronous=OFF")
    system, convs = workloads.many(sessions, turns, seed=seed)
    sys_body, _ = canonicalize(system)
    seen: set[bytes] = {sys_body}
    unique = len(sys_body)
    t0 = time.perf_counter()
    for i, msgs in enumerate(convs):
        rt.session(f"s{i}").append(system, *msgs)
        for m in msgs:
            body, _ = canonicalize(m)
            if body not in seen:
                seen.add(body)
                unique += len(body)
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1, sessions)
    write_s = time.perf_counter() - t0
    rt.close()
    return unique, write_s


def run_many(
    workdir: str,
    sessions: int = 10_000,
    turns: int = 20,
    *,
    seed: int = 1,
    throughput_turns: int = 200,
    progress: Any = None,
) -> dict[str, Any]:
    path = os.path.join(workdir, "many.db")
    unique, write_s = write_sessions(path, sessions, turns, seed, progress)
    out: dict[str, Any] = {
        "sessions": sessions,
        "turns": turns,
        "messages": sessions * (2 * turns + 1),
        "unique_bytes": unique,
        "write_s": write_s,
        "db_bytes": os.path.getsize(path),
    }
    allowance = 1.5 * unique + 2048 * sessions
    out["rss_allowance"] = allowance
    for mode in ("loaded", "hot", "hot2", "dropped", "stateless"):
        grown = _child(path, mode, sessions, turns, seed)
        out[f"rss_{mode}"] = grown
        out[f"rss_{mode}_vs_allowance"] = grown / allowance
        out[f"rss_{mode}_per_session"] = (grown - unique) / sessions
    tp: dict[str, float] = {}
    for procs, threads in ((1, 1), (1, 2), (2, 1), (2, 2)):
        tpath = os.path.join(workdir, f"throughput-{procs}x{threads}.db")
        tp[f"{procs}x{threads}"] = throughput(tpath, procs, threads, throughput_turns, seed)
    out["turns_per_s"] = tp
    return out


def run_budget(
    workdir: str,
    sessions: int = 100_000,
    turns: int = 20,
    *,
    budget: int = 256 * 1024 * 1024,
    seed: int = 1,
    progress: Any = None,
) -> dict[str, Any]:
    """``sessions`` conversations held open under ``Runtime(memory_budget=budget)``, each
    built once for two formats: RSS growth against budget + 1.5 x unique + 2 KB each."""
    path = os.path.join(workdir, "budget.db")
    unique, write_s = write_sessions(path, sessions, turns, seed, progress)
    grown = _child(path, "budget", sessions, turns, seed, budget)
    allowance = budget + 1.5 * unique + 2048 * sessions
    return {
        "sessions": sessions,
        "turns": turns,
        "budget": budget,
        "unique_bytes": unique,
        "write_s": write_s,
        "db_bytes": os.path.getsize(path),
        "rss": grown,
        "rss_allowance": allowance,
        "rss_vs_allowance": grown / allowance,
    }
