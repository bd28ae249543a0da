"""Savings against two labelled baselines (issue 14, item 4).

The careful baseline is a model computed from srt's own ledger; these tests run a real
careful stateless client against a fresh ``srt.testing.ProviderServer`` with the same
prompts and compare its measured bill with the model's figure.
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

import httpx
import pytest

import srt
from srt.pricing import Pricing
from srt.providers import Anthropic, OpenAI
from srt.savings import MARKER_LOOKBACK, MARKER_TTL_S, savings
from srt.testing import ProviderServer
from srt.wire import build_body

KEY = "sk-savings-key"
SYSTEM = {"role": "system", "content": "You answer questions about caches. " * 250}
TURNS = [f"Question {i}: what happens to the prefix {'and why ' * (3 + i)}?" for i in range(6)]
CALLS = [{"id": f"toolu_{i:02d}", "name": "look", "arguments": {"k": i}} for i in range(12)]
TOOL = {
    "type": "function",
    "function": {"name": "look", "parameters": {"type": "object", "properties": {}}},
}


def _run_srt(rt: srt.Runtime, srv: ProviderServer, fmt: str, model: str) -> srt.Session:
    """A conversation through srt's provider layer; turn 3 is a round of 12 tool calls."""
    s = rt.session(fmt)
    s.append(SYSTEM)
    provider = (
        OpenAI(KEY, base_url=srv.url + "/v1")
        if fmt == "openai.chat"
        else Anthropic(KEY, base_url=srv.url)
    )
    with closing(provider):
        for i, text in enumerate(TURNS):
            s.append({"role": "user", "content": text})
            if i == 3:
                srv.script(fmt, [{"tool_calls": CALLS}])
                s.send(provider, model=model, tools=[TOOL], max_tokens=256)
                for c in CALLS:
                    s.append({"role": "tool", "tool_call_id": c["id"], "content": "ok " * 40})
            srv.script(fmt, [f"Answer {i}: " + "the prefix stays the same. " * 12])
            s.send(provider, model=model, tools=[TOOL], max_tokens=256)
    return s


