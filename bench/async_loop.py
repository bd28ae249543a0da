"""Many sessions on one event loop: turns a second, turn latency and the loop's lateness.

    python bench/async_loop.py STORE --sessions 16 --turns 100
    python bench/async_loop.py 'postgresql://...' --sessions 1 --turns 300 --json out.json

``--sessions`` tasks on one event loop each await ``Session.asend`` turn after turn (a
session of their own on one ``Runtime`` on STORE, a path or a URL) against
``srt.testing``'s OpenAI endpoint in another process, so its work does not take this
process's GIL. Printed: turns a second over the run, each turn's latency (p50, p99; the
first two turns of each session left out), and how late a 1 ms heartbeat task on the
same loop woke (p50, p99, max): how long srt's calls held the loop from other tasks.
Run the tree before on ``PYTHONPATH`` against a schema or file of its own to compare.
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from typing import Any

import benchio

import srt
from srt.providers import OpenAI


def _q(xs: list[float], f: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * f))] * 1e3


async def _run(rt: srt.Runtime, provider: OpenAI, sessions: int, turns: int) -> dict[str, Any]:
    lat: list[float] = []
    late: list[float] = []
    stop = False
    tag = secrets.token_hex(3)

    async def beat() -> None:
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            late.append(now - last - 0.001)
            last = now

    async def one(i: int) -> None:
        s = rt.session(f"loop-{tag}-{i}")
        for t in range(turns + 2):
            t0 = time.perf_counter()
            msg = {"role": "user", "content": f"{t}"}
            await s.asend(provider, model="gpt-4o-mini", append=[msg])
            if t >= 2:
                lat.append(time.perf_counter() - t0)

    hb = asyncio.create_task(beat())
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(sessions)))
    finally:
        wall = time.perf_counter() - t0
        stop = True
        await hb
        await provider.aclose()  # (its connections belong to this loop)
    lat.sort()
    late.sort()
    return {
        "sessions": sessions,
        "turns": turns,
        "turns_per_s": sessions * (turns + 2) / wall,
        "turn_p50_ms": _q(lat, 0.5),
        "turn_p99_ms": _q(lat, 0.99),
        "late_p50_ms": _q(late, 0.5),
        "late_p99_ms": _q(late, 0.99),
        "late_max_ms": late[-1] * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("store", help="a store path or URL")
    ap.add_argument("--sessions", type=int, default=16, help="tasks (default 16)")
    ap.add_argument("--turns", type=int, default=100, help="timed turns each (default 100)")
    args = ap.parse_args(argv)
    server = subprocess.Popen(
        [sys.executable, "-m", "srt.testing.server", "--api-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        provider = OpenAI("k", base_url=url + "/v1")
        with srt.Runtime(args.store) as rt:
            out = asyncio.run(_run(rt, provider, args.sessions, args.turns))
        provider.close()
    finally:
        server.terminate()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    print(
        f"{out['sessions']} sessions x {out['turns']}: {out['turns_per_s']:.0f} turns/s; "
        f"turn p50 {out['turn_p50_ms']:.2f} p99 {out['turn_p99_ms']:.2f} ms; heartbeat "
        f"late p50 {out['late_p50_ms']:.2f} p99 {out['late_p99_ms']:.2f} "
        f"max {out['late_max_ms']:.2f} ms"
    )
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
