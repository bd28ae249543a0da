"""Amazon Bedrock Converse: ``POST /model/{modelId}/converse``.

The body equals ``json.dumps({"toolConfig": {"tools": [...], "toolChoice": ...},
"system": [...], "messages": [...], **params}, ensure_ascii=False, separators=(",",
":"))``, with ``toolConfig`` only when there are tools and ``system`` only when the
conversation opens with system or developer messages. There is no ``model`` key:
Bedrock takes the model id in the URL (the envelope still checks it). A ``toolChoice``
request parameter (``{"auto": {}}``, ``{"any": {}}`` or ``{"tool": {"name": ...}}``:
``srt.wire.params`` makes it of a ``tool_choice``) goes into ``toolConfig`` after the
tools, so a turn that changes it keeps the tools' bytes (and their cache point) as the
prefix; one without tools is a ``ConfigError`` (Bedrock refuses it).

Fragments and role glue work as in ``anthropic.messages``: a fragment is its
content blocks, comma-separated, and consecutive messages of one wire role share
one ``{"role": ..., "content": [...]}`` turn.

Conversion from the canonical (Chat Completions) model:

* system/developer -> ``{"text"}`` blocks; user -> ``{"text"}`` and
  ``{"image": {"format", "source": {"bytes"}}}`` blocks (base64 data URLs of PNG,
  JPEG, GIF or WebP only: Bedrock takes image bytes, not URLs); tool -> a
  ``toolResult`` block in a user turn (``"status": "error"`` when the result is
  marked as an error, ``is_error``); assistant -> its replayable artifacts
  (``reasoningContent`` blocks), then text, then ``toolUse`` blocks.
* Artifacts of another provider or model are left out and the fragment notes
  it; anything else Bedrock cannot express raises ``UnsupportedFeatureError``.

``to_canonical`` converts the other way. Bedrock blocks -> canonical -> Bedrock
gives back the same blocks; inside an assistant message they are grouped as
reasoning, then text, then ``toolUse``, a ``cachePoint`` block is ignored (srt
places its own), a toolResult's ``"status": "error"`` is the tool message's
``is_error`` and its ``"status": "success"`` (the default) is not kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._types import Reply, Usage
from ..errors import (
    ConfigError,
    InvalidMessageError,
    ProviderError,
    ProviderResponseError,
    UnsupportedFeatureError,
)
from ..message import canonical_tool
from ..tokens import Tokenizer, bedrock_tokenizer
from ._input import need, typed_input
from .anthropic.blocks import (
    BlockFormat,
    blocks_of,
    data_url,
    error_marked,
    image_spec,
)
from .anthropic.ids import BEDROCK_IDS
from .base import (
    Event,
    StreamDecoder,
    WireFormat,
    assistant_message,
    cached_usage,
    check_model,
    check_tool_name,
    dumps,
    function_call,
    loads_arguments,
    params_tail,
    reply_parts,
    stream_error,
    usage_of,
    usage_or_none,
)
from .eventstream import Event as Frame
from .eventstream import EventStreamDecoder, encode_frame
from .sse import json_utf8

__all__ = ["FORMAT", "NAME", "Bedrock", "to_canonical"]

_RESERVED = frozenset({"model", "messages", "system", "toolConfig"})
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_CACHE_POINT = {
    None: b',{"cachePoint":{"type":"default"}}',
    "5m": b',{"cachePoint":{"type":"default"}}',
    "1h": b',{"cachePoint":{"type":"default","ttl":"1h"}}',
}
_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
_REASONING = "reasoningContent"
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def event_frame(kind: str, payload: Any) -> bytes:
    """One ``event`` frame of type ``kind`` carrying ``payload`` (JSON, or bytes as given)."""
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    data = (
        payload
        if isinstance(payload, bytes)
        else json_utf8(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
    )
    return encode_frame(headers, data)


class Bedrock(BlockFormat):
    name = "bedrock.converse"
    provider = "bedrock"
    marker = "cachePoint"

    def tokenizer(self, model: str) -> Tokenizer:
        return bedrock_tokenizer(model)

    def stream_decoder(self, model: str | None = None) -> StreamDecoder:
        return BedrockStream(self, model)

    # -- the server side ---------------------------------------------------------------

    def encode_usage(self, usage: Usage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "inputTokens": usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
            "outputTokens": usage.output_tokens,
            "totalTokens": usage.input_tokens + usage.output_tokens,
            "cacheReadInputTokens": usage.cache_read_tokens,
            "cacheWriteInputTokens": usage.cache_write_tokens,
        }
        # The writes by TTL, 1 hour first; none when nothing was written (as Bedrock does).
        long, short = (
            usage.cache_write_1h_tokens,
            usage.cache_write_tokens - usage.cache_write_1h_tokens,
        )
        details = [{"ttl": t, "inputTokens": n} for t, n in (("1h", long), ("5m", short)) if n]
        if details:
            out["cacheDetails"] = details
        return out

    def encode_reply(
        self,
        reply: Reply,
        *,
        id: str = "",
        request: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
        latency_ms: int = 0,
    ) -> dict[str, Any]:
        """A Converse response (Converse has no response id: ``id`` is not used)."""
        text, calls = reply_parts(reply)
        content: list[dict[str, Any]] = []
        if text or not calls:
            content.append({"text": text})
        for cid, name, args in calls:
            tool = {"toolUseId": cid, "name": name, "input": loads_arguments(args, self.name)}
            content.append({"toolUse": tool})
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use" if calls else "end_turn",
            "usage": dict(usage) if usage is not None else self.encode_usage(reply.usage),
            "metrics": {"latencyMs": latency_ms},
        }

    def encode_events(
        self,
        response: Mapping[str, Any],
        *,
        request: Mapping[str, Any] | None = None,
        chunks: Sequence[str] | None = None,
    ) -> list[Event]:
        """ConverseStream's events; each payload carries the ``p`` padding field that
        Bedrock adds so that a frame's size does not tell its content's."""
        events: list[Event] = [("messageStart", {"role": "assistant"})]
        for i, block in enumerate(response["output"]["message"]["content"]):
            if "text" in block:
                text = block["text"]
                for piece in chunks if chunks is not None else ([text] if text else []):
                    delta = {"contentBlockIndex": i, "delta": {"text": piece}}
                    events.append(("contentBlockDelta", delta))
            else:
                tu = block["toolUse"]
                start = {"toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}
                events.append(("contentBlockStart", {"contentBlockIndex": i, "start": start}))
                args = json.dumps(tu["input"], ensure_ascii=False, separators=(",", ":"))
                for k in range(0, len(args), 16):
                    delta = {
                        "contentBlockIndex": i,
                        "delta": {"toolUse": {"input": args[k : k + 16]}},
                    }
                    events.append(("contentBlockDelta", delta))
            events.append(("contentBlockStop", {"contentBlockIndex": i}))
        events.append(("messageStop", {"stopReason": response["stopReason"]}))
        events.append(("metadata", {"usage": response["usage"], "metrics": response["metrics"]}))
        for n, (_, payload) in enumerate(events):
            payload["p"] = _PAD[: 1 + (n * 7) % len(_PAD)]
        return events

    def encode_stream(self, events: Sequence[Event]) -> list[bytes]:
        """AWS event-stream frames (``application/vnd.amazon.eventstream``)."""
        return [event_frame(name or "", data) for name, data in events]

    # -- canonical -> Bedrock ----------------------------------------------------------

    def _text_block(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def _image(self, spec: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
        url = image_spec(spec, self.name, notes)
        data = data_url(url, self.name)
        if data is None:
            raise UnsupportedFeatureError(self.name, "image URLs (Bedrock takes image bytes)")
        media, b64 = data
        return {"image": {"format": _FORMATS[media], "source": {"bytes": b64}}}

    def _tool_result(self, call_id: str, content: Any, notes: list[str]) -> dict[str, Any]:
        result = (
            [{"text": content}]
            if isinstance(content, str)
            else self._parts(content, "a tool message", notes)
        )
        return {"toolResult": {"toolUseId": BEDROCK_IDS.wire(call_id), "content": result}}

    def _error(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"toolResult": {**result["toolResult"], "status": "error"}}

    def _tool_use(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        return {
            "toolUse": {"toolUseId": BEDROCK_IDS.wire(call_id), "name": name, "input": arguments}
        }

    def tool_fragment(self, tool: dict[str, Any]) -> bytes:
        fn = json.loads(canonical_tool(tool))["function"]
        spec: dict[str, Any] = {"name": check_tool_name(fn["name"], self.name)}
        if fn.get("description"):  # (a NonEmptyString: AWS refuses "", so none is sent)
            spec["description"] = fn["description"]
        spec["inputSchema"] = {"json": fn.get("parameters") or _EMPTY_SCHEMA}
        return dumps({"toolSpec": spec})

    def envelope(
        self, model: str, params: dict[str, Any], system: list[bytes], tools: list[bytes]
    ) -> tuple[bytes, bytes]:
        check_model(model)
        rest = dict(params)
        choice = rest.pop("toolChoice", None)
        members = []
        if tools:
            config = b'"toolConfig":{"tools":[' + b",".join(tools) + b"]"
            if choice is not None:  # after the tools, so their bytes stay a prefix
                config += params_tail({"toolChoice": choice}, frozenset())
            members.append(config + b"}")
        elif choice is not None:
            raise ConfigError(
                "toolChoice needs tools: Bedrock refuses a tool choice in a request that "
                "offers none (send tools, or no toolChoice)"
            )
        if system:
            members.append(b'"system":[' + b",".join(system) + b"]")
        members.append(b'"messages":[')
        return b"{" + b",".join(members), b"]" + params_tail(rest, _RESERVED) + b"}"

    def mark(self, fragment: bytes, ttl: str | None) -> bytes:
        """``fragment`` followed by a ``cachePoint`` block (messages, system or tools)."""
        try:
            point = _CACHE_POINT[ttl]
        except (KeyError, TypeError):
            raise ConfigError(f"cache TTL must be None, '5m' or '1h', not {ttl!r}") from None
        if not fragment:
            raise ConfigError("a cache breakpoint needs a non-empty fragment")
        return fragment + point

    # -- Bedrock -> canonical ----------------------------------------------------------

    def parse_reply(self, data: dict[str, Any], model: str | None = None) -> Reply:
        """A Converse response -> canonical assistant message and usage.

        The response does not name the model, so ``reasoningContent`` blocks (kept
        as artifacts for the model that produced them) need ``model``.
        """
        try:
            content = data["output"]["message"]["content"]
            if not isinstance(content, list):
                raise TypeError("content is not a list")
        except (KeyError, TypeError):
            raise ProviderResponseError(
                "a Converse response without output.message.content"
            ) from None
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        arts: list[dict[str, Any]] = []
        try:
            for block in content:
                if not isinstance(block, dict):
                    raise TypeError("a content block is not an object")
                if "text" in block:
                    texts.append(str(block["text"]))
                elif "toolUse" in block:
                    use = block["toolUse"]
                    arguments = use.get("input") or {}
                    calls.append(function_call(use["toolUseId"], use["name"], arguments))
                elif _REASONING in block:
                    if not model:
                        raise UnsupportedFeatureError(
                            self.name, "reasoning content without the model that produced it"
                        )
                    arts.append(
                        {
                            "provider": self.provider,
                            "model": model,
                            "type": _REASONING,
                            "data": block,
                        }
                    )
                else:
                    kind = ",".join(sorted(block))[:40]
                    raise ProviderResponseError(
                        f"a Converse {kind!r} content block srt cannot represent"
                    )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, UnsupportedFeatureError):
                raise
            raise ProviderResponseError(f"a malformed Converse content block ({exc!r})") from None
        usage = _usage(data)
        message = assistant_message("".join(texts), calls, arts)
        return Reply(message, usage, model, None, data.get("stopReason"))

    def parse_usage(self, data: Any) -> Usage | None:
        return usage_or_none(data, _usage, whole=True)

    def _to_part(self, block: Any, what: str) -> dict[str, Any]:
        if not isinstance(block, Mapping) or len(block) != 1:
            raise InvalidMessageError("a Converse content block is an object with one key")
        (kind,) = block
        if kind == "text":
            return {"type": "text", "text": block["text"]}
        if kind == "image":
            image = need(block, "image", Mapping, "a Converse content block")
            for key in image:
                if key not in ("format", "source"):
                    raise UnsupportedFeatureError(self.name, f"the image '{key}' field")
            source = need(image, "source", Mapping, "a Converse image block")
            if set(source) != {"bytes"}:
                raise UnsupportedFeatureError(self.name, f"image sources {sorted(source)}")
            fmt = need(image, "format", str, "a Converse image block")
            data = need(source, "bytes", str, "a Converse image source")
            url = f"data:image/{fmt};base64,{data}"
            return {"type": "image_url", "image_url": {"url": url}}
        raise UnsupportedFeatureError(self.name, f"{kind} blocks in {what}")

    @typed_input("a Converse message")
    def to_canonical(
        self, msg: Mapping[str, Any], model: str | None = None
    ) -> list[dict[str, Any]]:
        """A Converse message (role user or assistant) as canonical message dicts.

        A user message's ``toolResult`` blocks become one tool message each, then
        its other blocks one user message (string content for a single text block).
        An assistant message's ``reasoningContent`` blocks become artifacts for
        ``model``.
        """
        if not isinstance(msg, Mapping):
            raise InvalidMessageError("a Converse message must be an object")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise InvalidMessageError("a Converse message has role user or assistant")
        content = msg.get("content")
        if isinstance(content, str):
            return [{"role": role, "content": content}]
        blocks = [
            b for b in blocks_of(content) if not (isinstance(b, Mapping) and "cachePoint" in b)
        ]
        if role == "user":
            out: list[dict[str, Any]] = []
            parts: list[dict[str, Any]] = []
            for block in blocks:
                if isinstance(block, Mapping) and "toolResult" in block and len(block) == 1:
                    out.append(self._tool_message(block["toolResult"]))
                else:
                    parts.append(self._to_part(block, "a user message"))
            if parts:
                single = len(parts) == 1 and parts[0]["type"] == "text"
                out.append({"role": "user", "content": parts[0]["text"] if single else parts})
            return out
        texts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        arts: list[dict[str, Any]] = []
        for block in blocks:
            if isinstance(block, Mapping) and _REASONING in block and len(block) == 1:
                if not model:
                    raise UnsupportedFeatureError(
                        self.name, "reasoning content without the model that produced it"
                    )
                arts.append(
                    {
                        "provider": self.provider,
                        "model": model,
                        "type": _REASONING,
                        "data": dict(block),
                    }
                )
            elif isinstance(block, Mapping) and "toolUse" in block and len(block) == 1:
                use = block["toolUse"]
                what = "a Converse toolUse block"
                call_id, name = need(use, "toolUseId", str, what), need(use, "name", str, what)
                for key in use:
                    if key not in ("toolUseId", "name", "input"):
                        raise UnsupportedFeatureError(self.name, f"the toolUse '{key}' field")
                if "input" not in use:
                    raise InvalidMessageError(f"{what} needs an 'input' field")
                calls.append(function_call(call_id, name, use["input"]))
            else:
                part = self._to_part(block, "an assistant message")
                if part["type"] != "text":
                    raise UnsupportedFeatureError(self.name, "images in an assistant message")
                texts.append(part)
        text: Any = texts[0]["text"] if len(texts) == 1 else texts or ""
        return [assistant_message(text, calls, arts)]

    def _tool_message(self, result: Mapping[str, Any]) -> dict[str, Any]:
        for key in result:
            if key not in ("toolUseId", "content", "status"):
                raise UnsupportedFeatureError(self.name, f"the toolResult '{key}' field")
        status = result.get("status", "success")
        if status not in ("success", "error"):
            raise InvalidMessageError("a Converse toolResult's status is 'success' or 'error'")
        parts = [self._to_part(b, "a toolResult") for b in blocks_of(result.get("content", []))]
        single = len(parts) == 1 and parts[0]["type"] == "text"
        content: Any = parts[0]["text"] if single else parts
        msg = {"role": "tool", "tool_call_id": result["toolUseId"], "content": content}
        return error_marked(msg, status == "error")


# -- streamed replies -------------------------------------------------------------------


def _frame_error(frame: Frame) -> ProviderError:
    """A frame that is not an event as a typed error: an ``exception`` frame names its
    type in ``:exception-type`` and its message in the JSON payload; an ``error`` frame
    carries both in headers (``:error-code``, ``:error-message``), as botocore reads it."""
    if frame.message_type == "error":
        kind = frame.headers.get(":error-code")
        message = frame.headers.get(":error-message")
        return stream_error(str(kind or "error"), str(message or "(no message)"))
    try:
        message = str(frame.json().get("message"))
    except (ProviderResponseError, AttributeError):
        message = frame.payload[:200].decode("utf-8", "replace")
    return stream_error(str(frame.exception_type or frame.message_type), message)


class BedrockStream(StreamDecoder):
    """Bedrock ConverseStream: AWS event-stream binary frames (CRC-checked)."""

    def __init__(self, fmt: WireFormat, model: str | None = None) -> None:
        super().__init__(fmt, model)
        self._frames = EventStreamDecoder()
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._stop: str | None = None
        self._usage: dict[str, Any] = {}

    def decode(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        for frame in self._frames.feed(chunk):
            self.events += 1
            if frame.message_type != "event":
                raise _frame_error(frame)
            out.extend(self.checked(self._event, frame))
        return out

    def event_name(self, event: Any) -> str:
        return f"ConverseStream {event.event_type}"

    def _reasoning(self, i: int, delta: Mapping[str, Any]) -> None:
        """A ``reasoningContent`` delta: text and signature pieces of a ``reasoningText``,
        or the whole ``redactedContent`` (base64) of a redacted block."""
        if "redactedContent" in delta:
            self._blocks[i] = {"reasoningContent": {"redactedContent": delta["redactedContent"]}}
            return
        rc = self._blocks.setdefault(i, {"reasoningContent": {"reasoningText": {}}})
        rt = rc["reasoningContent"].setdefault("reasoningText", {})
        for key in ("text", "signature"):
            if key in delta:
                rt[key] = rt.get(key, "") + delta[key]

    def _event(self, frame: Frame) -> list[str]:
        out: list[str] = []
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
                self._reasoning(i, d["reasoningContent"])
        elif kind == "contentBlockStop":
            i = int(data.get("contentBlockIndex", 0))
            if _REASONING in self._blocks.get(i, {}) and not any(
                "text" in b or "toolUse" in b for b in self._blocks.values()
            ):  # (reasoning before the text: ``leading``, as it is when whole)
                self.leading.append(self._blocks[i])
            if i in self._json:
                raw = "".join(self._json.pop(i))
                try:
                    self._blocks[i]["toolUse"]["input"] = json.loads(raw) if raw else {}
                except (ValueError, KeyError):
                    raise ProviderResponseError("a toolUse block streamed invalid JSON") from None
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


FORMAT = Bedrock()
NAME = FORMAT.name

#: ``to_canonical(msg, model=None)`` as a module function (for ``srt.wire.convert``).
to_canonical = FORMAT.to_canonical


def _usage(data: Mapping[str, Any]) -> Usage:
    """A Converse response's usage as srt's ``Usage``."""
    u = usage_of(data)
    # ``cacheDetails`` splits the writes by TTL: [{"ttl": "1h" | "5m", "inputTokens": n}].
    details = u.get("cacheDetails") or []
    if not isinstance(details, list) or not all(isinstance(d, Mapping) for d in details):
        raise ProviderResponseError("a reply whose usage.cacheDetails is not a list of objects")
    return cached_usage(
        u.get("inputTokens"),
        u.get("outputTokens"),
        u.get("cacheReadInputTokens"),
        u.get("cacheWriteInputTokens"),
        sum(_count(d.get("inputTokens")) for d in details if d.get("ttl") == "1h"),
    )


def _count(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProviderResponseError(
            "a reply whose usage.cacheDetails holds a count that is no number"
        )
    return v
