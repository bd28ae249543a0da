"""srt on PostgreSQL when things break: killed clients, a crashed server, cut connections.

    pip install '.[postgres]'
    python bench/pg_faults.py kill --kills 200 --json bench/results/pg_kill.json
    python bench/pg_faults.py restart --json bench/results/pg_restart.json
    python bench/pg_faults.py kill --kills 10                    # a short run

Each run starts a throwaway PostgreSQL of its own (``srt.testing.pgserver``, default
durability: fsync on, synchronous commit), since ``restart`` restarts it; ``kill --url``
runs on an existing server instead (a database ``pg_faults_kill`` of its own, created
empty), as the tests do on theirs.

``kill``: WRITERS client processes at a time append turns (a user message and its
reply) to a session of their own and to one shared session (``rebase=True``), sending
each turn's id to the parent once ``append`` has returned. The parent SIGKILLs a random one after a
random 50-400 ms and starts another, KILLS times. Then every acknowledged turn must be
stored exactly once, whole, in an intact chain, and ``verify`` must find nothing.

``restart``: THREADS threads append turns for SECONDS while the server is restarted
with ``pg_ctl restart -m immediate`` (a crash: no checkpoint, recovery from the WAL)
and, separately, every srt connection is cut with ``pg_terminate_backend``. A caller
that gets an error records its type, waits 50 ms and asks the store whether its turn
landed (``refresh()``); if not, it appends again. Pass: every error is the typed,
retryable ``StoreUnavailableError``; every thread appends again after each fault
(reported: the longest gap); every acknowledged turn is stored exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import psycopg
from pgcommon import PgServer, check_turns, dump, environment, new_database, turn

import srt
from srt.errors import StoreUnavailableError

# -- kill -------------------------------------------------------------------------------------


def worker_kill(url: str, name: str, out: Connection) -> None:
    """Append turns to ``own-NAME`` and ``shared`` until killed; send each acknowledged
    id to ``out`` (one small message per write, so a kill never leaves half of one)."""
    with srt.Runtime(url) as rt:
        own, shared = rt.session(f"own-{name}"), rt.session("shared")
        out.send_bytes(b"ready")
        i = 0
        while True:
            tid = f"{name}.{i}"
            u, a = turn(tid, 1024)
            if i % 2:
                shared.append(u, a, rebase=True)
            else:
                own.append(u, a)
            out.send_bytes(tid.encode())
            i += 1


def _reader(conn: Connection, sink: list[str]) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                sink.append(conn.recv_bytes().decode())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def kill(url: str, kills: int, writers: int, seed: int) -> dict[str, Any]:
    """Writers are forked from a server process that has imported srt already
    (``forkserver``), so a new one starts writing in milliseconds, not the seconds of
    a fresh interpreter's imports; each is still a process of its own, ended by SIGKILL."""
    rng = random.Random(seed)
    with srt.Runtime(url) as rt:
        rt.session("shared")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["srt", "psycopg", "psycopg_pool", "pgcommon"])
    acked: list[str] = []
    started = 0
    live: list[tuple[Any, list[str], threading.Thread]] = []
    done = 0
    t0 = time.perf_counter()
    while done < kills:
        while len(live) < writers and started < kills:
            r, w = ctx.Pipe(duplex=False)
            child = ctx.Process(target=worker_kill, args=(url, str(started), w), daemon=True)
            child.start()
            w.close()
            lines: list[str] = []
            live.append((child, lines, _reader(r, lines)))
            started += 1
        # kill the first child once it has been writing for its random time
        child, lines, reader = live[0]
        while "ready" not in lines and child.exitcode is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.4))
        child.kill()
        child.join()
        reader.join(timeout=10)
        if child.exitcode != -signal.SIGKILL:
            raise RuntimeError(f"a writer ended by itself ({child.exitcode}); see stderr")
        acked += [x for x in lines if x != "ready"]
        live.pop(0)
        done += 1
    wall = time.perf_counter() - t0
    check = check_turns(url, acked, 1024)
    return {
        "kills": kills,
        "writers": writers,
        "turns_acked": len(acked),
        "check": check.summary(),
        "wall_s": wall,
    }


# -- restart / terminate ---------------------------------------------------------------------


