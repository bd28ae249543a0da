"""Anthropic Messages replies from srt.testing checked strictly with the ``anthropic`` SDK.

Each reply and stream event validates against the SDK's models with no field the model
does not declare, at any depth (pydantic keeps unknown keys in ``model_extra``; none may
be there): ``message_delta``'s usage is a ``MessageDeltaUsage``, which has no
``cache_creation`` object and no ``service_tier`` (those are the ``message``'s ``Usage``,
in ``message_start``). srt reads the same usage, 1-hour cache writes included, from the
stream as from the JSON reply.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic.types as at
import httpx
import pytest
from pydantic import BaseModel, TypeAdapter

from srt.testing import ProviderServer
from srt.wire import get_format
from support import sse_events

KEY = "sk-ant-wire29-0123456789"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}
EVENT: TypeAdapter[Any] = TypeAdapter(at.RawMessageStreamEvent)
MODEL = "claude-sonnet-4-6"


def undeclared(value: Any, path: str = "$") -> list[str]:
    """The paths of every key no SDK model declares, at any depth."""
    out: list[str] = []
    if isinstance(value, BaseModel):
        out += [f"{path}.{k}" for k in value.model_extra or {}]
        for name in type(value).model_fields:
            out += undeclared(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += undeclared(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            out += undeclared(item, f"{path}.{k}")
    return out


def _body(stream: bool) -> dict[str, Any]:
    system = [
        {
            "type": "text",
            "text": "You answer briefly and well. " * 400,
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    return {
        "model": MODEL,
        "max_tokens": 256,
        "system": system,
        "messages": messages,
        "stream": stream,
    }


REPLIES = {
    "text": "Mild, about 18 C, with a light breeze.",
    "tool_call": {
        "text": "Checking.",
        "tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}],
    },
}


def _post(reply: Any, stream: bool) -> httpx.Response:
    """``reply`` from a server of its own (each one's cache cold: both write it)."""
    with ProviderServer(api_key=KEY) as srv, httpx.Client(timeout=30) as http:
        srv.script("anthropic.messages", [reply])
        r = http.post(srv.url + "/v1/messages", json=_body(stream), headers=HEADERS)
        assert srv.errors == []
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("kind", sorted(REPLIES))
def test_every_reply_and_event_has_only_the_sdks_fields(kind: str) -> None:
    fmt = get_format("anthropic.messages")
    whole, streamed = _post(REPLIES[kind], False), _post(REPLIES[kind], True)
    message = at.Message.model_validate(whole.json())
    assert undeclared(message) == []
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens > 0
    kinds = []
    for name, data in sse_events(streamed.content):
        payload = json.loads(data)
        if name == "ping":
            assert payload == {"type": "ping"}
            continue
        event = EVENT.validate_python(payload)
        assert event.type == name
        assert undeclared(event) == [], name
        kinds.append(name)
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    decoder = fmt.stream_decoder(MODEL)
    decoder.feed(streamed.content)
    ours, theirs = decoder.reply(), fmt.parse_reply(whole.json(), MODEL)
    assert ours.usage == theirs.usage and ours.usage.cache_write_1h_tokens > 0
    assert ours.message == theirs.message


LONG = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_over_max_tokens_stops_there(stream: bool) -> None:
    body = {"model": MODEL, "max_tokens": 5, "stream": stream}
    body["messages"] = [{"role": "user", "content": "Count."}]
    with ProviderServer(api_key=KEY) as srv, httpx.Client(timeout=30) as http:
        srv.script("anthropic.messages", [LONG])
        r = http.post(srv.url + "/v1/messages", json=body, headers=HEADERS)
    fmt = get_format("anthropic.messages")
    if stream:
        events = [(n, json.loads(d)) for n, d in sse_events(r.content) if n != "ping"]
        for name, data in events:
            assert undeclared(EVENT.validate_python(data)) == [], name
        delta = next(d for n, d in events if n == "message_delta")
        assert delta["delta"]["stop_reason"] == "max_tokens"
        decoder = fmt.stream_decoder(MODEL)
        decoder.feed(r.content)
        reply = decoder.reply()
    else:
        message = at.Message.model_validate(r.json())
        assert undeclared(message) == []
        assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5
        reply = fmt.parse_reply(r.json(), MODEL)
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 5
    assert LONG.startswith(reply.message["content"]) and reply.message["content"] != LONG
