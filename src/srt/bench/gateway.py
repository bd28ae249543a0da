"""``--workload gateway``: ``srt serve`` measured from outside, as a client sees it.

The gateway runs as its own process (``srt serve``: one uvicorn worker on SQLite, or
several on PostgreSQL); the upstream is srt.testing's provider server in a child process
(``gwupstream``), timing each request it serves; the client is raw HTTP (httpx), so no
SDK parsing is counted. ``--gw-parts`` picks the parts below.

- **overhead**: per turn, the client's wall time minus the upstream's own time serving
  the request (from its handler's start to the end of its reply, reading the body
  included), on one ``previous_response_id`` chain of T turns: p50 and p99 over the
  chain. Everything between the client and the upstream counts against the gateway:
  both loopback hops, HTTP parsing, the store, assembly and JSON. The slope: the chain's
  last 100 turns are interleaved one for one with turns of 10 short chains at turns
  96-105, so both ends are measured in the same minutes under the same load; the log-log
  slope of p50 is taken between the mean turns measured. The floor: each measured
  turn's upstream request (the same bytes) sent straight to the upstream; the hop: a
  ``GET /health`` through the gateway on the chain's connection after each turn.
  The gateway's own view: each response's ``Server-Timing`` header gives the gateway's
  time (request in to response head out) and the part of it spent upstream; their
  difference, per turn, is the overhead as the issue words it ("gateway time minus
  upstream time"), without the client's hop to the gateway.
- **request size**: the bytes the client sends per turn (only the new input).
- **cache**: on Anthropic and Bedrock rules (the server's accounting), the share of each
  request's prefix (the previous request's prompt) read from the cache from turn 2 on,
  against a stateless gateway that resends the history without cache markers.
- **storage**: a database holding one chain of T turns (the gateway stopped), and a copy
  of it plus F forks from the middle response (each one new turn), compared in bytes.
- **concurrency**: N conversations of M turns at once (Conversations API), one client
  connection each, on one worker on SQLite and on ``--gw-workers`` workers on
  PostgreSQL: errors, throughput, overhead (wall time less the mean upstream time, so
  queueing counts), and the CPU each process used per request.
- **fault**: a worker killed mid-stream (SIGKILL): what the client got, what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from .gwserve import KEY, db_bytes, gateway, gateway_pid, pid_of, tree_cpu
from .gwupstream import Upstream
from .report import open_private

__all__ = ["run_gateway"]

INSTRUCTIONS = "You are a careful assistant. " * 300  # ~8,700 bytes: over every cache minimum


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] if s else 0.0


def _floor(raw: httpx.Client, up: Upstream) -> float:
    """The gateway's last upstream request (the same bytes) sent straight to the upstream:
    wall time less the upstream's own, in ms (carrying it with no gateway at all)."""
    path, body = up.last()
    n = up.count()
    t0 = time.perf_counter()
    resp = raw.post(
        up.url + path,
        content=body,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )
    wall = time.perf_counter() - t0
    resp.raise_for_status()
    up.settle(n + 1)
    return (wall - sum(x.upstream_s for x in up.since(n))) * 1000.0


def _hop(client: httpx.Client) -> float:
    """ms of a request the gateway answers at once (no store, no upstream): the hop."""
    t0 = time.perf_counter()
    client.get(str(client.base_url).removesuffix("/v1/") + "/health").raise_for_status()
    return (time.perf_counter() - t0) * 1000.0


