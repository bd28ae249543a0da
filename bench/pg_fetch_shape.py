"""Where a PostgreSQL cold load's time goes, below srt: the same message bodies fetched
as one row each and packed into a few large rows, on a new connection and an open one.

The bodies are the seeded ``chat`` workload of ``bench/pg_scale.py latency`` (a 4 KB
system prompt and ``--turns`` turns of a 200-800 character user message and a
500-3,000 character reply: 2,001 bodies, about 3.3 MB), written as ``bytea`` to plain
tables of one throwaway server (``--url`` for another): one row per message with the
column's default storage (compressed where over 2 KB) and with ``STORAGE EXTERNAL``
(never compressed), and packs of ``--pack`` consecutive bodies a row (``EXTERNAL``).
Timed, medians of ``--reps`` interleaved rounds: a new connection alone
(``psycopg.connect``), each table's ``SELECT body ... ORDER BY id`` in binary on an open
connection, the same through libpq alone (no Python row objects), and the server's own
execution time of the per-message query (``EXPLAIN ANALYZE``, nothing sent). What it
shows: how much of the floor in ``pg_scale.py latency`` is the connection, how much the
bytes' transport, and how much the row count (docs/bench.md, "The cold fetch's shape").

    python bench/pg_fetch_shape.py [--turns 1000] [--pack 100] [--reps 21] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import benchio
import psycopg
from pgcommon import PgServer, environment, new_database

from srt.bench import workloads

_TABLES = ("per_message", "per_message_external", "packs_external")


def _bodies(turns: int) -> list[bytes]:
    system, pairs = workloads.chat(turns)
    out = [json.dumps(system, ensure_ascii=False).encode()]
    for u, a in pairs:
        out += [json.dumps(m, ensure_ascii=False).encode() for m in (u, a)]
    return out


def _fill(conn: psycopg.Connection[Any], bodies: list[bytes], pack: int) -> None:
    for name in _TABLES:
        conn.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, body bytea)")
        if name.endswith("external"):
            conn.execute(f"ALTER TABLE {name} ALTER body SET STORAGE EXTERNAL")
        rows = (
            [b"".join(bodies[i : i + pack]) for i in range(0, len(bodies), pack)]
            if name.startswith("packs")
            else bodies
        )
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {name} (body) VALUES (%s)", [(r,) for r in rows])
        conn.execute(f"ANALYZE {name}")


def _median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def measure(url: str, turns: int, pack: int, reps: int) -> dict[str, Any]:
    db = new_database(url, "fetch_shape")
    bodies = _bodies(turns)
    with psycopg.connect(db, autocommit=True) as conn:
        _fill(conn, bodies, pack)
        cur = conn.cursor(binary=True)
        pg = conn.pgconn
        cases: dict[str, Callable[[], Any]] = {"connect": lambda: psycopg.connect(db).close()}
        for name in _TABLES:
            sql = f"SELECT body FROM {name} ORDER BY id"
            cases[f"fetch_{name}"] = lambda sql=sql: cur.execute(sql).fetchall()

            def raw(q: bytes = sql.encode()) -> None:
                pg.send_query_params(q, [], result_format=1)
                while pg.get_result() is not None:
                    pass

            cases[f"libpq_{name}"] = raw
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(reps):
            for k, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        server = conn.execute(
            "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) SELECT body FROM per_message ORDER BY id"
        ).fetchone()
        sizes = {
            name: conn.execute("SELECT pg_total_relation_size(%s)", (name,)).fetchone()[0]  # type: ignore[index]
            for name in _TABLES
        }
    return {
        "bodies": len(bodies),
        "bytes": sum(map(len, bodies)),
        "pack": pack,
        "rows": {"per_message": len(bodies), "packs": -(-len(bodies) // pack)},
        "ms": {k: _median_ms(v) for k, v in times.items()},
        "server_execution_ms": server[0][0]["Execution Time"] if server else None,
        "table_bytes": sizes,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="an existing server (default: start a throwaway one)")
    p.add_argument("--turns", type=int, default=1000)
    p.add_argument("--pack", type=int, default=100, help="bodies a row in the packed table")
    p.add_argument("--reps", type=int, default=21)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            server = PgServer(None, fast=False)
            stack.enter_context(server)
            url = server.url
        env = environment(url)
        res = measure(url, args.turns, args.pack, args.reps)
    print(json.dumps(res, indent=1))
    benchio.dump(args.json, {"environment": env, "argv": argv, "results": res})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
