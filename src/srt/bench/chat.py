"""The ``chat`` workload: one long conversation, srt against naive clients, same run.

Per turn: append the user message, build the next request, append the reply.
Baselines, all on the same messages in the same process:

* ``naive``: a one-row-per-message SQLite store (APSW); every turn it loads the
  history and rebuilds the whole body with ``json.dumps``;
* ``dumps``: a stateless client holding the messages in a list, ``json.dumps`` each turn;
* ``join``: one ``b"".join`` of exactly srt's bytes (the floor for any assembly);
* ``bare``: bare APSW writes of the same rows srt writes (messages, nodes, head),
  hashes precomputed, no checks: the floor for an append.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import apsw

from .. import _core, _db
from ..message import canonicalize
from ..runtime import Runtime
from . import workloads

MODEL = "gpt-4o-mini"


def _dumps(messages: list[dict[str, Any]]) -> bytes:
    body = {"model": MODEL, "messages": messages}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class NaiveStore:
    """One row per message, history loaded and re-serialized on every turn."""

    def __init__(self, path: str) -> None:
        self.conn = apsw.Connection(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS msgs(id INTEGER PRIMARY KEY, session TEXT, "
            "role TEXT, content TEXT)"
        )

    def append(self, session: str, msg: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO msgs(session, role, content) VALUES (?, ?, ?)",
                (session, msg["role"], msg["content"]),
            )

    def build(self, session: str) -> bytes:
        rows = self.conn.execute(
            "SELECT role, content FROM msgs WHERE session = ? ORDER BY id", (session,)
        ).fetchall()
        return _dumps([{"role": r, "content": c} for r, c in rows])


class BareWriter:
    """The rows srt writes for an append, written with no logic at all."""

    def __init__(self, path: str) -> None:
        self.conn = _db.connect(path, threading.Lock(), migrate=True)
        now = time.time()
        self.conn.execute(
            "INSERT INTO sessions(name, head, created, updated) VALUES ('s', NULL, ?, ?)",
            (now, now),
        )
        self.sid = self.conn.last_insert_rowid()
        self.head: int | None = None
        self.depth = 0

    def append(self, rows: list[tuple[bytes, bytes, bytes]]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        for mhash, body, prefix in rows:
            self.depth += 1
            c.execute("INSERT INTO messages(hash, body) VALUES (?, ?)", (mhash, body))
            c.execute(
                "INSERT INTO nodes(parent, message, depth, prefix) VALUES (?, ?, ?, ?)",
                (self.head, c.last_insert_rowid(), self.depth, prefix),
            )
            self.head = c.last_insert_rowid()
        c.execute(
            "UPDATE sessions SET head = ?, updated = ? WHERE id = ?",
            (self.head, time.time(), self.sid),
        )
        c.execute("COMMIT")


def _file_size(path: str) -> int:
    conn = apsw.Connection(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return os.path.getsize(path)


def _pct(xs: list[int], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))] / 1000.0  # ns -> us


@dataclass
class ChatResult:
    turns: int
    tail: int
    build_us: dict[str, dict[str, float]] = field(default_factory=dict)
    append_us: dict[str, dict[str, float]] = field(default_factory=dict)
    cold_us: dict[str, float] = field(default_factory=dict)
    serialized_per_turn: dict[str, float] = field(default_factory=dict)
    db_bytes: int = 0
    text_bytes: int = 0
    canonical_bytes: int = 0
    body_bytes: int = 0
    checked_bodies: int = 0
    series: dict[str, list[float]] = field(default_factory=dict)

    def ratios(self) -> dict[str, float]:
        b = self.build_us
        return {
            "build_vs_naive": b["naive"]["p50"] / b["srt"]["p50"],
            "build_vs_dumps": b["dumps"]["p50"] / b["srt"]["p50"],
            "build_vs_join": b["srt"]["p50"] / b["join"]["p50"],
            "cold_vs_naive": self.cold_us["naive"] / self.cold_us["srt"],
            "append_vs_bare": self.append_us["srt"]["p50"] / self.append_us["bare"]["p50"],
            "db_vs_text": self.db_bytes / self.text_bytes,
        }


def run_chat(
    workdir: str,
    turns: int = 1000,
    *,
    seed: int = 1,
    tail: int = 50,
    correctness: bool = False,
    progress: Any = None,
) -> ChatResult:
    """Replay a ``turns``-turn chat through srt and the baselines; time the last ``tail`` turns."""
    res = ChatResult(turns=turns, tail=tail)
    srt_path = os.path.join(workdir, "srt.db")
    rt = Runtime(srt_path)
    s = rt.session("bench")
    naive = NaiveStore(os.path.join(workdir, "naive.db"))
    bare = BareWriter(os.path.join(workdir, "bare.db"))
    bare_prefix = _core.ROOT
    history: list[dict[str, Any]] = []
    t_build: dict[str, list[int]] = {k: [] for k in ("srt", "naive", "dumps", "join")}
    t_append: dict[str, list[int]] = {"srt": [], "bare": []}
    ser_srt: list[int] = []
    pc = time.perf_counter_ns

    system, pairs = workloads.chat(turns, seed=seed)

    def do_append(msg: dict[str, Any], timed: bool) -> None:
        nonlocal bare_prefix
        history.append(msg)
        naive.append("bench", msg)
        res.text_bytes += len(msg["content"].encode("utf-8"))
        body, _ = canonicalize(msg)
        res.canonical_bytes += len(body)
        h = _core.digest(body)
        bare_prefix = _core.chain(bare_prefix, h)
        t0 = pc()
        bare.append([(h, body, bare_prefix)])
        t1 = pc()
        s.append(msg)
        t2 = pc()
        if timed:
            t_append["bare"].append(t1 - t0)
            t_append["srt"].append(t2 - t1)

    do_append(system, False)
    for i, (user, reply) in enumerate(pairs):
        timed = i >= turns - tail
        before = rt.serialized
        do_append(user, timed)
        t0 = pc()
        body = s.request("openai.chat", model=MODEL, cache=False)
        t1 = pc()
        nb = naive.build("bench")
        t2 = pc()
        db = _dumps(history)
        t3 = pc()
        if correctness or i == turns - 1:
            if not (body == nb == db):
                raise AssertionError(f"turn {i + 1}: srt's body differs from the reference")
            res.checked_bodies += 1
        res.body_bytes = len(body)
        if timed:
            head, sep, tl = b'{"model":"' + MODEL.encode() + b'","messages":[', b",", b"]}"
            parts = [head]
            for j, f in enumerate(s.messages_bytes()):
                if j:
                    parts.append(sep)
                parts.append(f)
            parts.append(tl)
            t4 = pc()
            joined = b"".join(parts)
            t5 = pc()
            assert joined == body
            t_build["join"].append(t5 - t4)
            t_build["srt"].append(t1 - t0)
            t_build["naive"].append(t2 - t1)
            t_build["dumps"].append(t3 - t2)
        for k, v in (("srt", t1 - t0), ("naive", t2 - t1), ("dumps", t3 - t2)):
            res.series.setdefault(k, []).append(v / 1000.0)
        do_append(reply, timed)
        ser_srt.append(rt.serialized - before)
        if progress is not None:
            progress(i + 1, turns)

    res.serialized_per_turn = {
        "srt": statistics.mean(ser_srt[-tail:]),
        "naive": float(len(history) - 1),
        "dumps": float(len(history) - 1),
    }
    for k, xs in t_build.items():
        res.build_us[k] = {"p50": _pct(xs, 0.5), "p99": _pct(xs, 0.99)}
    for k, xs in t_append.items():
        res.append_us[k] = {"p50": _pct(xs, 0.5), "p99": _pct(xs, 0.99)}

    # Cold: a fresh runtime opens the session and builds the request from the file.
    cold: list[int] = []
    for _ in range(5):
        t0 = pc()
        rt2 = Runtime(srt_path)
        body = rt2.session("bench").request("openai.chat", model=MODEL, cache=False)
        cold.append(pc() - t0)
        rt2.close()
    naive_cold: list[int] = []
    for _ in range(5):
        t0 = pc()
        nb = naive.build("bench")
        naive_cold.append(pc() - t0)
    assert nb == body
    res.cold_us = {"srt": _pct(cold, 0.5), "naive": _pct(naive_cold, 0.5)}

    rt.close()
    naive.conn.close()
    bare.conn.close()
    res.db_bytes = _file_size(srt_path)
    return res
