"""One write transaction of ``SQLiteStore.append``, as the send loop runs it, in one process.

    python bench/store_commit.py                      # 2,000 hot commits, 150 after a wait
    python bench/store_commit.py --durability full --json out.json

A send-loop turn commits twice: the user message alone (``Session.append``), then the
reply with its ledger row (``Call.persist``). This times ``SQLiteStore.append`` for both
kinds, on the ``chat`` workload's messages, with nothing of the session layer around it
(the items and their prefix hashes are made before the clock starts):

* ``hot``: the commits back to back;
* ``after wait``: each commit after ``--wait`` ms of sleep (the send loop's wait for the
  server, which leaves the caches to other work), on the same file.

Beside each it times the naive store's insert (one row per message, one transaction,
``bench.naive``) at the same ``synchronous`` setting, interleaved, and counts the WAL
frames each commit writes (SQLite's WAL hook: the WAL's size in frames after a commit,
less its size before; a commit that restarts the WAL is left out of the count). Every
timed connection carries the same hook, so each pays its few microseconds.

``--warm N`` first makes N commits to every file, untimed: from new files each commit grows
its store's WAL (and a sync that records a new file size costs more), until a checkpoint
lets the WAL restart (srt's after about 180 commits, the naive store's after about 590);
an app's store is past that point nearly all its life.

``--bare`` also times, on a third file, the statements of srt's append issued straight
from this script (BEGIN IMMEDIATE, the lookup, the heap write, the node, the session's
CAS, the ledger row, COMMIT): what ``SQLiteStore.append`` adds over its own statements.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Any

import apsw
import benchio

from srt import _core
from srt.bench import workloads
from srt.bench.naive import NaiveStore
from srt.message import canonicalize
from srt.store.base import CALL_FIELDS, CallRecord, NewNode
from srt.store.sqlite import SQLiteStore, heap
from srt.store.sqlite.statements import INSERT_CALL

_WAIT_COMMITS = 150

# The statements of ``writes.append`` (its common case), for ``--bare``.
_FIND = (
    "SELECT id, depth, prefix, at, len, status FROM nodes WHERE hash = ?1 AND parent IS ?2 "
    "UNION ALL SELECT NULL, NULL, NULL, at, len, NULL FROM "
    "(SELECT at, len FROM nodes WHERE hash = ?1 LIMIT 1) LIMIT 1"
)
_NODE = (
    "INSERT INTO nodes(parent, depth, hash, prefix, at, len, meta, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_HEAD = "UPDATE sessions SET head = ?, head_prefix = ?, updated = ? WHERE id = ? AND head IS ?"


def _call(session: int, n: int) -> CallRecord:
    return CallRecord(
        at=time.time(),
        session=session,
        session_name="bench",
        node=None,
        provider="openai",
        model="gpt-4o-mini",
        format="openai.chat",
        body_hash=os.urandom(16),
        body_bytes=1300 * n,
        messages=n,
        input_tokens=330 * n,
        cache_read_tokens=320 * n,
        output_tokens=310,
        predicted_cached_tokens=320 * n,
        explain="prefix cache: all but the new messages",
        latency_ms=40.3,
        ttft_ms=12.1,
        params='{"model":"gpt-4o-mini"}',
    )


#: SQLite's own auto-checkpoint threshold (pages), which a WAL hook replaces.
_AUTOCHECKPOINT = 1000


class _Frames:
    """WAL frames per commit, from SQLite's WAL hook on one connection. A WAL hook takes
    the place of SQLite's auto-checkpoint, so this one checkpoints as that would (a
    passive checkpoint once the WAL holds 1,000 frames, but after the timed commit: apsw
    lets no call into the connection from its hook): without it every WAL would grow for
    the whole run, and every commit's sync would record a new file size."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn
        self.last = 0
        self.due = False
        self.per_commit: list[int] = []
        conn.set_wal_hook(self.hook)

    def hook(self, _conn: Any, _db: str, pages: int) -> int:
        if pages > self.last:  # (a restarted WAL starts again from 0: not counted)
            self.per_commit.append(pages - self.last)
        self.last = pages
        self.due = pages >= _AUTOCHECKPOINT
        return 0

    def settle(self) -> None:
        """The checkpoint SQLite would have made in the last commit, if one was due."""
        if self.due:
            self.due = False
            self.conn.wal_checkpoint()


class _Bare:
    """The statements of srt's append on a file of its own, without ``SQLiteStore``."""

    def __init__(self, path: str, durability: str) -> None:
        store = SQLiteStore(path, durability=durability)
        self.sid = store.create_session("bare", None, exist_ok=False).id
        self.conn = store.db.connection()
        self.row = heap.row_bytes(int(self.conn.execute("PRAGMA page_size").get))
        self.head: int | None = None
        self.end: heap.End | None = None
        self.store = store

    def append(self, item: NewNode, depth: int, call: CallRecord | None) -> None:
        ex = self.conn.execute
        ex("BEGIN IMMEDIATE")
        ex(_FIND, (item.hash, self.head)).fetchone()
        if self.end is None:
            self.end = heap.end(self.conn)
        at, self.end = heap.write(self.conn, item.body, self.row, self.end)
        ex(_NODE, (self.head, depth, item.hash, item.prefix, at, len(item.body), item.meta, None))
        nid = self.conn.last_insert_rowid()
        ex(_HEAD, (nid, item.prefix, time.time(), self.sid, self.head))
        if call is not None:
            row = [getattr(call, f) for f in CALL_FIELDS]
            row[CALL_FIELDS.index("node")] = nid
            ex(INSERT_CALL, row)
        ex("COMMIT")
        self.head = nid


