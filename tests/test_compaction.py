"""Reversible compaction, and the savings report against hand-computed ledger figures."""

from __future__ import annotations

import json
from collections.abc import Iterator

import apsw
import pytest

import srt
from srt.pricing import Price, Pricing
from srt.providers import Anthropic
from srt.testing import ProviderServer


def _count(path: str, table: str) -> int:
    conn = apsw.Connection(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").get)
    finally:
        conn.close()


def _history(s: srt.Session, turns: int = 12) -> None:
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first question"})
    for i in range(turns):
        s.append({"role": "assistant", "content": f"answer {i}"})
        s.append({"role": "user", "content": f"question {i}"})


def test_compaction_round_trip_restores_every_byte(rt: srt.Runtime) -> None:
    s = rt.session("c")
    _history(s)
    original, head = s.messages_bytes(), s.head
    messages_before = _count(rt.path, "messages")
    seen: list[list[dict[str, object]]] = []

    def summarise(span: list[dict[str, object]]) -> str:
        seen.append(span)
        return f"{len(span)} turns of questions and answers"

    span_id = s.prefix_hashes()[19].hex()[:12]  # the header names the span by its end
    s.compact(20, summarise)
    assert [m["content"] for m in seen[0]][:2] == ["answer 0", "question 0"]
    msgs = s.messages()
    assert len(msgs) == 2 + 1 + (len(original) - 20)
    assert msgs[2]["content"] == (
        f"[Summary of 18 earlier messages, span {span_id}]\n18 turns of questions and answers"
    )
    assert msgs[:2] == [json.loads(b) for b in original[:2]]
    assert s.messages_bytes()[3:] == original[20:]
    # The summary is content-addressed: one new message row, nothing else copied.
    assert _count(rt.path, "messages") == messages_before + 1
    body = json.loads(s.request("anthropic.messages", model="claude-sonnet-4-6", cache=False))
    assert "answer 0" not in json.dumps(body)

    s.expand()
    assert s.messages_bytes() == original and s.head == head  # the original nodes again
    assert _count(rt.path, "messages") == messages_before + 1


def test_compaction_is_content_addressed_and_checked(rt: srt.Runtime) -> None:
    a, b = rt.session("a"), rt.session("b")
    _history(a)
    _history(b)
    a.compact(10, "same summary")
    b.compact(10, "same summary")
    assert a.head == b.head  # equal histories share nodes, summaries included
    with pytest.raises(srt.HistoryIndexError):
        a.compact(1, "x")  # inside the pinned prefix
    with pytest.raises(srt.SessionError):
        rt.session("plain").expand()
    t = rt.session("tools")
    t.append({"role": "user", "content": "q"})
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    t.append({"role": "assistant", "content": None, "tool_calls": [call]})
    t.append({"role": "tool", "tool_call_id": "c1", "content": "ok"})
    with pytest.raises(srt.HistoryIndexError, match="tool call"):
        t.compact(2, "x", start=1)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def test_savings_report_matches_hand_computed_ledger_figures(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = Anthropic("sk-test-key-000000", base_url=srv.url)
    s = rt.session("savings")
    s.append({"role": "system", "content": "Careful assistant. " * 400})
    for turn in range(20):
        s.append({"role": "user", "content": f"question {turn} " * 20})
        s.send(p, model="claude-sonnet-4-6")
    p.close()
    rows = s.calls()
    assert len(rows) == 20
    price = Price(input=3.0, cached_input=0.3, output=15.0, cache_write_5m=3.75, cache_write_1h=6.0)
    pricing = Pricing({"claude-sonnet-4*": price})
    # By hand, row by row, from the ledger.
    billed = stateless = 0.0
    for r in rows:
        uncached = r["input_tokens"] - r["cache_read_tokens"] - r["cache_write_tokens"]
        billed += (
            uncached * 3.0 + r["cache_read_tokens"] * 0.3 + r["cache_write_tokens"] * 3.75
        ) / 1e6
        stateless += r["input_tokens"] * 3.0 / 1e6
    report = s.savings(pricing)
    assert report.requests == 20 and report.priced_requests == 20
    assert report.input_tokens == sum(r["input_tokens"] for r in rows)
    assert report.cache_read_tokens == sum(r["cache_read_tokens"] for r in rows)
    assert report.billed_input_usd == pytest.approx(billed, rel=1e-12)
    assert report.no_cache.input_usd == pytest.approx(stateless, rel=1e-12)
    assert report.no_cache.saved_usd == pytest.approx(stateless - billed, rel=1e-12)
    assert report.no_cache.saved_share > 0.5  # most of every request came from the cache
    assert rt.savings(pricing).billed_input_usd == pytest.approx(billed, rel=1e-12)
    # The next request's prediction comes from the explain.
    s.append({"role": "user", "content": "one more"})
    explain, cost = s.predict("anthropic.messages", model="claude-sonnet-4-6", pricing=pricing)
    assert explain.reason == "hit" and cost is not None and cost[0] < cost[1]
