"""PostgreSQL's search text: what ``message_text`` costs a message (schema v9's, which
parsed a body's JSON twice, against v10's, once) and the search index's build over
``--messages`` messages of about 1.2 KB (``pgcommon.turn``, a tenth of the user messages
as text parts around an image); and, with ``--open``, the first open of a store written
and indexed at v8 (``--open`` messages), as v9's migration first ran it (rebuilding the
index in the open's transaction) and as it runs now (dropping it: the next search builds
it, concurrently). On a server of its own (``--url`` to use another); medians of
``--reps``.

    python bench/pg_search_text.py [--messages 10000] [--open 100000] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import psycopg
from pgcommon import PgServer, new_database, turn

import srt
from srt.store.postgres import schema as sch

#: v9's ``message_text`` (v4's migration, which made it, and its other functions, anew),
#: and v9's migration as first released: an index built before is rebuilt in the
#: migration's transaction.
V9_TEXT = sch.MIGRATIONS[3]
V9_REBUILD = sch.MIGRATIONS[8].replace(
    sch.SEARCH_DROP_SQL + ";",
    sch.SEARCH_DROP_SQL + "; " + sch.SEARCH_INDEX_SQL.replace(" CONCURRENTLY", "") + ";",
)
V8_INDEX = (
    "CREATE INDEX messages_fts ON {s}.messages "
    "USING gin (to_tsvector('simple', {s}.message_text(body)))"
)


def fill(url: str, messages: int, at: int | None = None) -> None:
    """``messages`` messages in sessions of 100 (at schema version ``at``)."""
    saved = sch.MIGRATIONS, sch.SCHEMA_VERSION
    if at is not None:
        sch.MIGRATIONS, sch.SCHEMA_VERSION = sch.MIGRATIONS[:at], at
    try:
        with srt.Runtime(url) as rt:
            for s in range(messages // 100):
                batch: list[dict[str, Any]] = []
                for t in range(50):
                    user, reply = turn(f"{s}-{t}", 2048)
                    if t % 10 == 3:
                        user["content"] = [
                            {"type": "text", "text": user["content"]},
                            {"type": "image_url", "image_url": {"url": "data:,x"}},
                            {"type": "text", "text": "and ünïcode 🎉"},
                        ]
                    batch += [user, reply]
                rt.session(f"s{s}").append(*batch)
    finally:
        sch.MIGRATIONS, sch.SCHEMA_VERSION = saved


def timed(conn: psycopg.Connection[Any], sql: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def text_costs(base: str, messages: int, reps: int) -> None:
    db = new_database(base, "srt_text_bench")
    fill(db + "&schema=srt", messages)
    conn = psycopg.connect(db, autocommit=True)
    conn.execute(f"SET search_path = {sch.PINNED_PATH}")
    (n,) = conn.execute("SELECT count(*) FROM srt.messages").fetchone() or (0,)
    v10 = sch.render(sch.MIGRATIONS[9], "srt")
    for name, fn in (("v9", sch.render(V9_TEXT, "srt")), ("v10", v10)) * 2:
        conn.execute(fn)
        text = timed(conn, "SELECT sum(length(srt.message_text(body))) FROM srt.messages", reps)
        builds = {}
        for how, sql in (
            ("plain", sch.SEARCH_INDEX_SQL.replace(" CONCURRENTLY", "")),
            ("concurrently", sch.SEARCH_INDEX_SQL),
        ):
            times = []
            for _ in range(reps):
                conn.execute(sch.render(sch.SEARCH_DROP_SQL, "srt"))
                t = time.perf_counter()
                conn.execute(sch.render(sql, "srt"))
                times.append(time.perf_counter() - t)
            builds[how] = statistics.median(times)
        print(
            f"{name:4} message_text {text / n * 1e6:5.1f} us/message; index build over {n} "
            f"messages: {builds['plain']:.2f} s ({builds['plain'] / n * 1e6:.0f} us/message), "
            f"concurrently {builds['concurrently']:.2f} s"
        )
    conn.close()


def open_times(base: str, messages: int, reps: int) -> None:
    template = new_database(base, "srt_text_v8")
    fill(template + "&schema=srt", messages, at=8)
    with psycopg.connect(template, autocommit=True) as conn:
        conn.execute(sch.render(V8_INDEX, "srt"))
    for name, step in (("v9 as first released", V9_REBUILD), ("v9 now", sch.MIGRATIONS[8])):
        times = []
        for _ in range(reps):
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute('DROP DATABASE IF EXISTS "srt_text_open"')
                conn.execute('CREATE DATABASE "srt_text_open" TEMPLATE "srt_text_v8"')
            url = template.replace("/srt_text_v8?", "/srt_text_open?") + "&schema=srt"
            saved = sch.MIGRATIONS
            sch.MIGRATIONS = (*saved[:8], step, *saved[9:])
            try:
                t = time.perf_counter()
                with srt.Runtime(url):
                    times.append(time.perf_counter() - t)
            finally:
                sch.MIGRATIONS = saved
        took = statistics.median(times)
        print(f"open of a v8 store of {messages} messages, {name}: {took:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--open", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--url")
    args = ap.parse_args()
    server = None if args.url else PgServer(fast=True)
    if server is not None:
        server.start()
    try:
        base = args.url or server.url  # type: ignore[union-attr]
        text_costs(base, args.messages, args.reps)
        if args.open:
            open_times(base, args.open, args.reps)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
