"""Bytes written per appended message, and appends at equal durability (``chat``).

* **Bytes written**: the same messages are appended one per transaction to a fresh srt
  file and to a fresh naive one-table store (``chat.NaiveStore``), each opened through
  a counting SQLite VFS (``CountingVFS``: the default VFS, with every ``xWrite`` counted
  by the file it goes to). Reported per appended message: bytes written to the WAL, to
  the database file (checkpoints), and all of them over the message text stored. A
  checkpoint at the end (as on close) is included.
* **Durability**: both stores with ``synchronous=FULL`` (srt through
  ``Runtime(durability="full")``): each message appended to srt, then inserted into the
  naive store, timed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import apsw

from ..runtime import Runtime
from ..store.sqlite import SQLiteStore
from ..store.sqlite.files import create_private_file
from .naive import NaiveStore

VFS_NAME = "srt-bench-count"


class CountingVFS(apsw.VFS):
    """The default VFS, counting the bytes written to each kind of file."""

    def __init__(self, name: str = VFS_NAME) -> None:
        self.written: dict[str, int] = {"wal": 0, "db": 0, "other": 0}
        super().__init__(name, "")

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:
        return _CountingFile(self, name, flags)

    def reset(self) -> None:
        for k in self.written:
            self.written[k] = 0


class _CountingFile(apsw.VFSFile):
    def __init__(self, vfs: CountingVFS, name: Any, flags: list[int]) -> None:
        filename = name.filename() if isinstance(name, apsw.URIFilename) else (name or "")
        if filename.endswith("-wal"):
            self._kind = "wal"
        elif flags[0] & apsw.SQLITE_OPEN_MAIN_DB:
            self._kind = "db"
        else:
            self._kind = "other"
        self._vfs = vfs
        super().__init__("", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        self._vfs.written[self._kind] += len(data)
        super().xWrite(data, offset)


def _per_message(written: dict[str, int], n: int, text: int) -> dict[str, float]:
    total = sum(written.values())
    return {
        "wal": written["wal"] / n,
        "db": written["db"] / n,
        "total": total / n,
        "over_text": total / text,
    }


def bytes_written(workdir: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Bytes written per appended message, srt and naive, through a counting VFS."""
    vfs = CountingVFS()
    text = sum(len(m["content"].encode("utf-8")) for m in messages)
    try:
        path = os.path.join(workdir, "writes-srt.db")
        rt = Runtime(store=SQLiteStore(path, vfs=VFS_NAME))
        s = rt.session("bench")
        vfs.reset()
        for m in messages:
            s.append(m)
        rt.store.checkpoint()
        rt.close()
        srt = dict(vfs.written)

        path = os.path.join(workdir, "writes-naive.db")
        create_private_file(path)
        conn = apsw.Connection(path, vfs=VFS_NAME)
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE msgs(id INTEGER PRIMARY KEY, session TEXT, role TEXT, content TEXT)"
        )
        vfs.reset()
        for m in messages:
            with conn:
                conn.execute(
                    "INSERT INTO msgs(session, role, content) VALUES (?, ?, ?)",
                    ("bench", m["role"], m["content"]),
                )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        conn.close()
        naive = dict(vfs.written)
    finally:
        vfs.unregister()
    n = len(messages)
    out: dict[str, Any] = {
        "messages": n,
        "text_bytes": text,
        "srt": _per_message(srt, n, text),
        "naive": _per_message(naive, n, text),
    }
    out["wal_vs_naive"] = out["srt"]["wal"] / out["naive"]["wal"]
    out["over_text_vs_naive"] = out["srt"]["over_text"] / out["naive"]["over_text"]
    return out


def durable_appends(
    workdir: str,
    messages: list[dict[str, Any]],
    durability: str = "full",
    *,
    parts: bool = False,
    warm: int = 0,
) -> dict[str, Any]:
    """Append p50/p99 (us) of srt and the naive store, interleaved, both at the same
    ``durability`` (``"full"``: ``synchronous=FULL``; ``"normal"``). The first ``warm``
    messages are appended to both first, untimed: from new files every append grows
    each store's WAL until its first checkpoint lets it restart (srt's after about 180
    appends, the naive store's after about 590), and an append that grows its file pays
    for the file's new size in the sync too, so the p50s of new files and of files past
    their first checkpoints differ (see bench/append_durability.py).

    ``parts``: also split each append at the moment its commit begins (SQLite's commit
    hook, on both stores' connections): ``before`` is the work up to the commit (srt:
    the session's and the store's CPU; naive: BEGIN and the INSERT), ``commit`` the
    commit (its WAL writes and, at ``full``, the fsync) and whatever the append does
    after it. The hooks cost each append about a microsecond.
    """
    name = f"{durability}-parts" if parts else durability
    rt = Runtime(os.path.join(workdir, f"{name}-srt.db"), durability=durability)
    s = rt.session("bench")
    naive = NaiveStore(os.path.join(workdir, f"{name}-naive.db"))
    naive.conn.execute(f"PRAGMA synchronous={durability.upper()}")
    pc = time.perf_counter_ns
    began = [0]

    def hook() -> bool:
        began[0] = pc()
        return False  # let the commit go on

    if parts:
        store = rt.store
        assert isinstance(store, SQLiteStore)
        store.db.connection().set_commit_hook(hook)
        naive.conn.set_commit_hook(hook)
    t: dict[str, list[int]] = {"srt": [], "naive": []}
    split: dict[str, list[int]] = {
        k: [] for k in ("srt_before", "srt_commit", "naive_before", "naive_commit")
    }
    for m in messages[:warm]:
        s.append(m)
        naive.append("bench", m)
    for m in messages[warm:]:
        t0 = pc()
        s.append(m)
        t1 = pc()
        srt_began = began[0]
        naive.append("bench", m)
        t2 = pc()
        t["srt"].append(t1 - t0)
        t["naive"].append(t2 - t1)
        if parts:
            split["srt_before"].append(srt_began - t0)
            split["srt_commit"].append(t1 - srt_began)
            split["naive_before"].append(began[0] - t1)
            split["naive_commit"].append(t2 - began[0])
    rt.close()
    naive.conn.close()

    def pct(xs: list[int], q: float) -> float:
        ys = sorted(xs)
        return ys[min(len(ys) - 1, int(q * len(ys)))] / 1000.0

    out: dict[str, Any] = {
        "messages": len(messages) - warm,
        "warm": warm,
        "append_us": {k: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for k, v in t.items()},
    }
    if parts:
        out["parts_p50_us"] = {k: pct(v, 0.5) for k, v in split.items()}
    out["full_vs_naive"] = out["append_us"]["srt"]["p50"] / out["append_us"]["naive"]["p50"]
    return out
