"""The local provider server's Anthropic Messages endpoint against the official
``anthropic`` SDK and raw HTTP: tools, cache accounting, validation and headers.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest
from testing_server_support import (
    ANTHROPIC_H,
    CLAUDE,
    LONG,
    MESSAGES,
    claude,
    system_cached,
)

from srt.testing import (
    ProviderServer,
    cache_minimum,
    count_tokens,
    ntokens,
)

# -- Anthropic Messages ----------------------------------------------------------------


def test_anthropic_create_and_stream(srv: ProviderServer) -> None:
    client = claude(srv)
    m = client.messages.create(**MESSAGES)  # type: ignore[call-overload]
    assert (
        m.type == "message"
        and m.stop_reason == "end_turn"
        and m.content[0].text.startswith("reply 1 to hi")
    )
    assert (
        m.usage.input_tokens
        == count_tokens("anthropic.messages", MESSAGES)
        == srv.log[-1].prompt_tokens
    )
    assert m.usage.output_tokens == ntokens(m.content[0].text)
    assert (
        srv.log[-1]
        .headers.get("authorization", srv.log[-1].headers.get("x-api-key", ""))
        .endswith("<redacted>")
    )
    with client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "stream ☃"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and text.startswith("reply 2 to stream ☃")
    assert (
        final.usage.output_tokens == ntokens(text)
        and final.usage.input_tokens == srv.log[-1].prompt_tokens
    )
    count = client.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "hi"}])
    assert count.input_tokens == count_tokens("anthropic.messages", MESSAGES)


def test_anthropic_tool_round(srv: ProviderServer, http: httpx.Client) -> None:
    client = claude(srv)
    tools = [
        {
            "name": "get_time",
            "description": "now",
            "input_schema": {"type": "object", "properties": {}},
        }
    ]
    srv.script(
        "anthropic",
        [
            {
                "text": "let me check",
                "tool_calls": [{"name": "get_time", "arguments": {"tz": "UTC"}}],
            }
        ],
    )
    msgs: list[Any] = [{"role": "user", "content": "time?"}]
    m = client.messages.create(model=CLAUDE, max_tokens=64, messages=msgs, tools=tools)  # type: ignore[arg-type]
    assert m.stop_reason == "tool_use"
    use = m.content[1]
    assert use.type == "tool_use" and use.input == {"tz": "UTC"}
    msgs += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "12:00"}],
        },
    ]
    m2 = client.messages.create(model=CLAUDE, max_tokens=64, messages=msgs, tools=tools)  # type: ignore[arg-type]
    assert m2.content[0].text.startswith("reply 2 to 12:00")
    msgs[-1]["content"][0]["tool_use_id"] = "toolu_unknown"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=CLAUDE, max_tokens=64, messages=msgs, tools=tools)  # type: ignore[arg-type]
    srv.script("anthropic", [{"tool_calls": [{"name": "get_time", "arguments": {"tz": "CET"}}]}])
    with client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=msgs[:1], tools=tools
    ) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    assert final.content[0].input == {"tz": "CET"} and final.stop_reason == "tool_use"


def test_anthropic_cache_accounting(srv: ProviderServer) -> None:
    client = claude(srv)
    cc = {"type": "ephemeral"}
    turn1 = [{"role": "user", "content": [{"type": "text", "text": "q1", "cache_control": cc}]}]
    m1 = client.messages.create(
        model=CLAUDE, max_tokens=64, system=system_cached(LONG), messages=turn1
    )  # type: ignore[arg-type]
    b1 = srv.log[-1].boundaries
    assert srv.log[-1].breakpoints == [(0, "5m"), (1, "5m")]
    assert b1[0] >= 1024
    assert (m1.usage.cache_creation_input_tokens, m1.usage.cache_read_input_tokens) == (b1[1], 0)
    assert m1.usage.input_tokens == b1[-1] - b1[1] == 0
    assert m1.usage.cache_creation.ephemeral_5m_input_tokens == b1[1]
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": "q1"}]},
        {"role": "assistant", "content": m1.content[0].text},
        {"role": "user", "content": [{"type": "text", "text": "q2", "cache_control": cc}]},
    ]
    m2 = client.messages.create(
        model=CLAUDE, max_tokens=64, system=system_cached(LONG), messages=turn2
    )  # type: ignore[arg-type]
    b2 = srv.log[-1].boundaries
    assert b2[:2] == b1[:2]  # markers never change tokens
    assert m2.usage.cache_read_input_tokens == b1[1]  # found by looking back from the breakpoint
    assert m2.usage.cache_creation_input_tokens == b2[3] - b1[1]
    assert m2.usage.input_tokens == b2[-1] - b2[3] == 0
    # Below the minimum nothing is cached, silently.
    small = client.messages.create(
        model=CLAUDE, max_tokens=64, system=system_cached("short"), messages=turn1
    )  # type: ignore[arg-type]
    assert (small.usage.cache_creation_input_tokens, small.usage.cache_read_input_tokens) == (0, 0)
    assert small.usage.input_tokens == srv.log[-1].prompt_tokens
    # After 5 minutes the 5m entries are gone; the 1h one survives.
    srv.advance(301)
    m3 = client.messages.create(
        model=CLAUDE, max_tokens=64, system=system_cached(LONG), messages=turn2
    )  # type: ignore[arg-type]
    assert m3.usage.cache_read_input_tokens == 0 and m3.usage.cache_creation_input_tokens == b2[3]
    # m3 wrote units 0 and 3; a 1h breakpoint that hits an entry lifts it to 1h.
    m4 = client.messages.create(
        model=CLAUDE, max_tokens=64, system=system_cached(LONG, "1h"), messages=turn1
    )  # type: ignore[arg-type]
    assert m4.usage.cache_read_input_tokens == b1[0]
    assert m4.usage.cache_creation.ephemeral_5m_input_tokens == b1[1] - b1[0]
    srv.advance(301)
    m5 = client.messages.create(
        model=CLAUDE, max_tokens=64, system=system_cached(LONG, "1h"), messages=turn1
    )  # type: ignore[arg-type]
    assert m5.usage.cache_read_input_tokens == b1[0]  # only the 1h system entry is alive
    assert m5.usage.cache_creation.ephemeral_5m_input_tokens == b1[1] - b1[0]
    fresh = client.messages.create(
        model="claude-opus-4-6", max_tokens=64, system=system_cached(LONG, "1h"), messages=turn1
    )  # type: ignore[arg-type]
    assert fresh.usage.cache_creation.ephemeral_1h_input_tokens == b1[0]
    assert fresh.usage.cache_creation.ephemeral_5m_input_tokens == b1[1] - b1[0]


def test_anthropic_cache_minimum_per_model(srv: ProviderServer) -> None:
    assert cache_minimum(CLAUDE) == 1024
    assert cache_minimum("claude-3-haiku-20240307") == 2048
    assert cache_minimum("claude-haiku-4-5") == 4096
    assert cache_minimum("claude-haiku-4-5", overrides={"haiku": 100}) == 100
    client = claude(srv)
    msgs = [{"role": "user", "content": "q"}]
    m = client.messages.create(
        model="claude-haiku-4-5", max_tokens=64, system=system_cached(LONG), messages=msgs
    )  # type: ignore[arg-type]
    assert m.usage.cache_creation_input_tokens == 0  # ~1,350 tokens < 4,096
    m = client.messages.create(
        model="claude-haiku-4-5", max_tokens=64, system=system_cached(LONG * 4), messages=msgs
    )  # type: ignore[arg-type]
    assert m.usage.cache_creation_input_tokens == srv.log[-1].boundaries[0] > 4096


def test_anthropic_breakpoint_rules(srv: ProviderServer) -> None:
    client = claude(srv)
    cc = {"type": "ephemeral"}
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": cc} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": blocks}]
        )  # type: ignore[arg-type]
    assert "maximum of 4 blocks" in str(info.value)
    client.messages.create(
        model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": blocks[:4]}]
    )  # type: ignore[arg-type]
    late_1h = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ],
        }
    ]
    with pytest.raises(anthropic.BadRequestError, match="1h"):
        client.messages.create(
            model=CLAUDE, max_tokens=64, system=system_cached("s", "5m"), messages=late_1h
        )  # type: ignore[arg-type]
    client.messages.create(
        model=CLAUDE, max_tokens=64, system=system_cached("s", "1h"), messages=late_1h
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"temprature": 1}, "temprature: Extra inputs are not permitted"),
        ({"max_tokens": None}, "max_tokens"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "first message"),
        ({"messages": [{"role": "user", "content": ""}]}, "non-empty"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "x", "extra": 1}]}
                ]
            },
            "extra",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}],
                    }
                ]
            },
            "not allowed",
        ),
        (
            {"system": [{"type": "text", "text": "s", "cache_control": {"type": "persistent"}}]},
            "cache_control",
        ),
        ({"tools": [{"name": "t", "input_schema": "no"}]}, "input_schema"),
    ],
)
def test_anthropic_validation(
    srv: ProviderServer, http: httpx.Client, change: dict[str, Any], needle: str
) -> None:
    body = {**MESSAGES, **change}
    if change.get("max_tokens", 0) is None:
        del body["max_tokens"]
    r = http.post(srv.url + "/v1/messages", json=body, headers=ANTHROPIC_H)
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert needle in r.json()["error"]["message"]


def test_anthropic_headers(srv: ProviderServer, http: httpx.Client) -> None:
    url = srv.url + "/v1/messages"
    r = http.post(url, json=MESSAGES, headers={"x-api-key": "k"})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]
    r = http.post(url, json=MESSAGES, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = http.post(
        url, json=MESSAGES, headers={"Authorization": "Bearer k", "anthropic-version": "2023-06-01"}
    )
    assert r.status_code == 200 and r.headers["request-id"]
    consecutive = {
        **MESSAGES,
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    }
    assert http.post(url, json=consecutive, headers=ANTHROPIC_H).status_code == 200
    r = http.post(url + "/count_tokens", json={**MESSAGES}, headers=ANTHROPIC_H)
    assert r.status_code == 400  # count_tokens takes no max_tokens
    body = {k: v for k, v in MESSAGES.items() if k != "max_tokens"}
    r = http.post(url + "/count_tokens", json=body, headers=ANTHROPIC_H)
    assert r.json() == {"input_tokens": count_tokens("anthropic.count_tokens", body)}
