"""The ``branching`` workload: fork and edit storms on one long conversation.

A seeded 200-turn chat is stored once. Then ``ops`` seeded operations each branch it
at a random point: half are forks (``Session.fork(name, at=k)``, then a new user
message and reply), half are edits (a fork, then ``Session.edit`` of a user message
in it, then a reply). After each operation the branch's next request is built.

Baseline, in the same run: the naive one-row-per-message store, where a branch copies
the first ``k`` rows into a new session (as stores without shared prefixes do) and a
build loads the branch and ``json.dumps`` it. Every branch's body is checked against
the naive body (byte for byte) on the last operation, or on all with --correctness.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from ..runtime import Runtime
from . import workloads
from .chat import _file_size, _pct
from .naive import MODEL, NaiveStore


class _NaiveBranching(NaiveStore):
    def copy(self, src: str, dst: str, k: int) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO msgs(session, role, content) SELECT ?, role, content FROM msgs "
                "WHERE session = ? ORDER BY id LIMIT ?",
                (dst, src, k),
            )


def run_branching(
    workdir: str,
    turns: int = 200,
    ops: int = 400,
    *,
    seed: int = 1,
    correctness: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    path = os.path.join(workdir, "branching.db")
    npath = os.path.join(workdir, "branching-naive.db")
    rt = Runtime(path)
    main = rt.session("main")
    naive = _NaiveBranching(npath)
    system, pairs = workloads.chat(
        turns, seed=seed, system_chars=2048, user=(100, 400), assistant=(200, 1200)
    )
    msgs = [system]
    for u, a in pairs:
        msgs += [u, a]
    main.append(*msgs)
    for m in msgs:
        naive.append("main", m)
    rt.close()
    naive.conn.close()
    base_db, base_naive = _file_size(path), _file_size(npath)
    rt = Runtime(path)
    main = rt.session("main")
    naive = _NaiveBranching(npath)
    main.request("openai.chat", model=MODEL, cache=False)  # warm the shared fragments

    rng = random.Random(seed + 1)
    pc = time.perf_counter_ns
    t: dict[str, list[int]] = {
        k: [] for k in ("fork", "edit", "build", "naive_fork", "naive_edit", "naive_build")
    }
    checked = 0
    n = len(msgs)
    for i in range(ops):
        name = f"b{i}"
        user_idx = [j for j in range(1, n, 2)]  # user messages sit at odd indices
        kind = "fork" if i % 2 == 0 else "edit"
        new_user = {"role": "user", "content": workloads.text(rng, rng.randint(100, 400))}
        reply = {"role": "assistant", "content": workloads.text(rng, rng.randint(200, 1200))}
        if kind == "fork":
            k = rng.randrange(2, n + 1, 2) + 1 if n > 3 else n  # after an assistant reply
            k = min(k, n)
            t0 = pc()
            b = main.fork(name, at=k)
            b.append(new_user, reply)
            t1 = pc()
            naive.copy("main", name, k)
            naive.append(name, new_user)
            naive.append(name, reply)
            t2 = pc()
        else:
            j = rng.choice(user_idx)
            t0 = pc()
            b = main.fork(name, at=j + 1)
            b.edit(j, new_user)
            b.append(reply)
            t1 = pc()
            naive.copy("main", name, j)
            naive.append(name, new_user)
            naive.append(name, reply)
            t2 = pc()
        b.append({"role": "user", "content": "and then?"})
        naive.append(name, {"role": "user", "content": "and then?"})
        t3 = pc()
        body = b.request("openai.chat", model=MODEL, cache=False)
        t4 = pc()
        nb = naive.build(name)
        t5 = pc()
        if correctness or i == ops - 1:
            if body != nb:
                raise AssertionError(f"branch {name}: srt's body differs from the naive body")
            checked += 1
        t[kind].append(t1 - t0)
        t["naive_" + kind].append(t2 - t1)
        t["build"].append(t4 - t3)
        t["naive_build"].append(t5 - t4)
        if progress is not None:
            progress(i + 1, ops)
    rt.close()
    naive.conn.close()
    db, ndb = _file_size(path), _file_size(npath)
    p = {k: {"p50": _pct(v, 0.5), "p99": _pct(v, 0.99)} for k, v in t.items() if v}
    return {
        "turns": turns,
        "ops": ops,
        "latency_us": p,
        "fork_vs_naive": p["naive_fork"]["p50"] / p["fork"]["p50"],
        "edit_vs_naive": p["naive_edit"]["p50"] / p["edit"]["p50"],
        "build_vs_naive": p["naive_build"]["p50"] / p["build"]["p50"],
        "db_growth_per_op": (db - base_db) / ops,
        "naive_growth_per_op": (ndb - base_naive) / ops,
        "db_bytes": db,
        "naive_db_bytes": ndb,
        "checked_bodies": checked,
    }
