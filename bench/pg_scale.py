"""srt on PostgreSQL under load: many processes and threads, and single-client latency.

    pip install '.[postgres]'
    python bench/pg_scale.py scale --json bench/results/pg_scale.json      # 8 x 8, 60 s
    python bench/pg_scale.py latency --json bench/results/pg_latency.json  # 1,000 turns
    python bench/pg_scale.py scale --procs 2 --threads 2 --seconds 3       # a short run

Without ``--url`` each run starts a throwaway PostgreSQL from this machine's binaries
(``srt.testing.pgserver``) with the default durability (fsync on, synchronous commit);
``--data-dir /dev/shm/...`` puts it on a RAM disk (fsync then costs nothing, which shows
srt's own cost apart from the disk's).

``scale``: PROCS processes x THREADS threads, one ``Runtime`` per process, for SECONDS.
Even threads append turns (a user message and its reply, about 2 KB) to one of SHARED
sessions with ``rebase=True``, odd threads each to a session of their own. Every error
that reaches a caller is counted. Afterwards every session is read back and every
acknowledged turn must be stored exactly once, whole, in its writer's order, in a chain
that passes the hash check, and ``verify`` must find nothing. The same layout then runs
a bare psycopg loop (one autocommit INSERT of the same two bodies per turn, no reads,
no compare-and-swap) on a fresh database of the same server: commits/s against it.

``latency``: one client, the seeded 1,000-turn ``chat`` workload (srt.bench), on
PostgreSQL and on SQLite in the same process: append p50/p99 per message, the
next-request build on the live handle (warm), and cold open plus build at 1,000 turns
(a new ``Runtime``, the session opened and its request built), with a bare psycopg
INSERT of each message's bytes as the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import psycopg
from pgcommon import PgServer, check_turns, dump, environment, new_database, pct, spawn, turn

import srt
from srt.bench import workloads
from srt.bench.chat import MODEL

SCRIPT = os.path.abspath(__file__)


def with_params(url: str, **params: Any) -> str:
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return url + ("&" if "?" in url else "?") + extra


# -- workers (run in child processes) -----------------------------------------------


def worker_scale(
    url: str, proc: int, threads: int, seconds: float, start: float, shared: int
) -> None:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    with srt.Runtime(with_params(url, pool_max=threads)) as rt:

        def run(t: int) -> None:
            own = t % 2 == 1
            name = f"own-{proc}-{t}" if own else f"shared-{(proc * threads // 2 + t // 2) % shared}"
            s = rt.session(name)
            acked: list[str] = []
            lat: list[float] = []
            errors: list[str] = []
            time.sleep(max(0.0, start - time.time()))
            stop = time.monotonic() + seconds
            i = 0
            while time.monotonic() < stop:
                tid = f"{proc}.{t}.{i}"
                u, a = turn(tid)
                t0 = time.perf_counter()
                try:
                    s.append(u, a, rebase=not own)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    lat.append(time.perf_counter() - t0)
                    acked.append(tid)
                i += 1
            with lock:
                results.append({"own": own, "acked": acked, "lat": lat, "errors": errors})

        workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    print(json.dumps({"proc": proc, "threads": results}), flush=True)


def worker_bare(
    url: str, proc: int, threads: int, seconds: float, start: float, shared: int
) -> None:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(t: int) -> None:
        own = t % 2 == 1
        name = f"own-{proc}-{t}" if own else f"shared-{(proc * threads // 2 + t // 2) % shared}"
        lat: list[float] = []
        errors: list[str] = []
        n = 0
        with psycopg.connect(url, autocommit=True) as conn:
            time.sleep(max(0.0, start - time.time()))
            stop = time.monotonic() + seconds
            i = 0
            while time.monotonic() < stop:
                tid = f"{proc}.{t}.{i}"
                u, a = turn(tid)
                bu = json.dumps(u, ensure_ascii=False).encode()
                ba = json.dumps(a, ensure_ascii=False).encode()
                t0 = time.perf_counter()
                try:
                    conn.execute(
                        "INSERT INTO bare_turns(session, tid, body) "
                        "VALUES (%s, %s, %s), (%s, %s, %s)",
                        (name, tid, bu, name, tid, ba),
                    )
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    lat.append(time.perf_counter() - t0)
                    n += 1
                i += 1
        with lock:
            results.append({"own": own, "acked": n, "lat": lat, "errors": errors})

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps({"proc": proc, "threads": results}), flush=True)


# -- scale -----------------------------------------------------------------------------


def _fleet(kind: str, url: str, procs: int, threads: int, seconds: float, shared: int) -> list[Any]:
    start = time.time() + 3.0 + 0.3 * procs  # every worker has imported and connected by then
    children = [
        spawn(SCRIPT, f"_{kind}", url, str(p), str(threads), str(seconds), str(start), str(shared))
        for p in range(procs)
    ]
    out = []
    for child in children:
        stdout, stderr = child.communicate(timeout=seconds + 300)
        if child.returncode != 0:
            raise RuntimeError(f"a {kind} worker failed:\n{stderr[-3000:]}")
        out.extend(json.loads(stdout.strip().splitlines()[-1])["threads"])
    return out


def scale(url: str, procs: int, threads: int, seconds: float, shared: int) -> dict[str, Any]:
    srt_url = new_database(url, "scale_srt")
    with srt.Runtime(srt_url) as rt:  # the schema exists before the workers race to open it
        for j in range(shared):
            rt.session(f"shared-{j}")
    t0 = time.perf_counter()
    threads_out = _fleet("scale", srt_url, procs, threads, seconds, shared)
    wall = time.perf_counter() - t0
    errors = [e for t in threads_out for e in t["errors"]]
    acked = [tid for t in threads_out for tid in t["acked"]]
    lat = [x for t in threads_out for x in t["lat"]]
    check = check_turns(srt_url, acked)
    bare_url = new_database(url, "scale_bare")
    with psycopg.connect(bare_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bare_turns(id bigserial PRIMARY KEY, session text NOT NULL, "
            "tid text NOT NULL, body bytea NOT NULL)"
        )
    bare = _fleet("bare", bare_url, procs, threads, seconds, shared)
    bare_commits = sum(t["acked"] for t in bare)
    bare_lat = [x for t in bare for x in t["lat"]]
    return {
        "procs": procs,
        "threads": threads,
        "seconds": seconds,
        "shared_sessions": shared,
        "srt": {
            "turns_acked": len(acked),
            "commits_per_s": len(acked) / seconds,
            "errors": len(errors),
            "error_examples": errors[:5],
            "append_ms": {"p50": pct(lat, 0.5) * 1e3, "p99": pct(lat, 0.99) * 1e3},
            "shared_append_ms": _p([x for t in threads_out if not t["own"] for x in t["lat"]]),
            "own_append_ms": _p([x for t in threads_out if t["own"] for x in t["lat"]]),
            "check": check.summary(),
            "wall_s": wall,
        },
        "bare_psycopg": {
            "commits_per_s": bare_commits / seconds,
            "errors": sum(len(t["errors"]) for t in bare),
            "insert_ms": _p(bare_lat),
        },
        "srt_vs_bare": len(acked) / bare_commits if bare_commits else None,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def _p(xs: list[float]) -> dict[str, float]:
    return {"p50": pct(xs, 0.5) * 1e3, "p99": pct(xs, 0.99) * 1e3}


# -- latency ------------------------------------------------------------------------------


def _run_chats(rts: list[srt.Runtime], turns: int) -> list[tuple[list[float], list[float]]]:
    """The chat workload on every runtime in lockstep (each turn on each in turn), so the
    machine's load falls on all of them alike: per runtime, append and build times."""
    sessions = [rt.session("chat") for rt in rts]
    system, pairs = workloads.chat(turns, seed=1)
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in rts]
    for s in sessions:
        s.append(system)
    for u, a in pairs:
        for s, (app, build) in zip(sessions, out, strict=True):
            t0 = time.perf_counter()
            s.append(u)
            t1 = time.perf_counter()
            s.request("openai.chat", model=MODEL)
            t2 = time.perf_counter()
            s.append(a)
            app += [t1 - t0, time.perf_counter() - t2]
            build.append(t2 - t1)
    return out


