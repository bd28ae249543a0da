"""Kill and resume: SIGKILL a 10-step task at random moments, start it again, until it ends.

Each task (three tools, 19 calls over ten steps, 1 to 3 in parallel; ``lookup`` and
``fetch`` are not idempotent, ``compute`` is) runs in a fresh
``python tests/task_kill_child.py`` that the parent kills a random time after it is
ready (up to 0.4 s for its first kill, a window that widens by a quarter with each
kill of the same task), again and again, until one run finishes. The model is the local provider
server with a scripted task that answers from what each request holds, so a request
repeated after a kill gets the same answer. Every tool run appends one line to a side
file (``O_APPEND``), so the checker counts runs without trusting the runner. After
each task:

* the task finished: the final answer is there, after all ten steps;
* every call has exactly one result, paired with its call;
* every non-idempotent call whose result is a real result ran exactly once; one
  whose result says it was interrupted ran at most once (never twice);
* no non-idempotent call ever ran twice; ``compute`` may run again (counted).

CI: at least 100 kills over two lanes. ``SRT_SOAK=1``: at least 1,000.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import figures_line
from rel_support.waits import ended, joined
from srt.tasks import INTERRUPTED
from srt.testing.tasks import ScriptedTask, plan
from task_support import SideFile, chain_pairs, server

SOAK = os.environ.get("SRT_SOAK", "") not in ("", "0")
KILLS = 1000 if SOAK else 100
# The lanes run until KILLS kills: minutes on a loaded machine. Bounded just inside
# pytest-timeout's 15 minutes (four hours in a soak), so the failure names the lanes.
LANES_WAIT_S = 4 * 3600.0 if SOAK else 840.0
LANES = 2
MAX_DELAY_S = 0.4  # a kill lands up to this long after the child is ready (first kill)
KINDS = ("openai", "anthropic", "responses", "bedrock")
CHILD = str(Path(__file__).with_name("task_kill_child.py"))
STEPS = plan(10, ["lookup", "fetch", "compute"])
IDS = {
    f"call_t{k}_{i}": (name, args["key"])
    for k, s in enumerate(STEPS)
    for i, (name, args) in enumerate(s)
}


@dataclass
class Figures:
    kills: int = 0
    tasks: int = 0
    children: int = 0
    interrupted: int = 0
    idempotent_reruns: int = 0
    most_kills_on_one_task: int = 0
    results_checked: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def spawn(args: list[str], delay: float | None) -> tuple[int, list[str], str]:
    """Run the child; ``delay`` s after ``READY`` SIGKILL it (``None``: let it finish)."""
    p = subprocess.Popen(
        [sys.executable, CHILD, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert p.stdout is not None and p.stderr is not None
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                ready.set()
        ready.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    if delay is not None:
        ready.wait(60)
        time.sleep(delay)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
    ended(p, 120)
    t.join(10)
    err = p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    return p.returncode, lines, err


def check_task(db: str, name: str, side: SideFile, fig: Figures) -> None:
    with srt.Runtime(db) as rt:
        msgs = rt.session(name, create=False).messages()
    problems: list[str] = []
    if msgs[-1] != {"role": "assistant", "content": "All done."}:
        problems.append(f"{name}: did not finish: {msgs[-1]}")
    chain_pairs(msgs)
    results = {m["tool_call_id"]: m["content"] for m in msgs if m["role"] == "tool"}
    if set(results) != set(IDS):
        problems.append(f"{name}: results for {sorted(results)} not {sorted(IDS)}")
    runs = Counter(side.lines())
    interrupted = reruns = 0
    for call_id, content in results.items():
        tool, key = IDS[call_id]
        n = runs[f"{tool} {key}"]
        if tool == "compute":
            if n < 1 or content != str(sum(key.encode())):
                problems.append(f"{name}: compute {key}: {n} runs, result {content!r}")
            reruns += max(n - 1, 0)
        elif content == INTERRUPTED:
            interrupted += 1
            if n > 1:
                problems.append(f"{name}: {tool} {key} interrupted but ran {n} times")
        elif n != 1:
            problems.append(f"{name}: {tool} {key} completed but ran {n} times")
    for line, n in runs.items():
        if not line.startswith("compute") and n > 1:
            problems.append(f"{name}: {line} ran {n} times")
    with fig.lock:
        fig.results_checked += len(results)
        fig.interrupted += interrupted
        fig.idempotent_reruns += reruns
        fig.failures += problems


def lane(index: int, tmp: Path, url: str, fig: Figures, seed: int) -> None:
    rng = random.Random(seed)
    db = str(tmp / f"lane{index}.db")
    task = 0
    while True:
        with fig.lock:
            if fig.kills >= KILLS or fig.failures:
                return
        task += 1
        name = f"task-{index}-{task}"
        kind = KINDS[(task + index) % len(KINDS)]
        side = SideFile(str(tmp / f"{name}.log"))
        kills = 0
        while True:
            # The window widens with each kill of this task, so a task on a slow, busy
            # machine still gets far enough between kills to finish.
            delay = rng.uniform(0.0, MAX_DELAY_S * (1.0 + kills / 4.0))
            args = [db, url, name, side.path, kind, str(rng.randrange(1 << 30))]
            code, lines, err = spawn(args, delay)
            with fig.lock:
                fig.children += 1
            if code == -signal.SIGKILL:
                kills += 1
                with fig.lock:
                    fig.kills += 1
                continue
            if code != 0 or not any(ln.startswith("DONE done") for ln in lines):
                with fig.lock:
                    fig.failures.append(f"{name}: child exited {code}: {lines[-3:]} {err[-2000:]}")
                return
            break
        check_task(db, name, side, fig)
        with fig.lock:
            fig.tasks += 1
            fig.most_kills_on_one_task = max(fig.most_kills_on_one_task, kills)


def test_sigkill_at_random_points_every_completed_tool_ran_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fig = Figures()
    t0 = time.monotonic()
    with server() as srv:
        srv.respond("*", ScriptedTask(STEPS))
        threads = [
            threading.Thread(target=lane, args=(i, tmp_path, srv.url, fig, 1000 + i))
            for i in range(LANES)
        ]
        for t in threads:
            t.start()
        joined(*threads, timeout=LANES_WAIT_S)
        assert srv.errors == []
    assert not fig.failures, "\n".join(fig.failures[:20])
    assert fig.kills >= KILLS
    assert fig.tasks >= LANES
    figures: dict[str, Any] = {k: v for k, v in vars(fig).items() if k not in ("lock", "failures")}
    figures["wall_s"] = round(time.monotonic() - t0, 1)
    figures["soak"] = SOAK
    figures_line(capsys, f"tasks_kill: {json.dumps(figures, sort_keys=True)}")
