"""A writer process of the concurrency test (``tests/test_rel_concurrency.py``).

    python conc_worker.py load PATH PROC THREADS SECONDS START SHARED
    python conc_worker.py deadline PATH PROC THREADS SECONDS START TIMEOUT
    python conc_worker.py race PATH PROC

``load``: THREADS threads share one ``Runtime``; even threads append turns to the
SHARED sessions (``shared-0`` ...) with ``rebase=True``, odd threads to their own
session without it. All start at the wall-clock time START and stop after
SECONDS. Every error that reaches the caller is recorded, never swallowed. At
the end one JSON line is printed: the acknowledged turns, latencies and errors.

``deadline``: THREADS threads all append to session ``hot`` with ``rebase=True`` and
``timeout=TIMEOUT`` (0: the default) for SECONDS; one JSON line gives every call's
latency and outcome.

``race``: one handle on session ``race``; per round, on ``ROUND r`` from stdin it
takes a fresh handle and prints its head, on ``GO r`` it appends at once and
prints ``WIN``/``CONFLICT``; a loser then appends again with ``rebase=True``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import srt
from rel_support.common import turn_payload
from rel_support.lifetime import end_by
from srt._chain import Chain
from srt.store.sqlite.database import Database
from srt.store.sqlite.db import BUSY_TIMEOUT_MS

TURN_BYTES = 2048


def load(path: str, proc: int, threads: int, seconds: float, start: float, shared: int) -> None:
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    with srt.Runtime(path) as rt:
        for j in range(shared):
            rt.session(f"shared-{j}")

        def run(t: int) -> None:
            own = t % 2 == 1
            name = f"own-{proc}-{t}" if own else f"shared-{(proc + t // 2) % shared}"
            s = rt.session(name)
            acked: list[str] = []
            lat: list[float] = []
            errors: list[str] = []
            time.sleep(max(0.0, start - time.time()))
            stop = time.monotonic() + seconds
            i = 0
            while time.monotonic() < stop:
                tid = f"{proc}.{t}.{i}"
                q, a = turn_payload(tid, TURN_BYTES)
                t0 = time.perf_counter()
                try:
                    s.append(
                        {"role": "user", "content": q},
                        {"role": "assistant", "content": a},
                        rebase=not own,
                    )
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    lat.append(time.perf_counter() - t0)
                    acked.append(tid)
                i += 1
            with lock:
                results.append(
                    {"session": name, "own": own, "acked": acked, "lat": lat, "errors": errors}
                )

        workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    sys.stdout.write(json.dumps({"proc": proc, "threads": results}) + "\n")
    sys.stdout.flush()


class _Steps:
    """The steps of the rebasing appends of this process's threads, timed where they run:
    each commit attempt (``Chain.commit``) and each re-read of the head
    (``Chain.refresh``). For the calls the test bounds: how long a step worked once it
    held the write lock (a commit) or at all (a refresh), and how long after its call's
    deadline a step began. Only timing is added; what srt does is unchanged."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.work_max = {"commit": 0.0, "refresh": 0.0}
        self.began_after_deadline_max = float("-inf")
        begin = Database.begin
        local = self.local

        def locked(db: Any, *args: Any, **kwargs: Any) -> Any:
            conn = begin(db, *args, **kwargs)
            local.locked = time.perf_counter()
            return conn

        Database.begin = locked  # type: ignore[method-assign]
        for kind in ("commit", "refresh"):
            setattr(Chain, kind, self._timed(getattr(Chain, kind), kind))

    def _timed(self, fn: Callable[..., Any], kind: str) -> Callable[..., Any]:
        local = self.local

        def step(*args: Any, **kwargs: Any) -> Any:
            local.locked = None
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.perf_counter()
                since = began if kind == "refresh" else local.locked
                local.steps.append((kind, began, 0.0 if since is None else end - since))

        return step

    def call(self) -> None:
        self.local.steps = []

    def done(self, deadline_at: float) -> None:
        """The current call of this thread ended; its deadline was ``deadline_at``."""
        with self.lock:
            for kind, began, work in self.local.steps:
                self.work_max[kind] = max(self.work_max[kind], work)
                late = began - deadline_at
                self.began_after_deadline_max = max(self.began_after_deadline_max, late)


def deadline(path: str, proc: int, threads: int, seconds: float, start: float, wait: float) -> None:
    """Every thread appends to session ``hot`` with ``rebase=True, timeout=wait``;
    each call's latency and outcome (``ok`` or the error's type) is recorded, and the
    timing of its steps (``_Steps``)."""
    calls: list[tuple[float, str]] = []
    lock = threading.Lock()
    timeout = None if wait <= 0 else wait
    steps = _Steps()
    with srt.Runtime(path) as rt:

        def run(t: int) -> None:
            s = rt.session("hot")
            mine: list[tuple[float, str]] = []
            time.sleep(max(0.0, start - time.time()))
            stop = time.monotonic() + seconds
            i = 0
            while time.monotonic() < stop:
                q, a = turn_payload(f"{proc}.{t}.{i}", TURN_BYTES)
                steps.call()
                t0 = time.perf_counter()
                try:
                    s.append(
                        {"role": "user", "content": q},
                        {"role": "assistant", "content": a},
                        rebase=True,
                        timeout=timeout,
                    )
                except Exception as exc:
                    outcome = type(exc).__name__
                else:
                    outcome = "ok"
                mine.append((time.perf_counter() - t0, outcome))
                steps.done(t0 + (wait if wait > 0 else BUSY_TIMEOUT_MS / 1000))
                i += 1
            with lock:
                calls.extend(mine)

        late: list[float] = []

        def probe() -> None:
            """How late a thread of this process wakes from a 5 ms sleep, all run long:
            the scheduling delay that any step past a deadline can meet."""
            time.sleep(max(0.0, start - time.time()))
            stop = time.monotonic() + seconds
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                time.sleep(0.005)
                late.append(time.perf_counter() - t0 - 0.005)

        workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        workers.append(threading.Thread(target=probe))
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    sys.stdout.write(
        json.dumps(
            {
                "proc": proc,
                "calls": calls,
                "late": late,
                "work_max": steps.work_max,
                "began_after_deadline_max": steps.began_after_deadline_max,
            }
        )
        + "\n"
    )
    sys.stdout.flush()


def race(path: str, proc: int) -> None:
    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    with srt.Runtime(path) as rt:
        out("READY")
        s = rt.session("race")
        for line in sys.stdin:
            cmd, _, r = line.strip().partition(" ")
            if cmd == "ROUND":
                s = rt.session("race")
                len(s)  # load the chain now, not inside the race
                out(f"AT {r} {s.head}")
            elif cmd == "GO":
                turn = ({"role": "user", "content": f"r{r} p{proc}"},)
                try:
                    s.append(*turn)
                except srt.ConflictError:
                    out(f"CONFLICT {r}")
                    s.append(*turn, rebase=True)
                    out(f"REBASED {r} {s.head}")
                else:
                    out(f"WIN {r} {s.head}")
            elif cmd == "END":
                break


def main() -> None:
    end_by()  # an orphan ends by itself
    mode, path = sys.argv[1:3]
    if mode == "load":
        proc, threads = int(sys.argv[3]), int(sys.argv[4])
        seconds, start, shared = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
        load(path, proc, threads, seconds, start, shared)
    elif mode == "deadline":
        proc, threads = int(sys.argv[3]), int(sys.argv[4])
        seconds, start, wait = float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
        deadline(path, proc, threads, seconds, start, wait)
    elif mode == "race":
        race(path, int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
