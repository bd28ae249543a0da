"""What ``UsageSummary.of`` (``Session.usage()``, ``Runtime.usage()``, ``srt stats``) costs
over a large ledger.

    python bench/usage_summary.py                       # 200,000 rows, 7 rounds
    python bench/usage_summary.py --rows 50000 --rounds 3 --json out.json

``--rows`` ledger rows are made as the store gives them (``CallRecord.as_dict()``, every
column present): mostly ``ok`` replies with usage, some cut off (``incomplete``, with or
without usage), cancelled, refused (``error``, no usage) and failed yet billed (``error``
with usage); OpenAI-shaped rows (no cache writes) and Anthropic-shaped ones (reads,
5-minute and 1-hour writes), reasoning on some, rows of an srt before the 1-hour and
reasoning columns (``None`` there), and a few whose provider reported more cache than
input. The summary is timed ``--rounds`` times in each of three ways, alternating, in
this one process: *before* (the row-by-row ``_count`` calls srt made before this bench),
*now* (``UsageSummary.of``) and, as a yardstick the machine's load moves alike,
*unclamped* (the sums srt made before it clamped anything, one generator a column: wrong
where a row reports more cache than input, 96 ms for 200,000 rows on a quiet machine when
*before* took 265 ms). *before* and *now* must give the same summary. Printed: the
medians and their ratios.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from typing import Any

import benchio

from srt._types import UsageSummary, _count, billed
from srt.store.base import CallRecord


def rows(n: int, seed: int = 21) -> list[dict[str, Any]]:
    """``n`` ledger rows as ``Session.calls()`` gives them (see the docstring)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        status = (
            "ok" if roll < 0.86 else
            "incomplete" if roll < 0.90 else
            "cancelled" if roll < 0.93 else
            "error"
        )  # fmt: skip
        usage = status == "ok" or (status != "cancelled" and rng.random() < 0.5)
        total = rng.randrange(200, 120_000)
        anthropic = rng.random() < 0.4
        read = rng.randrange(0, total) if rng.random() < 0.7 else 0
        write = rng.randrange(0, total - read + 1) if anthropic and rng.random() < 0.5 else 0
        if rng.random() < 0.01:  # a provider's cache counts past its input
            read, write = total + 5, 7
        out_tokens = rng.randrange(1, 4_000)
        old = rng.random() < 0.1  # a row written before those columns
        w1h = (write if rng.random() < 0.3 else 0) if anthropic else 0
        thought = rng.randrange(0, out_tokens) if not anthropic and rng.random() < 0.3 else 0
        rec = CallRecord(
            at=1_700_000_000.0 + i,
            session=1 + i % 50,
            session_name=f"s{i % 50}",
            node=i + 1 if status == "ok" else None,
            provider="anthropic" if anthropic else "openai",
            model="claude-sonnet-4-5" if anthropic else "gpt-4o",
            format="anthropic.messages" if anthropic else "openai.chat",
            body_hash=b"\0" * 16,
            body_bytes=rng.randrange(500, 400_000),
            messages=2 + i % 40,
            input_tokens=total if usage else None,
            cache_read_tokens=read if usage else None,
            cache_write_tokens=write if usage else None,
            output_tokens=out_tokens if usage else None,
            status=status,
            cache_write_1h_tokens=w1h if usage and not old else None,
            reasoning_tokens=thought if usage and not old else None,
            id=i + 1,
        )
        out.append(rec.as_dict())
    return out


#: A ledger row's usage columns: all None in a billed row whose provider reported none.
_USAGE = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)


def before(rows: list[dict[str, Any]]) -> UsageSummary:
    """``UsageSummary.of`` as srt had it before this bench (row by row through
    ``_count``, 265 ms for 200,000 rows)."""
    tot = read = write = out = write_1h = thought = size = paid = unmetered = 0
    statuses: dict[str, int] = {}
    for r in rows:
        status = str(r.get("status"))
        statuses[status] = statuses.get(status, 0) + 1
        size += _count(r, "body_bytes")
        if not billed(r):
            continue
        paid += 1
        if all(r.get(k) is None for k in _USAGE):  # billed, with no usage reported
            unmetered += 1
        t = _count(r, "input_tokens")
        cr = min(_count(r, "cache_read_tokens"), t)
        cw = min(_count(r, "cache_write_tokens"), t - cr)
        o = _count(r, "output_tokens")
        tot, read, write, out = tot + t, read + cr, write + cw, out + o
        write_1h += min(_count(r, "cache_write_1h_tokens"), cw)
        thought += min(_count(r, "reasoning_tokens"), o)
    return UsageSummary(
        requests=len(rows),
        errors=len(rows) - paid,
        input_tokens=tot,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=out,
        body_bytes=size,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=thought,
        billed=paid,
        statuses=tuple(sorted(statuses.items())),
        unmetered=unmetered,
    )


def unclamped(rows: list[dict[str, Any]]) -> tuple[int, ...]:
    """The raw sums srt's summary made before it clamped (and before ``billed``), as
    its code read then."""

    def total(key: str) -> int:
        return sum(int(r[key] or 0) for r in rows)

    return (
        sum(1 for r in rows if r["status"] != "ok"),
        total("input_tokens"),
        total("cache_read_tokens"),
        total("cache_write_tokens"),
        total("output_tokens"),
        total("body_bytes"),
        sum(int(r.get("cache_write_1h_tokens") or 0) for r in rows),
        sum(int(r.get("reasoning_tokens") or 0) for r in rows),
    )


def run(n: int, rounds: int) -> dict[str, Any]:
    ledger = rows(n)
    ways = {"before": before, "now": UsageSummary.of, "unclamped": unclamped}
    got = {name: f(ledger) for name, f in ways.items() if name != "unclamped"}
    if got["before"] != got["now"]:
        raise SystemExit(f"the summaries differ:\n{got['before']}\n{got['now']}")
    ms: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, f in ways.items():
            t0 = time.perf_counter()
            f(ledger)
            ms[name].append((time.perf_counter() - t0) * 1e3)
    med = {name: statistics.median(v) for name, v in ms.items()}
    return {
        "rows": n,
        "rounds": rounds,
        "ms": ms,
        "median_ms": med,
        "before_over_now": med["before"] / med["now"],
        "now_over_unclamped": med["now"] / med["unclamped"],
        "billed": got["now"].billed,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = benchio.parser(__doc__)
    ap.add_argument("--rows", type=int, default=200_000, help="ledger rows (200,000)")
    ap.add_argument("--rounds", type=int, default=7, help="timings of each way (7)")
    args = ap.parse_args(argv)
    out = run(args.rows, args.rounds)
    med = out["median_ms"]
    print(f"UsageSummary.of over {out['rows']:,} ledger rows ({out['billed']:,} billed), "
          f"median of {out['rounds']}:")  # fmt: skip
    print(f"  before  {med['before']:8.1f} ms")
    print(f"  now     {med['now']:8.1f} ms   ({out['before_over_now']:.2f}x faster)")
    print(f"  unclamped {med['unclamped']:6.1f} ms   (now: {out['now_over_unclamped']:.2f}x it)")
    benchio.dump(args.json, out)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
