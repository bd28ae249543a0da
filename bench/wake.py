"""What the first work after a wait costs on this machine: the same operations timed back
to back ("hot") and right after a pause, in one process, interleaved.

    python bench/wake.py                       # 60 rounds, pauses 0, 0.5, 2, 10 and 40 ms
    python bench/wake.py --rounds 100 --json out.json

A client's turn waits twice: for its user (before the append) and for the provider (before
the reply is persisted). The send workload's server takes about 40 ms at 1,000 turns, and
every turn's own work runs after such a wait. This script shows what that costs the same
operations, srt's and not:

* ``pwrite 4 KiB``: one ``os.pwrite`` of a page to a file (the system call alone);
* ``naive insert``: one ``INSERT`` and its commit in a one-row-per-message WAL store at
  ``synchronous=NORMAL`` (``srt.bench.naive.NaiveStore``, the naive store of every
  other workload);
* ``json.dumps 1 KB``: a message of about 1 KB serialized (Python only, no system call);
* ``srt append``: ``Session.append`` of one user message to a 1,000-turn session;
* ``srt build``: ``Session.request`` of the next request on that warm handle (its
  ``max_tokens`` alternating, so each build writes a new tail).

Each round runs every operation once after each pause, the pause being ``time.sleep``
(the thread blocks, as it does in a socket read) or a spin on the clock (the thread keeps
its core). If the pause alone makes an operation slower, the cost is the machine's (its
caches, TLB and branch predictors refilled after other work ran), not the operation's.
"""

from __future__ import annotations

import json
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
from srt.bench.naive import MODEL, NaiveStore

PAUSES_MS = (0.0, 0.5, 2.0, 10.0, 40.0)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run(workdir: str, rounds: int, pauses_ms: tuple[float, ...]) -> dict[str, Any]:
    system, pairs = workloads.chat(1000 + rounds * len(pauses_ms) * 4 + 10, seed=1)
    pairs = iter(list(pairs))
    rt = srt.Runtime(os.path.join(workdir, "wake-srt.db"))
    s = rt.session("wake")
    s.append(system)
    batch: list[dict[str, Any]] = []
    for _ in range(1000):
        batch += next(pairs)
    s.append(*batch)
    naive = NaiveStore(os.path.join(workdir, "wake-naive.db"))
    fd = os.open(os.path.join(workdir, "wake.bin"), os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(fd, b"\0" * (4096 * 256), 0)
    page = b"p" * 4096
    one_kb = {"role": "user", "content": "word " * 200}
    s.request("openai.chat", model=MODEL)
    state = {"k": 0}

    def pwrite() -> None:
        state["k"] += 1
        os.pwrite(fd, page, 4096 * (state["k"] % 256))

    def naive_insert() -> None:
        naive.append("wake", {"role": "user", "content": "a question " * 30})

    def dumps() -> None:
        json.dumps(one_kb)

    def append() -> None:
        s.append(next(pairs)[0])  # a user message: the first write of a turn

    def build() -> None:
        # A tail that differs from the last build's, so nothing is returned as it was.
        state["k"] += 1
        s.request("openai.chat", model=MODEL, max_tokens=100 + state["k"] % 2)

    ops: dict[str, Callable[[], None]] = {
        "pwrite 4 KiB": pwrite,
        "naive insert": naive_insert,
        "json.dumps 1 KB": dumps,
        "srt append": append,
        "srt build": build,
    }
    times: dict[tuple[str, str, float], list[float]] = {}
    pc = time.perf_counter_ns
    for _ in range(rounds):
        for pause in pauses_ms:
            for how, wait in (("sleep", time.sleep), ("spin", _spin)):
                if pause == 0.0 and how == "spin":
                    continue
                for name, op in ops.items():
                    # Hot: the operation right after itself. Otherwise: right after the
                    # pause.
                    if pause:
                        wait(pause / 1000.0)
                    else:
                        op()
                    t0 = pc()
                    op()
                    t1 = pc()
                    key = (name, "hot" if pause == 0.0 else how, pause)
                    times.setdefault(key, []).append((t1 - t0) / 1000.0)
    os.close(fd)
    rt.close()
    naive.conn.close()
    rows = []
    for (name, how, pause), xs in times.items():
        hot = statistics.median(times[(name, "hot", 0.0)])
        p50 = statistics.median(xs)
        rows.append(
            {"op": name, "pause_ms": pause, "wait": how, "p50_us": p50, "over_hot": p50 / hot}
        )
    return {"rounds": rounds, "load": list(os.getloadavg()), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--pauses", type=float, nargs="*", default=list(PAUSES_MS))
    args = ap.parse_args(argv)
    pauses = tuple(sorted({0.0, *args.pauses}))
    with tempfile.TemporaryDirectory() as d:
        out = run(d, args.rounds, pauses)
    names = list(dict.fromkeys(r["op"] for r in out["rows"]))
    cols = [(p, w) for p in pauses for w in (("hot",) if p == 0 else ("sleep", "spin"))]
    head = "".join(f"{('hot' if p == 0 else f'{w} {p:g} ms'):>16}" for p, w in cols)
    print(f"first work after a pause, p50 us (x the hot p50); load {out['load'][0]:.2f}")
    print(f"{'':18}{head}")
    for name in names:
        cells = []
        for p, w in cols:
            r = next(
                x for x in out["rows"] if x["op"] == name and x["pause_ms"] == p and x["wait"] == w
            )
            cells.append(
                f"{r['p50_us']:8.1f} ({r['over_hot']:4.1f}x)" if p else f"{r['p50_us']:16.1f}"
            )
        print(f"{name:18}" + "".join(f"{c:>16}" for c in cells))
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
