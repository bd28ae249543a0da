"""The HTTP layer's own cost per request and per streamed chunk, through srt's Transport.

    python bench/http_pool.py                  # 150 request pairs, 140 streamed replies
    python bench/http_pool.py --async          # the same through AsyncTransport
    python bench/http_pool.py --json out.json

The server is the send workload's ``srt.testing`` in a child process, which times its own
work on every request. Each request is ``Transport.open(...).read()`` of a small body:
once after a 40 ms sleep (caches cold, as a turn after the provider's wait) and once
right after (warm); the client's time is the wall time less the server's own. The
Python calls of one request are counted with ``sys.setprofile``. A streamed reply (the
chat workload's, about 176 events) is read with ``Response.iter_bytes``; its client CPU
(``time.thread_time``) over the chunks read is the cost per event. With ``--async``, each
request is ``AsyncTransport.open(...)`` and its read, run to completion on one event
loop (its ``run_until_complete`` counted in). To compare two trees, run this script under
each (``PYTHONPATH=<tree>/src``), alternating.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import benchio

from srt.bench import send as send_bench
from srt.bench import workloads
from srt.bench.naive import MODEL
from srt.providers import OpenAI
from srt.providers.transport import AsyncTransport, Timeouts, Transport


def _calls(one: Any) -> int:
    count = 0

    def prof(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(prof)
    try:
        one()
    finally:
        sys.setprofile(None)
    return count


def run(pairs: int, replies: int, aio: bool = False) -> dict[str, Any]:
    child = send_bench._Child()  # noqa: SLF001 - the send workload's timed server
    loop = asyncio.new_event_loop()
    try:
        _, chat = workloads.chat(replies + 20, seed=1)
        child.ask({"script": [a["content"] for _, a in chat] + ["ok"] * (2 * pairs + 40)})
        timeouts = Timeouts(connect=600.0, idle=600.0)
        p = OpenAI(
            send_bench.KEY,
            base_url=f"{child.url}/v1",
            transport=Transport(timeouts=timeouts),
            async_transport=AsyncTransport(timeouts=timeouts),
        )
        message = [{"role": "user", "content": "hi"}]
        streamed = json.dumps({"model": MODEL, "stream": True, "messages": message}).encode()
        plain = json.dumps({"model": MODEL, "messages": message}).encode()

        async def acount() -> tuple[int, int]:
            resp = await p.async_transport.open(p.request(MODEL, streamed, True))
            t0, n = time.thread_time_ns(), 0
            async for _ in resp.aiter_bytes():
                n += 1
            return n, time.thread_time_ns() - t0

        def count() -> tuple[int, int]:
            """The chunks of a streamed reply, and the CPU time (ns) of reading them."""
            if aio:
                return loop.run_until_complete(acount())
            resp = p.transport.open(p.request(MODEL, streamed, True))
            t0, n = time.thread_time_ns(), 0
            for _ in resp.iter_bytes():
                n += 1
            return n, time.thread_time_ns() - t0

        per_chunk: list[float] = []
        chunks: list[int] = []
        for k in range(replies + 10):
            n, cpu = count()
            if k >= 10:
                per_chunk.append(cpu / n / 1000.0)
                chunks.append(n)

        async def aone() -> bytes:
            resp = await p.async_transport.open(p.request(MODEL, plain, False))
            return await resp.read()

        def one() -> bytes:
            if aio:
                return loop.run_until_complete(aone())
            return p.transport.open(p.request(MODEL, plain, False)).read()

        for _ in range(20):
            one()
        calls = _calls(one)
        wall: dict[str, list[int]] = {"cold": [], "warm": []}
        for _ in range(pairs):
            time.sleep(0.04)
            for name in ("cold", "warm"):
                t0 = time.perf_counter_ns()
                one()
                wall[name].append(time.perf_counter_ns() - t0)
        server = child.ask({"take": True})["times"][-2 * pairs :]
        p.close()
        loop.run_until_complete(p.aclose())
    finally:
        loop.close()
        child.close()
    out: dict[str, Any] = {
        "pairs": pairs,
        "async": aio,
        "load": list(os.getloadavg()),
        "python_calls_per_request": calls,
        "chunks_per_streamed_reply_p50": statistics.median(chunks),
        "client_cpu_us_per_streamed_chunk_p50": statistics.median(per_chunk),
    }
    for i, name in enumerate(("cold", "warm")):
        own = server[i::2]
        client = [(w - s) / 1000.0 for w, s in zip(wall[name], own, strict=True)]
        out[f"{name}_client_us_p50"] = statistics.median(client)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = benchio.parser(__doc__)
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--replies", type=int, default=140)
    ap.add_argument("--async", dest="aio", action="store_true", help="through AsyncTransport")
    args = ap.parse_args(argv)
    out = run(args.pairs, args.replies, args.aio)
    which = "AsyncTransport" if args.aio else "Transport"
    print(f"HTTP layer per request through {which} (load {out['load'][0]:.2f})")
    print(f"  python calls per request      {out['python_calls_per_request']}")
    print(f"  client p50, cold (after 40 ms) {out['cold_client_us_p50']:7.0f} us")
    print(f"  client p50, warm               {out['warm_client_us_p50']:7.0f} us")
    print(
        f"  streamed reply: {out['chunks_per_streamed_reply_p50']:.0f} chunks, client CPU "
        f"{out['client_cpu_us_per_streamed_chunk_p50']:.2f} us a chunk (p50)"
    )
    benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