def _cold(open_rt: Any, name: str, reps: int) -> list[float]:
    out = []
    body = None
    for _ in range(reps):
        t0 = time.perf_counter()
        rt = open_rt()
        got = rt.session(name, create=False).request("openai.chat", model=MODEL)
        out.append(time.perf_counter() - t0)
        rt.close()
        assert body is None or got == body
        body = got
    return out


def _cold_on(store: Any) -> float:
    t0 = time.perf_counter()
    rt = srt.Runtime(store=store)
    rt.session("chat", create=False).request("openai.chat", model=MODEL)
    return time.perf_counter() - t0


def _bare_latency(url: str, turns: int) -> list[float]:
    _system, pairs = workloads.chat(turns, seed=1)
    out = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bare_msgs(id bigserial PRIMARY KEY, session text, body bytea)")
        for u, a in pairs:
            for m in (u, a):
                b = json.dumps(m, ensure_ascii=False).encode()
                t0 = time.perf_counter()
                conn.execute("INSERT INTO bare_msgs(session, body) VALUES (%s, %s)", ("b", b))
                out.append(time.perf_counter() - t0)
    return out


def latency(url: str, turns: int, reps: int) -> dict[str, Any]:
    pg_url = new_database(url, "latency_srt")
    bare = _bare_latency(new_database(url, "latency_bare"), turns)
    with tempfile.TemporaryDirectory(prefix="srt-lat-") as d:
        path = os.path.join(d, "chat.db")
        with srt.Runtime(pg_url) as pg_rt, srt.Runtime(path) as sq_rt:
            (pg_app, pg_build), (sq_app, sq_build) = _run_chats([pg_rt, sq_rt], turns)
        # interleaved, so load on the machine hits both alike
        pg_cold: list[float] = []
        sq_cold: list[float] = []
        for _ in range(reps):
            pg_cold += _cold(lambda: srt.Runtime(pg_url), "chat", 1)
            sq_cold += _cold(lambda: srt.Runtime(path), "chat", 1)
        # the same on a store this process already has open (an app server's pool is warm;
        # the new Runtime has no fragments, so the whole body is built from the stored bytes)
        pg_store, sq_store = srt.Runtime(pg_url).store, srt.Runtime(path).store
        pg_warm_pool: list[float] = []
        sq_warm_pool: list[float] = []
        for _ in range(reps):
            pg_warm_pool.append(_cold_on(pg_store))
            sq_warm_pool.append(_cold_on(sq_store))
        pg_store.close()
        sq_store.close()
    tail = max(1, turns // 10)
    pg_warm = pg_build[-tail:]
    sq_warm = sq_build[-tail:]
    return {
        "turns": turns,
        "postgres": {
            "append_ms": _p(pg_app),
            "warm_build_ms": _p(pg_warm),
            "cold_open_build_ms": {
                "median": statistics.median(pg_cold) * 1e3,
                "min": min(pg_cold) * 1e3,
            },
            "cold_build_open_store_ms": {
                "median": statistics.median(pg_warm_pool) * 1e3,
                "min": min(pg_warm_pool) * 1e3,
            },
        },
        "sqlite": {
            "append_ms": _p(sq_app),
            "warm_build_ms": _p(sq_warm),
            "cold_open_build_ms": {
                "median": statistics.median(sq_cold) * 1e3,
                "min": min(sq_cold) * 1e3,
            },
            "cold_build_open_store_ms": {
                "median": statistics.median(sq_warm_pool) * 1e3,
                "min": min(sq_warm_pool) * 1e3,
            },
        },
        "bare_psycopg_insert_ms": _p(bare),
        "warm_build_pg_vs_sqlite": statistics.median(pg_warm) / statistics.median(sq_warm),
        "cold_pg_vs_sqlite": statistics.median(pg_cold) / statistics.median(sq_cold),
        "cold_open_store_pg_vs_sqlite": statistics.median(pg_warm_pool)
        / statistics.median(sq_warm_pool),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_scale", "_bare"):
        fn = worker_scale if argv[0] == "_scale" else worker_bare
        url, proc, threads, seconds, start, shared = argv[1:7]
        fn(url, int(proc), int(threads), float(seconds), float(start), int(shared))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("scale", "latency"))
    p.add_argument("--url", help="an existing server (default: start a throwaway one)")
    p.add_argument("--data-dir", help="where the throwaway server lives (e.g. under /dev/shm)")
    p.add_argument("--procs", type=int, default=8)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--shared", type=int, default=4, help="shared sessions")
    p.add_argument("--turns", type=int, default=1000)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            root = tempfile.mkdtemp(prefix="srt-pg-", dir=args.data_dir) if args.data_dir else None
            server = PgServer(root, fast=False)
            server.owned_root = True
            url = stack.enter_context(server).url
        env = environment(url)
        print(json.dumps(env))
        if args.mode == "scale":
            res = scale(url, args.procs, args.threads, args.seconds, args.shared)
        else:
            res = latency(url, args.turns, args.reps)
    print(json.dumps(res, indent=1))
    dump(args.json, {"environment": env, "argv": argv, "results": res})
    if args.mode == "scale":
        return 0 if res["srt"]["errors"] == 0 and res["srt"]["check"]["ok"] else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
