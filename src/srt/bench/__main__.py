"""``python -m srt.bench``: measure srt against naive baselines in the same run.

Method: docs/bench.md. Every ratio compares figures taken in this process, on
the same messages; nothing is compared with numbers from another run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from typing import Any

import apsw
import numpy

from .._version import __version__
from .chat import ChatResult, run_chat
from .formats import run_formats

TARGETS = {
    "build_vs_naive": (">=", 30.0),
    "append_vs_bare": ("<=", 2.0),
    "db_vs_text": ("<=", 1.3),
}


def environment() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "srt": __version__,
        "apsw": apsw.apsw_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": f"{cpu} ({os.cpu_count()} cores)",
    }


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty() and (done % 10 == 0 or done == total):
        width = 30
        filled = width * done // total
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} turns")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def report(env: dict[str, str], res: ChatResult) -> str:
    r = res.ratios()
    b, a = res.build_us, res.append_us
    lines = ["srt bench (chat workload)"]
    lines += [f"  {k:<9} {v}" for k, v in env.items()]
    lines.append(
        f"  workload  {res.turns} turns, 4 KB system prompt, user 200-800 chars, "
        f"assistant 500-3000 chars; last {res.tail} turns timed; final body "
        f"{res.body_bytes / 1e6:.2f} MB"
    )
    lines.append("")
    lines.append(f"next-request build at N={res.turns} (us)   p50        p99     srt is")
    for k, label in (
        ("srt", "srt (hot)"),
        ("naive", "naive: load + json.dumps"),
        ("dumps", "stateless json.dumps"),
        ("join", "b''.join of srt's bytes"),
    ):
        ratio = "" if k == "srt" else f"{b[k]['p50'] / b['srt']['p50']:8.2f}x faster"
        if k == "join":
            ratio = f"{b['srt']['p50'] / b['join']['p50']:8.2f}x the join"
        lines.append(f"  {label:<28}{b[k]['p50']:>10.1f} {b[k]['p99']:>10.1f} {ratio}")
    lines.append(
        f"  cold (new Runtime + open + build) srt {res.cold_us['srt']:.0f} us, "
        f"naive {res.cold_us['naive']:.0f} us: {r['cold_vs_naive']:.2f}x faster"
    )
    lines.append("")
    sp = res.serialized_per_turn
    lines.append(
        f"messages serialized per turn   srt {sp['srt']:.1f}   naive {sp['naive']:.0f}   "
        "(srt: only the new user + assistant message)"
    )
    lines.append(
        f"append one message (us)        srt p50 {a['srt']['p50']:.1f} p99 "
        f"{a['srt']['p99']:.1f}   bare APSW p50 {a['bare']['p50']:.1f} p99 "
        f"{a['bare']['p99']:.1f}   ratio {r['append_vs_bare']:.2f}x"
    )
    lines.append(
        f"database size                  {res.db_bytes / 1e6:.2f} MB for "
        f"{res.text_bytes / 1e6:.2f} MB of message text = {r['db_vs_text']:.2f}x "
        f"(canonical JSON {res.canonical_bytes / 1e6:.2f} MB)"
    )
    lines.append(f"bodies checked against json.dumps: {res.checked_bodies}")
    lines.append("")
    lines.append("targets")
    for key, (op, bound) in TARGETS.items():
        ok = r[key] >= bound if op == ">=" else r[key] <= bound
        lines.append(f"  {key:<16} {r[key]:8.2f}  {op} {bound:<5} {'ok' if ok else 'MISSED'}")
    return "\n".join(lines)


def report_formats(res: dict[str, Any]) -> str:
    lines = ["", "next-request build per wire format at N=1000 (hot, median us; same body)"]
    for name, r in res.items():
        ok = "ok" if r["ratio"] >= 30 else "MISSED"
        lines.append(
            f"  {name:<20} srt {r['srt_us']:8.1f}   json.dumps {r['dumps_us']:9.1f}   "
            f"{r['ratio']:6.1f}x  (target >= 30x: {ok})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m srt.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the 1,000-turn chat workload only")
    p.add_argument("--turns", type=int, default=1000, help="turns in the chat workload")
    p.add_argument("--seed", type=int, default=1, help="workload seed")
    p.add_argument("--tail", type=int, default=50, help="timed turns at the end of the run")
    p.add_argument(
        "--correctness",
        action="store_true",
        help="check every assembled body against json.dumps before reporting",
    )
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--dir", help="work directory for the database files (default: a temp dir)")
    args = p.parse_args(argv)
    if args.turns < 1 or not 1 <= args.tail <= args.turns:
        p.error("need turns >= 1 and 1 <= tail <= turns")

    env = environment()
    with tempfile.TemporaryDirectory(prefix="srt-bench-", dir=args.dir) as work:
        res = run_chat(
            work,
            args.turns,
            seed=args.seed,
            tail=args.tail,
            correctness=args.correctness,
            progress=_progress,
        )
        fmts = run_formats(work, args.turns, seed=args.seed)
    print(report(env, res))
    print(report_formats(fmts))
    if args.json:
        out: dict[str, Any] = {
            "environment": env,
            "chat": res.__dict__,
            "ratios": res.ratios(),
            "formats": fmts,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
