"""The usage report's categories agree with what was billed (brief usage19).

``UsageSummary`` splits the requests into ``billed`` (a reply or part of one came:
``ok``, ``incomplete``, ``cancelled``; or a failed request records the usage the
provider reported) and ``errors`` (failed with nothing billed), and the savings report
prices exactly the billed ones. Before, ``errors`` counted every row that was not
``ok`` (a cut-off stream the provider billed was an "error"), and an ``error`` row
carrying usage (a reply srt could not keep) was in the token totals but not in the
cost. Token totals are counted as priced: cache reads and writes at most the input,
in the API and in ``srt stats`` alike (before, the totals were raw and the money
clamped).
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

import pytest

import srt
from srt._types import UsageSummary
from srt.pricing import Price, Pricing
from srt.providers import OpenAI
from srt.savings import savings, usage_figures
from srt.testing import ProviderServer
from support import run_cli
from test_reply_usage_kept import BODIES, JSON_HEADERS

PRICE = Price(input=1.0, cached_input=0.1, output=2.0, cache_write_5m=1.25)
PRICING = Pricing({"claude-sonnet-4-5": PRICE, "gpt-4o": PRICE})


def row(status: str, total: int | None, read: int = 0, write: int = 0, out: int = 0,
        **more: Any) -> dict[str, Any]:  # fmt: skip
    usage = total is not None
    return {
        "id": more.pop("id", None),
        "status": status,
        "provider": "anthropic",
        "format": "anthropic.messages",
        "model": "claude-sonnet-4-5",
        "session": 1,
        "node": None,
        "at": more.pop("at", 1_000.0),
        "messages": more.pop("messages", 2),
        "body_bytes": 10,
        "input_tokens": total,
        "cache_read_tokens": read if usage else None,
        "cache_write_tokens": write if usage else None,
        "output_tokens": out if usage else None,
        **more,
    }


def test_requests_are_billed_or_errors_as_the_cost_counts_them() -> None:
    rows = [
        row("ok", 100, out=10, at=1_000.0),
        row("incomplete", 200, out=5, at=1_001.0, messages=4),  # cut off: billed
        row("cancelled", None, at=1_002.0, messages=6),  # body went out: may be billed
        row("error", 300, out=7, at=1_003.0, messages=6),  # unkept reply: billed
        row("error", None, at=1_004.0, messages=6),  # refused: nothing billed
    ]
    u = UsageSummary.of(rows)
    assert (u.requests, u.billed, u.errors) == (5, 4, 1)
    assert dict(u.statuses) == {"ok": 1, "incomplete": 1, "cancelled": 1, "error": 2}
    s = savings(rows, PRICING)
    assert s.requests == s.priced_requests == u.billed
    assert (s.input_tokens, s.output_tokens) == (u.input_tokens, u.output_tokens) == (600, 22)
    # The failed request the provider billed is in srt's cost and both baselines' alike.
    assert s.billed_input_usd == pytest.approx(600 / 1e6)
    assert s.no_cache.input_usd == pytest.approx(600 / 1e6)
    assert s.careful.input_usd == pytest.approx(600 / 1e6)
    assert s.output_usd == pytest.approx(44 / 1e6)
    f = usage_figures(rows)
    assert (f["requests"], f["billed"], f["errors"]) == (5, 4, 1)
    assert f["statuses"] == {"cancelled": 1, "error": 2, "incomplete": 1, "ok": 1}


def test_a_billed_error_changes_the_savings_as_it_changes_the_cost() -> None:
    """Without the billed error the report is of two requests; with it, of three, and
    its 300 tokens are in srt's input, the careful client's and the no-cache one's."""
    ok = [row("ok", 2_000, 0, 2_000, at=1_000.0), row("ok", 3_000, 2_000, 1_000, at=1_100.0,
                                                       messages=4)]  # fmt: skip
    failed = row("error", 300, out=7, at=1_050.0, messages=4)
    before, after = savings(ok, PRICING), savings([*ok, failed], PRICING)
    assert after.requests == before.requests + 1
    assert after.input_tokens == before.input_tokens + 300
    assert after.no_cache.input_usd == pytest.approx(before.no_cache.input_usd + 300 / 1e6)
    assert after.billed_input_usd > before.billed_input_usd
    assert after.output_usd == pytest.approx(before.output_usd + 14 / 1e6)


