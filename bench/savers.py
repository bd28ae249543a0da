"""LangGraph's SqliteSaver beside srt's SrtSaver, one MessagesState conversation each.

    pip install '.[bench]'
    python bench/savers.py --turns 1000 --json bench/results/langgraph.json

The same one-node ``MessagesState`` graph (compiled once per saver) replays the seeded
``chat`` workload (``srt.bench.workloads.chat``): each turn invokes the graph with the
user's message, and the node answers with the workload's reply, so both savers store
the same conversation through LangGraph's own calls (3 checkpoints and 2 sets of writes
a turn). Reported per saver, in one process:

* **database**: the file (and its WAL) after the last turn;
* **write time per turn**: the time the saver was busy in ``put`` and ``put_writes``
  during the turn (overlapping calls from LangGraph's threads counted once), and the CPU
  time of its own work (see ``Busy``), medians per tenth of the run, and the log-log
  slope of those medians against the turn number from the second tenth on (flat in N:
  slope near 0; O(N): near 1);
* **write time replayed**: the ``put`` and ``put_writes`` calls LangGraph made for
  SrtSaver, recorded, then replayed into a new saver of each kind one after the other
  with nothing else running: the saver's own time per turn, wall clock (SrtSaver's calls
  made in the replaying thread itself, without the hop to the saver's thread);
* **read**: ``get_tuple`` at the start of each turn, the same way;
* **time travel**: per step of ``get_state_history`` (the first 50 steps at 10% and 100%
  of the run; for SrtSaver also the whole history), and resuming from the checkpoint of
  the middle turn.

Savers that are not installed are reported as such. Timings on a shared machine are
noisy: the load average is printed with the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import math
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import benchio  # (bench/ is the script's folder)

from srt._version import __version__
from srt.bench import workloads

WRITES = ("put", "put_writes")
READS = ("get_tuple",)


class Busy:
    """Wraps a saver's methods and records, per turn, when it was busy (wall clock, at
    the methods LangGraph calls) and the CPU time its own work took (``thread_time`` in
    the thread that does it: for SrtSaver the saver's thread, whose ``_put``,
    ``_put_writes`` and ``_get_tuple`` do the work of the public calls; for SqliteSaver
    LangGraph's threads). CPU time leaves out the waits for the GIL that LangGraph's own
    work between calls (O(N) a step: it copies and merges the message list) imposes on
    any thread that runs meanwhile, so it is what tells how the saver's cost grows."""

    def __init__(self, saver: Any, inner: dict[str, str] | None = None) -> None:
        self.lock = threading.Lock()
        self.spans: dict[str, list[tuple[float, float]]] = {"write": [], "read": []}
        self.cpu: dict[str, float] = {"write": 0.0, "read": 0.0}
        for names, kind in ((WRITES, "write"), (READS, "read")):
            for name in names:
                fn = getattr(saver, name)
                setattr(saver, name, self._wrap(fn, kind, cpu=inner is None))
        for name, kind in (inner or {}).items():
            setattr(saver, name, self._cpu(getattr(saver, name), kind))

    def _wrap(self, fn: Callable[..., Any], kind: str, *, cpu: bool) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, used = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                end, used = time.perf_counter(), time.thread_time() - used
                with self.lock:
                    self.spans[kind].append((start, end))
                    if cpu:
                        self.cpu[kind] += used

        return timed

    def _cpu(self, fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            used = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                used = time.thread_time() - used
                with self.lock:
                    self.cpu[kind] += used

        return timed

    def take(self, kind: str) -> tuple[float, float]:
        """(seconds busy, CPU seconds) in ``kind`` calls since the last take (overlapping
        calls counted once)."""
        with self.lock:
            spans, self.spans[kind] = sorted(self.spans[kind]), []
            cpu, self.cpu[kind] = self.cpu[kind], 0.0
        total, until = 0.0, -math.inf
        for start, end in spans:
            if end > until:
                total += end - max(start, until)
                until = end
        return total, cpu


class Recorder:
    """Keeps the ``put`` and ``put_writes`` calls LangGraph makes, per turn, to replay them
    later into any saver with nothing else running: the saver's own time per turn.

    LangGraph changes the dicts it passes after the call, so they are copied; message
    objects are shared (lists of them are copied), as LangGraph shares them itself."""

    def __init__(self, saver: Any) -> None:
        self.turns: list[list[tuple[str, tuple[Any, ...]]]] = [[]]
        self.active = True
        for name in WRITES:
            setattr(saver, name, self._wrap(getattr(saver, name), name))

    def _wrap(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def recorded(*args: Any) -> Any:
            conf = {"configurable": _ids(args[0])}
            if name == "put":
                cp = dict(args[1])
                cp["channel_values"] = {
                    k: list(v) if type(v) is list else copy.deepcopy(v)
                    for k, v in cp["channel_values"].items()
                }
                cp["channel_versions"] = dict(cp["channel_versions"])
                cp["versions_seen"] = copy.deepcopy(cp["versions_seen"])
                call: tuple[Any, ...] = (conf, cp, copy.deepcopy(args[2]), dict(args[3]))
            else:
                writes = [(c, list(v) if type(v) is list else v) for c, v in args[1]]
                call = (conf, writes, *args[2:])
            if self.active:
                self.turns[-1].append((name, call))
            return fn(*args)

        return recorded


def _ids(config: dict[str, Any]) -> dict[str, Any]:
    conf = config["configurable"]
    return {k: conf[k] for k in ("thread_id", "checkpoint_ns", "checkpoint_id") if k in conf}


def replay(name: str, turns: list[list[tuple[str, tuple[Any, ...]]]], work: str) -> dict[str, Any]:
    """The recorded calls into a new saver, one after the other: milliseconds a turn."""
    path = os.path.join(work, f"replay-{name}.db")
    saver, conn = _open(name, path)
    per_turn, per_turn_cpu = [], []
    # The recorded calls hold thousands of lists: left to the collector, every full
    # collection during the replay would walk them, a cost of the bench, not the saver.
    gc.collect()
    gc.freeze()
    try:
        for calls in turns:
            spent, used = 0.0, time.thread_time()
            for method, args in calls:
                if name == "SrtSaver":
                    # The same work without the hop to the saver's own thread (a hop
                    # waits for the scheduler: on a loaded machine that is the noise).
                    fn = getattr(saver, "_" + method)
                    if method == "put_writes" and len(args) == 3:
                        args = (*args, "")
                else:
                    fn = getattr(saver, method)
                start = time.perf_counter()
                fn(*args)
                spent += time.perf_counter() - start
            per_turn.append(spent * 1000)
            per_turn_cpu.append((time.thread_time() - used) * 1000)
    finally:
        gc.unfreeze()
        if conn is not None:
            conn.close()
        else:
            saver.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    deciles = _deciles({"write_ms_p50": per_turn, "write_cpu_ms_p50": per_turn_cpu})
    fit = deciles[1:] if len(deciles) > 2 else deciles
    return {
        "deciles": deciles,
        "write_slope": slope([(d["mid"], d["write_ms_p50"]) for d in fit]),
        "write_cpu_slope": slope([(d["mid"], d["write_cpu_ms_p50"]) for d in fit]),
    }


def _open(name: str, path: str) -> tuple[Any, sqlite3.Connection | None]:
    if name == "SqliteSaver":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(path, check_same_thread=False)
        return SqliteSaver(conn), conn
    from srt.integrations.langgraph import SrtSaver

    return SrtSaver(path), None


def _deciles(series: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Medians of each series per tenth of the run."""
    turns = len(next(iter(series.values())))
    tenth = max(turns // 10, 1)
    out = []
    for k in range(0, turns, tenth):
        end = min(k + tenth, turns)
        row: dict[str, Any] = {"turns": f"{k + 1}-{end}", "mid": k + (end - k + 1) / 2}
        for key, values in series.items():
            row[key] = _median(values[k:end])
        out.append(row)
    return out


def graph(checkpointer: Any, replies: list[str]) -> Any:
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, MessagesState, StateGraph

    answers = iter(replies)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(next(answers))]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_edge(START, "agent")
    g.add_edge("agent", END)
    return g.compile(checkpointer=checkpointer)


def _size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if s else float("nan")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of log(y) against log(x)."""
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def history_steps(app: Any, cfg: dict[str, Any], steps: int | None = 50) -> float:
    """Milliseconds per step over the first ``steps`` steps of get_state_history (all with
    ``None``). LangGraph reads the saver's whole ``list()`` before the first step, so
    ``limit`` is what keeps a long thread's history from being held in memory at once."""
    start = time.perf_counter()
    n = sum(1 for _snapshot in app.get_state_history(cfg, limit=steps))
    return (time.perf_counter() - start) / max(n, 1) * 1000


def run_saver(name: str, turns: int, seed: int, work: str, record: bool = False) -> dict[str, Any]:
    _system, chat = workloads.chat(turns, seed=seed)
    pairs = list(chat)
    path = os.path.join(work, f"{name}.db")
    saver, conn = _open(name, path)
    recorder = Recorder(saver) if record else None
    inner = {"_put": "write", "_put_writes": "write", "_get_tuple": "read"}
    busy = Busy(saver, inner if name == "SrtSaver" else None)
    app = graph(saver, [a["content"] for _u, a in pairs])
    cfg = {"configurable": {"thread_id": "bench-thread-1"}}
    write_ms, read_ms, invoke_ms, write_cpu, read_cpu = [], [], [], [], []
    travel: dict[str, float] = {}
    text = 0
    t0 = time.perf_counter()
    for i, (u, a) in enumerate(pairs, 1):
        text += len(u["content"].encode()) + len(a["content"].encode())
        start = time.perf_counter()
        app.invoke({"messages": [("user", u["content"])]}, cfg)
        invoke_ms.append((time.perf_counter() - start) * 1000)
        for wall, cpu, kind in ((write_ms, write_cpu, "write"), (read_ms, read_cpu, "read")):
            seconds, used = busy.take(kind)
            wall.append(seconds * 1000)
            cpu.append(used * 1000)
        if i == max(turns // 10, 1):
            travel["history_ms_per_step_at_10pct"] = history_steps(app, cfg)
            busy.take("read")
        if recorder is not None:
            recorder.turns.append([])
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  {name}: turn {i}/{turns}")
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    wall = time.perf_counter() - t0
    if recorder is not None:
        recorder.active = False
        recorder.turns.pop()  # the list opened after the last turn
    travel["history_ms_per_step_at_end"] = history_steps(app, cfg)
    if name == "SrtSaver":
        # The whole history (3 checkpoints a turn). SqliteSaver is not asked: LangGraph
        # holds every checkpoint's deserialized list at once (over 10 GB at 1,000 turns).
        travel["whole_history_ms_per_step"] = history_steps(app, cfg, None)
    # Resume from the checkpoint that ends the middle turn (found by its metadata: the
    # node's checkpoint of turn k is step 3k - 2): it works, and how long it takes.
    half = max(turns // 2, 1)
    (old,) = saver.list(cfg, filter={"source": "loop", "step": 3 * half - 2}, limit=1)
    app = graph(saver, ["a new answer"])
    start = time.perf_counter()
    out = app.invoke({"messages": [("user", "a new question")]}, old.config)
    travel["resume_middle_ms"] = (time.perf_counter() - start) * 1000
    travel["resume_middle_messages"] = len(out["messages"])
    travel["resume_middle_ok"] = len(out["messages"]) == 2 * half + 2
    if conn is not None:
        conn.close()
    else:
        saver.close()
    deciles = _deciles(
        {
            "write_ms_p50": write_ms,
            "write_cpu_ms_p50": write_cpu,
            "read_ms_p50": read_ms,
            "read_cpu_ms_p50": read_cpu,
            "invoke_ms_p50": invoke_ms,
        }
    )
    fit = deciles[1:] if len(deciles) > 2 else deciles
    size = _size(path)
    return {
        "installed": True,
        "db_bytes": size,
        "text_bytes": text,
        "wall_s": wall,
        "deciles": deciles,
        "write_slope": slope([(d["mid"], d["write_ms_p50"]) for d in fit]),
        "write_cpu_slope": slope([(d["mid"], d["write_cpu_ms_p50"]) for d in fit]),
        "read_slope": slope([(d["mid"], d["read_ms_p50"]) for d in fit]),
        "read_cpu_slope": slope([(d["mid"], d["read_cpu_ms_p50"]) for d in fit]),
        "time_travel": travel,
        "_recorded": recorder.turns if recorder is not None else None,
    }


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "srt": __version__}
    for dist in ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    with contextlib.suppress(OSError):
        out["load"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    out["cpus"] = str(os.cpu_count())
    return out


def table(doc: dict[str, Any]) -> list[str]:
    """The Markdown table of docs/integrations.md, from a saved ``--json`` file."""
    res = doc["results"]
    names = [n for n in ("SqliteSaver", "SrtSaver") if res.get(n, {}).get("installed")]
    row = "| " + " | ".join(["", *names]) + " |"
    out = [row, "|---|" + "---:|" * len(names)]

    def line(label: str, fmt: Callable[[dict[str, Any]], str]) -> None:
        out.append(f"| {label} | " + " | ".join(fmt(res[n]) for n in names) + " |")

    line("database", lambda r: f"{r['db_bytes'] / 1e6:,.2f} MB")
    line("database / message text", lambda r: f"{r['db_bytes'] / r['text_bytes']:,.2f}x")
    for i in (0, len(res[names[0]]["deciles"]) // 2, -1):
        label = f"write ms/turn, turns {res[names[0]]['deciles'][i]['turns']} (p50)"
        line(label, lambda r, i=i: f"{r['deciles'][i]['write_ms_p50']:.2f}")
    for i in (0, -1):
        label = f"write CPU ms/turn, turns {res[names[0]]['deciles'][i]['turns']} (p50)"
        line(label, lambda r, i=i: f"{r['deciles'][i]['write_cpu_ms_p50']:.2f}")
    line("write time: log-log slope in N, wall", lambda r: f"{r['write_slope']:.3f}")
    line("write time: log-log slope in N, CPU", lambda r: f"{r['write_cpu_slope']:.3f}")
    line(
        "replayed alone: write ms/turn, first tenth",
        lambda r: f"{r['replay']['deciles'][0]['write_ms_p50']:.2f}",
    )
    line(
        "replayed alone: write ms/turn, last tenth",
        lambda r: f"{r['replay']['deciles'][-1]['write_ms_p50']:.2f}",
    )
    line(
        "replayed alone: CPU ms/turn, first and last tenth",
        lambda r: (
            f"{r['replay']['deciles'][0]['write_cpu_ms_p50']:.2f}, "
            f"{r['replay']['deciles'][-1]['write_cpu_ms_p50']:.2f}"
        ),
    )
    line("replayed alone: log-log slope in N, wall", lambda r: f"{r['replay']['write_slope']:.3f}")
    line(
        "replayed alone: log-log slope in N, CPU",
        lambda r: f"{r['replay']['write_cpu_slope']:.3f}",
    )
    line("read (get_tuple) ms, last tenth", lambda r: f"{r['deciles'][-1]['read_ms_p50']:.2f}")
    line("read: log-log slope in N, wall", lambda r: f"{r['read_slope']:.3f}")
    line("read: log-log slope in N, CPU", lambda r: f"{r['read_cpu_slope']:.3f}")
    line("invoke ms/turn, last tenth", lambda r: f"{r['deciles'][-1]['invoke_ms_p50']:.1f}")
    tt = "time_travel"
    line("history ms/step at 10%", lambda r: f"{r[tt]['history_ms_per_step_at_10pct']:.3f}")
    line("history ms/step at the end", lambda r: f"{r[tt]['history_ms_per_step_at_end']:.3f}")
    line(
        "whole history ms/step",
        lambda r: (
            f"{r[tt]['whole_history_ms_per_step']:.3f}"
            if "whole_history_ms_per_step" in r[tt]
            else "(not run)"
        ),
    )
    line("resume from the middle turn", lambda r: f"{r[tt]['resume_middle_ms']:.1f} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", metavar="FILE", help="print the Markdown table of a saved run")
    p.add_argument("--turns", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE")
    p.add_argument("--dir", help="where to put the databases (default: a temporary dir)")
    args = p.parse_args(argv)
    if args.table:
        with open(args.table, encoding="utf-8") as f:
            print("\n".join(table(json.load(f))))
        return 0
    env = versions()
    print("LangGraph savers, side by side")
    for k, v in env.items():
        print(f"  {k:<28} {v}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="srt-lg-", dir=args.dir) as work:
        recorded = None
        for name in ("SrtSaver", "SqliteSaver"):
            try:
                results[name] = run_saver(
                    name, args.turns, args.seed, work, record=recorded is None
                )
                recorded = recorded or results[name].pop("_recorded")
                results[name].pop("_recorded", None)
            except ImportError as exc:
                results[name] = {"installed": False, "error": str(exc)}
            finally:
                for suffix in ("", "-wal", "-shm"):
                    path = os.path.join(work, f"{name}.db{suffix}")
                    if os.path.exists(path):
                        os.remove(path)
        # The same calls again, into new savers, one after the other.
        for name, r in results.items():
            if r.get("installed") and recorded:
                r["replay"] = replay(name, recorded, work)
    env["load_after"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    ours, theirs = results["SrtSaver"], results.get("SqliteSaver", {})
    print(f"\n{args.turns} turns of MessagesState (chat workload, seed {args.seed})")
    print(
        "  saver          database     write ms/turn, first and last tenth: wall (CPU)"
        "      slope in N: wall, CPU"
    )
    for name, r in results.items():
        if not r.get("installed"):
            print(f"  {name:<14} not installed ({r['error']})")
            continue
        d0, d9 = r["deciles"][0], r["deciles"][-1]
        print(
            f"  {name:<14} {r['db_bytes'] / 1e6:10.2f} MB   "
            f"{d0['write_ms_p50']:8.2f} ({d0['write_cpu_ms_p50']:.2f}) "
            f"{d9['write_ms_p50']:8.2f} ({d9['write_cpu_ms_p50']:.2f})"
            f"      {r['write_slope']:6.3f}, {r['write_cpu_slope']:6.3f}"
        )
    for name, r in results.items():
        if "replay" in r:
            d = r["replay"]["deciles"]
            print(
                f"  {name} replayed alone: write ms/turn {d[0]['write_ms_p50']:.2f} "
                f"({d[0]['write_cpu_ms_p50']:.2f} CPU) first tenth, {d[-1]['write_ms_p50']:.2f} "
                f"({d[-1]['write_cpu_ms_p50']:.2f}) last; slope {r['replay']['write_slope']:.3f} "
                f"({r['replay']['write_cpu_slope']:.3f})"
            )
    summary: dict[str, Any] = {}
    if theirs.get("installed"):
        summary = {
            "size_ratio": theirs["db_bytes"] / ours["db_bytes"],
            "last_tenth_write_ratio": theirs["deciles"][-1]["write_ms_p50"]
            / ours["deciles"][-1]["write_ms_p50"],
        }
        print(
            f"\n  SqliteSaver's database is {summary['size_ratio']:,.0f}x SrtSaver's; "
            f"its writes in the last tenth take {summary['last_tenth_write_ratio']:,.0f}x as long"
        )
    for name, r in results.items():
        if r.get("installed"):
            t = r["time_travel"]
            whole = t.get("whole_history_ms_per_step")
            print(
                f"  {name}: history {t['history_ms_per_step_at_10pct']:.3f} ms/step at 10%, "
                f"{t['history_ms_per_step_at_end']:.3f} at the end"
                + (f" ({whole:.3f} over the whole history)" if whole is not None else "")
                + f"; resume from the middle {t['resume_middle_ms']:.1f} ms "
                f"({'ok' if t['resume_middle_ok'] else 'WRONG'})"
            )
    if args.json:
        benchio.dump(
            args.json,
            {
                "environment": env,
                "argv": sys.argv[1:],
                "turns": args.turns,
                "seed": args.seed,
                "results": results,
                "summary": summary,
            },
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