class _Chain:
    """One ``previous_response_id`` chain, a turn at a time: per turn the overhead (the
    client's wall time less the upstream's own time), the bytes the client sent, the
    response id, and with a ``raw`` client the floor (the same upstream request sent
    straight to the upstream)."""

    def __init__(self, client: httpx.Client, up: Upstream, model: str) -> None:
        self.client, self.up, self.model = client, up, model
        self.prev: str | None = None
        self.overhead: list[float] = []
        self.sizes: list[int] = []
        self.ids: list[str] = []
        self.floor: list[float] = []
        self.hop: list[float] = []
        self.inside: list[float] = []  # Server-Timing: gateway - upstream, ms

    def turn(self, raw: httpx.Client | None = None) -> float:
        i = len(self.ids)
        body: dict[str, Any] = {
            "model": self.model,
            "input": f"question {i}: " + "word " * (20 + i % 40),
            "instructions": INSTRUCTIONS,
        }
        if self.prev:
            body["previous_response_id"] = self.prev
        data = json.dumps(body).encode()
        n = self.up.count()
        t0 = time.perf_counter()
        resp = self.client.post(
            "/responses", content=data, headers={"content-type": "application/json"}
        )
        wall = time.perf_counter() - t0
        resp.raise_for_status()
        self.up.settle(n + 1)
        upstream = sum(x.upstream_s for x in self.up.since(n))
        over = (wall - upstream) * 1000.0
        self.overhead.append(over)
        self.inside.append(_inside(resp.headers.get("server-timing", "")))
        self.sizes.append(len(data))
        self.prev = resp.json()["id"]
        self.ids.append(self.prev)
        if raw is not None:
            self.floor.append(_floor(raw, self.up))
            self.hop.append(_hop(self.client))
        return over


def _inside(header: str) -> float:
    """ms the gateway spent on a request less its upstream calls, from ``Server-Timing``."""
    durs: dict[str, float] = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        with contextlib.suppress(ValueError):
            durs[name] = float(dur)
    if "gateway" not in durs or "upstream" not in durs:
        raise RuntimeError(f"the gateway sent no Server-Timing with both parts: {header!r}")
    return durs["gateway"] - durs["upstream"]


def _chain(
    client: httpx.Client,
    up: Upstream,
    model: str,
    turns: int,
    tick: Callable[[], None],
) -> dict[str, Any]:
    """One chain of ``turns`` (see ``_Chain``)."""
    ch = _Chain(client, up, model)
    for _ in range(turns):
        ch.turn()
        tick()
    return {"overhead_ms": ch.overhead, "sizes": ch.sizes, "ids": ch.ids}


