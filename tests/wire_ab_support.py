"""What the Anthropic and Bedrock wire tests share (``test_wire_anthropic``,
``test_wire_anthropic_replies``, ``test_wire_bedrock``, ``test_wire_bedrock_replies``):
messages and tools in their canonical form, a weather tool, a one-pixel PNG, and a session
run checked turn by turn against a reference builder (``wire_reference_ab``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import srt
import wire_reference_ab as ref
from srt.message import canonical_tool, canonicalize

PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwAB"
    "BAEAwS2OUAAAAABJRU5ErkJggg=="
)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
# The same tool with ``strict`` set (the Anthropic tests give it; the format drops it).
STRICT_WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {**WEATHER_TOOL["function"], "strict": True},
}


def canon(msg: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(canonicalize(msg)[0])
    return result


def canon_tools(tools: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(canonical_tool(t)) for t in tools]


def blocks(frag: bytes) -> list[Any]:
    value: list[Any] = json.loads(b"[" + frag + b"]")
    return value


def session_run(
    rt: srt.Runtime,
    fmt: str,
    reference: Callable[..., bytes],
    tail: Callable[[list[dict[str, Any]], dict[str, Any]], bytes],
    turns: list[list[dict[str, Any]]],
    tools: list[Any],
    params: dict[str, Any],
) -> list[bytes]:
    """Append turn by turn, requesting ``fmt`` after each; check each body against
    ``reference`` (the reference builder's body) and the prefix rule (each body starts
    with the one before, less its ``tail``)."""
    s = rt.session("conversation")
    history: list[dict[str, Any]] = []
    prefix: bytes | None = None
    out = []
    for turn in turns:
        s.append(*turn)
        history += [canon(m) for m in turn]
        body = s.request(fmt, model=ref.MODEL, tools=tools, cache=False, **params)
        assert body == reference(history, model=ref.MODEL, tools=canon_tools(tools), params=params)
        json.loads(body)
        if prefix is not None:
            assert body.startswith(prefix)
        prefix = body[: len(body) - len(tail(history, params))]
        assert s.last_build is not None and s.last_build.serialized <= len(turn)
        out.append(body)
    return out
