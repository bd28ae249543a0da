"""Where the memory a live session keeps goes: bytes per session by the line that
allocated them (tracemalloc), once its chain is loaded and once its request is built.

    python bench/session_memory.py                      # 2,000 sessions x 20 turns
    python bench/session_memory.py --sessions 500 --format anthropic.messages --json out.json

The ``many`` workload's conversations (``workloads.many``: a shared 4 KB system prompt,
20 turns each) are written to a new store; a new ``Runtime`` opens every session and
holds it. Snapshots are taken before the chains are loaded, after (``len(session)``),
and after each session's next request is built once in ``--format``; printed: the bytes
per session each step added, and the lines that allocated most of them. ``python -m
srt.bench --workload many`` measures the same states as RSS against an allowance; this
says which structure to look at.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import tracemalloc
from typing import Any

import benchio

from srt import Runtime
from srt.bench import workloads

MODELS = {"anthropic.messages": "claude-sonnet-4-5", "bedrock.converse": "anthropic.claude"}


def _step(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int, top: int
) -> dict[str, Any]:
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    lines = [
        {
            "where": f"{os.path.relpath(s.traceback[0].filename)}:{s.traceback[0].lineno}",
            "bytes_per_session": s.size_diff / n,
            "objects": s.count_diff,
        }
        for s in stats[:top]
    ]
    return {"bytes_per_session": total / n, "top": lines}


def run(workdir: str, sessions: int, turns: int, fmt: str, top: int = 12) -> dict[str, Any]:
    path = os.path.join(workdir, "memory.db")
    system, convs = workloads.many(sessions, turns, seed=1)
    with Runtime(path) as rt:
        for i, msgs in enumerate(convs):
            rt.session(f"s{i}").append(system, *msgs)
    model = MODELS.get(fmt, "gpt-4.1-mini")
    kw: dict[str, Any] = {"max_tokens": 1024} if fmt.startswith(("anthropic", "bedrock")) else {}
    with Runtime(path) as rt:
        live = [rt.session(f"s{i}") for i in range(sessions)]
        gc.collect()
        tracemalloc.start(1)
        try:
            opened = tracemalloc.take_snapshot()
            for s in live:
                len(s)
            gc.collect()
            loaded = tracemalloc.take_snapshot()
            for s in live:
                s.request(fmt, model=model, **kw)
            gc.collect()
            built = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        return {
            "sessions": sessions,
            "turns": turns,
            "format": fmt,
            "loaded": _step(opened, loaded, sessions, top),
            "built": _step(loaded, built, sessions, top),
        }


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--sessions", type=int, default=2000, help="sessions (default 2000)")
    ap.add_argument("--turns", type=int, default=20, help="turns a session (default 20)")
    ap.add_argument("--format", default="openai.chat", help="the format built (openai.chat)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        out = run(d, args.sessions, args.turns, args.format)
    for step in ("loaded", "built"):
        r = out[step]
        print(f"{step}: {r['bytes_per_session']:,.0f} B a session")
        for line in r["top"]:
            print(f"  {line['bytes_per_session']:8,.0f} B  {line['objects']:7,d}  {line['where']}")
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
