"""PostgreSQL storage settings for srt's message bodies, measured side by side: the
column's ``STORAGE`` (``EXTENDED``, srt's default, ``MAIN``, ``EXTERNAL``), its
``COMPRESSION`` (``lz4``, srt's, or ``pglz``) and the table's ``toast_tuple_target``.

Each variant gets a database of its own on one throwaway server (``--url`` to use
another): srt creates its schema, the variant's ``ALTER TABLE`` runs on the empty
``messages`` table, then the bench writes the seeded ``chat`` workload of
``bench/pg_peers.py`` and ``bench/pg_scale.py latency`` (a 4 KB system prompt, then
``--turns`` turns of a 200-800 character user message and a 500-3,000 character reply)
and ``pg_peers``'s dedup case (100 sessions each holding the same 4 KB prompt and a
200-character message of their own). Reported per variant: the database's growth over
the text it holds for each (``pg_total_relation_size``, heap, TOAST and indexes); a new
``Runtime``'s cold open of the chat session and its next request built, and
``store.overview()`` (what ``srt ls`` runs), medians of ``--reps`` rounds that visit
every variant and a SQLite store of the same chat in turn (each round starting one
further along), so the machine's load falls on all alike.

    python bench/pg_toast.py [--turns 1000] [--reps 15] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import statistics
import tempfile
import time
from typing import Any

import benchio
from pg_peers import db_size
from pgcommon import PgServer, environment, new_database

import srt
from srt.bench import workloads
from srt.bench.chat import MODEL

#: name -> the statements that set it up on srt's empty ``messages`` table.
VARIANTS: dict[str, list[str]] = {
    "default (EXTENDED, lz4, target 2032)": [],
    "COMPRESSION pglz": ["ALTER TABLE {s}.messages ALTER COLUMN body SET COMPRESSION pglz"],
    "STORAGE EXTERNAL": ["ALTER TABLE {s}.messages ALTER COLUMN body SET STORAGE EXTERNAL"],
    "STORAGE MAIN": ["ALTER TABLE {s}.messages ALTER COLUMN body SET STORAGE MAIN"],
    "toast_tuple_target 128": ["ALTER TABLE {s}.messages SET (toast_tuple_target = 128)"],
    "toast_tuple_target 4096": ["ALTER TABLE {s}.messages SET (toast_tuple_target = 4096)"],
    "MAIN, toast_tuple_target 8160": [
        "ALTER TABLE {s}.messages ALTER COLUMN body SET STORAGE MAIN",
        "ALTER TABLE {s}.messages SET (toast_tuple_target = 8160)",
    ],
}

DEDUP_SESSIONS = 100


def fill(rt: srt.Runtime, turns: int) -> int:
    """The chat workload in session ``chat``: the bytes of text it holds."""
    system, pairs = workloads.chat(turns, seed=1)
    s = rt.session("chat")
    s.append(system)
    text = len(system["content"].encode())
    for u, a in pairs:
        s.append(u)
        s.append(a)
        text += len(u["content"].encode()) + len(a["content"].encode())
    return text


def dedup(rt: srt.Runtime) -> int:
    """``pg_peers``'s dedup case: the bytes of text it holds."""
    system, _ = workloads.chat(1, seed=1)
    rng = random.Random(1)
    text = 0
    for i in range(DEDUP_SESSIONS):
        user = {"role": "user", "content": workloads.text(rng, 200)}
        rt.session(f"dedup-{i:03d}").append(system, user)
        text += len(system["content"].encode()) + len(user["content"].encode())
    return text


def _timed(fn: Any) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _cold(where: str) -> Any:
    def run() -> None:
        with srt.Runtime(where) as rt:
            rt.session("chat", create=False).request("openai.chat", model=MODEL)

    return run


def _ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1e3, 2)


def measure(base: str, turns: int, reps: int, sqlite: str) -> dict[str, Any]:
    stores: dict[str, tuple[str, srt.Runtime]] = {}
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        for i, (name, sql) in enumerate(VARIANTS.items()):
            url = new_database(base, f"toast_{i}")
            rt = stack.enter_context(srt.Runtime(url))
            db = rt.store.db
            with db.connection() as conn:
                for stmt in sql:
                    conn.execute(db.sql(stmt))
            size0 = db_size(url)
            text = fill(rt, turns)
            chat = db_size(url) - size0
            dedup_text = dedup(rt)
            added = db_size(url) - size0 - chat
            with db.connection() as conn:
                row = conn.execute(
                    db.sql(
                        "SELECT pg_relation_size('{s}.messages'), coalesce(pg_total_relation_size("
                        "(SELECT reltoastrelid FROM pg_class WHERE oid = '{s}.messages'::regclass)"
                        "), 0) FROM {s}.srt_schema"
                    )
                ).fetchone()
            assert row is not None
            out[name] = {
                "statements": sql,
                "chat_db_bytes": chat,
                "chat_text_bytes": text,
                "chat_db_vs_text": round(chat / text, 3),
                "dedup_db_bytes": added,
                "dedup_db_vs_text": round(added / dedup_text, 3),
                "messages_heap_bytes": int(row[0]),
                "messages_toast_bytes": int(row[1]),
            }
            stores[name] = (url, rt)
        with srt.Runtime(sqlite) as rt:
            fill(rt, turns)
        cold: dict[str, list[float]] = {k: [] for k in [*stores, "sqlite"]}
        ls: dict[str, list[float]] = {k: [] for k in stores}
        names = [*stores, "sqlite"]
        for rep in range(reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:  # rotated
                if name == "sqlite":
                    cold[name].append(_timed(_cold(sqlite)))
                    continue
                url, rt = stores[name]
                cold[name].append(_timed(_cold(url)))
                ls[name].append(_timed(rt.store.overview))
    sq = statistics.median(cold["sqlite"])
    for name in stores:
        out[name]["cold_open_build_ms"] = _ms(cold[name])
        out[name]["cold_vs_sqlite"] = round(statistics.median(cold[name]) / sq, 2)
        out[name]["overview_ms"] = _ms(ls[name])
    out["sqlite_cold_open_build_ms"] = _ms(cold["sqlite"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=1000)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--url", help="a server to use (databases toast_N are made there)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        base = args.url or stack.enter_context(PgServer(fast=False)).url
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pg_toast_"))
        env = environment(base)
        res = measure(base, args.turns, args.reps, f"{tmp}/chat.db")
        env["load_after"] = [round(x, 2) for x in os.getloadavg()]
    out = {"environment": env, "turns": args.turns, "reps": args.reps, "results": res}
    print(json.dumps(out, indent=1))
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
