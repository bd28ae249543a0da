"""The Agents SDK's sessions beside srt's SrtSession, one conversation each.

    pip install '.[bench]'
    python bench/agents_sessions.py --turns 1000 --json bench/results/agents_sessions.json

Each session replays the seeded ``chat`` workload (``srt.bench.workloads.chat``) as the
SDK's ``Runner`` drives a session: per turn ``get_items()`` (the history for the next
request), ``add_items([user])``, then ``add_items`` of the turn's output (every fourth
turn a reasoning item, a function call and its output before the answer; the answer a
Responses output message with its id and status). All in one process and event loop, on
a fresh file each, the sessions taking turns (turn i of each, then turn i + 1):

* ``SrtSession`` (``srt.integrations.agents``), ``SQLiteSession`` and
  ``AdvancedSQLiteSession`` (the SDK's branching session);
* **per turn**: the time of the three calls (wall clock, and the process's CPU time),
  medians per tenth of the run, and the log-log slope of those medians against the turn
  number from the second tenth on;
* **cold read**: ``get_items()`` of a new handle on the file after the last turn (a
  request handler that opens the session each time), median of 5; for ``SrtSession``
  also a new handle on the runtime the run kept open (a server keeps one runtime: its
  handles share what they read);
* **branches**: at turns 50, 100, 200, 500 and 1,000 (those within ``--turns``): a
  branch from the middle user turn (``fork(at_turn)`` / ``create_branch_from_turn``),
  switching to it and back, the first ``get_items`` on it, and listing the branches
  (medians of three rounds); each time and its slope in N;
* **database**: the file (and its WAL) after the last turn, against the item text.

Timings on a shared machine are noisy: the load average is printed with the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import benchio  # (bench/ is the script's folder)
from savers import _median, _size, slope  # (bench/ is the script's folder)

from srt._version import __version__
from srt.bench import workloads

KINDS = ("SrtSession", "SQLiteSession", "AdvancedSQLiteSession")
FORK_AT = (50, 100, 200, 500, 1000)


def conversation(turns: int, seed: int) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(user item, output items) per turn: Responses items as the Runner stores them."""
    _system, chat = workloads.chat(turns, seed=seed)
    out = []
    for i, (u, a) in enumerate(chat):
        items: list[dict[str, Any]] = []
        if i % 4 == 3:
            items += [
                {
                    "id": f"rs_{i}",
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "look it up"}],
                },
                {
                    "arguments": json.dumps({"query": u["content"][:40]}),
                    "call_id": f"call_{i}",
                    "name": "search",
                    "type": "function_call",
                    "id": f"fc_{i}",
                    "status": "completed",
                },
                {"call_id": f"call_{i}", "output": "3 files", "type": "function_call_output"},
            ]
        items.append(
            {
                "id": f"msg_{i}",
                "content": [{"annotations": [], "text": a["content"], "type": "output_text"}],
                "role": "assistant",
                "status": "completed",
                "type": "message",
            }
        )
        out.append(({"content": u["content"], "role": "user"}, items))
    return out


def _open(kind: str, path: str, runtime: Any = None) -> Any:
    if kind == "SrtSession":
        from srt.integrations.agents import SrtSession

        return SrtSession("bench", runtime or path)
    if kind == "SQLiteSession":
        from agents import SQLiteSession

        return SQLiteSession("bench", path)
    from agents.extensions.memory import AdvancedSQLiteSession

    return AdvancedSQLiteSession(session_id="bench", db_path=path, create_tables=True)


async def _ms(call: Callable[[], Awaitable[Any]]) -> tuple[tuple[float, float], Any]:
    """((wall ms, the process's CPU ms), result) of one call."""
    start, used = time.perf_counter(), time.process_time()
    got = await call()
    return ((time.perf_counter() - start) * 1000, (time.process_time() - used) * 1000), got


async def _branch(kind: str, s: Any, at_turn: int) -> dict[str, float]:
    """Branch from user turn ``at_turn``, switch to it and back, list: each in ms, the
    median of three rounds (three branches)."""
    rounds = [await _branch_once(kind, s, at_turn) for _ in range(3)]
    return {k: _median([r[k] for r in rounds]) for k in rounds[0]}