def run(
    workdir: str,
    turns: int,
    durability: str,
    wait_ms: float,
    bare: bool = False,
    warm: int = 0,
) -> dict[str, Any]:
    store = SQLiteStore(os.path.join(workdir, "commit.db"), durability=durability)
    plain = _Bare(os.path.join(workdir, "bare.db"), durability) if bare else None
    naive = NaiveStore(os.path.join(workdir, "naive.db"))
    naive.conn.execute(f"PRAGMA synchronous={durability.upper()}")
    frames = _Frames(store.db.connection())
    hooked = [frames, _Frames(naive.conn)]
    if plain is not None:
        hooked.append(_Frames(plain.conn))
    row = store.create_session("bench", None, exist_ok=False)
    system, pairs = workloads.chat(turns + _WAIT_COMMITS + (warm + 1) // 2, seed=1)
    messages = [system] + [m for q, a in pairs for m in (q, a)]
    hashing = store.hashing
    prefix = _core.ROOT
    head: int | None = None
    depth = 0
    pc = time.perf_counter_ns
    times: dict[str, list[int]] = {}
    counts: dict[str, list[int]] = {}

    def commit(m: dict[str, Any], label: str, wait: float) -> None:
        nonlocal head, depth, prefix
        body, meta = canonicalize(m)
        h = hashing.digest(body)
        prefix = hashing.chain(prefix, h)
        items = [NewNode(h, body, prefix, meta)]
        call = _call(row.id, depth + 1) if m["role"] == "assistant" else None
        kind = "reply" if call is not None else "user"
        before = len(frames.per_commit)
        ids: list[int] = []

        def srt() -> None:
            ids.extend(store.append(row.id, head, head, depth, items, call=call))

        runs: list[tuple[str, Any]] = [(f"{label} {kind}", srt)]
        runs.append((f"{label} naive", lambda: naive.append("bench", m)))
        if plain is not None:
            runs.append((f"{label} bare {kind}", lambda: plain.append(items[0], depth + 1, call)))
        # Each store takes each place in turn: the first after the message's preparation
        # meets colder caches than the ones after it.
        k = depth % len(runs)
        for name, fn in runs[k:] + runs[:k]:
            if wait:
                time.sleep(wait)
            t0 = pc()
            fn()
            times.setdefault(name, []).append(pc() - t0)
            for f in hooked:
                f.settle()
        head, depth = ids[-1], depth + 1
        if len(frames.per_commit) > before:
            counts.setdefault(kind, []).append(frames.per_commit[-1])

    commit(messages[0], "first", 0)
    for m in messages[1 : 1 + warm]:
        commit(m, "first", 0)  # (untimed, as the first: left out of the figures)
    hot = 1 + warm + 2 * turns
    for m in messages[1 + warm : hot]:
        commit(m, "hot", 0)
    for m in messages[hot : hot + 2 * _WAIT_COMMITS]:
        commit(m, "after wait", wait_ms / 1000)
    store.close()
    naive.conn.close()
    if plain is not None:
        plain.store.close()
    out: dict[str, Any] = {
        "p50_us": {k: statistics.median(v) / 1000 for k, v in sorted(times.items()) if k[0] != "f"},
        "wal_frames_per_commit": {k: statistics.mean(v) for k, v in counts.items()},
    }
    p = out["p50_us"]
    out["vs_naive"] = {
        f"{label} {kind}": p[f"{label} {kind}"] / p[f"{label} naive"]
        for label in ("hot", "after wait")
        for kind in ("user", "reply", "bare user", "bare reply")
        if f"{label} {kind}" in p
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--turns", type=int, default=1000, help="hot turns (two commits each)")
    ap.add_argument("--durability", choices=("normal", "full"), default="normal")
    ap.add_argument("--wait", type=float, default=40.0, help="ms before each waited commit")
    ap.add_argument("--bare", action="store_true", help="also time the bare statements")
    ap.add_argument("--warm", type=int, default=0, help="untimed commits first (default 0)")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        out = run(d, args.turns, args.durability, args.wait, args.bare, args.warm)
    out.update(
        durability=args.durability, turns=args.turns, wait_ms=args.wait, warm=args.warm, load=load
    )
    print(f"SQLiteStore.append, synchronous={args.durability.upper()} (load {load:.2f})")
    for k, v in out["p50_us"].items():
        ratio = out["vs_naive"].get(k)
        print(f"  {k:<22} p50 {v:8.1f} us" + (f"   {ratio:5.2f}x naive" if ratio else ""))
    for k, v in out["wal_frames_per_commit"].items():
        print(f"  WAL frames per {k} commit: {v:.2f}")
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
