"""The client's time per turn in each way of calling a provider: ``send``, ``stream``,
``asend`` and ``astream``, on one 1,000-turn session, in one process.

    python bench/call_modes.py                 # 40 rounds, each mode once a round
    python bench/call_modes.py --rounds 60 --json out.json

The server is ``srt.testing`` in a child process (the send workload's, which times its own
work on every request); each turn appends a user message and calls the provider in one of
the four ways, in turn, so all four see the same machine. The client's time is the turn's
wall time less the server's own time for that request; its CPU time is the main
thread's (``time.thread_time``) over the turn, which the server's timing does not touch.
The replies are the chat workload's (about 1.5 KB, streamed as about 185 events).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import benchio

import srt
from srt.bench import send as send_bench
from srt.bench import workloads
from srt.bench.naive import MODEL
from srt.providers import OpenAI

MODES = ("send", "stream", "asend", "astream")


def run(workdir: str, rounds: int) -> dict[str, Any]:
    child = send_bench._Child()  # noqa: SLF001 - the send workload's timed server
    try:
        rt = srt.Runtime(os.path.join(workdir, "modes.db"))
        s = rt.session("modes")
        system, pairs = workloads.chat(1000 + rounds * len(MODES) + 10, seed=1)
        turns = list(pairs)
        history: list[dict[str, Any]] = [system]
        for q, a in turns[:1000]:
            history += (q, a)
        s.append(*history)
        rest = iter(turns[1000:])
        child.ask({"script": [a["content"] for _, a in turns[1000:]]})
        p = OpenAI(send_bench.KEY, base_url=f"{child.url}/v1")
        loop = asyncio.new_event_loop()

        async def async_turn(mode: str) -> None:
            if mode == "asend":
                await s.asend(p, model=MODEL)
            else:
                async for _ in s.astream(p, model=MODEL):
                    pass

        wall: dict[str, list[float]] = {m: [] for m in MODES}
        cpu: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(rounds):
            for mode in MODES:
                c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
                s.append(next(rest)[0])
                if mode == "send":
                    s.send(p, model=MODEL)
                elif mode == "stream":
                    for _ in s.stream(p, model=MODEL):
                        pass
                else:
                    loop.run_until_complete(async_turn(mode))
                wall[mode].append((time.perf_counter_ns() - t0) / 1e6)
                cpu[mode].append((time.thread_time_ns() - c0) / 1e6)
        loop.run_until_complete(p.aclose())
        loop.close()
        p.close()
        rt.close()
        server = child.ask({"take": True})["times"]
    finally:
        child.close()
    out: dict[str, Any] = {"rounds": rounds, "load": list(os.getloadavg()), "modes": {}}
    for i, mode in enumerate(MODES):
        own = [server[len(MODES) * r + i] / 1e6 for r in range(rounds)]
        client = [wall[mode][r] - own[r] for r in range(rounds)]
        out["modes"][mode] = {
            "wall_ms_p50": statistics.median(wall[mode]),
            "server_ms_p50": statistics.median(own),
            "client_ms_p50": statistics.median(client),
            "client_cpu_ms_p50": statistics.median(cpu[mode]),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        out = run(d, args.rounds)
    print(f"client time per turn at 1,000 turns, p50 (load {out['load'][0]:.2f})")
    for mode, r in out["modes"].items():
        print(
            f"  {mode:8} client {r['client_ms_p50']:6.2f} ms"
            f"  cpu {r['client_cpu_ms_p50']:5.2f} ms"
            f"  (wall {r['wall_ms_p50']:6.2f}, server {r['server_ms_p50']:6.2f})"
        )
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