async def _branch_once(kind: str, s: Any, at_turn: int) -> dict[str, float]:
    """Each step's wall ms (``x_ms``) and CPU ms (``x_cpu_ms``)."""
    if kind == "SrtSession":
        fork_ms, name = await _ms(lambda: s.fork(at_turn=at_turn, switch=False))
        to_ms, _ = await _ms(lambda: s.switch_to(name))
        read_ms, _ = await _ms(s.get_items)
        back_ms, _ = await _ms(lambda: s.switch_to("main"))
        list_ms, listed = await _ms(s.branches)
    else:
        fork_ms, name = await _ms(lambda: s.create_branch_from_turn(at_turn))
        to_ms = (0.0, 0.0)  # create_branch_from_turn switches to the new branch itself
        read_ms, _ = await _ms(s.get_items)
        back_ms, _ = await _ms(lambda: s.switch_to_branch("main"))
        list_ms, listed = await _ms(s.list_branches)
    assert len(listed) >= 2, listed
    out: dict[str, float] = {}
    switch = (to_ms[0] + back_ms[0], to_ms[1] + back_ms[1])
    for key, t in (
        ("fork", fork_ms),
        ("switch", switch),
        ("first_read", read_ms),
        ("list", list_ms),
    ):
        out[key + "_ms"], out[key + "_cpu_ms"] = t
    return out


