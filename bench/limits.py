"""How listing and opening sessions scale: 10,000 sessions x 100 turns (issue 13, item 11).

    python bench/limits.py                          # 10,000 x 100 in a temporary file
    python bench/limits.py --sessions 1000 --turns 10 --json out.json
    python bench/limits.py --db /tmp/big.db --keep  # build once, measure again later

Builds the store through srt's own API (one ``append`` of a shared system prompt and
100 turns per session, short texts of 40-400 bytes), then measures on the path users'
code takes:

* listing: ``rt.sessions()`` (what ``srt ls --json`` would need at least) and
  ``rt.store.overview()`` (what ``srt ls`` prints: counts per session, which walks
  every chain), each repeated;
* opening: ``rt.session(name, create=False)`` then ``messages()`` on a fresh handle,
  for sessions picked at random, in the runtime that built the store and in a fresh
  runtime (a new process's first look at each session);
* creating one more session under ``max_sessions`` (which counts the sessions inside
  the write transaction), against creating one without a limit.

Prints one JSON document (``--json`` writes it too), with ``uptime``'s load average:
the figures are wall-clock times on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import benchio  # (bench/ is the script's folder)

import srt

SYSTEM = {"role": "system", "content": "You are a helpful assistant for a garden shop. " * 8}


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q * len(s) + 0.5) - 1))]


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 3),
        "p99_ms": round(percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3),
    }


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def text(rng: random.Random, lo: int, hi: int) -> str:
    words = ("soil", "basil", "water", "shade", "compost", "seed", "pot", "sun", "leaf", "root")
    n = rng.randint(lo, hi) // 6 + 1
    return " ".join(rng.choice(words) for _ in range(n))


def build(path: str, sessions: int, turns: int) -> float:
    rng = random.Random(13)
    t0 = time.perf_counter()
    with srt.Runtime(path) as rt:
        for j in range(sessions):
            msgs: list[dict[str, str]] = [SYSTEM]
            for i in range(turns):
                msgs.append({"role": "user", "content": f"s{j} q{i} " + text(rng, 40, 200)})
                msgs.append({"role": "assistant", "content": f"s{j} a{i} " + text(rng, 80, 400)})
            rt.session(f"session-{j:06d}").append(*msgs)
            if j % 1000 == 999:
                print(f"  built {j + 1:,} sessions", file=sys.stderr, flush=True)
    return time.perf_counter() - t0


def measure(path: str, sessions: int, opens: int, listings: int) -> dict[str, Any]:
    rng = random.Random(7)
    names = [f"session-{j:06d}" for j in rng.sample(range(sessions), min(opens, sessions))]
    out: dict[str, Any] = {}
    with srt.Runtime(path) as rt:
        out["open_first_time"] = summary(
            [timed(lambda n=n: rt.session(n, create=False).messages(), 1)[0] for n in names]
        )
        out["open_again"] = summary(
            [timed(lambda n=n: rt.session(n, create=False).messages(), 1)[0] for n in names]
        )
        out["list_sessions"] = summary(timed(rt.sessions, listings))
        out["overview_srt_ls"] = summary(timed(lambda: rt.store.overview(), 3))
        count = len(rt.sessions())
        out["sessions_listed"] = count
    extra = path + ".create"
    benchio.copy_private(path, extra)
    with srt.Runtime(extra, max_sessions=count + 1000) as limited:
        out["create_with_max_sessions"] = summary(
            [timed(lambda i=i: limited.session(f"new-{i}"), 1)[0] for i in range(200)]
        )
    with srt.Runtime(extra) as unlimited:
        out["create_without_limit"] = summary(
            [timed(lambda i=i: unlimited.session(f"more-{i}"), 1)[0] for i in range(200)]
        )
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(extra + suffix):
            os.remove(extra + suffix)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--opens", type=int, default=1000, help="sessions opened (at random)")
    ap.add_argument("--listings", type=int, default=30, help="times rt.sessions() is timed")
    ap.add_argument("--db", help="the store (built unless it exists); default: a temp file")
    ap.add_argument("--keep", action="store_true", help="keep the store afterwards")
    ap.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = ap.parse_args(argv)
    tmp = None
    path = args.db
    if path is None:
        tmp = tempfile.mkdtemp(prefix="srt-limits-")
        path = os.path.join(tmp, "srt.db")
    doc: dict[str, Any] = {"sessions": args.sessions, "turns": args.turns}
    try:
        if not os.path.exists(path):
            doc["build_s"] = round(build(path, args.sessions, args.turns), 1)
        doc["file_bytes"] = os.path.getsize(path)
        doc.update(measure(path, args.sessions, args.opens, args.listings))
        doc["load_average"] = os.getloadavg()
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    text_out = json.dumps(doc, indent=1)
    print(text_out)
    if args.json:
        benchio.write_text(args.json, text_out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
