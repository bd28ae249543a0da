"""Streamed replies, decoded per wire format.

Each decoder is fed raw bytes and yields text deltas. It rebuilds the provider's
*non-streamed* response object from the events, so the final ``Reply`` comes from
the same ``parse_reply`` as a non-streamed call; ``partial()`` gives the reply so
far when a stream is cut off. A provider error event mid-stream raises
``ProviderResponseError`` (or ``RateLimitError`` for overload/throttling).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from .._types import Reply, Usage
from ..errors import ProviderError, ProviderResponseError, RateLimitError
from ..wire import get_format
from .eventstream import EventStreamDecoder
from .sse import ServerSentEvent, SSEDecoder

__all__ = ["StreamDecoder", "decoder_for"]


def _error(kind: str, message: str) -> ProviderError:
    if kind in ("overloaded_error", "rate_limit_error", "throttlingException"):
        return RateLimitError(f"the provider reported {kind} mid-stream: {message}")
    return ProviderResponseError(f"the provider reported {kind} mid-stream: {message}")


class StreamDecoder(ABC):
    format: str = ""

    def __init__(self) -> None:
        self.done = False
        self.events = 0

    @abstractmethod
    def feed(self, chunk: bytes) -> list[str]:
        """Consume bytes; return the text deltas they completed."""

    @abstractmethod
    def response(self) -> dict[str, Any]:
        """The non-streamed response object as far as the stream got."""

    def reply(self) -> Reply:
        return get_format(self.format).parse_reply(self.response())

    def partial(self) -> Reply:
        """The reply so far (for a stream cut off before its end)."""
        try:
            return self.reply()
        except ProviderResponseError:
            return Reply({"role": "assistant", "content": ""}, Usage())


class _SSEStream(StreamDecoder):
    def __init__(self) -> None:
        super().__init__()
        self._sse = SSEDecoder()

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        for ev in self._sse.feed(chunk):
            self.events += 1
            out.extend(self.on_event(ev))
        return out

    @abstractmethod
    def on_event(self, ev: ServerSentEvent) -> list[str]: ...


class ChatStream(_SSEStream):
    """OpenAI Chat Completions chunks (``data: {...}`` ... ``data: [DONE]``)."""

    format = "openai.chat"

    def __init__(self) -> None:
        super().__init__()
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._id: str | None = None
        self._model: str | None = None

    def on_event(self, ev: ServerSentEvent) -> list[str]:
        if ev.data == "[DONE]":
            self.done = True
            return []
        data = ev.json()
        if not isinstance(data, dict):
            raise ProviderResponseError("a chat completion chunk is not an object")
        if "error" in data:
            err = data["error"] or {}
            raise _error(str(err.get("type") or err.get("code")), str(err.get("message")))
        self._id = data.get("id", self._id)
        self._model = data.get("model", self._model)
        if data.get("usage"):
            self._usage = data["usage"]
        out: list[str] = []
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text.append(delta["content"])
                out.append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                slot = self._calls.setdefault(
                    int(tc.get("index", 0)),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def response(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(self._text) or None}
        if self._calls:
            msg["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        elif msg["content"] is None:
            msg["content"] = ""
        return {
            "id": self._id,
            "model": self._model,
            "choices": [{"index": 0, "message": msg, "finish_reason": self._finish}],
            "usage": self._usage or {},
        }


class ResponsesStream(_SSEStream):
    """OpenAI Responses typed events; ``response.completed`` carries the whole response."""

    format = "openai.responses"

    def __init__(self) -> None:
        super().__init__()
        self._final: dict[str, Any] | None = None
        self._text: list[str] = []
        self._base: dict[str, Any] = {}

    def on_event(self, ev: ServerSentEvent) -> list[str]:
        data = ev.json()
        if not isinstance(data, dict):
            raise ProviderResponseError("a Responses event is not an object")
        kind = data.get("type") or ev.event
        if kind == "response.output_text.delta":
            d = str(data.get("delta") or "")
            self._text.append(d)
            return [d] if d else []
        if kind in ("response.created", "response.in_progress"):
            self._base = dict(data.get("response") or {})
        elif kind == "response.completed":
            self._final = data.get("response")
            self.done = True
        elif kind in ("response.failed", "response.incomplete"):
            resp = data.get("response") or {}
            err = resp.get("error") or resp.get("incomplete_details") or {}
            raise _error(str(err.get("code") or kind), str(err.get("message") or err))
        elif kind == "error":
            raise _error(str(data.get("code") or "error"), str(data.get("message")))
        return []

    def response(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        out = dict(self._base)
        out["output"] = [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "".join(self._text)}],
            }
        ]
        out.setdefault("usage", {})
        return out


class AnthropicStream(_SSEStream):
    """Anthropic Messages named events, rebuilt into a message object."""

    format = "anthropic.messages"

    def __init__(self) -> None:
        super().__init__()
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
            raise _error(str(err.get("type")), str(err.get("message")))
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
            if i in self._json:
                raw = "".join(self._json.pop(i))
                try:
                    self._blocks[i]["input"] = json.loads(raw) if raw else {}
                except ValueError:
                    raise ProviderResponseError("a tool_use block streamed invalid JSON") from None
        elif kind == "message_delta":
            delta = data.get("delta") or {}
            self._msg.update({k: v for k, v in delta.items() if v is not None})
            self._msg["usage"].update(data.get("usage") or {})
        elif kind == "message_stop":
            self.done = True
        return []

    def response(self) -> dict[str, Any]:
        out = dict(self._msg)
        out.setdefault("role", "assistant")
        out.setdefault("type", "message")
        out["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        return out


class BedrockStream(StreamDecoder):
    """Bedrock ConverseStream: AWS event-stream binary frames (CRC-checked)."""

    format = "bedrock.converse"

    def __init__(self) -> None:
        super().__init__()
        self._frames = EventStreamDecoder()
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._stop: str | None = None
        self._usage: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        for frame in self._frames.feed(chunk):
            self.events += 1
            if frame.message_type != "event":
                kind = str(frame.exception_type or frame.message_type)
                try:
                    message = str(frame.json().get("message"))
                except (ProviderResponseError, AttributeError):
                    message = frame.payload[:200].decode("utf-8", "replace")
                raise _error(str(kind), message)
            data = frame.json()
            kind = frame.event_type or ""
            if kind == "contentBlockStart":
                i = int(data.get("contentBlockIndex", 0))
                start = (data.get("start") or {}).get("toolUse")
                if start:
                    self._blocks[i] = {"toolUse": {**start, "input": {}}}
            elif kind == "contentBlockDelta":
                i = int(data.get("contentBlockIndex", 0))
                d = data.get("delta") or {}
                if "text" in d:
                    block = self._blocks.setdefault(i, {"text": ""})
                    block["text"] = block.get("text", "") + d["text"]
                    out.append(d["text"])
                elif "toolUse" in d:
                    self._json.setdefault(i, []).append(d["toolUse"].get("input", ""))
                elif "reasoningContent" in d:
                    rc = self._blocks.setdefault(i, {"reasoningContent": {"reasoningText": {}}})
                    rt = rc["reasoningContent"].setdefault("reasoningText", {})
                    for key in ("text", "signature"):
                        if key in d["reasoningContent"]:
                            rt[key] = rt.get(key, "") + d["reasoningContent"][key]
            elif kind == "contentBlockStop":
                i = int(data.get("contentBlockIndex", 0))
                if i in self._json:
                    raw = "".join(self._json.pop(i))
                    try:
                        self._blocks[i]["toolUse"]["input"] = json.loads(raw) if raw else {}
                    except (ValueError, KeyError):
                        raise ProviderResponseError(
                            "a toolUse block streamed invalid JSON"
                        ) from None
            elif kind == "messageStop":
                self._stop = data.get("stopReason")
            elif kind == "metadata":
                self._usage = dict(data.get("usage") or {})
                self.done = True
        return out

    def response(self) -> dict[str, Any]:
        return {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [self._blocks[i] for i in sorted(self._blocks)],
                }
            },
            "stopReason": self._stop,
            "usage": self._usage,
        }


_DECODERS: dict[str, type[StreamDecoder]] = {
    d.format: d for d in (ChatStream, ResponsesStream, AnthropicStream, BedrockStream)
}


def decoder_for(format: str) -> StreamDecoder:
    base = format.split(".", 1)[1] if format.startswith("azure.") else None
    cls = _DECODERS.get(format) or (_DECODERS.get(f"openai.{base}") if base else None)
    if cls is None:
        raise ProviderResponseError(f"no stream decoder for {format}")
    dec = cls()
    dec.format = str(format)
    return dec
