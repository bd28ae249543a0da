"""srt on PostgreSQL under load: many processes and threads, and single-client latency.

    pip install '.[postgres]'
    python bench/pg_scale.py scale --json bench/results/pg_scale.json      # 8 x 8, 60 s
    python bench/pg_scale.py latency --json bench/results/pg_latency.json  # 1,000 turns
    python bench/pg_scale.py scale --procs 2 --threads 2 --seconds 3       # a short run

Without ``--url`` each run starts a throwaway PostgreSQL from this machine's binaries
(``srt.testing.pgserver``) with the default durability (fsync on, synchronous commit);
``--data-dir /dev/shm/...`` puts it on a RAM disk (fsync then costs nothing, which shows
srt's own cost apart from the disk's); ``--tcp`` connects over 127.0.0.1 instead of the
server's unix socket.

``scale``: PROCS processes x THREADS threads, one ``Runtime`` per process, for SECONDS.
Even threads append turns (a user message and its reply, about 2 KB) to one of SHARED
sessions with ``rebase=True``, odd threads each to a session of their own. Every error
that reaches a caller is counted. Afterwards every session is read back and every
acknowledged turn must be stored exactly once, whole, in its writer's order, in a chain
that passes the hash check, and ``verify`` must find nothing. The same layout then runs
a bare psycopg loop (one autocommit INSERT of the same two bodies per turn, no reads,
no compare-and-swap) on a fresh database of the same server: commits/s against it.

``latency``: one client, the seeded 1,000-turn ``chat`` workload (srt.bench), on
PostgreSQL, on SQLite and on a bare psycopg table in lockstep in one process (each
message appended to each in turn, so the machine's load falls on all alike): append
p50/p99 per message against a bare autocommit INSERT of the same bytes (the floor of a
durable append on that server), the next-request build on the live handle (warm), and
cold open plus build at 1,000 turns, interleaved: a new ``Runtime`` (PostgreSQL: a new
pool and connection), and a new ``Runtime`` on a store the process has open (a warm
pool), each against a bare psycopg fetch of the same 2,001 bodies from a plain indexed
table (on a new connection, and on an open one): the floor of loading them from
PostgreSQL at all. Added to it, the part of SQLite's cold open and build that is not
its read (SQLite's ``chain`` timed alone, its check put back): ``floor_*`` is the ratio
that even an engine costing nothing beyond the bare fetch would reach.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
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
from srt.store.base import check_chain

SCRIPT = os.path.abspath(__file__)


def with_params(url: str, **params: Any) -> str:
    extra = "&".join(f"{k}={v}" for k, v in params.items())
    return url + ("&" if "?" in url else "?") + extra


# -- workers (run in child processes) -----------------------------------------------


class _Start:
    """A worker's threads each get ready (a session opened, a connection made), then
    the worker says ``ready`` and all wait for the start time the parent sends once every
    worker is ready (instead of a fixed delay that a loaded machine may not meet)."""

    def __init__(self, threads: int) -> None:
        self.at = 0.0
        self.barrier = threading.Barrier(threads, action=self._ask)

    def _ask(self) -> None:
        print("ready", flush=True)
        self.at = float(sys.stdin.readline())

    def wait(self) -> None:
        self.barrier.wait()
        time.sleep(max(0.0, self.at - time.time()))


def worker_scale(url: str, proc: int, threads: int, seconds: float, shared: int) -> None:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = _Start(threads)
    with srt.Runtime(with_params(url, pool_max=threads)) as rt:

        def run(t: int) -> None:
            own = t % 2 == 1
            name = f"own-{proc}-{t}" if own else f"shared-{(proc * threads // 2 + t // 2) % shared}"
            s = rt.session(name)
            acked: list[str] = []
            lat: list[float] = []
            errors: list[str] = []
            start.wait()
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


def worker_bare(url: str, proc: int, threads: int, seconds: float, shared: int) -> None:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = _Start(threads)

    def run(t: int) -> None:
        own = t % 2 == 1
        name = f"own-{proc}-{t}" if own else f"shared-{(proc * threads // 2 + t // 2) % shared}"
        lat: list[float] = []
        errors: list[str] = []
        n = 0
        with psycopg.connect(url, autocommit=True) as conn:
            start.wait()
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
    children = [
        spawn(SCRIPT, f"_{kind}", url, str(p), str(threads), str(seconds), str(shared))
        for p in range(procs)
    ]
    for child in children:  # every worker has imported, connected and opened its sessions
        assert child.stdout is not None and child.stdin is not None
        if child.stdout.readline().strip() != "ready":
            child.kill()
            raise RuntimeError(f"a {kind} worker failed:\n{child.communicate()[1][-3000:]}")
    start = time.time() + 0.2
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start!r}\n")
        child.stdin.flush()
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


def _run_chats(
    rts: list[srt.Runtime], bare: psycopg.Connection[Any], turns: int
) -> tuple[list[tuple[list[float], list[float]]], list[float]]:
    """The chat workload on every runtime and on the bare table in lockstep (each message
    on each in turn), so the machine's load falls on all of them alike: per runtime,
    append and build times; and the bare INSERT's times."""
    sessions = [rt.session("chat") for rt in rts]
    system, pairs = workloads.chat(turns, seed=1)
    out: list[tuple[list[float], list[float]]] = [([], []) for _ in rts]
    bare_times: list[float] = []
    insert = "INSERT INTO bare_msgs(session, body) VALUES (%s, %s)"
    bare.execute(insert, ("b", json.dumps(system, ensure_ascii=False).encode()))
    for s in sessions:
        s.append(system)

    def bare_append(m: dict[str, Any]) -> None:
        b = json.dumps(m, ensure_ascii=False).encode()
        t0 = time.perf_counter()
        bare.execute(insert, ("b", b))
        bare_times.append(time.perf_counter() - t0)

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
        bare_append(u)
        bare_append(a)
    return out, bare_times


