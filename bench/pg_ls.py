"""``srt ls`` on PostgreSQL: a store of ``--sessions`` sessions of ``--turns`` turns
(a user message and a reply of about ``--size`` characters in all, ``pgcommon.turn``),
appended turn by turn across the sessions as a busy gateway would, on a server of its
own (``--url`` to use another).

It times ``srt ls`` as a user runs it (a new process: import, connect, the overview
query, the table printed) and ``store.overview()`` alone, medians of ``--reps``
alternating runs, and shows where the overview's query spends its time: its buffers
(``EXPLAIN (ANALYZE, BUFFERS)``) and its time against the same walk reading no body
(``length`` only, which PostgreSQL answers from the value's header), against one
reading no message row at all, and against schema v7's, which read each body's first
bytes (the role, ``substring(body from 1 for 14)``) where v8 reads the ``user_turn``
and ``size`` columns.

    python bench/pg_ls.py [--sessions 1000] [--turns 20] [--size 2048] [--reps 7] [--at-v7]

``--at-v7`` writes the store at schema v7 and times the first open at this srt's version
(the v8 migration, which rewrites ``messages`` to fill ``user_turn`` and ``size``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import benchio
from pgcommon import PgServer, environment, new_database, turn

import srt
from srt.store.base import USER_PREFIX
from srt.store.postgres import maintenance, schema

#: The overview's per-session figures (``views.overview``: the ``user_turn`` and ``size``
#: columns, schema v8), v7's (each body's first bytes and its length), and two walks that
#: read less of each message: ``length`` only, and no message row.
QUERIES = {
    "as srt ls": (
        "SELECT up.sid, count(*), sum(m.user_turn::int), sum((m.size + 3) / 4), "
        "max(CASE WHEN up.parent IS NULL THEN up.id END) "
        "FROM up JOIN {s}.messages m ON m.id = up.message GROUP BY up.sid"
    ),
    "v7: first bytes": (
        "SELECT up.sid, count(*), sum((substring(m.body from 1 for %s) = %s)::int), "
        "sum((length(m.body) + 3) / 4), max(CASE WHEN up.parent IS NULL THEN up.id END) "
        "FROM up JOIN {s}.messages m ON m.id = up.message GROUP BY up.sid"
    ),
    "length only": (
        "SELECT up.sid, count(*), %s::int + length(%s::bytea), sum((length(m.body) + 3) / 4), "
        "max(CASE WHEN up.parent IS NULL THEN up.id END) "
        "FROM up JOIN {s}.messages m ON m.id = up.message GROUP BY up.sid"
    ),
    "no message row": (
        "SELECT up.sid, count(*), %s::int + length(%s::bytea), "
        "max(CASE WHEN up.parent IS NULL THEN up.id END) FROM up GROUP BY up.sid"
    ),
}


def fill(url: str, sessions: int, turns: int, size: int, at_v7: bool = False) -> float | None:
    """The store, written at schema v7 if ``at_v7``: then the seconds the first open at
    this srt's version takes (the v8 migration rewriting ``messages``), else None."""
    full, version = schema.MIGRATIONS, schema.SCHEMA_VERSION
    if at_v7:
        schema.MIGRATIONS, schema.SCHEMA_VERSION = full[:7], 7
    try:
        with srt.Runtime(url) as rt:
            handles = [rt.session(f"s{i:04d}") for i in range(sessions)]
            for t in range(turns):
                for i, s in enumerate(handles):
                    s.append(*turn(f"{i}.{t}", size))
    finally:
        schema.MIGRATIONS, schema.SCHEMA_VERSION = full, version
    if not at_v7:
        return None
    t0 = time.perf_counter()
    with srt.Runtime(url):
        return time.perf_counter() - t0


def _median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 1)


def measure(url: str, reps: int) -> dict[str, Any]:
    cli: list[float] = []
    inproc: list[float] = []
    lines = 0
    with srt.Runtime(url) as rt:
        rt.store.overview()  # (warm: the server's buffers hold the tables)
        for _ in range(reps):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-m", "srt", "--db", url, "ls"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            cli.append(time.perf_counter() - t0)
            lines = len(out.splitlines())
            t0 = time.perf_counter()
            rt.store.overview()
            inproc.append(time.perf_counter() - t0)
        db = rt.store.db
        queries: dict[str, Any] = {}
        with db.connection() as conn:
            for label, tail in QUERIES.items():
                sql = db.sql(maintenance.CHAINS + tail)
                args = (len(USER_PREFIX), USER_PREFIX) if "%s" in tail else ()
                times = []
                for _ in range(reps):
                    with conn.transaction():
                        conn.execute(maintenance.NO_JIT)
                        t0 = time.perf_counter()
                        conn.execute(sql, args).fetchall()
                        times.append(time.perf_counter() - t0)
                with conn.transaction():
                    conn.execute(maintenance.NO_JIT)
                    plan = conn.execute(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, args
                    ).fetchone()
                assert plan is not None
                top = plan[0][0]["Plan"]
                queries[label] = {
                    "median_ms": _median_ms(times),
                    "shared_hit_blocks": top.get("Shared Hit Blocks"),
                    "shared_read_blocks": top.get("Shared Read Blocks"),
                }
            row = conn.execute(
                db.sql(
                    "SELECT count(*), sum(length(body)), sum(pg_column_size(body)), "
                    "pg_total_relation_size('{s}.messages'), "
                    "coalesce(pg_total_relation_size((SELECT reltoastrelid FROM pg_class "
                    "WHERE oid = '{s}.messages'::regclass)), 0) FROM {s}.messages"
                )
            ).fetchone()
    assert row is not None
    return {
        "srt_ls_ms": _median_ms(cli),
        "srt_ls_lines": lines,
        "overview_ms": _median_ms(inproc),
        "queries": queries,
        "messages": int(row[0]),
        "body_bytes": int(row[1]),
        "stored_body_bytes": int(row[2]),
        "messages_table_bytes": int(row[3]),
        "toast_bytes": int(row[4]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--turns", type=int, default=20)
    p.add_argument("--size", type=int, default=2048, help="characters per turn")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--url", help="a server to use (a database pg_ls is made there)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    p.add_argument(
        "--at-v7", action="store_true", help="write the store at schema v7, time its migration"
    )
    args = p.parse_args(argv)
    server = None if args.url else PgServer(fast=True)
    try:
        if server is not None:
            server.start()
        base = args.url or server.url  # type: ignore[union-attr]
        url = new_database(base, "pg_ls")
        t0 = time.perf_counter()
        migration = fill(url, args.sessions, args.turns, args.size, args.at_v7)
        filled = time.perf_counter() - t0 - (migration or 0.0)
        out = {
            "sessions": args.sessions,
            "turns": args.turns,
            "size": args.size,
            "fill_s": round(filled, 1),
            **({} if migration is None else {"migrate_v7_to_v8_s": round(migration, 2)}),
            **measure(url, args.reps),
            "environment": environment(url),
        }
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(out, indent=1))
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
