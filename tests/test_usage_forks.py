"""Usage and savings reports across forks, deletes, gc and engines (brief usage18).

A fork shares its parent's prefix, and so does a careful stateless client on the same
account: the prefix its first request reads was written by the parent's request. The
per-session reports must say so (before, a session's savings were worked out from that
session's rows alone, so a fork was credited with a saving the careful client would have
had too), the per-session reports add up to the whole, deleting a session leaves every
row where it was, and gc (which sweeps the deleted session's reply nodes) leaves the
savings report as it was (before, a swept row was looked up by its session's keys,
which met no entry, and srt was credited with the careful client's missed reads).
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

import srt
from gateway_support import harness
from srt.pricing import Price, Pricing
from srt.providers import Anthropic
from srt.savings import usage_figures
from srt.testing import ProviderServer
from support import run_cli

MODEL = "claude-sonnet-4-5"
PRICING = Pricing({MODEL: Price(input=1.0, cached_input=0.1, output=2.0, cache_write_5m=1.25)})
SYSTEM = {"role": "system", "content": "You answer questions about caches. " * 250}


def _forked(rt: srt.Runtime) -> None:
    """parent: two requests; child (forked after the first): one request."""
    with ProviderServer() as srv, closing(Anthropic("sk-ant-x", base_url=srv.url)) as p:
        s = rt.session("parent")
        s.append(SYSTEM)
        s.append({"role": "user", "content": "Where is the prefix kept?"})
        s.send(p, model=MODEL, max_tokens=64)
        child = s.fork("child")
        child.append({"role": "user", "content": "And for how long?"})
        child.send(p, model=MODEL, max_tokens=64)
        s.append({"role": "user", "content": "Who can read it?"})
        s.send(p, model=MODEL, max_tokens=64)


def _figures(report: srt.Savings) -> tuple[Any, ...]:
    return (
        report.requests,
        report.input_tokens,
        report.cache_read_tokens,
        report.cache_write_tokens,
        round(report.billed_input_usd, 12),
        round(report.careful.input_usd, 12),
        report.careful.cache_read_tokens,
        report.careful.cache_write_tokens,
        round(report.no_cache.input_usd, 12),
    )


def test_a_forks_savings_count_the_prefix_its_parent_wrote(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        _forked(rt)
        whole = rt.savings(PRICING)
        parent, child = rt.session("parent"), rt.session("child")
        assert [len(parent.calls()), len(child.calls()), len(rt.calls())] == [2, 1, 3]
        mine = child.savings(PRICING)
        # srt's fork read the parent's prefix; so would the careful client's request.
        (row,) = child.calls()
        assert row["cache_read_tokens"] > 0
        assert mine.careful.cache_read_tokens == row["cache_read_tokens"]
        assert mine.careful.saved_usd == pytest.approx(0.0, abs=1e-12)
        # The sessions' reports add up to the whole store's, token for token.
        theirs = parent.savings(PRICING)
        for key in ("input_usd", "cache_read_tokens", "cache_write_tokens"):
            both = getattr(mine.careful, key) + getattr(theirs.careful, key)
            assert both == pytest.approx(getattr(whole.careful, key), rel=1e-12), key
        assert mine.billed_input_usd + theirs.billed_input_usd == pytest.approx(
            whole.billed_input_usd, rel=1e-12
        )
        # rt.savings(rows=) of one session's rows says what that session's report says.
        assert _figures(rt.savings(PRICING, rows=child.calls())) == _figures(mine)
        with pytest.raises(srt.ConfigError, match="named by their id"):
            rt.savings(PRICING, rows=[{**row, "id": None}])
        # A row of no ledger (another store's, a typo'd id) counted nothing, silently.
        with pytest.raises(srt.ConfigError, match="no ledger row has id 999999"):
            rt.savings(PRICING, rows=[*child.calls(), {**row, "id": 999_999}])
        for junk in ("rows", row, 5):
            with pytest.raises(srt.ConfigError, match="rows must be rows of this store"):
                rt.savings(PRICING, rows=junk)  # type: ignore[arg-type]


def test_deleting_and_collecting_leave_the_reports_as_they_were(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        _forked(rt)
        usage, report = rt.usage(), _figures(rt.savings(PRICING))
        child = _figures(rt.session("child").savings(PRICING))
        parent_rows = rt.calls(session_name="parent")
        rt.delete("parent")
        assert rt.usage() == usage and _figures(rt.savings(PRICING)) == report
        assert rt.calls(session_name="parent") == parent_rows
        assert len(rt.session("child", create=False).calls()) == 1
        swept = rt.gc()
        assert swept.ledger_rows >= 1  # the parent's last reply node is gone
        assert [r["node"] is None for r in rt.calls()].count(True) == swept.ledger_rows
        assert rt.usage() == usage
        assert _figures(rt.savings(PRICING)) == report
        assert _figures(rt.session("child", create=False).savings(PRICING)) == child
        ledger = rt.verify_ledger()
        assert ledger.ok and ledger.unchecked == swept.ledger_rows


def test_both_engines_report_the_same_calls_alike(tmp_path: Path, pg_url: str) -> None:
    reports = []
    for url in (str(tmp_path / "srt.db"), pg_url):
        with srt.Runtime(url) as rt:
            _forked(rt)
            keep = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
            rows = [[r[k] for k in keep] for r in rt.calls()]
            sessions = [_figures(rt.session(n).savings(PRICING)) for n in ("parent", "child")]
            reports.append((rt.usage(), _figures(rt.savings(PRICING)), rows, sessions))
    assert reports[0] == reports[1]


def test_srt_stats_of_a_fork_and_an_empty_name(tmp_path: Path) -> None:
    db = str(tmp_path / "srt.db")
    with srt.Runtime(db) as rt:
        _forked(rt)
    code, out, err = run_cli("--db", db, "stats", "child", "--json")
    assert code == 0, err
    careful = json.loads(out)["cost"]["baselines"]["careful"]
    assert careful["saved_usd"] == 0 and careful["cache_read_tokens"] > 0
    # An empty NAME is a usage error (exit 2), not "the session used last".
    code, out, err = run_cli("--db", db, "stats", "")
    assert (code, out) == (2, "") and "NAME: must not be empty" in err


def test_the_gateways_usage_is_what_srt_stats_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /v1/usage`` and ``srt stats --tenant`` give a tenant the same figures (the
    gateway's careful baseline follows the stored history too)."""
    db = str(tmp_path / "srt.db")
    with harness(db, monkeypatch) as h:
        c = h.client()
        first = c.responses.create(
            model=MODEL,
            input=SYSTEM["content"] + "Where is it kept?",
            max_output_tokens=64,
        )
        c.responses.create(
            model=MODEL, previous_response_id=first.id, input="For how long?", max_output_tokens=64
        )
        # A branch from the first answer: another session of the gateway (a fork), whose
        # request reads the prefix the first request wrote.
        c.responses.create(
            model=MODEL, previous_response_id=first.id, input="Who reads it?", max_output_tokens=64
        )
        got = httpx.get(h.url + "/usage", headers={"authorization": "Bearer sk-any"}).json()
        rt = h.rt
        every = rt.calls()
        assert len(every) == 3 and got["requests"] == 3
        assert len({r["session"] for r in every}) > 1 and every[2]["cache_read_tokens"] > 0
        want = usage_figures(every, history=rt.store.tail, context=every)
    code, out, err = run_cli("--db", db, "stats", "--tenant", "default", "--json")
    assert code == 0, err
    stats = json.loads(out)
    del stats["models"]
    assert {k: v for k, v in got.items() if k not in ("object", "tenant")} == stats == want
