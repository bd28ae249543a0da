"""A call whose provider reported no usage records none: NULL, not zeros (brief ledger26).

A stream cut off before its usage event (OpenAI Chat's last chunk, Responses'
``response.completed``, Bedrock's ``metadata``) was billed, for all its input and the
output that came, yet the provider never said how much. Before, its ledger row recorded
0 tokens of every kind, as if the provider had reported a free call, and the reports
could not tell it from one; ``srt stats`` priced it at $0 and said nothing. Now its row
records no usage (NULL), and ``UsageSummary.unmetered``, ``Savings.unmetered_requests``
and ``srt stats`` count the billed requests whose cost the figures cannot hold.
Anthropic reports the input at the stream's start (``message_start``): a cut stream's row
keeps those counts as reported. Over loopback, on both engines, sync and asyncio.
And ``srt stats`` of requests none of which was billed says the cost is $0 for that
reason (before: "no price known for " and no model).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import closing

import pytest

import srt
from srt.cli import main
from srt.testing import ProviderServer
from support import provider_on

KEY = "sk-ledger26-test"
MODELS = {
    "openai": "gpt-4o",
    "responses": "gpt-4o",
    "azure": "gpt-4o",
    "compatible": "local-model",
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
}
TOKENS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
#: Providers that report usage only at a stream's end.
AT_END = ("openai", "responses", "azure", "compatible", "bedrock")


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def _start(s: srt.Session) -> None:
    s.append({"role": "system", "content": "You answer briefly. " * 50})
    s.append({"role": "user", "content": "Tell me a long story about a lighthouse."})


def _cut_sync(s: srt.Session, provider: srt.Provider, model: str) -> None:
    with s.stream(provider, model=model) as stream:
        for _ in stream:
            break  # one delta, then the stream is closed: cut off


def _cut_async(s: srt.Session, provider: srt.Provider, model: str) -> None:
    async def go() -> None:
        stream = s.astream(provider, model=model)
        async for _ in stream:
            break
        await stream.aclose()

    asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_cut_stream_records_what_was_reported(
    kind: str, mode: str, srv: ProviderServer, store_url: str
) -> None:
    with srt.Runtime(store_url) as rt, closing(provider_on(kind, srv.url, KEY)) as p:
        s = rt.session("cut")
        _start(s)
        (_cut_sync if mode == "sync" else _cut_async)(s, p, MODELS[kind])
        (row,) = s.calls()
        assert row["status"] == "cancelled"
        assert s.messages()[-1]["role"] == "assistant"  # the partial reply is kept
        u = s.usage()
        assert (u.requests, u.billed, u.errors) == (1, 1, 0)
        if kind in AT_END:
            assert [row[k] for k in TOKENS] == [None] * 4
            assert row["cache_write_1h_tokens"] is None and row["reasoning_tokens"] is None
            assert u.unmetered == 1
            assert rt.savings().unmetered_requests == 1
        else:  # Anthropic: message_start's counts, as reported
            assert row["input_tokens"] > 0 and row["output_tokens"] >= 1
            assert u.unmetered == 0
            assert rt.savings().unmetered_requests == 0


@pytest.mark.parametrize("kind", sorted(AT_END))
def test_whole_stream_and_reply_keep_their_usage(
    kind: str, srv: ProviderServer, store_url: str
) -> None:
    """A stream that ends (its usage event came) and a plain reply record their usage."""
    with srt.Runtime(store_url) as rt, closing(provider_on(kind, srv.url, KEY)) as p:
        s = rt.session("whole")
        _start(s)
        s.send(p, model=MODELS[kind])
        with s.stream(p, model=MODELS[kind], append=[{"role": "user", "content": "more"}]) as st:
            for _ in st:
                pass
        rows = s.calls()
        assert [r["status"] for r in rows] == ["ok", "ok"]
        for r in rows:
            assert r["input_tokens"] > 0 and r["output_tokens"] > 0
        assert s.usage().unmetered == 0


def test_stats_names_the_unmetered_requests(
    srv: ProviderServer, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"{tmp_path}/stats.db"
    with srt.Runtime(db) as rt, closing(provider_on("openai", srv.url, KEY)) as p:
        s = rt.session("paid")
        _start(s)
        s.send(p, model="gpt-4o")
        _cut_sync(s, p, "gpt-4o")
        u = s.usage()
        assert (u.requests, u.billed, u.unmetered) == (2, 2, 1)
    main(["--db", db, "stats", "paid"])
    out = capsys.readouterr().out
    assert "2 (1 cancelled)" in out
    (line,) = [x for x in out.splitlines() if x.strip().startswith("unmetered")]
    assert "1 billed request reported no usage" in line
    assert "not in these figures" in line
    main(["--db", db, "stats", "paid", "--json"])
    f = json.loads(capsys.readouterr().out)
    assert f["unmetered"] == 1
    assert f["cost"]["unmetered_requests"] == 1


def test_stats_of_requests_none_billed_says_so(
    srv: ProviderServer, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every request refused before anything was billed (a wrong key): the cost is $0
    because nothing was billed. Before, it read "no price known for " and no model."""
    db = f"{tmp_path}/refused.db"
    with srt.Runtime(db) as rt, closing(provider_on("openai", srv.url, "sk-wrong-key")) as p:
        s = rt.session("refused")
        _start(s)
        with pytest.raises(srt.ProviderError):
            s.send(p, model="gpt-4o")
        u = s.usage()
        assert (u.requests, u.billed, u.errors) == (1, 0, 1)
    main(["--db", db, "stats", "refused"])
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.strip().startswith("cost")]
    assert line.split(None, 1)[1] == "$0 (no request was billed)"
    assert "no price known" not in out
