"""The ``edits`` workload: the build after a ``rewind`` or an ``edit`` against the
steady-state build, at two history lengths (1,000 and 10,000 turns by default).

One conversation of the ``chat`` workload's messages is written, its request built
once (warm), and then, ``reps`` times in turn (each figure the median):

* **steady**: append a user message, build the next request (``Session.request``),
  append the reply: the build an ordinary turn makes;
* **rewind**: drop the last turn (``rewind(2)``), append a new user message, build,
  append the reply;
* **edit**: replace the last user message (``edit``, which drops the reply after it),
  build, append the reply.

Only the build is timed; each body is dropped before the next step, as a send loop
does. Every body is checked against ``json.dumps`` of the history as the naive store
would send it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from ..runtime import Runtime
from . import workloads
from .naive import MODEL, _dumps

Progress = Callable[[int, int], None] | None


def run_size(
    workdir: str, turns: int, *, reps: int, seed: int, check: bool = True
) -> dict[str, Any]:
    system, pairs = workloads.chat(turns, seed=seed)
    rt = Runtime(os.path.join(workdir, f"edits-{turns}.db"))
    s = rt.session("edits")
    history: list[dict[str, Any]] = [system]
    batch: list[dict[str, Any]] = [system]
    for q, a in pairs:
        batch += (q, a)
        history += (q, a)
        if len(batch) >= 1000:
            s.append(*batch)
            batch = []
    if batch:
        s.append(*batch)
    s.request("openai.chat", model=MODEL, cache=False)  # warm: every message assembled once
    _, fresh = workloads.chat(3 * reps, seed=seed + 1)
    pc = time.perf_counter_ns
    t: dict[str, list[int]] = {"steady": [], "rewind": [], "edit": []}

    def build(kind: str) -> None:
        t0 = pc()
        body = s.request("openai.chat", model=MODEL, cache=False)
        t[kind].append(pc() - t0)
        if check and body != _dumps(history):
            raise AssertionError(f"the build after {kind} differs from json.dumps")
        del body

    for _ in range(reps):
        q, a = next(fresh)
        s.append(q)
        history.append(q)
        build("steady")
        s.append(a)
        history.append(a)

        q, a = next(fresh)
        s.rewind(2)
        del history[-2:]
        s.append(q)
        history.append(q)
        build("rewind")
        s.append(a)
        history.append(a)

        q, a = next(fresh)
        s.edit(-2, q)
        history[-2:] = [q]
        build("edit")
        s.append(a)
        history.append(a)
    rt.close()
    us = {k: statistics.median(v) / 1000.0 for k, v in t.items()}
    return {
        "turns": turns,
        "reps": reps,
        "body_bytes": len(json.dumps({"model": MODEL, "messages": history}).encode()),
        "us": us,
        "rewind_vs_steady": us["rewind"] / us["steady"],
        "edit_vs_steady": us["edit"] / us["steady"],
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def run_edits(
    workdir: str,
    sizes: tuple[int, ...] = (1000, 10_000),
    *,
    reps: int = 30,
    seed: int = 1,
    progress: Progress = None,
) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for k, n in enumerate(sizes):
        # The json.dumps check costs seconds a build at 10,000 turns: check the smaller.
        per[str(n)] = run_size(workdir, n, reps=reps, seed=seed, check=k == 0)
        if progress is not None:
            progress(k + 1, len(sizes))
    out: dict[str, Any] = {"sizes": list(sizes), "by_turns": per}
    out["worst_vs_steady"] = max(
        max(x["rewind_vs_steady"], x["edit_vs_steady"]) for x in per.values()
    )
    for n in sizes:
        x = per[str(n)]
        out[f"after_edit_vs_steady_{n}"] = max(x["rewind_vs_steady"], x["edit_vs_steady"])
    return out
