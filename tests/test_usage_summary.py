"""``UsageSummary.of`` in one pass (brief usage21) gives what its definition gives.

The summary adds a row as srt records it (plain ints, cache within the input, or no
usage at all) as it is, and sends any other row through ``token_counts`` and
``_count``; a row without every column is read as if the missing ones were ``None``.
Here it is compared with a plain reading of its definition, written out below, over
random ledgers: ``None`` counts, negative and huge ones (past 64 bits), more cache
than input, more 1-hour writes than writes and more reasoning than output, failed
rows with and without usage, statuses that are not text (``1`` and ``True`` counted
apart, as their text; a list), ints of a subclass, missing columns, and now and then a count
that is no whole number (``True``, ``1.5``, ``"10"``): the same ``ConfigError``, for
the same row and column, as the definition's first bad count.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt._types import UsageSummary

TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
          "cache_write_1h_tokens", "reasoning_tokens")  # fmt: skip
COLUMNS = ("body_bytes", *TOKENS)


class Count(int):
    """An int of a subclass (a count a caller's own type carries)."""


def reference(rows: list[dict[str, Any]]) -> UsageSummary | tuple[Any, str]:
    """The summary as its definition reads, row by row; ``(row id, column)`` of the
    first count that is no whole number instead, if any."""

    class Bad(Exception):
        pass

    def count(r: dict[str, Any], key: str) -> int:
        v = r.get(key)
        if v is None:
            return 0
        if isinstance(v, bool) or not isinstance(v, int):
            raise Bad(r.get("id"), key)
        return max(int(v), 0)

    sums = dict.fromkeys(("requests", "errors", "billed", "unmetered", "body_bytes", *TOKENS), 0)
    statuses: dict[str, int] = {}
    try:
        for r in rows:
            statuses[str(r.get("status"))] = statuses.get(str(r.get("status")), 0) + 1
            sums["requests"] += 1
            sums["body_bytes"] += count(r, "body_bytes")
            billed = r.get("status") in ("ok", "incomplete", "cancelled") or any(
                r.get(k) is not None for k in TOKENS
            )
            if not billed:
                sums["errors"] += 1
                continue
            sums["billed"] += 1
            sums["unmetered"] += all(r.get(k) is None for k in TOKENS)  # billed, no usage
            total = count(r, "input_tokens")
            read = min(count(r, "cache_read_tokens"), total)
            write = min(count(r, "cache_write_tokens"), total - read)
            out = count(r, "output_tokens")
            sums["input_tokens"] += total
            sums["cache_read_tokens"] += read
            sums["cache_write_tokens"] += write
            sums["output_tokens"] += out
            sums["cache_write_1h_tokens"] += min(count(r, "cache_write_1h_tokens"), write)
            sums["reasoning_tokens"] += min(count(r, "reasoning_tokens"), out)
    except Bad as exc:
        return exc.args[0], exc.args[1]
    return UsageSummary(**sums, statuses=tuple(sorted(statuses.items())))


def check(rows: list[dict[str, Any]]) -> None:
    want = reference(rows)
    if isinstance(want, UsageSummary):
        assert UsageSummary.of(rows) == want
        return
    row_id, key = want
    with pytest.raises(srt.ConfigError) as caught:
        UsageSummary.of(rows)
    assert str(caught.value).startswith(f"ledger row {row_id!r}: {key} must be a whole number")


def row(status: Any, *counts: Any, **more: Any) -> dict[str, Any]:
    """A ledger row as ``Session.calls()`` gives it, ``counts`` in ``COLUMNS`` order."""
    out = {"id": more.pop("id", 1), "status": status, "model": "gpt-4o", "node": None}
    out.update(zip(COLUMNS, counts + (None,) * (len(COLUMNS) - len(counts)), strict=True))
    out.update(more)
    return out


def test_the_edges_are_counted_as_the_definition_counts_them() -> None:
    huge = 2**80
    rows = [
        row("ok", 10, 100, 20, 30, 7, 30, 2),  # a plain row
        row("ok", 10, 100, 90, 30, 7, 30, 2),  # cache past the input
        row("ok", 10, 100, 101, 0, 7, 0, 9),  # reads past the input; reasoning past out
        row("ok", -10, -100, -1, -1, -7, -1, -1),  # negative counts
        row("ok", huge, huge, huge // 2, huge, huge, huge, huge),  # past 64 bits
        row("ok", 10),  # a reply whose usage did not come: billed, no tokens
        row("incomplete", 10, 50, 10, 0, 4),  # cut off, its usage without 1h/reasoning
        row("cancelled", 10),  # cancelled: billed, no tokens
        row("error", 10, 40, 5, 0, 3, 0, 1),  # failed yet billed (its usage recorded)
        row("error", 10),  # refused: not billed
        row("error", 10, None, 4),  # a lone count: billed, input 0, reads 0
        row("refused", 10, 0, 0, 0, 0),  # another status, with usage: billed
        row(None, 10),  # no status: "None", not billed
        row(1, 10, 5),  # statuses that are not text, counted by their text apart
        row(True, 10, 5),
        row("ok", Count(10), Count(100), Count(40), 20, Count(3), 20, Count(1)),
        row("ok", 5, 60, 10, 60, 1, 80, 1),  # more 1-hour writes than writes
        {"id": 9, "status": "ok", "input_tokens": 10, "cache_read_tokens": 3},  # columns missing
    ]
    check(rows)
    got = UsageSummary.of(rows)
    assert dict(got.statuses) == {
        "1": 1, "None": 1, "True": 1, "cancelled": 1, "error": 3, "incomplete": 1,
        "ok": 9, "refused": 1,
    }  # fmt: skip
    assert (got.requests, got.billed, got.errors) == (18, 16, 2)  # refused; no status
    assert got.unmetered == 2  # the ok row whose usage did not come, the cancelled one
    assert got.input_tokens == 100 + 100 + 100 + huge + 50 + 40 + 5 + 5 + 100 + 60 + 10
    assert got.cache_read_tokens == 20 + 90 + 100 + huge // 2 + 10 + 5 + 40 + 10 + 3
    assert got.cache_write_tokens == got.cache_write_1h_tokens == 110 + huge // 2
    assert (got.output_tokens, got.reasoning_tokens) == (32 + huge, 14 + huge)
    unhashable = [row(["ok"], 10, 5), row("ok", 1), row({}, 1)]  # statuses no key can be
    check(unhashable)
    assert UsageSummary.of(unhashable).statuses == (("['ok']", 1), ("ok", 1), ("{}", 1))
    for i in range(len(rows)):  # every row alone and every tail, too
        check(rows[i : i + 1])
        check(rows[i:])


def test_a_bad_count_is_the_first_one_the_definition_meets() -> None:
    for bad in (True, 1.5, "10", b"1", [1]):
        for col in COLUMNS:
            rows = [row("ok", 1, 2, 1, 0, 1, 0, 0, id=1), row("error", 1, id=2)]
            rows.append({**row("error", 1, 5, 1, 0, 2, 0, 0, id=3), col: bad})
            rows.append({**row("ok", 1, 5, 1, 0, 2, 0, 0, id=4), "input_tokens": "x"})
            check(rows)
            check(rows[1:])
    # A refused row's bad size is found; a billed row's bad token count after its size.
    check([row("error", "1", id=5)])
    check([{**row("ok", "1", 5, id=6), "output_tokens": 1.0}])


COUNT = st.one_of(
    st.none(),
    st.integers(0, 50),
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.integers(0, 50).map(Count),
)
BAD = st.sampled_from([True, False, 1.5, "10", b"1", 0.0])
STATUS = st.sampled_from(
    ["ok", "incomplete", "cancelled", "error", "refused", None, 1, True, ["ok"], b"ok"]
)


@st.composite
def ledgers(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for i in range(draw(st.integers(0, 12))):
        usage = draw(st.sampled_from(["all", "none", "some"]))
        counts = [draw(COUNT) if usage != "none" else None for _ in TOKENS]
        if usage == "all":
            counts = [0 if c is None else c for c in counts]
        r = row(draw(STATUS), draw(COUNT), *counts, id=i)
        if draw(st.integers(0, 9)) == 0:  # a row made by hand, a column left out
            del r[draw(st.sampled_from(COLUMNS))]
        rows.append(r)
    if rows and draw(st.integers(0, 4)) == 0:  # now and then one count no whole number
        r = draw(st.sampled_from(rows))
        r[draw(st.sampled_from(COLUMNS))] = draw(BAD)
    return rows


@settings(max_examples=1500, deadline=None)
@given(ledgers())
def test_the_summary_is_its_definition_over_random_ledgers(rows: list[dict[str, Any]]) -> None:
    check(rows)
