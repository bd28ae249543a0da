"""srt against its peers' PostgreSQL persistence, on the same server, in the same run.

    pip install '.[postgres,bench]'    # langgraph-checkpoint-postgres, openai-agents[sqlalchemy]
    python bench/pg_peers.py --turns 1000 --json bench/results/pg_peers.json
    python bench/pg_peers.py --url postgresql://me@host/db ...   # an existing server

Without ``--url`` the bench starts a throwaway PostgreSQL from this machine's binaries
(``srt.testing.pgserver``, default durability: fsync on). Every client gets a database of
its own on that one server. Each replays the seeded ``chat`` workload (a 4 KB system
prompt, then per turn a user message of 200-800 characters and a reply of 500-3,000) turn
by turn: store the user message, build the next request body, store the reply.

* ``srt``: ``Runtime("postgresql://...")``, ``Session.append`` and ``Session.request``
  on the live handle (hot); ``load+build`` opens the session anew (reads and checks its
  chain) and builds, as another process serving the same conversation does;
* ``langgraph``: LangGraph's ``PostgresSaver``, one checkpoint per message as a one-node
  ``MessagesState`` graph writes them (the channel value is the whole message list); the
  build reads the latest checkpoint (``get_tuple``) and ``json.dumps`` its messages;
* ``openai-agents``: the Agents SDK's ``SQLAlchemySession`` on ``postgresql+asyncpg``
  (``add_items``, ``get_items``), the body ``json.dumps`` of the items;
* ``naive``: one row per message (``session, seq, body``), load and ``json.dumps``.

Reported per client: append p50/p99 (one message) and build p50/p99 over the last
``--tail`` turns; storage as the sum of ``pg_total_relation_size`` over the client's
tables (heap, TOAST and indexes) against the message text; and ``dedup``: 100 sessions
that each hold the same 4 KB system prompt and one user message of their own, the
storage they added against the text they hold (a client that stores the prompt once adds
about one prompt plus the user messages; one that stores it per session, 100 prompts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import benchio
import psycopg
from pgcommon import PgServer, new_database

from srt._version import __version__
from srt.bench import workloads
from srt.bench.chat import MODEL, _dumps, _pct

DEDUP_SESSIONS = 100

_SIZE_SQL = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""


def db_size(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(_SIZE_SQL).fetchone()
        return int(row[0]) if row else 0


def _sqlalchemy_url(conninfo: str) -> str:
    """A ``postgresql+asyncpg://`` URL for the same server and database."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(conninfo)
    host = str(p.get("host", "127.0.0.1"))
    port = p.get("port", "5432")
    user = quote(str(p.get("user", "postgres")))
    db = quote(str(p["dbname"]))
    if host.startswith("/"):
        return f"postgresql+asyncpg://{user}@/{db}?host={quote(host)}&port={port}"
    return f"postgresql+asyncpg://{user}@{host}:{port}/{db}"


