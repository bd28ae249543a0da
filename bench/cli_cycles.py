"""The CLI's pattern on one SQLite file: open a store, append one turn, close; N times.

    python bench/cli_cycles.py build FILE --cycles 200        # build FILE, count its writes
    python bench/cli_cycles.py read A.db B.db --reps 41       # cold chain reads, alternating
    python bench/cli_cycles.py build FILE --cycles 1000 --json out.json

``build`` runs N cycles (``srt --db FILE append ...`` does the same: a new
``Runtime`` on the file, one ``append`` of a user message of about 300 B and an assistant
reply of about 1.2 KB, ``close``) through a VFS that counts the bytes SQLite writes
(``tests/rel_support/faultvfs.py``: WAL frames, checkpoint copies, the ``-wal`` header;
not ``-shm``, which is mapped), and reports the bytes written per cycle (mean, median,
max), then the heap as the file keeps it: rows, rows shorter than a full row, heap pages,
the file's pages in use and free (after a checkpoint).

``read`` times a cold chain read on each file (a new ``Runtime``, then ``messages()`` of
the session, closed), the files taken in turn, ``--reps`` rounds; it prints each file's
median and its ratio to the first file's, all in one process. Files built by two trees
(``PYTHONPATH=/other/tree/src python bench/cli_cycles.py build ...``) compare their heap
layouts on the same reading code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import apsw
import benchio  # (bench/ is the script's folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import srt
from rel_support.faultvfs import FaultVFS
from srt.store.sqlite import SQLiteStore, heap

SESSION = "s"


def turn(i: int) -> tuple[dict[str, str], dict[str, str]]:
    return (
        {"role": "user", "content": f"question {i} " + "q" * 300},
        {"role": "assistant", "content": f"answer {i} " + "a" * 1200},
    )


def layout(path: str) -> dict[str, Any]:
    """The heap's rows and the file's pages, the WAL checkpointed first."""
    conn = apsw.Connection(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        page = int(conn.execute("PRAGMA page_size").get)
        full = heap.row_bytes(page)
        sizes = [int(n) for (n,) in conn.execute("SELECT length(data) FROM heap ORDER BY id")]
        count = int(conn.execute("PRAGMA page_count").get)
        free = int(conn.execute("PRAGMA freelist_count").get)
        heap_pages = int(conn.execute("SELECT count(*) FROM dbstat WHERE name = 'heap'").get)
        last = conn.execute(
            "SELECT length(data), instr(data, x'00') FROM heap ORDER BY id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return {
        "heap_rows": len(sizes),
        "short_rows": sum(1 for s in sizes[:-1] if s < full),
        "row_bytes": full,
        "heap_pages": heap_pages,
        "pages_in_use": count - free,
        "free_pages": free,
        "file_bytes": os.path.getsize(path),
        "last_row": None if last is None else {"size": last[0], "first_zero": last[1]},
    }


def build(path: str, cycles: int) -> dict[str, Any]:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    vfs = FaultVFS(f"srt-cli-cycles-{os.getpid()}")
    per: list[int] = []
    try:
        for i in range(cycles):
            vfs.reset()
            with srt.Runtime(store=SQLiteStore(path, vfs=vfs.name)) as rt:
                rt.session(SESSION).append(*turn(i))
            per.append(vfs.counters.bytes_written)
    finally:
        vfs.unregister()
    return {
        "srt": srt.__file__,
        "cycles": cycles,
        "bytes_written_per_cycle": {
            "mean": sum(per) / len(per),
            "median": statistics.median(per),
            "max": max(per),
            "last_100_mean": sum(per[-100:]) / len(per[-100:]),
        },
        **layout(path),
    }


def read(paths: list[str], reps: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {p: [] for p in paths}
    counts: dict[str, int] = {}
    for _ in range(reps):
        for p in paths:
            t = time.perf_counter()
            with srt.Runtime(p) as rt:
                messages = rt.session(SESSION, create=False).messages()
            times[p].append(time.perf_counter() - t)
            counts[p] = len(messages)
    base = statistics.median(times[paths[0]])
    return {
        "srt": srt.__file__,
        "reps": reps,
        "files": [
            {
                "path": p,
                "messages": counts[p],
                "median_ms": statistics.median(times[p]) * 1e3,
                "min_ms": min(times[p]) * 1e3,
                "ratio_to_first": statistics.median(times[p]) / base,
                **layout(p),
            }
            for p in paths
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="run the cycles on a new file and count their writes")
    b.add_argument("path")
    b.add_argument("--cycles", type=int, default=200)
    r = sub.add_parser("read", help="time cold chain reads of files, alternating")
    r.add_argument("paths", nargs="+")
    r.add_argument("--reps", type=int, default=41)
    for p in (b, r):
        p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    out = build(args.path, args.cycles) if args.cmd == "build" else read(args.paths, args.reps)
    print(json.dumps(out, indent=1))
    if args.json:
        benchio.write_text(args.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