def _timed(fn: Any) -> float:
    gc.collect()  # the runtimes of earlier runs are garbage: their collection is not timed
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cold_new(where: str) -> Any:
    """A new ``Runtime`` (PostgreSQL: a new pool and connection), the session opened
    and its next request built from the stored bytes."""

    def run() -> None:
        with srt.Runtime(where) as rt:
            rt.session("chat", create=False).request("openai.chat", model=MODEL)

    return run


def _cold_on(store: Any) -> Any:
    """The same on a store the process has open (an app server's warm pool): the new
    ``Runtime`` has no fragments, so the whole body is built from the stored bytes."""

    def run() -> None:
        srt.Runtime(store=store).session("chat", create=False).request("openai.chat", model=MODEL)

    return run


_BARE_LOAD = "SELECT body FROM bare_msgs WHERE session = %s ORDER BY id"


def _bare_load_new(url: str) -> Any:
    """The floor of any PostgreSQL cold load: a new psycopg connection that fetches the
    same 2,001 message bodies from a plain indexed table (no chain, no check, no build)."""

    def run() -> None:
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor(binary=True) as cur:
            cur.execute(_BARE_LOAD, ("b",)).fetchall()

    return run


def _bare_load_on(conn: psycopg.Connection[Any]) -> Any:
    def run() -> None:
        with conn.cursor(binary=True) as cur:
            cur.execute(_BARE_LOAD, ("b",)).fetchall()

    return run


def _med(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs) * 1e3, "min": min(xs) * 1e3}


