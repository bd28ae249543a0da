"""A build with nothing, or little, new since the last, at 1,000 turns, in one process.

    python bench/rebuild.py                  # 21 samples of each, medians
    python bench/rebuild.py --json out.json

On the chat workload's 1,000-turn session (2,001 messages, 2.6 MB), after one build:

* ``again``: ``Session.request`` with the same arguments (a retry, a second look), the
  previous body released, and the same with it still held;
* ``again, marks``: the same in ``anthropic.messages``, whose cache marks make the
  fragment list anew each build;
* ``same length``: a build whose tail differs in bytes but not in length
  (``max_tokens`` 100 and 101 in turn), the previous body released;
* ``next turn``: a user message appended, then a build (what a turn costs), for scale.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import benchio

import srt
from srt.bench import workloads
from srt.bench.naive import MODEL

CLAUDE = "claude-3-5-haiku-latest"


def run(workdir: str, samples: int) -> dict[str, Any]:
    rt = srt.Runtime(os.path.join(workdir, "rebuild.db"))
    s = rt.session("rebuild")
    system, pairs = workloads.chat(1000 + samples + 10, seed=1)
    turns = list(pairs)
    history: list[dict[str, Any]] = [system]
    for q, a in turns[:1000]:
        history += (q, a)
    s.append(*history)
    more = iter(turns[1000:])
    held: list[bytes] = []
    flip = [0]

    def again() -> None:
        s.request("openai.chat", model=MODEL)

    def again_held() -> None:
        held[:] = [s.request("openai.chat", model=MODEL)]

    def marks_held() -> None:
        held[:] = [s.request("anthropic.messages", model=CLAUDE)]

    def same_length() -> None:
        flip[0] ^= 1
        s.request("openai.chat", model=MODEL, max_tokens=100 + flip[0])

    def next_turn() -> None:
        s.append(next(more)[0])
        s.request("openai.chat", model=MODEL)

    cases: dict[str, Callable[[], None]] = {
        "again, released": again,
        "again, held": again_held,
        "again, marks, held": marks_held,
        "same length, released": same_length,
        "next turn (append + build)": next_turn,
    }
    out: dict[str, float] = {}
    for name, fn in cases.items():
        held.clear()
        fn()  # the build this one follows
        xs = []
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            fn()
            xs.append((time.perf_counter_ns() - t0) / 1000.0)
        out[name] = statistics.median(xs)
    rt.close()
    return {"samples": samples, "load": list(os.getloadavg()), "p50_us": out}


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--samples", type=int, default=21)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        out = run(d, args.samples)
    print(f"builds at 1,000 turns, p50 us (load {out['load'][0]:.2f})")
    for name, us in out["p50_us"].items():
        print(f"  {name:28} {us:9.1f}")
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