class Client:
    name = ""

    def __init__(self, url: str) -> None:
        self.url = url

    def open(self, session: str) -> None:
        """Make ``session`` the one ``append`` and ``build`` work on."""
        raise NotImplementedError

    def append(self, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def build(self) -> bytes:
        raise NotImplementedError

    def load_build(self) -> bytes | None:
        """Build from the database alone (None: ``build`` already does)."""
        return None

    def close(self) -> None:
        raise NotImplementedError


class Srt(Client):
    name = "srt"

    def __init__(self, url: str) -> None:
        import srt

        super().__init__(url)
        self.rt = srt.Runtime(url)
        self.s: Any = None

    def open(self, session: str) -> None:
        self.s = self.rt.session(session)

    def append(self, msg: dict[str, Any]) -> None:
        self.s.append(msg)

    def build(self) -> bytes:
        return self.s.request("openai.chat", model=MODEL, cache=False)  # type: ignore[no-any-return]

    def load_build(self) -> bytes:
        fresh = self.rt.session(self.s.name, create=False)
        return fresh.request("openai.chat", model=MODEL, cache=False)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.rt.close()


class Naive(Client):
    name = "naive"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(
            "CREATE TABLE chat(session text NOT NULL, seq int NOT NULL, body text NOT NULL,"
            " PRIMARY KEY (session, seq))"
        )
        self.session = ""
        self.n = 0

    def open(self, session: str) -> None:
        self.session, self.n = session, 0

    def append(self, msg: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO chat VALUES (%s, %s, %s)",
            (self.session, self.n, json.dumps(msg, ensure_ascii=False)),
        )
        self.n += 1

    def build(self) -> bytes:
        rows = self.conn.execute(
            "SELECT body FROM chat WHERE session = %s ORDER BY seq", (self.session,)
        ).fetchall()
        return _dumps([json.loads(r[0]) for r in rows])

    def close(self) -> None:
        self.conn.close()


class Agents(Client):
    name = "openai-agents"

    def __init__(self, url: str) -> None:
        from agents.extensions.memory import SQLAlchemySession
        from sqlalchemy.ext.asyncio import create_async_engine

        super().__init__(url)
        self.loop = asyncio.new_event_loop()
        self.engine = create_async_engine(_sqlalchemy_url(url))
        self.make = lambda sid: SQLAlchemySession(sid, engine=self.engine, create_tables=True)
        self.session: Any = None

    def open(self, session: str) -> None:
        self.session = self.make(session)

    def append(self, msg: dict[str, Any]) -> None:
        self.loop.run_until_complete(self.session.add_items([msg]))

    def build(self) -> bytes:
        items = self.loop.run_until_complete(self.session.get_items())
        return _dumps(list(items))

    def close(self) -> None:
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()


class LangGraph(Client):
    name = "langgraph"

    def __init__(self, url: str) -> None:
        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.postgres import PostgresSaver

        super().__init__(url)
        self.conn = psycopg.connect(url, autocommit=True, prepare_threshold=0)
        from psycopg.rows import dict_row

        self.conn.row_factory = dict_row  # type: ignore[assignment]
        self.saver = PostgresSaver(self.conn)  # type: ignore[arg-type]
        self.saver.setup()
        self.empty = empty_checkpoint
        self.config: Any = None
        self.messages: list[dict[str, Any]] = []
        self.step = -1
        self.thread = ""

    def open(self, session: str) -> None:
        self.thread = session
        self.config = {"configurable": {"thread_id": session, "checkpoint_ns": ""}}
        self.messages, self.step = [], -1

    def append(self, msg: dict[str, Any]) -> None:
        self.messages = [*self.messages, msg]  # add_messages makes a new list
        self.step += 1
        cp = self.empty()
        cp["channel_values"] = {"messages": self.messages}
        cp["channel_versions"] = {"messages": self.step + 1}
        meta: Any = {"source": "loop", "step": self.step}
        self.config = self.saver.put(self.config, cp, meta, {"messages": self.step + 1})

    def build(self) -> bytes:
        t = self.saver.get_tuple({"configurable": {"thread_id": self.thread}})
        assert t is not None
        return _dumps(list(t.checkpoint["channel_values"]["messages"]))

    def close(self) -> None:
        self.conn.close()


CLIENTS: list[tuple[str, Callable[[str], Client]]] = [
    ("srt", Srt),
    ("naive", Naive),
    ("openai-agents", Agents),
    ("langgraph", LangGraph),
]


def chat(c: Client, url: str, turns: int, tail: int, seed: int) -> dict[str, Any]:
    base = db_size(url)
    system, pairs = workloads.chat(turns, seed=seed)
    c.open("peers")
    app: list[int] = []
    bld: list[int] = []
    load: list[int] = []
    text = len(system["content"].encode())
    c.append(system)
    t0 = time.perf_counter()
    body = b""
    for i, (u, a) in enumerate(pairs):
        timed = i >= turns - tail
        s0 = time.perf_counter_ns()
        c.append(u)
        s1 = time.perf_counter_ns()
        body = c.build()
        s2 = time.perf_counter_ns()
        if timed:
            app.append(s1 - s0)
            bld.append(s2 - s1)
            s3 = time.perf_counter_ns()
            cold = c.load_build()
            if cold is not None:
                load.append(time.perf_counter_ns() - s3)
                assert cold == body
        s0 = time.perf_counter_ns()
        c.append(a)
        if timed:
            app.append(time.perf_counter_ns() - s0)
        text += len(u["content"].encode()) + len(a["content"].encode())
    wall = time.perf_counter() - t0
    size = db_size(url) - base
    load = load or bld
    return {
        "append_us": {"p50": _pct(app, 0.5), "p99": _pct(app, 0.99)},
        "build_us": {"p50": _pct(bld, 0.5), "p99": _pct(bld, 0.99)},
        "load_build_us": {"p50": _pct(load, 0.5), "p99": _pct(load, 0.99)},
        "db_bytes": size,
        "text_bytes": text,
        "db_vs_text": size / text,
        "final_body_bytes": len(body),
        "wall_s": wall,
    }


def dedup(c: Client, url: str, seed: int) -> dict[str, Any]:
    base = db_size(url)
    system, _ = workloads.chat(1, seed=seed)
    rng = random.Random(seed)
    prompt = len(system["content"].encode())
    text = 0
    for i in range(DEDUP_SESSIONS):
        c.open(f"dedup-{i:03d}")
        user = {"role": "user", "content": workloads.text(rng, 200)}
        c.append(system)
        c.append(user)
        text += prompt + len(user["content"].encode())
    added = db_size(url) - base
    return {
        "sessions": DEDUP_SESSIONS,
        "prompt_bytes": prompt,
        "text_bytes": text,
        "db_bytes": added,
        "db_vs_text": added / text,
        "bytes_per_session": added / DEDUP_SESSIONS,
        # text of one prompt plus every user message: what storing the prompt once holds
        "db_vs_prompt_once": added / (text - (DEDUP_SESSIONS - 1) * prompt),
    }


def run(url: str, turns: int, tail: int, seed: int, only: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, make in CLIENTS:
        if only and name not in only:
            continue
        curl = new_database(url, f"peers_{name.replace('-', '_')}")
        try:
            c = make(curl)
        except ImportError as e:
            out[name] = {"installed": False, "error": str(e)}
            continue
        try:
            res = {"installed": True, "chat": chat(c, curl, turns, tail, seed)}
            res["dedup"] = dedup(c, curl, seed)
        finally:
            c.close()
        out[name] = res
        sys.stderr.write(f"  {name}: {res['chat']['wall_s']:.1f} s\n")
    return out


def versions(url: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "srt": __version__}
    for dist in (
        "psycopg",
        "psycopg-pool",
        "langgraph-checkpoint-postgres",
        "openai-agents",
        "sqlalchemy",
        "asyncpg",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        out["postgresql"] = str(row[0]) if row else "?"
    out["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return out


def report(res: dict[str, Any]) -> None:
    print(
        "\n  client           append p50/p99 (us)   build p50/p99 (us)   load+build p50/p99"
        "      database (x text)   dedup 100 sessions (x text, B/session)"
    )
    for name, r in res.items():
        if not r["installed"]:
            print(f"  {name:<16} not installed ({r['error']})")
            continue
        ch, d = r["chat"], r["dedup"]
        a, b, lb = ch["append_us"], ch["build_us"], ch["load_build_us"]
        print(
            f"  {name:<16}{a['p50']:>9.0f} {a['p99']:>9.0f} {b['p50']:>10.0f} {b['p99']:>9.0f}"
            f" {lb['p50']:>10.0f} {lb['p99']:>9.0f}"
            f"   {ch['db_bytes'] / 1e6:7.2f} MB ({ch['db_vs_text']:.2f}x)"
            f"   {d['db_bytes'] / 1e3:8.0f} kB ({d['db_vs_text']:.2f}x,"
            f" {d['bytes_per_session']:.0f})"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=1000)
    p.add_argument("--tail", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--url", help="an existing server (default: start a throwaway one)")
    p.add_argument("--only", action="append", default=[], help="run only this client")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            url = stack.enter_context(PgServer(fast=False)).url
        env = versions(url)
        print("srt PostgreSQL peers bench")
        for k, v in env.items():
            print(f"  {k:<30} {v}")
        res = run(url, args.turns, args.tail, args.seed, args.only)
    print(f"\nchat {args.turns} turns (seed {args.seed}), last {args.tail} timed")
    report(res)
    benchio.dump(
        args.json,
        {
            "environment": env,
            "argv": sys.argv[1:],
            "turns": args.turns,
            "tail": args.tail,
            "seed": args.seed,
            "results": res,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
