"""``srt stats``: the usage ledger summed up, with cost and savings under the price table."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from .._types import UsageSummary
from ..errors import SessionNotFoundError
from ..pricing import PRICES_AS_OF, Pricing
from ._common import escape_line, print_json, print_table, runtime

__all__ = ["stats", "usage_figures", "usage_summary"]


def usage_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Totals of ledger rows, with cost and savings when the models have prices."""
    u = UsageSummary.of([dict(r) for r in rows])
    out: dict[str, Any] = {
        "requests": u.requests,
        "errors": u.errors,
        "input_tokens": u.input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "output_tokens": u.output_tokens,
        "cache_hit_share": round(u.cache_hit_share, 4),
    }
    s = Pricing.default().savings(rows)
    out["cost"] = {
        "prices_as_of": PRICES_AS_OF,
        "priced_requests": s.priced_requests,
        "unpriced_models": list(s.unpriced_models),
        "input_usd": round(s.billed_input_usd, 6),
        "output_usd": round(s.output_usd, 6),
        "total_usd": round(s.billed_input_usd + s.output_usd, 6),
        "stateless_input_usd": round(s.stateless_input_usd, 6),
        "saved_usd": round(s.saved_usd, 6),
        "saved_share": round(s.saved_share, 4),
    }
    return out


def _usd(x: float) -> str:
    if x == 0:
        return "$0"
    return f"${x:,.2f}" if x >= 100 else f"${x:,.4f}" if x >= 0.01 else f"${x:.6f}"


def _not_ok(rows: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        if r["status"] != "ok":
            counts[str(r["status"])] = counts.get(str(r["status"]), 0) + 1
    return ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))


def usage_summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The figures of ``usage_figures`` as aligned lines."""
    f = usage_figures(rows)
    lines = [
        ("requests", f"{f['requests']:,}" + (f" ({_not_ok(rows)})" if f["errors"] else "")),
        ("input tokens", f"{f['input_tokens']:,}"),
        (
            "  cache reads",
            f"{f['cache_read_tokens']:,} ({f['cache_hit_share']:.1%} cache hit share)",
        ),
        ("  cache writes", f"{f['cache_write_tokens']:,}"),
        ("output tokens", f"{f['output_tokens']:,}"),
    ]
    cost = f["cost"]
    if cost["priced_requests"] == 0 and f["requests"]:
        lines.append(("cost", "no price known for " + ", ".join(cost["unpriced_models"])))
    elif f["requests"]:
        lines.append(
            (
                "cost",
                f"{_usd(cost['total_usd'])} (input {_usd(cost['input_usd'])}, "
                f"output {_usd(cost['output_usd'])}; list prices of {cost['prices_as_of']})",
            )
        )
        lines.append(
            (
                "saved",
                f"{_usd(cost['saved_usd'])} of input, {cost['saved_share']:.1%}, against a "
                f"stateless client ({_usd(cost['stateless_input_usd'])})",
            )
        )
        if cost["unpriced_models"]:
            lines.append(("unpriced", ", ".join(cost["unpriced_models"])))
    width = max(len(k) for k, _ in lines)
    return [f"{k.ljust(width)}  {v}" for k, v in lines]


def stats(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        label = "all sessions"
        if args.name is None:
            rows = rt.calls()
        else:
            try:
                rows = rt.session(args.name, create=False).calls()
                label = f"session {escape_line(args.name)}"
            except SessionNotFoundError:
                rows = [c.as_dict() for c in rt.store.calls(session_name=args.name)]
                if not rows:
                    raise
                label = f"session {escape_line(args.name)} (deleted)"
    if args.json:
        figures = usage_figures(rows)
        figures["models"] = {
            m: usage_figures([r for r in rows if r["model"] == m])
            for m in sorted({str(r["model"]) for r in rows})
        }
        print_json(figures)
        return
    print(f"{label}, from the usage ledger:")
    for line in usage_summary(rows):
        print("  " + line)
    models = sorted({str(r["model"]) for r in rows})
    if len(models) > 1:
        table = [("MODEL", "REQUESTS", "INPUT", "CACHED", "OUTPUT")]
        for m in models:
            f = usage_figures([r for r in rows if r["model"] == m])
            table.append(
                (
                    escape_line(m),
                    f"{f['requests']:,}",
                    f"{f['input_tokens']:,}",
                    f"{f['cache_read_tokens']:,}",
                    f"{f['output_tokens']:,}",
                )
            )
        print()
        print_table(table, right=(1, 2, 3, 4))
