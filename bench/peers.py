"""srt against its peers' own persistence paths, on the same chat, in the same run.

    pip install '.[bench]'          # openai-agents, llm, langgraph-checkpoint-sqlite, ...
    python bench/peers.py --turns 200 --json bench/results/peers.json

Each client replays the seeded ``chat`` workload (``srt.bench.workloads.chat``) turn by
turn. Per turn it stores the user message, builds the next request body (load the
history from its store, make the body's bytes), then stores the reply:

* ``srt``: ``Session.append`` and ``Session.request("openai.chat")`` (hot);
* ``openai-agents``: the OpenAI Agents SDK's ``SQLiteSession`` (``add_items``,
  ``get_items``), the body ``json.dumps`` of the items, as its runner resends them;
* ``llm``: simonw ``llm``'s content-addressed ``LogStore`` (``append`` of an
  ``llm.parts.Message``, ``thread_messages``), each message turned into a chat dict
  and the body ``json.dumps``-ed (a stand-in for its plugin's ``build_messages``);
* ``langgraph``: LangGraph's ``SqliteSaver`` as a one-node ``MessagesState`` graph
  drives it: one checkpoint per step (the input, then the node's reply) whose
  channel value is the whole message list; the build reads the latest checkpoint
  (``get_tuple``) and ``json.dumps`` its messages. Messages are plain dicts here, not
  LangChain message objects, so this is lighter than a real graph;
* ``naive``: one row per message in SQLite, load and ``json.dumps`` (srt.bench.chat).

Reported per client: append p50/p99 (one message), next-request build p50/p99 over the
last ``--tail`` turns, the database size against the message text, and every byte its
appends passed to ``write()`` (``/proc/self/io``: WAL, checkpoints, journals) against
the message text. Peers that are
not installed are listed as such.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import benchio  # (bench/ is the script's folder)

from srt import Runtime
from srt._version import __version__
from srt.bench import workloads
from srt.bench.chat import _pct, _wchar
from srt.bench.naive import MODEL, NaiveStore, _dumps


def _size(path: str) -> int:
    total = 0
    for suffix in ("", "-wal"):
        if os.path.exists(path + suffix):
            total += os.path.getsize(path + suffix)
    return total


class Client:
    name = ""

    def append(self, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def build(self) -> bytes:
        raise NotImplementedError

    def close(self) -> int:
        """Close; return the bytes on disk."""
        raise NotImplementedError


class Srt(Client):
    name = "srt"

    def __init__(self, d: str) -> None:
        self.path = os.path.join(d, "srt.db")
        self.rt = Runtime(self.path)
        self.s = self.rt.session("peers")

    def append(self, msg: dict[str, Any]) -> None:
        self.s.append(msg)

    def build(self) -> bytes:
        return self.s.request("openai.chat", model=MODEL, cache=False)

    def close(self) -> int:
        self.rt.close()
        return _size(self.path)


class Naive(Client):
    name = "naive"

    def __init__(self, d: str) -> None:
        self.path = os.path.join(d, "naive.db")
        self.store = NaiveStore(self.path)

    def append(self, msg: dict[str, Any]) -> None:
        self.store.append("peers", msg)

    def build(self) -> bytes:
        return self.store.build("peers")

    def close(self) -> int:
        self.store.conn.close()
        return _size(self.path)


class Agents(Client):
    name = "openai-agents"

    def __init__(self, d: str) -> None:
        from agents.memory import SQLiteSession

        self.path = os.path.join(d, "agents.db")
        self.session = SQLiteSession("peers", self.path)
        self.loop = asyncio.new_event_loop()

    def append(self, msg: dict[str, Any]) -> None:
        self.loop.run_until_complete(self.session.add_items([msg]))

    def build(self) -> bytes:
        items = self.loop.run_until_complete(self.session.get_items())
        return _dumps(list(items))

    def close(self) -> int:
        self.session.close()
        self.loop.close()
        return _size(self.path)


class Llm(Client):
    name = "llm"

    def __init__(self, d: str) -> None:
        import sqlite_utils
        from llm.logs import LogStore
        from llm.parts import Message, TextPart

        self.Message, self.TextPart = Message, TextPart
        self.path = os.path.join(d, "llm.db")
        self.db = sqlite_utils.Database(self.path)
        self.store = LogStore(self.db)
        self.thread = self.store.ensure_thread("peers-thread")

    def append(self, msg: dict[str, Any]) -> None:
        m = self.Message(role=msg["role"], parts=[self.TextPart(text=msg["content"])])
        with self.db.conn:
            self.store.append(self.thread, [m])

    def build(self) -> bytes:
        msgs = self.store.thread_messages(self.thread)
        out = [
            {"role": m.role, "content": "".join(getattr(p, "text", "") for p in m.parts)}
            for m in msgs
        ]
        return _dumps(out)

    def close(self) -> int:
        self.db.close()
        return _size(self.path)


class LangGraph(Client):
    name = "langgraph"

    def __init__(self, d: str) -> None:
        import sqlite3

        from langgraph.checkpoint.base import empty_checkpoint
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.path = os.path.join(d, "langgraph.db")
        self.conn = sqlite3.connect(self.path, check_same_thread=False)
        self.saver = SqliteSaver(self.conn)
        self.saver.setup()
        self.empty = empty_checkpoint
        self.config: Any = {"configurable": {"thread_id": "peers", "checkpoint_ns": ""}}
        self.messages: list[dict[str, Any]] = []
        self.step = -1

    def append(self, msg: dict[str, Any]) -> None:
        self.messages = [*self.messages, msg]  # add_messages makes a new list
        self.step += 1
        cp = self.empty()
        cp["channel_values"] = {"messages": self.messages}
        cp["channel_versions"] = {"messages": self.step + 1}
        meta: Any = {"source": "loop", "step": self.step}
        self.config = self.saver.put(self.config, cp, meta, {"messages": self.step + 1})

    def build(self) -> bytes:
        t = self.saver.get_tuple({"configurable": {"thread_id": "peers"}})
        assert t is not None
        return _dumps(list(t.checkpoint["channel_values"]["messages"]))

    def close(self) -> int:
        self.conn.close()
        return _size(self.path)


CLIENTS: list[tuple[str, Callable[[str], Client]]] = [
    ("srt", Srt),
    ("naive", Naive),
    ("openai-agents", Agents),
    ("llm", Llm),
    ("langgraph", LangGraph),
]


def run(turns: int, tail: int, seed: int, workdir: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, make in CLIENTS:
        d = os.path.join(workdir, name)
        os.makedirs(d)
        try:
            c = make(d)
        except ImportError as e:
            out[name] = {"installed": False, "error": str(e)}
            continue
        system, pairs = workloads.chat(turns, seed=seed)
        app: list[int] = []
        bld: list[int] = []
        text = len(system["content"].encode())
        w0 = _wchar()
        c.append(system)
        written = _wchar() - w0
        t0 = time.perf_counter()
        body = b""
        for i, (u, a) in enumerate(pairs):
            timed = i >= turns - tail
            for msg in (u,):
                w0 = _wchar()
                s0 = time.perf_counter_ns()
                c.append(msg)
                s1 = time.perf_counter_ns()
                written += _wchar() - w0
                if timed:
                    app.append(s1 - s0)
            s0 = time.perf_counter_ns()
            body = c.build()
            s1 = time.perf_counter_ns()
            if timed:
                bld.append(s1 - s0)
            w0 = _wchar()
            s0 = time.perf_counter_ns()
            c.append(a)
            s1 = time.perf_counter_ns()
            written += _wchar() - w0
            if timed:
                app.append(s1 - s0)
            text += len(u["content"].encode()) + len(a["content"].encode())
        wall = time.perf_counter() - t0
        size = c.close()
        out[name] = {
            "installed": True,
            "append_us": {"p50": _pct(app, 0.5), "p99": _pct(app, 0.99)},
            "build_us": {"p50": _pct(bld, 0.5), "p99": _pct(bld, 0.99)},
            "db_bytes": size,
            "text_bytes": text,
            "db_vs_text": size / text,
            # write() bytes of every append (WAL, checkpoints, journals) over the text
            "written_vs_text": written / text,
            "final_body_bytes": len(body),
            "wall_s": wall,
        }
        sys.stderr.write(f"  {name}: {wall:.1f} s\n")
    return out


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "srt": __version__}
    for dist in ("openai-agents", "llm", "langgraph-checkpoint-sqlite", "langgraph-checkpoint"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=200)
    p.add_argument("--tail", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    env = versions()
    print("srt peers bench")
    for k, v in env.items():
        print(f"  {k:<28} {v}")
    with tempfile.TemporaryDirectory(prefix="srt-peers-") as work:
        res = run(args.turns, args.tail, args.seed, work)
    print(
        f"\nchat {args.turns} turns (seed {args.seed}), last {args.tail} timed"
        "\n  client            append p50/p99 (us)      build p50/p99 (us)     database"
    )
    srt = res["srt"]
    for name, r in res.items():
        if not r["installed"]:
            print(f"  {name:<16} not installed ({r['error']})")
            continue
        a, b = r["append_us"], r["build_us"]
        vs = "" if name == "srt" else f"  build {b['p50'] / srt['build_us']['p50']:.0f}x srt's"
        print(
            f"  {name:<16}{a['p50']:>9.0f} {a['p99']:>9.0f}   {b['p50']:>10.0f} {b['p99']:>10.0f}"
            f"   {r['db_bytes'] / 1e6:7.2f} MB ({r['db_vs_text']:.2f}x text), written "
            f"{r['written_vs_text']:.1f}x text{vs}"
        )
    if args.json:
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
