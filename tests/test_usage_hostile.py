"""The ledger, prices and savings against hostile and damaged input (brief usage18).

``srt verify`` of a damaged ledger row reports the row instead of crashing; pricing and
the savings report refuse rows that are not ledger rows with a typed error, never bill
below zero when a provider reported more cache than input, and take rows in the order of
their dates; the savings arithmetic is checked on hand-made ledgers (zero and negative
cases included) against figures worked out by hand.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import apsw
import pytest

import srt
from srt.cli import main
from srt.pricing import Price, Pricing
from srt.providers import OpenAI
from srt.savings import savings
from srt.testing import ProviderServer

# USD per million tokens, so that every figure below is worked out by hand.
PRICE = Price(input=1.0, cached_input=0.1, output=2.0, cache_write_5m=1.25)
PRICING = Pricing({"claude-sonnet-4-5": PRICE})


def _ledger(path: Path) -> None:
    """A store whose ledger has four rows with their parameters recorded."""
    with srt.Runtime(str(path)) as rt, ProviderServer() as srv:
        s = rt.session("v")
        s.append({"role": "user", "content": "hi"})
        with closing(OpenAI("sk-x", base_url=srv.url + "/v1")) as p:
            for i in range(4):
                s.send(p, model="gpt-4o")
                s.append({"role": "user", "content": f"question {i}"})


KEPT_OUT_OF_RANGE = json.dumps(
    {"params": {}, "cache": True, "include_partial": False, "breakpoints": [], "kept": [0, 99]}
)
DAMAGE = [
    ("params", "not json", "not JSON"),
    ("params", "{}", "breakpoints"),
    ("params", "[]", "not a JSON object"),
    ("params", '{"breakpoints": 5}', "breakpoints"),
    ("params", KEPT_OUT_OF_RANGE, "kept window"),
    ("messages", "abc", "message count 'abc'"),
    ("messages", -3, "message count -3"),
    ("body_hash", "abc", "body hash (a str)"),
    ("body_bytes", "many", "size ('many')"),
]


@pytest.mark.parametrize(("column", "value", "says"), DAMAGE)
def test_verify_reports_a_damaged_ledger_row_instead_of_crashing(
    tmp_path: Path, column: str, value: Any, says: str
) -> None:
    db = tmp_path / "srt.db"
    _ledger(db)
    conn = apsw.Connection(str(db))
    conn.execute(f"UPDATE calls SET {column} = ? WHERE id = 2", (value,))
    conn.close()
    with srt.Runtime(str(db)) as rt:
        report = rt.verify_ledger()
    assert (report.checked, report.unchecked) == (4, 0)
    (fault,) = report.faults
    assert fault.row == 2 and says in fault.detail, fault
    # ``srt verify`` prints it as a fault and exits 1, with no traceback.
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(["--db", str(db), "verify"])
    finally:
        sys.stdout, sys.stderr = old
    assert code == 1 and err.getvalue() == ""
    (line,) = [ln for ln in out.getvalue().splitlines() if ln.startswith("FAULT")]
    assert "calls row 2" in line and says in line


def row(
    total: int,
    read: int = 0,
    write: int = 0,
    *,
    at: Any = 1_000.0,
    messages: Any = 2,
    session: int = 1,
    out: int = 0,
    **more: Any,
) -> dict[str, Any]:
    return {
        "id": more.pop("id", None),
        "status": "ok",
        "provider": "anthropic",
        "format": "anthropic.messages",
        "model": "claude-sonnet-4-5",
        "session": session,
        "node": None,
        "at": at,
        "messages": messages,
        "input_tokens": total,
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "output_tokens": out,
        **more,
    }


def test_more_cache_than_input_is_never_billed_below_zero() -> None:
    """A provider that says 50 of 10 input tokens were cache reads (or -5 input tokens)
    is billed as if all 10 were reads (or nothing), never a negative amount."""
    cost = PRICING.request_cost(row(10, 50))
    assert cost == PRICING.request_cost(row(10, 10)) and cost is not None
    assert cost[0] == pytest.approx(10 * 0.1 / 1e6)
    assert PRICING.request_cost(row(10, 6, 9)) == PRICING.request_cost(row(10, 6, 4))
    assert PRICING.request_cost(row(-5, out=-3)) == (0.0, 0.0, 0.0)
    report = savings([row(10, 50), row(-5, at=1_001.0, messages=4)], PRICING)
    assert report.billed_input_usd >= 0 and report.careful.input_usd >= 0
    assert report.no_cache.saved_usd >= 0


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"input_tokens": "eleven"}, "input_tokens must be a whole number"),
        ({"cache_read_tokens": 1.5}, "cache_read_tokens must be a whole number"),
        ({"output_tokens": True}, "output_tokens must be a whole number"),
        ({"at": math.inf}, "at is inf"),
        ({"at": 1e20}, "at is 1e+20"),
        ({"at": "yesterday"}, "at is 'yesterday'"),
        ({"at": math.nan}, "at is nan"),
        ({"model": None}, "model is None"),
        ({"model": ""}, "model is ''"),
        ({"messages": "four"}, "messages is 'four'"),
        ({"format": 7}, "format is 7"),
    ],
)
def test_rows_that_are_not_ledger_rows_are_config_errors(change: dict[str, Any], says: str) -> None:
    bad = {**row(100, id=7), **change}
    with pytest.raises(srt.ConfigError, match=re.escape("ledger row 7: " + says)):
        savings([row(100, id=6), bad], PRICING)


@pytest.mark.parametrize(
    ("at", "says"), [(math.inf, "inf"), (1e20, "1e"), ("monday", "monday"), (-5.0, "-5")]
)
def test_a_date_that_is_not_one_is_not_priced(at: Any, says: str) -> None:
    with pytest.raises(srt.ConfigError, match="Unix seconds.*" + says):
        Pricing().rates("gpt-4o", "openai", at=at)
    with pytest.raises(srt.ConfigError):
        Pricing().request_cost({**row(10), "model": "gpt-4o", "provider": "openai", "at": at})


def test_a_row_that_is_not_a_mapping_is_a_config_error() -> None:
    with pytest.raises(srt.ConfigError, match="a ledger row is a mapping"):
        savings([row(10), ["not", "a", "row"]], PRICING)  # type: ignore[list-item]


def test_the_savings_arithmetic_on_a_hand_made_ledger() -> None:
    """Three requests of one Anthropic session, worked out by hand (USD per MTok: input
    1, read 0.1, write 1.25). The careful client writes the first prompt (2,000), reads
    it from the second (2,000 read, 1,000 written), and finds nothing live at the third,
    400 s later (its entries expired after 300 s): it writes all 4,000. srt kept its
    entries for an hour and read 3,000 there."""
    rows = [
        row(2_000, 0, 2_000, at=1_000.0, messages=2, out=10),
        row(3_000, 2_000, 1_000, at=1_100.0, messages=4, out=20),
        row(4_000, 3_000, 1_000, at=1_500.0, messages=6, out=30),
    ]
    r = savings(rows, PRICING)
    assert (r.requests, r.input_tokens, r.cache_read_tokens, r.cache_write_tokens) == (
        3,
        9_000,
        5_000,
        4_000,
    )
    assert r.output_tokens == 60 and r.output_usd == pytest.approx(120 / 1e6)
    billed = (2_000 * 1.25) + (2_000 * 0.1 + 1_000 * 1.25) + (3_000 * 0.1 + 1_000 * 1.25)
    careful = (2_000 * 1.25) + (2_000 * 0.1 + 1_000 * 1.25) + (4_000 * 1.25)
    assert r.billed_input_usd == pytest.approx(billed / 1e6)
    assert (r.careful.cache_read_tokens, r.careful.cache_write_tokens) == (2_000, 7_000)
    assert r.careful.input_usd == pytest.approx(careful / 1e6)
    assert r.careful.saved_usd == pytest.approx((careful - billed) / 1e6)
    assert r.careful.saved_share == pytest.approx((careful - billed) / careful)
    assert r.no_cache.input_usd == pytest.approx(9_000 / 1e6)
    assert r.no_cache.saved_share == pytest.approx((9_000 - billed) / 9_000)
    # Taken in the order of their dates, whatever order they are given in.
    assert savings(list(reversed(rows)), PRICING) == r


def test_zero_and_negative_savings() -> None:
    empty = savings([], PRICING)
    assert (empty.requests, empty.billed_input_usd, empty.careful.saved_share) == (0, 0.0, 0.0)
    assert empty.no_cache.saved_share == 0.0
    # A failed request with no usage is not billed and not counted (one that records
    # usage was billed: tests/test_usage_billed.py).
    none = dict.fromkeys(("input_tokens", "cache_read_tokens", "cache_write_tokens",
                          "output_tokens"))  # fmt: skip
    failed = savings([{**row(500), "status": "error", **none}], PRICING)
    assert failed.requests == 0 and failed.billed_input_usd == 0.0
    # srt wrote 500 tokens to the cache on a prompt below the model's minimum (1,024),
    # where the careful client writes nothing: srt paid more, the saving is negative.
    r = savings([row(500, 0, 500)], PRICING)
    assert r.careful.input_usd == pytest.approx(500 / 1e6)
    assert r.careful.saved_usd == pytest.approx(-125 / 1e6)
    assert r.careful.saved_share == pytest.approx(-0.25)


def test_large_counts_do_not_overflow() -> None:
    big = 2**62
    r = savings([row(big, big // 2, big // 4, out=big)], PRICING)
    assert r.input_tokens == big and r.output_tokens == big
    want = (big // 4 * 1.0 + big // 2 * 0.1 + big // 4 * 1.25) / 1e6
    assert r.billed_input_usd == pytest.approx(want) and math.isfinite(r.billed_input_usd)