def _terminate_all(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def restart(server: PgServer, threads: int, seconds: float, faults: int) -> dict[str, Any]:
    url = server.url
    with srt.Runtime(url) as rt:
        rt.session("shared")
    rt = srt.Runtime(url + "&pool_max=" + str(threads) + "&pool_timeout=5")
    stop = threading.Event()
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        acked: list[str] = []
        try:
            body(t, acked)
        except Exception as exc:
            with lock:
                results.append({"acked": acked, "errors": {}, "gaps": [], "fatal": repr(exc)})

    def body(t: int, acked: list[str]) -> None:
        s = rt.session("shared" if t % 2 else f"own-{t}")
        errors: Counter[str] = Counter()
        unavailable_since: float | None = None
        gaps: list[float] = []
        i = 0
        while not stop.is_set():
            tid = f"{t}.{i}"
            u, a = turn(tid, 1024)
            while True:
                try:
                    s.append(u, a, rebase=bool(t % 2))
                    break
                except Exception as exc:
                    errors[type(exc).__name__] += 1
                    if not isinstance(exc, StoreUnavailableError):
                        raise
                unavailable_since = unavailable_since or time.monotonic()
                landed = None  # unknown until the store answers
                while landed is None:
                    time.sleep(0.05)
                    landed = _landed(s, u["content"])
                if landed:
                    break
            if unavailable_since is not None:
                gaps.append(time.monotonic() - unavailable_since)
                unavailable_since = None
            acked.append(tid)
            i += 1
        with lock:
            results.append({"acked": acked, "errors": dict(errors), "gaps": gaps})

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    events: list[dict[str, Any]] = []
    span = seconds / (2 * faults + 1)
    for k in range(2 * faults):
        time.sleep(span)
        t0 = time.monotonic()
        if k % 2 == 0:
            server.restart("immediate")
            events.append(
                {
                    "at": round(t0, 3),
                    "fault": "pg_ctl restart -m immediate",
                    "server_down_s": round(time.monotonic() - t0, 3),
                }
            )
        else:
            n = _terminate_all(url)
            events.append({"at": round(t0, 3), "fault": "pg_terminate_backend", "backends": n})
    time.sleep(span)
    stop.set()
    for w in workers:
        w.join(timeout=120)
    rt.close()
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    acked = [x for r in results for x in r["acked"]]
    gaps = [g for r in results for g in r["gaps"]]
    check = check_turns(url, acked, 1024)
    return {
        "threads": threads,
        "seconds": seconds,
        "events": events,
        "turns_acked": len(acked),
        "errors_by_type": dict(errors),
        "untyped_errors": sum(n for k, n in errors.items() if k != "StoreUnavailableError"),
        "threads_that_saw_errors": sum(1 for r in results if r["errors"]),
        "longest_gap_s": max(gaps) if gaps else 0.0,
        "check": check.summary(),
        "threads_finished": sum(1 for r in results if "fatal" not in r),
        "fatal": [r["fatal"] for r in results if "fatal" in r],
    }


def _landed(s: srt.Session, content: str) -> bool | None:
    """Whether the user message ``content`` is in the session (after an error whose
    outcome was not known); None while the store cannot be read."""
    try:
        s.refresh()
        return any(m.get("content") == content for m in s.messages()[-64:])
    except StoreUnavailableError:
        return None


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("kill", "restart"))
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--faults", type=int, default=3, help="restarts, and as many cuts")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--url", help="kill: an existing server (default: start a throwaway one)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    if args.mode == "kill" and args.url:
        url = new_database(args.url, "pg_faults_kill")
        env = environment(url)
        print(json.dumps(env))
        res = kill(url, args.kills, args.writers, args.seed)
        ok = res["check"]["ok"]
        return _finish(args.json, argv, env, res, ok)
    with PgServer(fast=False) as server:
        env = environment(server.url)
        print(json.dumps(env))
        if args.mode == "kill":
            res = kill(server.url, args.kills, args.writers, args.seed)
            ok = res["check"]["ok"]
        else:
            res = restart(server, args.threads, args.seconds, args.faults)
            ok = (
                res["check"]["ok"]
                and res["untyped_errors"] == 0
                and res["threads_finished"] == args.threads
            )
    return _finish(args.json, argv, env, res, ok)


def _finish(
    path: str | None, argv: list[str], env: dict[str, Any], res: dict[str, Any], ok: bool
) -> int:
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(res, indent=1))
    dump(path, {"environment": env, "argv": argv, "results": res})
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
