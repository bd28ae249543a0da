"""The ``chat`` workload: one long conversation, srt against naive clients, same run.

Per turn: append the user message, build the next request, append the reply.
Baselines, all on the same messages in the same process:

* ``naive``: a one-row-per-message SQLite store (APSW); every turn it loads the
  history and rebuilds the whole body with ``json.dumps``;
* ``dumps``: a stateless client holding the messages in a list, ``json.dumps`` each turn;
* ``orjson``: the same client with ``orjson.dumps`` (when orjson is installed);
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
import numpy as np

from .. import _core
from ..message import canonicalize
from ..runtime import Runtime
from ..store.sqlite import db as sqlite_db
from ..store.sqlite import heap
from ..store.sqlite.files import create_private_file
from . import workloads
from .naive import MODEL, NaiveStore, _dumps
from .writes import bytes_written, durable_appends


class BareWriter:
    """The rows srt writes for an append, written with no logic at all: a baseline that
    shares only the SQLite engine's schema and connection set-up with srt."""

    def __init__(self, path: str) -> None:
        create_private_file(path)  # (as srt's Database does before it connects)
        self.conn = sqlite_db.connect(path, threading.Lock(), migrate=True)
        now = time.time()
        self.conn.execute(
            "INSERT INTO sessions(name, head, created, updated) VALUES ('s', NULL, ?, ?)",
            (now, now),
        )
        self.sid = self.conn.last_insert_rowid()
        self.head: int | None = None
        self.depth = 0
        self.row = heap.row_bytes(int(self.conn.execute("PRAGMA page_size").get))

    def append(self, rows: list[tuple[bytes, bytes, bytes]]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        last = None
        for mhash, body, prefix in rows:
            last = prefix
            self.depth += 1
            at = heap.append(c, body, self.row)
            c.execute(
                "INSERT INTO nodes(parent, depth, hash, prefix, at, len) VALUES (?, ?, ?, ?, ?, ?)",
                (self.head, self.depth, mhash, prefix, at, len(body)),
            )
            self.head = c.last_insert_rowid()
        c.execute(
            "UPDATE sessions SET head = ?, head_prefix = ?, updated = ? WHERE id = ?",
            (self.head, last, time.time(), self.sid),
        )
        c.execute("COMMIT")


def _wchar() -> int:
    """Bytes this process has passed to write() so far (Linux ``/proc/self/io``)."""
    try:
        with open("/proc/self/io", "rb") as f:
            for line in f:
                if line.startswith(b"wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _orjson() -> Any:
    try:
        import orjson
    except ImportError:
        return None
    return orjson


def growth(points: list[tuple[int, int]]) -> dict[str, float]:
    """Least-squares slope of database bytes against text bytes, its R², and the slope
    of the second half of the run over that of the first (1.0: linear growth)."""
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    if len(x) < 4:
        return {"slope": float("nan"), "r2": float("nan"), "halves": float("nan")}
    slope, icept = np.polyfit(x, y, 1)
    pred = slope * x + icept
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss else 1.0
    h = len(x) // 2
    s1 = np.polyfit(x[: h + 1], y[: h + 1], 1)[0]
    s2 = np.polyfit(x[h:], y[h:], 1)[0]
    return {"slope": float(slope), "r2": r2, "halves": float(s2 / s1)}


def _logical_size(conn: apsw.Connection) -> int:
    """Pages in use times page size, as a reader sees the database (WAL included)."""
    pages = conn.execute("PRAGMA page_count").fetchone()
    size = conn.execute("PRAGMA page_size").fetchone()
    assert pages is not None and size is not None
    return int(pages[0]) * int(size[0])


def _cold(path: str, naive: NaiveStore, reps: int) -> tuple[float, float]:
    """Median cold build (us): a fresh ``Runtime`` opens the file, loads the session and
    builds; against the naive store's build (it has no warm state to lose)."""
    pc = time.perf_counter_ns
    srt_ns: list[int] = []
    naive_ns: list[int] = []
    body = nb = b""
    for _ in range(reps):
        t0 = pc()
        rt = Runtime(path)
        body = rt.session("bench").request("openai.chat", model=MODEL, cache=False)
        srt_ns.append(pc() - t0)
        rt.close()
        t0 = pc()
        nb = naive.build("bench")
        naive_ns.append(pc() - t0)
    if body != nb:
        raise AssertionError("the cold body differs from the naive body")
    return _pct(srt_ns, 0.5), _pct(naive_ns, 0.5)


def by_n(series: dict[str, list[float]], cold: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Hot build p50/p99 (us) in each tenth of the run (turns ``lo..hi``), per client, with
    the cold builds measured at the checkpoints that fall in it."""
    n = len(series.get("srt", []))
    out: list[dict[str, Any]] = []
    for k in range(10):
        lo, hi = k * n // 10, (k + 1) * n // 10
        if hi <= lo:
            continue
        row: dict[str, Any] = {"turns": [lo + 1, hi]}
        for key, ys in series.items():
            window = sorted(ys[lo:hi])
            row[key] = {
                "p50": window[len(window) // 2],
                "p99": window[min(len(window) - 1, int(0.99 * len(window)))],
            }
        row["cold"] = {c: v for c, v in cold.items() if lo < int(c) <= hi}
        out.append(row)
    return out


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
    written_per_message: dict[str, float] = field(default_factory=dict)
    writes: dict[str, Any] = field(default_factory=dict)
    durable: dict[str, Any] = field(default_factory=dict)
    growth: dict[str, float] = field(default_factory=dict)
    size_series: list[tuple[int, int]] = field(default_factory=list)  # (text, db bytes)
    sizes: dict[str, Any] = field(default_factory=dict)
    cold_by_n: dict[str, dict[str, float]] = field(default_factory=dict)
    by_n: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)

    def ratios(self) -> dict[str, float]:
        b = self.build_us
        out = {
            "build_vs_naive": b["naive"]["p50"] / b["srt"]["p50"],
            "build_vs_dumps": b["dumps"]["p50"] / b["srt"]["p50"],
            "build_vs_join": b["srt"]["p50"] / b["join"]["p50"],
            "cold_vs_naive": self.cold_us["naive"] / self.cold_us["srt"],
            "append_vs_bare": self.append_us["srt"]["p50"] / self.append_us["bare"]["p50"],
            "db_vs_text": self.db_bytes / self.text_bytes,
            "cold_vs_dumps": self.cold_us["dumps"] / self.cold_us["srt"],
        }
        if self.writes:
            out["wal_vs_naive"] = self.writes["wal_vs_naive"]
            out["over_text_vs_naive"] = self.writes["over_text_vs_naive"]
        if self.durable:
            out["append_full_vs_naive"] = self.durable["full_vs_naive"]
        if "orjson" in b:
            out["build_vs_orjson"] = b["orjson"]["p50"] / b["srt"]["p50"]
        return out


def run_chat(
    workdir: str,
    turns: int = 1000,
    *,
    seed: int = 1,
    tail: int = 50,
    correctness: bool = False,
    progress: Any = None,
    system_chars: int = 4096,
    user: tuple[int, int] = (200, 800),
    assistant: tuple[int, int] = (500, 3000),
) -> ChatResult:
    """Replay a ``turns``-turn chat through srt and the baselines; time the last ``tail`` turns."""
    res = ChatResult(turns=turns, tail=tail)
    res.sizes = {"system_chars": system_chars, "user": list(user), "assistant": list(assistant)}
    orjson = _orjson()
    srt_path = os.path.join(workdir, "srt.db")
    rt = Runtime(srt_path)
    s = rt.session("bench")
    naive = NaiveStore(os.path.join(workdir, "naive.db"))
    bare = BareWriter(os.path.join(workdir, "bare.db"))
    bare_prefix = _core.ROOT
    history: list[dict[str, Any]] = []
    keys = ("srt", "naive", "dumps", "join") + (("orjson",) if orjson else ())
    t_build: dict[str, list[int]] = {k: [] for k in keys}
    written = {"srt": 0, "naive": 0, "bare": 0}
    reader = apsw.Connection(srt_path, flags=apsw.SQLITE_OPEN_READONLY)
    every = max(1, turns // 40)
    checkpoints = {max(1, turns // 4), max(1, turns // 2)}  # and the end, timed below
    t_append: dict[str, list[int]] = {"srt": [], "bare": []}
    ser_srt: list[int] = []
    pc = time.perf_counter_ns

    system, pairs = workloads.chat(
        turns, seed=seed, system_chars=system_chars, user=user, assistant=assistant
    )

    def do_append(msg: dict[str, Any], timed: bool) -> None:
        nonlocal bare_prefix
        history.append(msg)
        w0 = _wchar()
        naive.append("bench", msg)
        w1 = _wchar()
        res.text_bytes += len(msg["content"].encode("utf-8"))
        body, _ = canonicalize(msg)
        res.canonical_bytes += len(body)
        h = _core.digest(body)
        bare_prefix = _core.chain(bare_prefix, h)
        t0 = pc()
        bare.append([(h, body, bare_prefix)])
        t1 = pc()
        w2 = _wchar()
        t2_0 = pc()
        s.append(msg)
        t2 = pc()
        w3 = _wchar()
        written["naive"] += w1 - w0
        written["bare"] += w2 - w1
        written["srt"] += w3 - w2
        if timed:
            t_append["bare"].append(t1 - t0)
            t_append["srt"].append(t2 - t2_0)

    do_append(system, False)
    body = b""
    for i, (question, reply) in enumerate(pairs):
        timed = i >= turns - tail
        before = rt.serialized
        do_append(question, timed)
        # Build only (no send): on even turns the previous body was dropped, so srt can
        # grow it in place; on odd turns it is still held, and srt must build into
        # fresh memory. Session.send's own cost is the send workload's headline.
        held = body if i % 2 == 1 else None
        body = b""
        t0 = pc()
        body = s.request("openai.chat", model=MODEL, cache=False)
        t1 = pc()
        del held
        nb = naive.build("bench")
        t2 = pc()
        db = _dumps(history)
        t3 = pc()
        if orjson is not None:
            ob = orjson.dumps({"model": MODEL, "messages": history})
            t3o = pc()
        if correctness or i == turns - 1:
            if not (body == nb == db):
                raise AssertionError(f"turn {i + 1}: srt's body differs from the reference")
            if orjson is not None and json.loads(ob) != json.loads(body):
                raise AssertionError(f"turn {i + 1}: orjson's body differs from the reference")
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
            del joined
            t_build["join"].append(t5 - t4)
            t_build.setdefault("srt_held" if i % 2 == 1 else "srt", []).append(t1 - t0)
            t_build["naive"].append(t2 - t1)
            t_build["dumps"].append(t3 - t2)
            if orjson is not None:
                t_build["orjson"].append(t3o - t3)
        for k, v in (("srt", t1 - t0), ("naive", t2 - t1), ("dumps", t3 - t2)):
            res.series.setdefault(k, []).append(v / 1000.0)
        if orjson is not None:
            res.series.setdefault("orjson", []).append((t3o - t3) / 1000.0)
        do_append(reply, timed)
        if (i + 1) % every == 0 or i == turns - 1:
            res.size_series.append((res.text_bytes, _logical_size(reader)))
        ser_srt.append(rt.serialized - before)
        if i + 1 in checkpoints:
            c_srt, c_naive = _cold(srt_path, naive, 3)
            res.cold_by_n[str(i + 1)] = {"srt": c_srt, "naive": c_naive}
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

    srt_cold, naive_cold = _cold(srt_path, naive, 5)
    # A stateless client has nothing to be cold about: its cold build is its hot one.
    res.cold_us = {"srt": srt_cold, "naive": naive_cold, "dumps": res.build_us["dumps"]["p50"]}
    res.cold_by_n[str(turns)] = {"srt": srt_cold, "naive": naive_cold}
    res.by_n = by_n(res.series, res.cold_by_n)
    n_msgs = len(history)
    res.written_per_message = {k: v / n_msgs for k, v in written.items()}
    res.writes = bytes_written(workdir, history)
    res.durable = durable_appends(workdir, history[: 2 * min(turns, 100) + 1])
    res.growth = growth(res.size_series)

    reader.close()
    rt.close()
    naive.conn.close()
    bare.conn.close()
    res.db_bytes = _file_size(srt_path)
    return res