def test_more_cache_than_input_is_counted_as_priced_everywhere() -> None:
    """A provider reports 50 cache reads and 30 writes of 10 input tokens (and 9
    reasoning tokens of 4 output): the totals say 10 read, 0 written, 4 reasoning, a
    100% hit share, as the cost prices them, in the API and the figures alike."""
    bad = row("ok", 10, 50, 30, out=4, reasoning_tokens=9, cache_write_1h_tokens=30)
    u = UsageSummary.of([bad])
    assert (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens) == (10, 10, 0)
    assert (u.cache_write_1h_tokens, u.reasoning_tokens, u.uncached_input_tokens) == (0, 4, 0)
    assert u.cache_hit_share == 1.0
    s = savings([bad], PRICING)
    assert (s.input_tokens, s.cache_read_tokens, s.cache_write_tokens) == (10, 10, 0)
    f = usage_figures([bad])
    assert (f["cache_read_tokens"], f["cache_write_tokens"], f["cache_hit_share"]) == (10, 0, 1.0)
    neg = UsageSummary.of([row("ok", -5, -1, out=-3)])
    assert (neg.input_tokens, neg.cache_read_tokens, neg.output_tokens) == (0, 0, 0)


def test_a_summary_of_a_row_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(srt.ConfigError, match="ledger row 3: input_tokens must be a whole"):
        UsageSummary.of([row("ok", 10), {**row("ok", 10), "id": 3, "input_tokens": "10"}])


#: A Chat reply srt does not keep (a ``custom`` tool call), billed 11 tokens (4 read) and 3.
UNKEPT = BODIES["openai.chat"]


def test_the_api_and_srt_stats_agree_on_what_was_billed(store_url: str) -> None:
    """Over loopback: a reply, a reply srt could not keep (billed), a refusal (not
    billed). ``usage()``, ``savings()`` and ``srt stats`` agree on every figure."""
    with srt.Runtime(store_url) as rt, ProviderServer() as srv:
        s = rt.session("b")
        s.append({"role": "user", "content": "hi"})
        with closing(OpenAI("sk-x", base_url=srv.url + "/v1")) as p:
            s.send(p, model="gpt-4o")
            s.append({"role": "user", "content": "again"})
            srv.fault("openai.chat", "status", code=200, body=json.dumps(UNKEPT).encode(),
                      headers=JSON_HEADERS)  # fmt: skip
            with pytest.raises(srt.ProviderResponseError):
                s.send(p, model="gpt-4o")
            srv.fault("openai.chat", "status", code=400, message="no")
            with pytest.raises(srt.ProviderError):
                s.send(p, model="gpt-4o")
        rows = s.calls()
        assert [r["status"] for r in rows] == ["ok", "error", "error"]
        u, report = s.usage(), s.savings(PRICING)
        assert (u.requests, u.billed, u.errors) == (3, 2, 1)
        assert report.requests == report.priced_requests == 2
        assert (report.input_tokens, report.output_tokens) == (u.input_tokens, u.output_tokens)
        assert u.input_tokens == rows[0]["input_tokens"] + 11
        assert report.no_cache.input_usd == pytest.approx(u.input_tokens / 1e6)
    code, out, err = run_cli("--db", store_url, "stats", "b", "--json")
    assert code == 0, err
    f = json.loads(out)
    assert (f["requests"], f["billed"], f["errors"]) == (3, 2, 1)
    assert (f["input_tokens"], f["output_tokens"]) == (u.input_tokens, u.output_tokens)
    code, out, err = run_cli("--db", store_url, "stats", "b")
    assert code == 0, err
    (line,) = [ln for ln in out.splitlines() if "requests" in ln]
    assert line.split(None, 1)[1] == "3 (1 failed yet billed; 1 failed, not billed)"


EVIL = "evil\x1b[2J\nrequests        0"


def test_srt_stats_escapes_the_model_names_it_prints(db_path: str) -> None:
    """A model name is the caller's text (a gateway tenant's): an unpriced one with a
    terminal escape and a newline is printed escaped, on its own line, not obeyed."""
    with srt.Runtime(db_path) as rt, ProviderServer() as srv:
        s = rt.session("e")
        s.append({"role": "user", "content": "hi"})
        with closing(OpenAI("sk-x", base_url=srv.url + "/v1")) as p:
            s.send(p, model=EVIL)
            s.send(p, model="gpt-4o")
        assert [r["model"] for r in s.calls()] == [EVIL, "gpt-4o"]
    for name in ("e", "--all"):
        code, out, err = run_cli("--db", db_path, "stats", name)
        assert code == 0, err
        assert "\x1b" not in out and "\n  requests        0" not in out
        (line,) = [ln for ln in out.splitlines() if ln.startswith("  unpriced")]
        assert line.endswith("evil\\x1b[2J\\x0arequests        0")
