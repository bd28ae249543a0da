"""The reply side of Anthropic Messages: the stream decoder (named SSE events rebuilt
into a message object, which ``parse_reply`` then reads like a non-streamed one), and
the reply encoder (a message object and the events that stream it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..._types import Reply, Usage
from ...errors import InvalidMessageError, ProviderResponseError
from ..base import Event, SSEStream, WireFormat, reply_parts, stream_error
from ..sse import ServerSentEvent

__all__ = ["AnthropicStream", "encode_events", "encode_reply", "encode_usage"]


class AnthropicStream(SSEStream):
    """Anthropic Messages named events, rebuilt into a message object."""

    def __init__(self, fmt: WireFormat, model: str | None = None) -> None:
        super().__init__(fmt, model)
        self._msg: dict[str, Any] = {"content": [], "usage": {}}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}

    def on_event(self, ev: ServerSentEvent) -> list[str]:
        if ev.event == "ping":
            return []
        data = ev.json()
        if not isinstance(data, dict):
            raise ProviderResponseError("an Anthropic event is not an object")
        kind = data.get("type") or ev.event
        if kind == "error":
            err = data.get("error") or {}
            raise stream_error(str(err.get("type")), str(err.get("message")))
        if kind == "message_start":
            start = dict(data.get("message") or {})
            usage = dict(start.pop("usage", None) or {})
            start.pop("content", None)
            self._msg.update(start)
            self._msg["usage"].update(usage)
        elif kind == "content_block_start":
            block = dict(data.get("content_block") or {})
            if block.get("type") == "tool_use":
                block["input"] = {}
            self._blocks[int(data.get("index", 0))] = block
        elif kind == "content_block_delta":
            i = int(data.get("index", 0))
            block = self._blocks.setdefault(i, {"type": "text", "text": ""})
            d = data.get("delta") or {}
            t = d.get("type")
            if t == "text_delta":
                block["text"] = block.get("text", "") + d.get("text", "")
                return [d.get("text", "")]
            if t == "input_json_delta":
                self._json.setdefault(i, []).append(d.get("partial_json", ""))
            elif t == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + d.get("thinking", "")
            elif t == "signature_delta":
                block["signature"] = block.get("signature", "") + d.get("signature", "")
        elif kind == "content_block_stop":
            i = int(data.get("index", 0))
            block = self._blocks.get(i) or {}
            if block.get("type") in ("thinking", "redacted_thinking") and not any(
                b.get("type") in ("text", "tool_use") for b in self._blocks.values()
            ):  # (thinking before the text: ``leading``, as it is when whole)
                self.leading.append(block)
            if i in self._json:
                raw = "".join(self._json.pop(i))
                try:
                    self._blocks[i]["input"] = json.loads(raw) if raw else {}
                except ValueError:
                    raise ProviderResponseError("a tool_use block streamed invalid JSON") from None
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            self._msg.update({k: v for k, v in delta.items() if v is not None})
            # (its counts are running totals; a null one was not sent, and the count
            # ``message_start`` gave stands, as the Anthropic SDK's accumulator keeps it)
            usage = data.get("usage") or {}
            self._msg["usage"].update({k: v for k, v in usage.items() if v is not None})
        elif kind == "message_stop":
            self.done = True
        return []

    def response(self) -> dict[str, Any]:
        out = dict(self._msg)
        out.setdefault("role", "assistant")
        out.setdefault("type", "message")
        out["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        return out


# -- the server side: a message object and its named events -----------------------------------


def encode_usage(usage: Usage) -> dict[str, Any]:
    written = usage.cache_write_tokens
    return {
        "input_tokens": usage.input_tokens - usage.cache_read_tokens - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written - usage.cache_write_1h_tokens,
            "ephemeral_1h_input_tokens": usage.cache_write_1h_tokens,
        },
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }


def encode_reply(
    reply: Reply, *, id: str, usage: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``message`` object: a text block (unless the reply is only tool calls) and
    ``tool_use`` blocks."""
    text, calls = reply_parts(reply)
    content: list[dict[str, Any]] = []
    if text or not calls:
        content.append({"type": "text", "text": text})
    for cid, name, args in calls:
        content.append({"type": "tool_use", "id": cid, "name": name, "input": _input(args)})
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": dict(usage) if usage is not None else encode_usage(reply.usage),
    }


def _input(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        raise InvalidMessageError("a tool call's arguments are not valid JSON") from None


#: ``message_delta``'s usage (the SDK's ``MessageDeltaUsage``): the counts, without the
#: ``cache_creation`` split and ``service_tier`` that ``message_start``'s usage carries.
_DELTA_USAGE = frozenset(
    {
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "server_tool_use",
    }
)


def encode_events(message: Mapping[str, Any], chunks: Sequence[str] | None = None) -> list[Event]:
    """``message_start`` ... ``message_stop``, with a ``ping`` after the first block starts
    and after every eighth delta, as the API sends them."""
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(message["content"]):
        if block["type"] == "text":
            empty: dict[str, Any] = {"type": "text", "text": ""}
            text = block["text"]
            pieces = chunks if chunks is not None else ([text] if text else [])
            deltas = [{"type": "text_delta", "text": p} for p in pieces]
        else:
            empty = {**block, "input": {}}
            args = json.dumps(block["input"], ensure_ascii=False, separators=(",", ":"))
            deltas = [
                {"type": "input_json_delta", "partial_json": args[k : k + 16]}
                for k in range(0, len(args), 16)
            ]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": empty},
            )
        )
        if i == 0:
            events.append(("ping", {"type": "ping"}))
        for k, d in enumerate(deltas):
            if k and k % 8 == 0:
                events.append(("ping", {"type": "ping"}))
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {k: v for k, v in message["usage"].items() if k in _DELTA_USAGE},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events
