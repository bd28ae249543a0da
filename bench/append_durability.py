"""An append at each durability, srt against the naive store, in one process: where the
``synchronous=FULL`` ratio comes from.

    python bench/append_durability.py                  # 3 runs of 2,001 messages each
    python bench/append_durability.py --runs 5 --json out.json
    python bench/append_durability.py --turns 850 --warm 1500   # 200 timed, both WALs wrapped

Each run appends the chat workload's messages (a 4 KB system prompt, then 1,000 turns)
one by one to srt and, interleaved, to the naive store (one INSERT per message), first
with ``synchronous=NORMAL`` and then with ``FULL``, each on new files
(``srt.bench.writes.durable_appends``, which the chat workload times at ``FULL``). A ``FULL`` append
is the ``NORMAL`` one plus the WAL's fsync, so the ratio the chat workload reports
(``append_full_vs_naive``) is ``(srt CPU + srt sync) / (naive CPU + naive sync)``: it
tends to 1 when an fsync is slow (flash, a busy disk) and to the CPU ratio when it is
fast. The rows give both parts, so the bound can be read off the figures; a second table
splits each append where its commit begins (a second pass, ``durable_appends(parts=True)``:
the work before the commit, and the commit with its fsync and what follows it), which shows
whether a gap at ``FULL`` is the fsync or the CPU around it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

import benchio  # (bench/ is the script's folder)

from srt.bench import workloads
from srt.bench.writes import durable_appends


def one_run(workdir: str, messages: list[dict[str, Any]], warm: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for durability in ("normal", "full"):
        got = durable_appends(workdir, messages, durability, warm=warm)
        # The split comes from a second pass on new files, so the hooks it needs stay out
        # of the figures above.
        split = durable_appends(workdir, messages, durability, parts=True, warm=warm)
        split = split["parts_p50_us"]
        r = got["append_us"]
        srt_us, naive_us = r["srt"]["p50"], r["naive"]["p50"]
        out[durability] = {
            "srt_us": srt_us,
            "naive_us": naive_us,
            "ratio": srt_us / naive_us,
            "parts_p50_us": split,
        }
    n, f = out["normal"], out["full"]
    out["sync_us"] = {"srt": f["srt_us"] - n["srt_us"], "naive": f["naive_us"] - n["naive_us"]}
    # The FULL ratio srt would have if it wrote exactly as little as the naive store (the
    # same sync cost), its CPU unchanged: a floor for the ratio on this machine.
    out["full_ratio_if_same_sync"] = (n["srt_us"] + out["sync_us"]["naive"]) / f["naive_us"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    ap.add_argument("--turns", type=int, default=1000, help="turns per run (default 1000)")
    ap.add_argument(
        "--warm",
        type=int,
        default=0,
        help="append this many messages first, untimed (default 0: new files); past about "
        "600 both stores' WALs have restarted once (their steady state)",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    system, pairs = workloads.chat(args.turns, seed=1)
    messages = [system] + [m for q, a in pairs for m in (q, a)]
    runs = []
    print(
        f"{len(messages) - args.warm} appends timed a run after {args.warm} untimed; p50 in us "
        f"(load {os.getloadavg()[0]:.1f})\n"
        "run  normal srt/naive (x)        full srt/naive (x)          sync srt/naive"
        "   full if same sync"
    )
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            r = one_run(d, messages, args.warm)
        runs.append(r)
        n, f, y = r["normal"], r["full"], r["sync_us"]
        print(
            f"{i + 1:<4} {n['srt_us']:7.0f} {n['naive_us']:7.0f} {n['ratio']:5.2f}x"
            f"     {f['srt_us']:7.0f} {f['naive_us']:7.0f} {f['ratio']:5.2f}x"
            f"     {y['srt']:7.0f} {y['naive']:7.0f}   {r['full_ratio_if_same_sync']:5.2f}x"
        )
    print(
        "\neach append split where its commit begins (p50 us; SQLite's commit hook):\n"
        "run  durability  srt: before  commit+after   naive: before  commit+after"
    )
    for i, r in enumerate(runs):
        for durability in ("normal", "full"):
            p = r[durability]["parts_p50_us"]
            print(
                f"{i + 1:<4} {durability:<10}  {p['srt_before']:11.0f} {p['srt_commit']:13.0f}"
                f"   {p['naive_before']:13.0f} {p['naive_commit']:13.0f}"
            )
    if args.json:
        benchio.dump(args.json, {"runs": runs, "load": os.getloadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