def _cache(client: httpx.Client, up: Upstream, model: str, turns: int) -> dict[str, Any]:
    """Share of each request's prefix read from the cache, turn 2 on, and a baseline."""
    before = up.count()
    _chain(client, up, model, turns, lambda: None)
    recs = [r for r in up.since(before) if r.endpoint.endswith(("messages", "converse"))]
    shares = []
    for prev, cur in itertools.pairwise(recs):
        prefix = prev.prompt_tokens
        shares.append(cur.cache_read / prefix if prefix else 0.0)
    # the baseline: the same requests, the history rebuilt each turn with no markers
    base_shares = []
    history: list[dict[str, Any]] = []
    anthropic = model.startswith("claude")
    url = up.url + ("/v1/messages" if anthropic else "/model/anthropic.claude-3-7-sonnet/converse")
    headers = (
        {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        if anthropic
        else {"authorization": f"Bearer {KEY}"}
    )
    last_prompt = 0
    with httpx.Client() as raw:
        for i in range(turns):
            text = f"question {i}: " + "word " * (20 + i % 40)
            history.append(
                {
                    "role": "user",
                    "content": [
                        {"text": text} if not anthropic else {"type": "text", "text": text}
                    ],
                }
            )
            body: dict[str, Any] = {"messages": history}
            if anthropic:
                body.update(model=model, max_tokens=1024, system=INSTRUCTIONS)
            else:
                body["system"] = [{"text": INSTRUCTIONS}]
            n = up.count()
            r = raw.post(url, json=body, headers=headers)
            r.raise_for_status()
            up.settle(n + 1)
            rec = up.since(n)[0]
            if i:
                base_shares.append(rec.cache_read / last_prompt if last_prompt else 0.0)
            last_prompt = rec.prompt_tokens
            reply = rec.reply_text
            part = {"type": "text", "text": reply} if anthropic else {"text": reply}
            history.append({"role": "assistant", "content": [part]})
    return {
        "turns": turns,
        "min_share_from_turn2": min(shares) if shares else 0.0,
        "mean_share_from_turn2": statistics.fmean(shares) if shares else 0.0,
        "baseline_mean_share": statistics.fmean(base_shares) if base_shares else 0.0,
    }


async def _concurrent(
    url: str, up: Upstream, convs: int, turns: int, pids: dict[str, int] | None = None
) -> dict[str, Any]:
    """``convs`` conversations of ``turns`` turns at once (Conversations API); errors,
    throughput, overhead, and the CPU each process used per request: the client (this
    process), the gateway (all its workers), the upstream and ``pids``' other trees."""
    timeout = httpx.Timeout(600.0)
    errors: dict[str, int] = {}
    said: list[str] = []  # the first few errors' messages
    walls: list[float] = []

    def client() -> httpx.AsyncClient:
        # One client (connection) per conversation: a shared pool of 1,000 costs the
        # client a scan of the pool per request (the client becomes what is measured).
        # TCP_NODELAY: else a body waits for the ACK of its headers (~40 ms on loopback).
        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=1),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            verify=False,  # plain HTTP on loopback: no certificates to load
        )
        return httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout)

    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client()) for _ in range(convs)]
        ids = []
        for c in clients:
            r = await c.post("/conversations", json={})
            ids.append(r.json()["id"])
        n0 = up.count()
        trees = {"gateway": pid_of(url), "upstream": up.pid, **(pids or {})}
        cpu0 = {k: tree_cpu(v) for k, v in trees.items()}
        client0 = time.process_time()

        async def one(client: httpx.AsyncClient, cid: str) -> None:
            for i in range(turns):
                body = {
                    "model": "gpt-4o-mini",
                    "input": f"turn {i} " + "word " * 30,
                    "conversation": cid,
                }
                t0 = time.perf_counter()
                try:
                    r = await client.post("/responses", json=body)
                    walls.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                        if len(said) < 5:
                            said.append(f"{r.status_code}: {r.text[:400]}")
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    if len(said) < 5:
                        said.append(f"{type(exc).__name__}: {exc}"[:400])

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c, i) for c, i in zip(clients, ids, strict=True)))
        elapsed = time.perf_counter() - t0
        client_cpu = time.process_time() - client0
        cpu = {k: tree_cpu(v) - cpu0[k] for k, v in trees.items()}
    up.settle(n0 + convs * turns)
    ups = [x.upstream_s for x in up.since(n0)]
    # overhead per request: its wall time minus the mean upstream time (requests overlap,
    # so a per-request pairing is not possible); queueing in the gateway counts as overhead
    mean_up = statistics.fmean(ups) if ups else 0.0
    over = [(w - mean_up) * 1000.0 for w in walls]
    return {
        "conversations": convs,
        "turns": turns,
        "requests": convs * turns,
        "errors": errors,
        "error_samples": said,
        "throughput_rps": convs * turns / elapsed,
        "wall_s": elapsed,
        "p50_overhead_ms": _pct(over, 0.5),
        "p99_overhead_ms": _pct(over, 0.99),
        "mean_upstream_ms": mean_up * 1000.0,
        # CPU per request: what each part costs, whatever else the machine is running
        "cpu_ms_per_request": {
            "client": client_cpu * 1000.0 / (convs * turns),
            **{k: v * 1000.0 / (convs * turns) for k, v in cpu.items()},
        },
    }


