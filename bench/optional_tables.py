"""What the tables a SQLite store makes only when first used cost: the objects table
(the first ``put_object``) and the search index (the first search).

    python bench/optional_tables.py            # the 1,000-turn chat workload
    python bench/optional_tables.py --turns 200 --json out.json

A store of the chat workload's messages is written, checkpointed and copied three
times: as it is, after one ``put_object``, after ``build_search_index()``. Printed for
each: the file's size (after a truncating checkpoint, so the WAL holds nothing), its
size over the text stored, and the bytes written to the file and its WAL per message
appended afterwards (``wchar`` of ``/proc/self/io``, so Linux only; 200 appends of the
workload's messages again, as new messages of another session).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any

import apsw
import benchio

from srt import Runtime
from srt.bench import workloads


def _wchar() -> int:
    with open("/proc/self/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def _checkpointed_size(path: str) -> int:
    """The file's size with everything in it and an empty WAL (a store cuts the heap's
    unused end as it closes, so the checkpoint comes after its close)."""
    conn = apsw.Connection(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return os.path.getsize(path)


def _bytes_per_append(path: str, messages: list[dict[str, Any]]) -> float:
    rt = Runtime(path)
    s = rt.session("appended")
    s.append(messages[0])
    before = _wchar()
    for m in messages[1:]:
        s.append(m)
    after = _wchar()
    rt.close()
    return (after - before) / (len(messages) - 1)


def run(workdir: str, turns: int) -> dict[str, Any]:
    system, pairs = workloads.chat(turns, seed=1)
    msgs = [system] + [m for p in pairs for m in p]
    text = sum(len(m["content"].encode("utf-8")) for m in msgs)
    plain = os.path.join(workdir, "plain.db")
    rt = Runtime(plain)
    rt.session("bench").append(*msgs)
    rt.close()
    base = _checkpointed_size(plain)
    # new text for the appends: the workload's messages with a marker, so none dedupes
    more = [{**m, "content": m["content"] + " (again)"} for m in msgs[1:202]]
    out: dict[str, Any] = {"turns": turns, "text_bytes": text}
    names = ("plain", "objects", "search_index")
    for name in names[1:]:  # every copy before any append
        path = os.path.join(workdir, f"{name}.db")
        shutil.copy(plain, path)
        rt = Runtime(path)
        if name == "objects":
            rt.store.put_object("bench", "scope", "key", b"{}")
        else:
            rt.store.build_search_index()
        rt.close()
    for name in names:
        path = os.path.join(workdir, f"{name}.db")
        size = _checkpointed_size(path)
        out[name] = {
            "file_bytes": size,
            "over_plain": size / base,
            "over_text": size / text,
            "written_per_append": _bytes_per_append(path, more),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--turns", type=int, default=1000, help="turns (default 1000)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        out = run(d, args.turns)
    print(f"{args.turns} turns, {out['text_bytes']:,} bytes of text")
    print("| file | size | over the file without | over the text | written per append |")
    print("|---|---:|---:|---:|---:|")
    for name in ("plain", "objects", "search_index"):
        r = out[name]
        print(
            f"| {name} | {r['file_bytes']:,} B | {r['over_plain']:.4f}x | "
            f"{r['over_text']:.2f}x | {r['written_per_append'] / 1024:.1f} KB |"
        )
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
