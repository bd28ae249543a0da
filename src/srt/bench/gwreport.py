"""The gateway workload's report: its figures as text lines (``srt.bench.gateway``
measures them)."""

from __future__ import annotations

from typing import Any

__all__ = ["lines"]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _conc_line(name: str, c: dict[str, Any]) -> str:
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in c["cpu_ms_per_request"].items())
    return (
        f"  concurrency, {name} ({c['threads']} threads each), {c['conversations']} "
        f"conversations x {c['turns']} turns: "
        f"errors {c['errors'] or 0}, {c['throughput_rps']:.0f} req/s, overhead p50 "
        f"{c['p50_overhead_ms']:.1f} ms, p99 {c['p99_overhead_ms']:.1f} ms\n"
        f"    CPU ms per request: {cpu}"
    )


def lines(r: dict[str, Any]) -> list[str]:
    load = f"load {r['load'][0]:.1f} -> {r['load_after'][0]:.1f}"
    out = [f"gateway (srt serve; upstream srt.testing in a child process; {load})"]
    o = r.get("overhead")
    if o is not None:
        slope = o["slope_100_to_end"]
        out += [
            f"  as the client sees it, per turn over {o['turns']} turns (1 uvicorn worker, "
            "SQLite; both loopback hops in it): "
            f"p50 {o['p50_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms",
            f"    short chains at turns {o['short_depth'][0]}-{o['short_depth'][1]}: p50 "
            f"{o['p50_at_100_ms']:.2f} / p99 {o['p99_at_100_ms']:.2f} ms; interleaved with the "
            f"last {o['interleaved_turns']}: p50 {o['p50_at_end_ms']:.2f} / p99 "
            f"{o['p99_at_end_ms']:.2f} ms",
            f"    log-log slope of p50 (mean turns {o['mean_depths'][0]:.1f} and "
            f"{o['mean_depths'][1]:.1f}): {'n/a' if slope is None else f'{slope:.3f}'}",
            f"    the same upstream requests sent straight to the upstream (no gateway): p50 "
            f"{o['floor_p50_at_100_ms']:.2f} ms at ~100 turns, "
            f"{o['floor_p50_at_end_ms']:.2f} ms in the last 100; all: p50 "
            f"{o['floor_p50_ms']:.2f} ms, p99 {o['floor_p99_ms']:.2f} ms; GET /health via the "
            f"gateway: p50 {o['hop_p50_ms']:.2f} ms, p99 {o['hop_p99_ms']:.2f} ms",
            f"    overhead less that floor: p50 {o['net_p50_ms']:.2f} ms, "
            f"p99 {o['net_p99_ms']:.2f} ms; ~100: {o['net_p50_at_100_ms']:.2f}, last 100: "
            f"{o['net_p50_at_end_ms']:.2f} ms, slope {_fmt(o['net_slope_100_to_end'])}",
            f"  the gateway's own view (Server-Timing: gateway time minus upstream time): p50 "
            f"{o['inside']['p50_ms']:.2f} ms, p99 {o['inside']['p99_ms']:.2f} ms; ~100: "
            f"{o['inside']['p50_at_100_ms']:.2f}, last 100: {o['inside']['p50_at_end_ms']:.2f} "
            f"ms, slope {_fmt(o['inside']['slope_100_to_end'])}",
            f"  client request bytes: turn 2 {r['request_bytes']['turn_2']}, "
            f"last {r['request_bytes']['last']}, max {r['request_bytes']['max']}",
        ]
    for name, cc in (r.get("cache") or {}).items():
        out.append(
            f"  cache, {name} rules, {cc['turns']} turns, prefix read from turn 2: "
            f"min {100 * cc['min_share_from_turn2']:.1f}%, "
            f"mean {100 * cc['mean_share_from_turn2']:.1f}% "
            f"(rebuilt without markers: {100 * cc['baseline_mean_share']:.1f}%)"
        )
    s = r.get("storage")
    if s is not None:
        out += [
            f"  storage: chain of {s['turns']} {s['chain_bytes']:,} B; with {s['forks']} forks "
            f"{s['chain_plus_forks_bytes']:,} B = {s['ratio']:.3f}x",
            f"    {s['bytes_per_fork']:.0f} B a fork, {s['bytes_per_chain_turn']:.0f} B a chain "
            f"turn; copying the prefix per fork would be {s['naive_copy_ratio']:.1f}x",
        ]
    if "concurrency_sqlite_1_worker" in r:
        out.append(_conc_line("1 worker, SQLite", r["concurrency_sqlite_1_worker"]))
    if "concurrency_postgres" in r:
        c = r["concurrency_postgres"]
        out.append(_conc_line(f"{c['workers']} workers, PostgreSQL", c))
    f = r.get("fault")
    if f is not None:
        out.append(
            f"  fault (SIGKILL mid-stream): client {f.get('client')}; stored "
            f"{f.get('stored_status')} ({f.get('stored_chars')} chars); "
            f"other conversation intact: {f.get('other_conversation_intact')}"
        )
    return out


#: The gateway's figures with issue 18's targets (``report.TARGETS`` rows; a dotted key
#: is a path into the workload's results). The overhead target is the issue's "gateway
#: time minus upstream time", which each response's ``Server-Timing`` gives; the
#: client-side figures (both loopback hops and the body's trip to the upstream in them)
#: are printed above as what a client sees, with no target of their own.
TARGETS: list[tuple[str, str, str, str, float]] = [
    ("gateway", "overhead.inside.p50_ms", "gateway: time - upstream time p50 (ms)", "<=", 2.0),
    ("gateway", "overhead.inside.p99_ms", "gateway: time - upstream time p99 (ms)", "<=", 10.0),
    (
        "gateway",
        "overhead.inside.slope_100_to_end",
        "gateway: time - upstream time, p50 slope",
        "<=",
        0.1,
    ),
    ("gateway", "storage.ratio", "gateway: chain + 100 forks / chain (x)", "<=", 1.1),
]


def value(results: dict[str, Any], key: str) -> float | None:
    """The figure at ``key`` (dotted) in the gateway workload's results, if it ran."""
    v: Any = results
    for part in key.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return None if v is None else float(v)
