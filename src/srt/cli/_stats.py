"""``srt stats``: the usage ledger summed up, with cost and what srt saved against the
two baselines of ``srt.savings``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from .._types import billed
from ..errors import SessionNotFoundError
from ..runtime import Runtime
from ._common import escape_line, latest_session, print_json, print_table, runtime

__all__ = ["stats", "usage_figures", "usage_summary"]


def usage_figures(
    rows: Sequence[Mapping[str, Any]],
    rt: Runtime | None = None,
    every: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Totals of ledger rows, with cost and savings when the models have prices (the
    careful baseline follows ``rt``'s history and sees ``every`` row of its ledger
    (default: ``rt.calls()``) when given; ``srt.savings.usage_figures``)."""
    from ..savings import usage_figures as figures_of  # (and the price list: here)

    if rt is None:
        return figures_of(rows)
    every = rt.calls() if every is None else every
    return figures_of(rows, history=rt.store.tail, context=every)


_AGAINST = {
    "careful": "a careful stateless client (same caching rules)",
    "no_cache": "a client with no prompt caching",
}


def _usd(x: float) -> str:
    if x < 0:
        return "-" + _usd(-x)
    if x == 0:
        return "$0"
    return f"${x:,.2f}" if x >= 100 else f"${x:,.4f}" if x >= 0.01 else f"${x:.6f}"


def _writes(f: Mapping[str, Any]) -> str:
    long = f["cache_write_1h_tokens"]
    return f"{f['cache_write_tokens']:,}" + (f" ({long:,} with a 1-hour TTL)" if long else "")


def _output(f: Mapping[str, Any]) -> str:
    thought = f["reasoning_tokens"]
    return f"{f['output_tokens']:,}" + (f" ({thought:,} reasoning)" if thought else "")


def _names(models: Sequence[str]) -> str:
    """Model names as one line: a name is the caller's (a gateway tenant's) text, and its
    control characters are escaped, not sent to the terminal."""
    return ", ".join(escape_line(m) for m in models)


def _not_ok(rows: Sequence[Mapping[str, Any]]) -> str:
    """The requests that were not plainly answered: the billed ones by status (a failed
    request whose usage was recorded was billed), then those failed with nothing billed
    (``UsageSummary``'s ``errors``)."""
    counts: dict[str, int] = {}
    unbilled = 0
    for r in rows:
        if not billed(r):
            unbilled += 1
        elif r["status"] != "ok":
            status = (
                "failed yet billed" if r["status"] == "error" else escape_line(str(r["status"]))
            )
            counts[status] = counts.get(status, 0) + 1
    text = ", ".join(f"{n:,} {status}" for status, n in sorted(counts.items()))
    if unbilled:
        text += ("; " if text else "") + f"{unbilled:,} failed, not billed"
    return text


def usage_summary(
    rows: Sequence[Mapping[str, Any]],
    rt: Runtime | None = None,
    every: Sequence[Mapping[str, Any]] | None = None,
) -> list[str]:
    """The figures of ``usage_figures`` as aligned lines."""
    f = usage_figures(rows, rt, every)
    lines = [
        ("requests", f"{f['requests']:,}" + (f" ({not_ok})" if (not_ok := _not_ok(rows)) else "")),
        ("input tokens", f"{f['input_tokens']:,}"),
        (
            "  cache reads",
            f"{f['cache_read_tokens']:,} ({f['cache_hit_share']:.1%} cache hit share)",
        ),
        ("  cache writes", _writes(f)),
        ("output tokens", _output(f)),
    ]
    cost = f["cost"]
    if f["requests"] and not f["billed"]:
        lines.append(("cost", "$0 (no request was billed)"))
    elif cost["priced_requests"] == 0 and f["requests"]:
        lines.append(("cost", "no price known for " + _names(cost["unpriced_models"])))
    elif f["requests"] and cost["local_requests"] == cost["priced_requests"]:
        if cost["unpriced_models"]:  # (not "$0": the other requests' cost is unknown)
            n = cost["local_requests"]
            lines.append(
                (
                    "cost",
                    f"$0 for {n:,} local request{'s' if n != 1 else ''}; no price known "
                    "for the others",
                )
            )
            lines.append(("unpriced", _names(cost["unpriced_models"])))
        else:
            lines.append(("cost", "$0 (local: the model runs on this machine)"))
    elif f["requests"]:
        local = cost["local_requests"]
        lines.append(
            (
                "cost",
                f"{_usd(cost['total_usd'])} (input {_usd(cost['input_usd'])}, "
                f"output {_usd(cost['output_usd'])}; {cost['source']} prices of each "
                "request's date" + (f"; {local:,} local requests at $0" if local else "") + ")",
            )
        )
        for key, (name, b) in zip(("saved against", ""), cost["baselines"].items(), strict=True):
            lines.append(
                (
                    key,
                    f"{_AGAINST[name]}: {_usd(b['saved_usd'])} of {_usd(b['input_usd'])} "
                    f"input ({b['saved_share']:.1%})",
                )
            )
        if cost["unpriced_models"]:
            lines.append(("unpriced", _names(cost["unpriced_models"])))
    if n := f["unmetered"]:
        lines.append(
            (
                "unmetered",
                f"{n:,} billed request{'s' if n != 1 else ''} reported no usage (cut off "
                "before the provider's usage came): not in these figures",
            )
        )
    width = max(len(k) for k, _ in lines)
    return [f"{k.ljust(width)}  {v}" for k, v in lines]


def stats(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        tenant = getattr(args, "tenant", None)
        name = None if args.all or tenant is not None else args.name or latest_session(rt)
        label = "all sessions"
        every = rt.calls()
        if tenant is not None:
            # the gateway's sessions of one tenant are named gw/<tenant>/...
            prefix = f"gw/{tenant}/"
            rows = [r for r in every if str(r.get("session_name") or "").startswith(prefix)]
            label = f"gateway tenant {escape_line(tenant)}"
        elif name is None:
            rows = every
        else:
            try:
                rows = rt.session(name, create=False).calls()
                label = f"session {escape_line(name)}"
            except SessionNotFoundError:
                rows = rt.calls(session_name=name)
                if not rows:
                    raise
                label = f"session {escape_line(name)} (deleted)"
        models = sorted({str(r["model"]) for r in rows})
        per_model = {
            m: usage_figures([r for r in rows if r["model"] == m], rt, every) for m in models
        }
        if args.json:
            figures = usage_figures(rows, rt, every)
            figures["models"] = per_model
            print_json(figures)
            return
        lines = usage_summary(rows, rt, every)
    print(f"{label}, from the usage ledger:")
    for line in lines:
        print("  " + line)
    if len(models) > 1:
        table = [("MODEL", "REQUESTS", "INPUT", "CACHED", "OUTPUT")]
        for m, f in per_model.items():
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
