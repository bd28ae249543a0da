"""The next request's build right after other work, at 1,000 turns, in one process.

    python bench/build_after_work.py                  # 101 turns, medians
    python bench/build_after_work.py --json out.json

In the ``chat`` workload and in a real app a build does not follow the last one: the
baselines' ``json.dumps`` of the history (or the app's own work) ran in between and left
the caches to their data. On the ``chat`` workload's 1,000-turn session (2,001 messages,
2.6 MB) each turn appends a user message and its reply, then, on alternate turns:

* ``after work``: a ``json.dumps`` of the whole history as a list of dicts (what the
  stateless baseline does), then the timed build (the previous body released);
* ``hot``: a build first, then the timed build, which has nothing new to add.

A/B two trees by running the script alternately with each on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import benchio

import srt
from srt.bench import workloads
from srt.bench.naive import MODEL


def run(workdir: str, turns: int) -> dict[str, Any]:
    rt = srt.Runtime(os.path.join(workdir, "after.db"))
    s = rt.session("after")
    system, pairs = workloads.chat(1000 + turns, seed=1)
    rest = list(pairs)
    history: list[dict[str, Any]] = [system]
    for q, a in rest[:1000]:
        history += (q, a)
    s.append(*history)
    body = s.request("openai.chat", model=MODEL)
    times: dict[str, list[float]] = {"after work": [], "hot": []}
    for i, (q, a) in enumerate(rest[1000:]):
        s.append(q, a)
        history += (q, a)
        body = b""
        if i % 2:
            json.dumps(history)
        else:
            body = s.request("openai.chat", model=MODEL)
            body = b""
        t0 = time.perf_counter_ns()
        body = s.request("openai.chat", model=MODEL)
        times["after work" if i % 2 else "hot"].append((time.perf_counter_ns() - t0) / 1000.0)
    del body
    rt.close()
    return {
        "turns": turns,
        "load": list(os.getloadavg()),
        "p50_us": {k: statistics.median(v) for k, v in times.items()},
    }


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--turns", type=int, default=101)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        out = run(d, args.turns)
    print(f"next-request build at 1,000 turns, p50 us (load {out['load'][0]:.2f})")
    for name, us in out["p50_us"].items():
        print(f"  {name:12} {us:9.1f}")
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