class _Run:
    """One session kind's measurements, turn by turn."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind, self.path = kind, path
        self.runtime: Any = None
        if kind == "SrtSession":  # one runtime for the run, as a server keeps one
            import srt

            self.runtime = srt.Runtime(path)
        self.session = _open(kind, path, self.runtime)
        self.text = 0
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.branches: dict[int, dict[str, float]] = {}

    async def turn(self, user: dict[str, Any], output: list[dict[str, Any]]) -> None:
        s = self.session
        self.text += sum(len(json.dumps(x).encode()) for x in (user, *output))
        start, used = time.perf_counter(), time.process_time()
        await s.get_items()
        await s.add_items([user])
        await s.add_items(output)
        self.cpu.append((time.process_time() - used) * 1000)
        self.wall.append((time.perf_counter() - start) * 1000)

    def result(
        self, items: int, cold: list[tuple[float, float]], shared: list[tuple[float, float]]
    ) -> dict[str, Any]:
        turns = len(self.wall)
        tenth = max(turns // 10, 1)
        out: dict[str, Any] = {
            "installed": True,
            "items": items,
            "item_text_bytes": self.text,
            "db_bytes": _size(self.path),
            "cold_get_items_ms": _median([w for w, _c in cold]),
            "cold_get_items_cpu_ms": _median([c for _w, c in cold]),
            "shared_runtime_get_items_ms": _median([w for w, _c in shared]) if shared else None,
            "shared_runtime_get_items_cpu_ms": (
                _median([c for _w, c in shared]) if shared else None
            ),
            "branches": {str(n): b for n, b in self.branches.items()},
        }
        for name, series in (("turn_ms", self.wall), ("turn_cpu_ms", self.cpu)):
            out[name + "_deciles"] = [
                {"turns": f"{k + 1}-{min(k + tenth, turns)}", "p50": _median(series[k : k + tenth])}
                for k in range(0, turns, tenth)
            ]
            points = [
                (k + tenth / 2, _median(series[k : k + tenth])) for k in range(tenth, turns, tenth)
            ]
            out[name + "_slope"] = slope(points) if len(points) > 1 else None
        if len(self.branches) > 1:
            for step in ("fork", "switch", "list", "first_read"):
                for key in (step + "_ms", step + "_cpu_ms"):
                    points = [(n, max(b[key], 1e-6)) for n, b in self.branches.items()]
                    out[f"{key}_slope"] = slope(points)
        return out


async def run_all(kinds: list[str], turns: int, seed: int, work: str) -> dict[str, Any]:
    """Every kind turn by turn in lockstep (turn i of each, then turn i + 1), so that the
    machine's load falls on all of them alike."""
    results: dict[str, Any] = {}
    runs: list[_Run] = []
    for kind in kinds:
        try:
            runs.append(_Run(kind, os.path.join(work, f"{kind}.db")))
        except ImportError as exc:
            results[kind] = {"installed": False, "why": str(exc)}
    for i, (user, output) in enumerate(conversation(turns, seed), 1):
        for run in runs:
            await run.turn(user, output)
        if i in FORK_AT:
            for run in runs:
                if run.kind != "SQLiteSession":  # it has no branches
                    run.branches[i] = await _branch(run.kind, run.session, max(i // 2, 1))
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  turn {i}/{turns}")
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    counts = {}
    for run in runs:
        counts[run.kind] = len(await run.session.get_items())
        run.session.close()
    cold: dict[str, list[tuple[float, float]]] = {run.kind: [] for run in runs}
    shared: dict[str, list[tuple[float, float]]] = {run.kind: [] for run in runs}
    for _ in range(5):
        for run in runs:
            again = _open(run.kind, run.path)
            ms, got = await _ms(again.get_items)
            assert len(got) == counts[run.kind]
            cold[run.kind].append(ms)
            again.close()
            if run.runtime is not None:
                again = _open(run.kind, run.path, run.runtime)
                ms, got = await _ms(again.get_items)
                assert len(got) == counts[run.kind]
                shared[run.kind].append(ms)
    for run in runs:
        if run.runtime is not None:
            run.runtime.close()  # (its last checkpoint folds the WAL into the file)
        results[run.kind] = run.result(counts[run.kind], cold[run.kind], shared[run.kind])
    return results


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "srt": __version__}
    for dist in ("openai-agents",):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table(doc: dict[str, Any]) -> list[str]:
    """The docs table (markdown) of a saved run."""
    res = {k: v for k, v in doc["results"].items() if v.get("installed")}
    kinds = list(res)

    def row(label: str, fn: Callable[[dict[str, Any]], str]) -> str:
        return f"| {label} | " + " | ".join(fn(res[k]) for k in kinds) + " |"

    last = max((int(n) for r in res.values() for n in r["branches"]), default=None)
    lines = ["|  | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    lines.append(row("database", lambda r: f"{r['db_bytes'] / 1e6:,.2f} MB"))
    lines.append(
        row("database / item text", lambda r: f"{r['db_bytes'] / r['item_text_bytes']:.2f}x")
    )
    for key, what in (("turn_ms", "wall"), ("turn_cpu_ms", "CPU")):
        for pos, name in ((0, "first"), (-1, "last")):
            lines.append(
                row(
                    f"turn ms {what} (get + 2 adds), {name} tenth (p50)",
                    lambda r, pos=pos, key=key: f"{r[key + '_deciles'][pos]['p50']:.2f}",
                )
            )
        lines.append(
            row(
                f"turn time {what}: log-log slope in N",
                lambda r, key=key: f"{r[key + '_slope']:.3f}",
            )
        )
    lines.append(
        row(
            "get_items of a new handle at the end, ms wall (CPU)",
            lambda r: f"{r['cold_get_items_ms']:.1f} ({r['cold_get_items_cpu_ms']:.1f})",
        )
    )
    lines.append(
        row(
            "the same, the handle on the run's open runtime",
            lambda r: (
                "-"
                if r.get("shared_runtime_get_items_ms") is None
                else f"{r['shared_runtime_get_items_ms']:.1f} "
                f"({r['shared_runtime_get_items_cpu_ms']:.1f})"
            ),
        )
    )
    if last is not None:
        for step, label in (
            ("fork", "branch from the middle turn"),
            ("switch", "switch to it and back"),
            ("first_read", "first get_items on the branch"),
            ("list", "list branches"),
        ):
            for key, what in ((step + "_ms", "wall"), (step + "_cpu_ms", "CPU")):
                lines.append(
                    row(
                        f"{label}, ms {what} at {last} turns (slope in N)",
                        lambda r, key=key: (
                            f"{r['branches'][str(last)][key]:.2f} ({_fmt(r.get(key + '_slope'))})"
                            if r["branches"]
                            else "(no branches)"
                        ),
                    )
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--turns", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--dir", help="keep the databases in this folder")
    p.add_argument("--only", choices=KINDS, action="append", help="run only these sessions")
    p.add_argument("--table", metavar="JSON", help="print the docs table of a saved run")
    args = p.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print("\n".join(table(json.load(f))))
        return 0
    if args.turns < 2:
        p.error("--turns must be at least 2")
    doc: dict[str, Any] = {
        "environment": versions() | {"load_average_start": list(os.getloadavg())},
        "argv": sys.argv[1:] if argv is None else argv,
        "turns": args.turns,
        "seed": args.seed,
        "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = args.dir or tmp
        os.makedirs(work, exist_ok=True)
        kinds = args.only or list(KINDS)
        for kind in kinds:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(work, f"{kind}.db{suffix}"))
        doc["results"] = asyncio.run(run_all(kinds, args.turns, args.seed, work))
    doc["environment"]["load_average_end"] = list(os.getloadavg())
    text = json.dumps(doc, indent=1)
    if args.json:
        benchio.write_text(args.json, text + "\n")
    print("\n".join(table(doc)))
    print(
        f"load average: {doc['environment']['load_average_start']} -> "
        f"{doc['environment']['load_average_end']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