def _fault(work: str, up: Upstream) -> dict[str, Any]:
    db = os.path.join(work, "fault.db")
    out: dict[str, Any] = {}
    with gateway(work, db, up.url) as url, httpx.Client(base_url=url, timeout=60) as c:
        other = c.post("/conversations", json={}).json()["id"]
        c.post("/responses", json={"model": "m", "input": "untouched", "conversation": other})
        before = [i["id"] for i in c.get(f"/conversations/{other}/items").json()["data"]]
        up.fault("*", "slow", interval=0.01)
        rid, got = None, 0
        pid = gateway_pid(url)
        try:
            with c.stream(
                "POST", "/responses", json={"model": "m", "input": "a story", "stream": True}
            ) as r:
                t0 = time.monotonic()
                for line in r.iter_lines():
                    if line.startswith("data: ") and rid is None:
                        rid = json.loads(line[6:]).get("response", {}).get("id")
                    if "output_text.delta" in line:
                        got += 1
                    if got >= 3 and time.monotonic() - t0 > 1.5 and pid:
                        os.kill(pid, signal.SIGKILL)
                        pid = 0
            out["client"] = "stream ended without response.completed"
        except httpx.HTTPError as exc:
            out["client"] = f"{type(exc).__name__} (clean transport error)"
        up.clear()
    with gateway(work, db, up.url) as url, httpx.Client(base_url=url, timeout=60) as c:
        stored = c.get(f"/responses/{rid}").json()
        out["stored_status"] = stored.get("status")
        # (the text the stored partial reply kept: its message items' output_text parts;
        # a response object carries no ``output_text``, the SDK's own convenience)
        out["stored_chars"] = sum(
            len(part.get("text") or "")
            for item in stored.get("output") or []
            if item.get("type") == "message"
            for part in item.get("content") or []
            if part.get("type") == "output_text"
        )
        after = [i["id"] for i in c.get(f"/conversations/{other}/items").json()["data"]]
        r = c.post("/responses", json={"model": "m", "input": "still fine", "conversation": other})
        out["other_conversation_intact"] = after == before and r.status_code == 200
    return out


def _slope(lo: float, hi: float, depths: tuple[float, float]) -> float | None:
    """Log-log slope of a time from ``lo`` at the mean depth ``depths[0]`` to ``hi`` at
    ``depths[1]`` (None unless the depths are at least 100 and 1.5x apart)."""
    d_lo, d_hi = depths
    if d_lo < 90 or d_hi < 1.5 * d_lo or lo <= 0 or hi <= 0:
        return None
    return math.log(hi / lo) / math.log(d_hi / d_lo)


PARTS = ("overhead", "cache", "storage", "concurrency", "pg", "fault")


def _nodelay() -> httpx.HTTPTransport:
    return httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


#: Short chains the turns at about 100 are taken from, interleaved with the long chain's.
SHORT_CHAINS = 10