def _careful_body(fmt: str, bodies: list[bytes], model: str, key: str) -> bytes:
    """What a careful stateless client sends: the whole history, byte-stable, with the
    provider's cache hint (``prompt_cache_key``; or one marker on the last block)."""
    if fmt == "openai.chat":
        return build_body(fmt, bodies, model=model, tools=[TOOL], params={"prompt_cache_key": key})
    body = json.loads(
        build_body(fmt, bodies, model=model, tools=[TOOL], params={"max_tokens": 256})
    )
    last = body["messages"][-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    last["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return json.dumps(body).encode()


def _measure_careful(s: srt.Session, fmt: str, model: str) -> tuple[float, int, int]:
    """Replay srt's prompts through a careful client; its billed input USD, reads, writes."""
    bodies = s.messages_bytes()
    pricing = Pricing()
    usd = 0.0
    with ProviderServer(api_key=KEY) as srv, httpx.Client(timeout=30) as http:
        if fmt == "openai.chat":
            url, headers = srv.url + "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}
        else:
            url, headers = (
                srv.url + "/v1/messages",
                {"x-api-key": KEY, "anthropic-version": "2026-10-21"},
            )
        for call in s.calls():
            body = _careful_body(fmt, bodies[: call["messages"]], model, "conv-1")
            r = http.post(
                url, content=body, headers={**headers, "content-type": "application/json"}
            )
            assert r.status_code == 200, r.text
        accounted = [rec.cache for rec in srv.log]
    reads = writes = 0
    for call, c in zip(s.calls(), accounted, strict=True):
        assert c is not None
        rates = pricing.rates(model, call["provider"], at=call["at"], input_tokens=c.total)
        assert rates is not None
        usd += rates.input_usd(c.total, c.read, c.written)
        reads, writes = reads + c.read, writes + c.written
    return usd, reads, writes


@pytest.mark.parametrize(
    ("fmt", "model"), [("openai.chat", "gpt-4.1"), ("anthropic.messages", "claude-sonnet-4-5")]
)
def test_the_careful_baseline_is_what_a_careful_client_pays(
    rt: srt.Runtime, fmt: str, model: str
) -> None:
    with ProviderServer(api_key=KEY) as srv:
        s = _run_srt(rt, srv, fmt, model)
    report = s.savings()
    measured, reads, writes = _measure_careful(s, fmt, model)
    careful = report.careful
    print(
        f"\n{fmt} {model}: srt billed ${report.billed_input_usd:.6f}; careful client measured "
        f"${measured:.6f} ({reads:,} read, {writes:,} written), modelled ${careful.input_usd:.6f} "
        f"({careful.cache_read_tokens:,} read, {careful.cache_write_tokens:,} written); "
        f"no caching ${report.no_cache.input_usd:.6f}"
    )
    assert report.requests == len(TURNS) + 1 and report.priced_requests == report.requests
    assert careful.input_usd == pytest.approx(measured, rel=0.01)
    assert careful.cache_read_tokens == pytest.approx(reads, rel=0.01)
    assert report.no_cache.input_usd > careful.input_usd
    assert report.no_cache.saved_share > careful.saved_share
    if fmt == "openai.chat":
        # Automatic caching: the same bytes get the same cache; srt saves nothing here.
        assert careful.saved_usd == 0.0
        assert report.billed_input_usd == pytest.approx(measured, rel=0.01)
    else:
        # After the 25 messages of the tool round the single marker looks back too far;
        # srt's planner still reads the prefix.
        assert careful.saved_usd > 0


def _row(session: int, at: float, messages: int, total: int, node: int | None = None,
         fmt: str = "anthropic.messages", read: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "status": "ok",
        "session": session,
        "provider": "anthropic" if fmt.startswith("anthropic") else "openai",
        "format": fmt,
        "model": "claude-sonnet-4-5",
        "at": at,
        "messages": messages,
        "node": node,
        "input_tokens": total,
        "cache_read_tokens": read,
        "cache_write_tokens": 0,
        "output_tokens": 10,
    }


def test_the_careful_clients_rules() -> None:
    """Reads from the previous prompt of the same session within the marker's TTL, at
    least the minimum long, at most the lookback behind, on the same branch."""

    def careful(rows: list[dict[str, Any]], history: Any = None) -> tuple[int, int]:
        b = savings(rows, history=history).careful
        return b.cache_read_tokens, b.cache_write_tokens

    first = _row(1, 1000.0, 3, 5000)
    assert careful([first]) == (0, 5000)
    assert careful([first, _row(1, 1000 + MARKER_TTL_S, 5, 5400)]) == (5000, 5000 + 400)
    assert careful([first, _row(1, 1001 + MARKER_TTL_S, 5, 5400)]) == (0, 10400)  # expired
    assert careful([first, _row(2, 1010.0, 5, 5400)]) == (0, 10400)  # another session
    far = _row(1, 1010.0, 3 + MARKER_LOOKBACK + 1, 9000)
    assert careful([first, far]) == (0, 14000)  # beyond the lookback
    short = _row(1, 1000.0, 3, 900)  # below Sonnet's 1,024-token minimum: nothing cached
    assert careful([short, _row(1, 1010.0, 5, 1000)]) == (0, 0)
    # With the stored history (node ids and bodies, oldest first, the reply last).
    text = b'{"role":"user","content":"x"}'
    calls = (
        b'{"role":"assistant","content":null,"tool_calls":['
        + b",".join(
            b'{"id":"c%d","type":"function","function":{"name":"f","arguments":"{}"}}' % i
            for i in range(12)
        )
        + b"]}"
    )
    tool = b'{"role":"tool","tool_call_id":"c","content":"ok"}'
    reply = b'{"role":"assistant","content":"r"}'
    chains: dict[int, list[tuple[int, bytes]]] = {}

    def history(node: int, depth: int) -> list[tuple[int, bytes]]:
        return chains[node][depth:]

    def chain(*ids: int, bodies: list[bytes] | None = None) -> list[tuple[int, bytes]]:
        return list(zip(ids, bodies or [text] * len(ids), strict=True))

    chains[10] = chain(1, 2, 3, 10)  # the first request: prompt 1-2-3, reply 10
    chains[20] = chain(1, 2, 4, 5, 6, 20)  # an edit of message 3: another branch
    pair = [_row(1, 1000.0, 3, 5000, node=10), _row(1, 1010.0, 5, 5400, node=20)]
    assert careful(pair, history) == (0, 10400)
    chains[20] = chain(1, 2, 3, 10, 5, 20)  # the same branch
    assert careful(pair, history) == (5000, 5400)
    # Another session with the same history (a fork) reads it too.
    fork = [pair[0], {**pair[1], "session": 2}]
    assert careful(fork, history) == (5000, 5400)
    # A round of 12 tool calls and their results adds 24 blocks in 13 messages.
    tools = [calls, *[tool] * 12, text]
    chains[20] = chain(1, 2, 3, *range(40, 54), 20, bodies=[text] * 3 + tools + [reply])
    rounds = [pair[0], _row(1, 1010.0, 17, 9000, node=20)]
    assert careful(rounds, history) == (0, 14000)
    chains[20] = chain(1, 2, 3, 40, 41, 42, 20, bodies=[text] * 3 + [calls, tool, text, reply])
    rounds[1]["messages"] = 6  # 14 blocks: within the lookback
    assert careful(rounds, history) == (5000, 9000)
    # Automatic caching: the careful client gets what srt got.
    auto = [_row(1, 1000.0, 3, 5000, fmt="openai.chat", read=3072)]
    assert careful(auto) == (3072, 0)