def latency(url: str, turns: int, reps: int) -> dict[str, Any]:
    pg_url = new_database(url, "latency_srt")
    bare_url = new_database(url, "latency_bare")
    with contextlib.ExitStack() as stack:
        d = stack.enter_context(tempfile.TemporaryDirectory(prefix="srt-lat-"))
        path = os.path.join(d, "chat.db")
        bare = stack.enter_context(psycopg.connect(bare_url, autocommit=True))
        bare.execute("CREATE TABLE bare_msgs(id bigserial PRIMARY KEY, session text, body bytea)")
        bare.execute("CREATE INDEX bare_msgs_session ON bare_msgs(session, id)")
        with srt.Runtime(pg_url) as pg_rt, srt.Runtime(path) as sq_rt:
            ((pg_app, pg_build), (sq_app, sq_build)), bare_app = _run_chats(
                [pg_rt, sq_rt], bare, turns
            )
        bare.execute("ANALYZE bare_msgs")
        pg_store = stack.enter_context(srt.Runtime(pg_url)).store
        sq_store = stack.enter_context(srt.Runtime(path)).store
        sq_head = sq_store.get_session("chat").head
        sq_rows = sq_store.chain(sq_head)
        cases = {
            "pg_new": _cold_new(pg_url),
            "sq_new": _cold_new(path),
            "pg_open": _cold_on(pg_store),
            "sq_open": _cold_on(sq_store),
            "bare_new": _bare_load_new(bare_url),
            "bare_open": _bare_load_on(bare),
            # SQLite's read of the chain (with its check) and the check alone: the
            # cold open and build less the read is the part no engine can skip.
            "sq_read": lambda: sq_store.chain(sq_head),
            "check": lambda: check_chain(sq_rows, sq_head),
        }
        cold: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(reps):  # interleaved, so load on the machine hits all alike
            for name, fn in cases.items():
                cold[name].append(_timed(fn))
    tail = max(1, turns // 10)
    pg_warm = pg_build[-tail:]
    sq_warm = sq_build[-tail:]
    med = {k: statistics.median(v) for k, v in cold.items()}
    common = med["sq_open"] - med["sq_read"] + med["check"]
    return {
        "turns": turns,
        "postgres": {
            "append_ms": _p(pg_app),
            "warm_build_ms": _p(pg_warm),
            "cold_open_build_ms": _med(cold["pg_new"]),
            "cold_build_open_store_ms": _med(cold["pg_open"]),
        },
        "sqlite": {
            "append_ms": _p(sq_app),
            "warm_build_ms": _p(sq_warm),
            "cold_open_build_ms": _med(cold["sq_new"]),
            "cold_build_open_store_ms": _med(cold["sq_open"]),
        },
        "bare_psycopg": {
            "insert_ms": _p(bare_app),
            "load_new_connection_ms": _med(cold["bare_new"]),
            "load_open_connection_ms": _med(cold["bare_open"]),
        },
        "append_p50_pg_vs_bare": statistics.median(pg_app) / statistics.median(bare_app),
        "append_p99_pg_vs_bare": pct(pg_app, 0.99) / pct(bare_app, 0.99),
        # The machine's own tail is the bare INSERT's; what srt adds to it:
        "append_p99_pg_minus_bare_ms": (pct(pg_app, 0.99) - pct(bare_app, 0.99)) * 1e3,
        "warm_build_pg_vs_sqlite": statistics.median(pg_warm) / statistics.median(sq_warm),
        "cold_pg_vs_sqlite": med["pg_new"] / med["sq_new"],
        "cold_open_store_pg_vs_sqlite": med["pg_open"] / med["sq_open"],
        "bare_load_new_vs_sqlite_cold": med["bare_new"] / med["sq_new"],
        # What srt adds to the bare fetch of the same bodies (the node rows, the session
        # and schema lookups, the chain check and the build), and the bound proposed
        # where 2x is out of reach: that fetch + SQLite's cold open and build + 1 ms.
        "cold_pg_minus_bare_new_ms": (med["pg_new"] - med["bare_new"]) * 1e3,
        "cold_open_store_pg_minus_bare_open_ms": (med["pg_open"] - med["bare_open"]) * 1e3,
        "cold_bound_ms": (med["bare_new"] + med["sq_new"]) * 1e3 + 1.0,
        "cold_pg_vs_bound": med["pg_new"] / (med["bare_new"] + med["sq_new"] + 1e-3),
        # A floor no PostgreSQL engine gets under: the bare fetch plus the part of
        # SQLite's cold open and build that is not its read (the chain check, the
        # session and the build), against SQLite's cold open and build.
        "engine_independent_ms": common * 1e3,
        "floor_new_vs_sqlite_cold": (med["bare_new"] + common) / med["sq_new"],
        "floor_open_store_vs_sqlite_cold": (med["bare_open"] + common) / med["sq_open"],
        "bare_load_open_vs_sqlite_cold": med["bare_open"] / med["sq_open"],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_scale", "_bare"):
        fn = worker_scale if argv[0] == "_scale" else worker_bare
        url, proc, threads, seconds, shared = argv[1:6]
        fn(url, int(proc), int(threads), float(seconds), int(shared))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("scale", "latency"))
    p.add_argument("--url", help="an existing server (default: start a throwaway one)")
    p.add_argument("--data-dir", help="where the throwaway server lives (e.g. under /dev/shm)")
    p.add_argument(
        "--tcp", action="store_true", help="the throwaway server over 127.0.0.1, not its socket"
    )
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
            stack.enter_context(server)
            url = server.tcp_url if args.tcp else server.url
        env = environment(url)
        env["over"] = "tcp" if args.tcp else ("socket" if args.url is None else "the URL's")
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