def _overhead(work: str, up: Upstream, turns: int, tick: Callable[[], None]) -> dict[str, Any]:
    """The long chain's ``turns`` turns, the last ``m`` (100) of them interleaved one for
    one with ``m`` turns of short chains at about 100 turns deep (``SHORT_CHAINS`` chains
    grown to 95, then ``m / SHORT_CHAINS`` turns each), so the two ends of the slope are
    measured in the same minutes, under the same load."""
    m = min(100, turns // 2)
    per = max(1, m // SHORT_CHAINS)
    short_depth = max(0, min(100, turns // 10) - per // 2)
    db = os.path.join(work, "chain.db")
    model = "gpt-4o-mini"
    with (
        gateway(work, db, up.url) as url,
        httpx.Client(base_url=url, timeout=120, transport=_nodelay()) as c,
        httpx.Client(timeout=120, transport=_nodelay()) as raw,
    ):
        long = _Chain(c, up, model)
        for _ in range(turns - m):
            long.turn(raw)
            tick()
        shorts = [_Chain(c, up, model) for _ in range(SHORT_CHAINS)]
        for sc in shorts:
            for _ in range(short_depth):
                sc.turn()
        lo, lo_floor, lo_inside = [], [], []
        for j in range(m):
            long.turn(raw)
            tick()
            sc = shorts[(j // per) % SHORT_CHAINS]
            lo.append(sc.turn(raw))
            lo_floor.append(sc.floor[-1])
            lo_inside.append(sc.inside[-1])
    ov, fl = long.overhead, long.floor
    hi, hi_floor = ov[turns - m :], fl[turns - m :]
    net = [o - f for o, f in zip(ov, fl, strict=True)]
    lo_net = [o - f for o, f in zip(lo, lo_floor, strict=True)]
    hi_net = net[turns - m :]
    p50_lo, p50_hi = statistics.median(lo), statistics.median(hi)
    depths = (short_depth + (per + 1) / 2, turns - m + (m + 1) / 2)  # mean turn measured
    o: dict[str, Any] = {
        "turns": turns,
        "p50_ms": statistics.median(ov),
        "p99_ms": _pct(ov, 0.99),
        "interleaved_turns": m,
        "short_depth": [short_depth + 1, short_depth + per],
        "p50_at_100_ms": p50_lo,
        "p99_at_100_ms": _pct(lo, 0.99),
        "p50_at_end_ms": p50_hi,
        "p99_at_end_ms": _pct(hi, 0.99),
        "mean_depths": depths,
        "slope_100_to_end": _slope(p50_lo, p50_hi, depths),
        # the same upstream requests sent straight to the upstream: carrying the
        # growing body costs this much without any gateway
        "floor_p50_at_100_ms": statistics.median(lo_floor),
        "floor_p50_at_end_ms": statistics.median(hi_floor),
        "floor_p50_ms": statistics.median(fl),
        "floor_p99_ms": _pct(fl, 0.99),
        "hop_p50_ms": statistics.median(long.hop),
        "hop_p99_ms": _pct(long.hop, 0.99),
        "net_p50_ms": statistics.median(net),
        "net_p99_ms": _pct(net, 0.99),
        "net_p50_at_100_ms": statistics.median(lo_net),
        "net_p50_at_end_ms": statistics.median(hi_net),
    }
    o["net_slope_100_to_end"] = _slope(o["net_p50_at_100_ms"], o["net_p50_at_end_ms"], depths)
    inside, hi_inside = long.inside, long.inside[turns - m :]
    o["inside"] = {
        "p50_ms": statistics.median(inside),
        "p99_ms": _pct(inside, 0.99),
        "p50_at_100_ms": statistics.median(lo_inside),
        "p50_at_end_ms": statistics.median(hi_inside),
        "slope_100_to_end": _slope(
            statistics.median(lo_inside), statistics.median(hi_inside), depths
        ),
    }
    sizes = long.sizes
    return {
        "overhead": o,
        "request_bytes": {
            "turn_2": sizes[1] if len(sizes) > 1 else sizes[0],
            "last": sizes[-1],
            "max": max(sizes[1:] or sizes),
        },
    }


def _storage(
    work: str, up: Upstream, turns: int, forks: int, tick: Callable[[], None]
) -> dict[str, Any]:
    """A chain of ``turns`` in one database; a copy of it (the gateway stopped) plus
    ``forks`` forks from the middle response, each one new turn."""
    chain_db = os.path.join(work, "storage-chain.db")
    with gateway(work, chain_db, up.url) as url, httpx.Client(base_url=url, timeout=120) as c:
        ids = _chain(c, up, "gpt-4o-mini", turns, tick)["ids"]
    chain_bytes = db_bytes(chain_db)
    fork_db = os.path.join(work, "storage-forks.db")
    with open(chain_db, "rb") as src, open_private(fork_db) as dst:  # (copyfile: umask's mode)
        shutil.copyfileobj(src, dst)
    mid = ids[len(ids) // 2]
    with gateway(work, fork_db, up.url) as url, httpx.Client(base_url=url, timeout=120) as c:
        for i in range(forks):
            body = {
                "model": "gpt-4o-mini",
                "input": f"fork {i}: " + "word " * (20 + i % 40),
                "instructions": INSTRUCTIONS,
                "previous_response_id": mid,
            }
            c.post("/responses", json=body).raise_for_status()
            tick()
    fork_bytes = db_bytes(fork_db)
    return {
        "turns": turns,
        "forks": forks,
        "chain_bytes": chain_bytes,
        "chain_plus_forks_bytes": fork_bytes,
        "ratio": fork_bytes / chain_bytes,
        "bytes_per_chain_turn": chain_bytes / turns,
        "bytes_per_fork": (fork_bytes - chain_bytes) / forks if forks else 0.0,
        "naive_copy_ratio": (chain_bytes + forks * chain_bytes / 2) / chain_bytes,
    }


def _pg_concurrency(
    work: str,
    up: Upstream,
    conversations: int,
    turns: int,
    workers: int,
    pg_url: str | None,
    threads: int,
) -> dict[str, Any]:
    """The concurrency run on PostgreSQL with ``workers`` uvicorn workers: on ``pg_url``,
    or on a server started here (srt.testing.pgserver, default settings: fsync on)."""
    from ..testing.pgserver import PgServer

    with contextlib.ExitStack() as stack:
        pids: dict[str, int] = {}
        if pg_url:
            url = pg_url
        else:
            server = stack.enter_context(PgServer(fast=False))
            url = server.url
            with open(os.path.join(server.data, "postmaster.pid"), encoding="ascii") as f:
                pids["postgres"] = int(f.readline())
        with gateway(work, url, up.url, threads=threads, workers=workers) as gw:
            out = asyncio.run(_concurrent(gw, up, conversations, turns, pids))
    out["workers"] = workers
    out["threads"] = threads
    out["store"] = "postgresql (given URL)" if pg_url else "postgresql (started here, fsync on)"
    return out


def run_gateway(
    work: str,
    *,
    turns: int = 1000,
    conversations: int = 1000,
    conversation_turns: int = 20,
    forks: int = 100,
    cache_turns: int = 30,
    pg_workers: int = 4,
    pg_url: str | None = None,
    threads: int = 64,
    parts: tuple[str, ...] = PARTS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown gateway parts {sorted(unknown)}; choose from {PARTS}")
    tick_n = [0]
    total = turns * ("overhead" in parts) + (turns + forks) * ("storage" in parts) + 1

    def tick() -> None:
        tick_n[0] += 1
        if progress is not None:
            progress(min(total, tick_n[0]), total)

    out: dict[str, Any] = {"load": os.getloadavg(), "parts": list(parts)}
    up = Upstream(KEY)
    try:
        if "overhead" in parts:
            out.update(_overhead(work, up, turns, tick))
        if "cache" in parts:
            with (
                gateway(work, os.path.join(work, "cache.db"), up.url) as url,
                httpx.Client(base_url=url, timeout=120, transport=_nodelay()) as c,
            ):
                out["cache"] = {
                    "anthropic": _cache(c, up, "claude-sonnet-4-5", cache_turns),
                    "bedrock": _cache(c, up, "bedrock/claude", cache_turns),
                }
        if "storage" in parts:
            out["storage"] = _storage(work, up, turns, forks, tick)
        if "concurrency" in parts:
            db = os.path.join(work, "concurrent.db")
            with gateway(work, db, up.url, threads=threads) as url:
                cc = asyncio.run(_concurrent(url, up, conversations, conversation_turns))
            out["concurrency_sqlite_1_worker"] = {**cc, "workers": 1, "threads": threads}
        if "pg" in parts:
            out["concurrency_postgres"] = _pg_concurrency(
                work, up, conversations, conversation_turns, pg_workers, pg_url, threads
            )
        if "fault" in parts:
            out["fault"] = _fault(work, up)
    finally:
        up.close()
    out["load_after"] = os.getloadavg()
    return out
