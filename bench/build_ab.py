"""The next-request build at 1,000 turns, hot and with the previous body held, beside a
``b",".join`` of the same frozen bytes: many samples, for comparing two trees.

    python bench/build_ab.py                 # one run: medians of 300 builds of each kind
    python bench/build_ab.py --reps 1000 --json out.json

``python -m srt.bench`` times the held build on every fourth of its last 50 turns only
(12 samples), too few to tell two trees apart within 5%. Run this in each tree's
environment alternately (issue 15's before/after table in docs/bench.md came from three
such pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

import benchio  # (bench/ is the script's folder)

import srt

MODEL = "gpt-4.1-mini"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    rnd = random.Random(1)
    with tempfile.TemporaryDirectory() as d:
        rt = srt.Runtime(os.path.join(d, "ab.db"))
        s = rt.session("ab")
        s.append({"role": "system", "content": "S" * 4096})
        for i in range(args.turns):
            s.append({"role": "user", "content": f"u{i} " + "q" * rnd.randint(200, 800)})
            s.append({"role": "assistant", "content": f"a{i} " + "r" * rnd.randint(500, 3000)})
        body = s.request("openai.chat", model=MODEL, cache=False)
        times: dict[str, list[float]] = {"held": [], "hot": [], "join": []}
        for _ in range(args.reps):
            held = body
            t0 = time.perf_counter()
            body = s.request("openai.chat", model=MODEL, cache=False)
            times["held"].append(time.perf_counter() - t0)
            del held
            body = b""
            t0 = time.perf_counter()
            body = s.request("openai.chat", model=MODEL, cache=False)
            times["hot"].append(time.perf_counter() - t0)
            frozen = list(s.messages_bytes())
            t0 = time.perf_counter()
            joined = b",".join(frozen)
            times["join"].append(time.perf_counter() - t0)
            del joined
        rt.close()
    out: dict[str, object] = {
        f"{k}_p50_us": round(statistics.median(v) * 1e6, 1) for k, v in times.items()
    }
    out.update(body_bytes=len(body), turns=args.turns, reps=args.reps, load=os.getloadavg())
    text = json.dumps(out)
    print(text)
    if args.json:
        benchio.write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
