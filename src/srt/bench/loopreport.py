"""The reports of the send loop's workloads (issue 16): ``send``, ``reads`` and ``edits``
as text lines (``srt.bench.send``, ``reads`` and ``edits`` measure them)."""

from __future__ import annotations

from typing import Any

__all__ = ["edits", "reads", "send"]


def send(r: dict[str, Any]) -> list[str]:
    lines = [
        "send: append + Session.send through the transport to srt.testing (server in a "
        "child process); client time = turn wall - the server's own time",
        "  N       body   srt p50/p99 (us)   floor p50 (us)  srt/floor  sendall p50  "
        "stateless p50  stateless/srt  writes/turn  alloc/turn",
    ]
    for n in r["sizes"]:
        x = r["by_turns"][str(n)]
        c, f = x["client_us"], x["floor_us"]
        lines.append(
            f"  {n:<7} {x['body_bytes'] / 1e6:5.1f} MB"
            f" {c['srt']['p50']:>8.0f} {c['srt']['p99']:>8.0f}"
            f" {f['p50']:>12.0f} {x['floor_ratio']['p50_over_p50']:>10.2f}x"
            f" {x['floor_sendall_us']['p50']:>10.0f} {c['stateless']['p50']:>14.0f}"
            f" {x['vs_stateless']:>12.1f}x {x['writes_per_turn']['srt']['p50']:>10.0f}"
            f" {x['alloc_per_turn']['peak'] / 1e3:>9.0f} KB   load {x['load']['before']}"
        )
    lines.append(
        "  ready = a client that holds the finished body and only sends it through the same "
        "transport (what every client pays):"
    )
    for n in r["sizes"]:
        x = r["by_turns"][str(n)]
        lines.append(
            f"  {n:<7} ready p50 {x['client_us']['ready']['p50']:>8.0f} us,"
            f" {x['ready_over_floor']:.2f}x the floor; srt/ready {x['srt_over_ready']:.2f}x"
            " (srt's own work);"
            f" stateless/ready {x['stateless_over_ready']:.1f}x (the most any client"
            " could be ahead of the stateless one)"
        )
    for key, what in (
        ("one_call", "one call = send(append=[user message])"),
        ("asend", "asyncio = append, then await asend(...)"),
        ("per_request", "a handle per request = rt.session(name).send(append=[...])"),
    ):
        one = r.get(key)
        if one is not None:
            lines.append(
                f"  {what}, its own run: {one['turns']:<6}"
                f" srt p50 {one['client_us']['srt']['p50']:>6.0f} us,"
                f" {one['floor_ratio']['p50_over_p50']:.2f}x the floor"
                f" ({one['floor_us']['p50']:.0f} us), stateless {one['vs_stateless']:.1f}x slower"
            )
    if "alloc_slope" in r:
        lines.append(
            f"  allocations per turn grow with N at a log-log slope of {r['alloc_slope']:.2f}; "
            f"client time at {r['client_slope']:.2f}"
        )
    return lines


def reads(r: dict[str, Any]) -> list[str]:
    u = r["us"]
    return [
        f"reads: {r['turns']} turns ({r['messages']} messages), median of {r['reps']}",
        f"  messages(), loaded session     srt {u['srt_messages']:>9.0f} us   naive load "
        f"{u['naive_messages']:>9.0f} us   {r['messages_vs_naive']:.2f}x",
        f"  cold open + messages()         srt {u['srt_cold_messages']:>9.0f} us   naive "
        f"{u['naive_cold_messages']:>9.0f} us   {r['cold_messages_vs_naive']:.2f}x",
        f"  cold open + build              srt {u['srt_cold_build']:>9.0f} us   naive "
        f"{u['naive_cold_build']:>9.0f} us   {r['cold_build_speedup']:.1f}x faster",
        f"  new handle + build, open Runtime: another handle live (copied) "
        f"{u['handle_copied']:.0f} us; the last one dropped (taken over) "
        f"{u['handle_kept']:.0f} us; none in memory (read) {u['handle_read']:.0f} us: "
        f"{r['handle_copy_speedup']:.1f}x, {r['handle_kept_speedup']:.1f}x faster",
    ]


def edits(r: dict[str, Any]) -> list[str]:
    lines = [
        "edits: Session.request after rewind(2) + a new user message, and after edit of "
        "the last user message, against the steady turn's build (median us)",
        "  N        steady    rewind    edit   rewind/steady  edit/steady",
    ]
    for n in r["sizes"]:
        x = r["by_turns"][str(n)]
        u = x["us"]
        lines.append(
            f"  {n:<7} {u['steady']:>7.0f} {u['rewind']:>9.0f} {u['edit']:>7.0f}"
            f" {x['rewind_vs_steady']:>12.2f}x {x['edit_vs_steady']:>11.2f}x   load {x['load']}"
        )
    return lines
