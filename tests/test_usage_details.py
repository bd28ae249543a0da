"""Cache writes with a 1-hour TTL and reasoning tokens, from the wire to the ledger, the
prices, ``srt stats`` and the gateway (cost18).

Before: Anthropic's ``cache_creation.ephemeral_1h_input_tokens`` (and Bedrock's
``cacheDetails``) were summed into the cache writes and priced at the 5-minute rate
(claude-sonnet-4-5: $3.75 a million instead of $6), and reasoning tokens were reported
as 0 everywhere, the gateway's usage included.
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

import httpx
import psycopg
import pytest

import srt
import srt.savings
from gateway_support import harness
from srt.cache import CachePolicy
from srt.cli._stats import usage_summary
from srt.pricing import Price, Pricing
from srt.providers import Anthropic, Bedrock, OpenAI
from srt.store.postgres import schema as pg_schema
from srt.store.sqlite import db as sqlite_db
from srt.testing import ProviderServer
from srt.wire import get_format
from support import connect

KEY = "sk-details-key"
SYSTEM = {"role": "system", "content": "You keep long instructions warm for an hour. " * 200}
SONNET = "claude-sonnet-4-5"
BEDROCK_SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def _provider(kind: str, srv: ProviderServer) -> Any:
    if kind == "anthropic":
        return Anthropic(KEY, base_url=srv.url)
    return Bedrock(region="us-east-1", api_key=KEY, endpoint_url=srv.url)


def _send(s: srt.Session, p: Any, model: str, stream: bool) -> srt.Reply:
    params: dict[str, Any] = {"max_tokens": 64} if isinstance(p, Anthropic) else {}
    if not stream:
        return s.send(p, model=model, **params)
    st = s.stream(p, model=model, **params)
    st.text()
    assert st.reply is not None
    return st.reply


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("kind", "fmt", "model"),
    [
        ("anthropic", "anthropic.messages", SONNET),
        ("bedrock", "bedrock.converse", BEDROCK_SONNET),
    ],
)
def test_1h_cache_writes_reach_the_ledger_and_cost_their_price(
    kind: str, fmt: str, model: str, stream: bool, store_url: str
) -> None:
    policy = CachePolicy(static_ttl="1h")  # the system prompt's marker lives an hour
    with srt.Runtime(store_url, cache=policy) as rt, ProviderServer(api_key=KEY) as srv:
        s = rt.session("warm")
        s.append(SYSTEM)
        s.append({"role": "user", "content": "What stays warm?"})
        with closing(_provider(kind, srv)) as p:
            reply = _send(s, p, model, stream)
        cache = srv.log[-1].cache
        assert cache is not None and 0 < cache.written_1h < cache.written
        u = reply.usage
        assert (u.cache_write_tokens, u.cache_write_1h_tokens) == (cache.written, cache.written_1h)
        (row,) = s.calls()
        assert row["cache_write_tokens"] == cache.written
        assert row["cache_write_1h_tokens"] == cache.written_1h
        rates = Pricing().row_rates(row)
        assert rates is not None and rates.cache_write_1h is not None
        assert rates.cache_write_1h == pytest.approx(rates.cache_write * 1.6)  # 6 / 3.75
        cost = Pricing().request_cost(row)
        assert cost is not None
        short = cache.written - cache.written_1h
        expected = (
            cache.uncached * rates.input
            + cache.read * rates.cache_read
            + short * rates.cache_write
            + cache.written_1h * rates.cache_write_1h
        ) / 1e6
        assert cost[0] == pytest.approx(expected, rel=1e-12)
        figures = srt.savings.usage_figures(s.calls())
        assert figures["cache_write_1h_tokens"] == cache.written_1h
        assert figures["cost"]["input_usd"] == pytest.approx(expected, abs=1e-6)
        assert rt.usage().cache_write_1h_tokens == cache.written_1h
        lines = usage_summary(s.calls(), rt)
        assert f"({cache.written_1h:,} with a 1-hour TTL)" in "\n".join(lines)


def test_sonnet_4_5_1h_writes_are_priced_at_6_dollars() -> None:
    """The figures of the audit, from the price data: $6 against $3.75 a million."""
    rates = Pricing().rates(SONNET, "anthropic")
    assert rates is not None
    assert (rates.cache_write, rates.cache_write_1h) == (3.75, 6.0)
    row = {
        "provider": "anthropic",
        "model": SONNET,
        "at": 0,
        "input_tokens": 100_000,  # (below the long-context tier of 200k)
        "cache_write_tokens": 100_000,
        "cache_write_1h_tokens": 100_000,
        "output_tokens": 0,
    }
    cost = Pricing().request_cost(row)
    assert cost is not None and cost[0] == pytest.approx(0.6)
    # more 1-hour writes than writes (a damaged row) are priced as all the writes, no more
    cost = Pricing().request_cost({**row, "cache_write_tokens": 50_000})
    assert cost is not None and cost[0] == pytest.approx(0.15 + 0.3)
    # a model without a 1-hour price (OpenAI) prices such writes as any other
    gpt = Pricing().rates("gpt-4o", "openai")
    assert gpt is not None and gpt.input_usd(10, 0, 10, 10) == gpt.input_usd(10, 0, 10)


def test_an_override_prices_1h_writes_at_its_own_price_or_the_5m_one() -> None:
    both = Pricing({"m": Price(1.0, 0.1, 2.0, cache_write_5m=1.25, cache_write_1h=2.0)})
    five = Pricing({"m": Price(1.0, 0.1, 2.0, cache_write_5m=1.25)})
    row = {"model": "m", "provider": "p", "at": 0, "input_tokens": 300,
           "cache_write_tokens": 200, "cache_write_1h_tokens": 100}  # fmt: skip
    assert both.request_cost(row) == pytest.approx((425e-6, 300e-6, 0.0))  # 100+125+200
    assert five.request_cost(row) == pytest.approx((350e-6, 300e-6, 0.0))  # 100+125+125


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 1, "cache_creation_input_tokens": 5, "output_tokens": 1,
         "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 6}},
        {"input_tokens": 1, "output_tokens": 1, "cache_creation": [1]},
        {"input_tokens": 1, "output_tokens": 1, "cache_creation_input_tokens": 5,
         "cache_creation": {"ephemeral_1h_input_tokens": "many"}},
    ],
)  # fmt: skip
def test_a_malformed_anthropic_split_is_a_provider_response_error(usage: Any) -> None:
    data = {"id": "m", "type": "message", "role": "assistant", "model": SONNET,
            "content": [{"type": "text", "text": "hi"}], "usage": usage}  # fmt: skip
    with pytest.raises(srt.ProviderResponseError):
        get_format("anthropic.messages").parse_reply(data)


@pytest.mark.parametrize(
    "details",
    [{"ttl": "1h"}, [{"ttl": "1h", "inputTokens": "9"}], [3], [{"ttl": "1h", "inputTokens": 9}]],
)
def test_a_malformed_bedrock_split_is_a_provider_response_error(details: Any) -> None:
    usage = {"inputTokens": 1, "outputTokens": 1, "cacheWriteInputTokens": 5,
             "cacheDetails": details}  # fmt: skip
    data = {"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
            "stopReason": "end_turn", "usage": usage}  # fmt: skip
    with pytest.raises(srt.ProviderResponseError):
        get_format("bedrock.converse").parse_reply(data)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fmt", ["openai.chat", "openai.responses"])
def test_reasoning_tokens_reach_the_reply_and_the_ledger(
    fmt: str, stream: bool, store_url: str
) -> None:
    with srt.Runtime(store_url) as rt, ProviderServer(api_key=KEY) as srv:
        s = rt.session("think")
        s.append({"role": "user", "content": "Think first."})
        srv.script(fmt, [{"text": "Thought about it.", "reasoning_tokens": 40}])
        api = "responses" if fmt == "openai.responses" else "chat"
        with closing(OpenAI(KEY, base_url=srv.url + "/v1", api=api)) as p:
            if stream:
                st = s.stream(p, model="o4-mini", stream_options={"include_usage": True})
                st.text()
                reply = st.reply
            else:
                reply = s.send(p, model="o4-mini")
        assert reply is not None
        assert reply.usage.reasoning_tokens == 40 < reply.usage.output_tokens
        (row,) = s.calls()
        assert row["reasoning_tokens"] == 40 and row["output_tokens"] == reply.usage.output_tokens
        assert rt.usage().reasoning_tokens == 40
        figures = srt.savings.usage_figures(s.calls())
        assert figures["reasoning_tokens"] == 40
        assert "(40 reasoning)" in "\n".join(usage_summary(s.calls(), rt))


def test_the_gateway_reports_reasoning_and_cache_writes_on_both_endpoints(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with harness(db_path, monkeypatch) as h:
        client = h.client()
        h.srv.script("openai.chat", [{"text": "chat answer", "reasoning_tokens": 17}])
        chat = client.chat.completions.create(
            model="o4-mini", messages=[{"role": "user", "content": "hi"}]
        )
        h.srv.script("openai.responses", [{"text": "responses answer", "reasoning_tokens": 23}])
        resp = client.responses.create(model="responses/o4-mini", input="hi")
        # a streamed chat completion's usage chunk
        h.srv.script("openai.chat", [{"text": "streamed", "reasoning_tokens": 5}])
        chunks = list(
            client.chat.completions.create(
                model="o4-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        # an Anthropic upstream's cache writes, through the chat endpoint
        h.srv.script("anthropic.messages", ["claude answer"])
        claude = client.chat.completions.create(
            model=SONNET, messages=[SYSTEM, {"role": "user", "content": "hi"}], max_tokens=64
        )
        written = h.srv.log[-1].cache
        totals = httpx.get(h.url + "/usage", headers={"authorization": "Bearer sk-any"}).json()
    cu = chat.usage
    assert cu is not None and cu.completion_tokens_details is not None
    assert cu.completion_tokens_details.reasoning_tokens == 17
    ru = resp.usage
    assert ru is not None and ru.output_tokens_details.reasoning_tokens == 23
    su = chunks[-1].usage
    assert su is not None and su.completion_tokens_details is not None
    assert su.completion_tokens_details.reasoning_tokens == 5
    # the chat endpoint's usage has the cache writes the Responses one has
    assert written is not None and written.written > 0
    au = claude.usage
    assert au is not None and au.prompt_tokens_details is not None
    details = au.prompt_tokens_details.model_dump()
    assert details["cache_write_tokens"] == written.written
    assert ru.input_tokens_details.model_dump()["cache_write_tokens"] == 0
    # the gateway's totals (srt stats' figures), reasoning and cache writes included
    assert totals["reasoning_tokens"] == 17 + 23 + 5
    assert totals["cache_write_tokens"] == written.written
    assert totals["cache_write_1h_tokens"] == 0  # the gateway's markers are 5-minute ones
    with srt.Runtime(db_path) as rt:
        assert rt.usage().reasoning_tokens == 17 + 23 + 5


# -- migrations ----------------------------------------------------------------------------


def _one_row(url: str) -> None:
    with srt.Runtime(url) as rt, ProviderServer(api_key=KEY) as srv:
        s = rt.session("old")
        s.append({"role": "user", "content": "before the columns"})
        with closing(OpenAI(KEY, base_url=srv.url + "/v1")) as p:
            s.send(p, model="gpt-4o")


def test_a_v6_sqlite_file_gains_the_columns_and_keeps_its_rows(db_path: str) -> None:
    _one_row(db_path)
    with connect(db_path) as conn, conn:  # the calls table as schema v6 left it
        conn.execute("ALTER TABLE calls DROP COLUMN cache_write_1h_tokens")
        conn.execute("ALTER TABLE calls DROP COLUMN reasoning_tokens")
        conn.execute("ALTER TABLE calls DROP COLUMN reply_model")  # (v8's)
        conn.execute("PRAGMA user_version=6")
    with srt.Runtime(db_path) as rt:
        (row,) = rt.calls()
        assert row["input_tokens"] > 0
        assert row["cache_write_1h_tokens"] is None and row["reasoning_tokens"] is None
        assert row["reply_model"] is None
        assert rt.usage().requests == 1 and rt.usage().reasoning_tokens == 0
        assert srt.savings.usage_figures(rt.calls())["cost"]["priced_requests"] == 1
        assert rt.store.verify().ok
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").get == sqlite_db.SCHEMA_VERSION == 9


def test_a_v5_postgres_store_gains_the_columns_and_keeps_its_rows(pg_url: str) -> None:
    from pg_support import server_url

    _one_row(pg_url)
    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(server_url(), autocommit=True) as conn:  # as schema v5 left it
        conn.execute(f'ALTER TABLE "{schema}".calls DROP COLUMN cache_write_1h_tokens')
        conn.execute(f'ALTER TABLE "{schema}".calls DROP COLUMN reasoning_tokens')
        conn.execute(f'ALTER TABLE "{schema}".calls DROP COLUMN reply_model')  # (v7's)
        conn.execute(f'UPDATE "{schema}".srt_schema SET version = 5')
    with srt.Runtime(pg_url) as rt:
        (row,) = rt.calls()
        assert row["cache_write_1h_tokens"] is None and row["reasoning_tokens"] is None
        s = rt.session("old")
        s.append({"role": "user", "content": "after the columns"})
        with ProviderServer(api_key=KEY) as srv:
            srv.script("openai.chat", [{"text": "thought", "reasoning_tokens": 9}])
            with closing(OpenAI(KEY, base_url=srv.url + "/v1")) as p:
                s.send(p, model="gpt-4o")
        assert [r["reasoning_tokens"] for r in rt.calls()] == [None, 9]
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".srt_schema').fetchall()
    assert rows == [(pg_schema.SCHEMA_VERSION,)] == [(10,)]


def test_the_wire_encoders_report_the_split_as_the_providers_do() -> None:
    u = srt.Usage(100, 50, 10, 30, 20, 7)
    a = get_format("anthropic.messages").encode_usage(u)
    assert a["cache_creation"] == {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}
    assert a["cache_creation_input_tokens"] == 30 and a["input_tokens"] == 60
    b = get_format("bedrock.converse").encode_usage(u)
    assert b["cacheDetails"] == [{"ttl": "1h", "inputTokens": 20}, {"ttl": "5m", "inputTokens": 10}]
    assert "cacheDetails" not in get_format("bedrock.converse").encode_usage(srt.Usage(5, 1))
    c = get_format("openai.chat").encode_usage(u)
    assert c["completion_tokens_details"]["reasoning_tokens"] == 7
    r = get_format("openai.responses").encode_usage(u)
    assert r["output_tokens_details"]["reasoning_tokens"] == 7
    for fmt, enc in [("anthropic.messages", a), ("bedrock.converse", b)]:
        back = get_format(fmt).parse_usage({"usage": json.loads(json.dumps(enc))})
        assert back is not None and back.cache_write_1h_tokens == 20
