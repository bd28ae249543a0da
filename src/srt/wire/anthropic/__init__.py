"""Anthropic Messages: ``POST /v1/messages``.

The body equals ``json.dumps({"model": ..., "max_tokens": ..., "tools": [...],
"system": [...], "messages": [...], **params}, ensure_ascii=False,
separators=(",", ":"))``, with ``tools`` only when there are tools and ``system``
only when the conversation opens with system or developer messages.
``max_tokens`` is required by the API: it is taken from the request parameters
when given there (and then not repeated), else ``DEFAULT_MAX_TOKENS``.

A message's fragment is its content blocks, comma-separated; the role glue opens
and closes ``{"role": ..., "content": [...]}`` objects, so consecutive messages of
one wire role (a tool result, which Anthropic carries in a user turn, followed by
a user message, say) share one turn, as the API requires.

Conversion from the canonical (Chat Completions) model:

* system/developer -> ``system`` text blocks; user -> text and image blocks
  (base64 data URLs and http(s) URLs); tool -> a ``tool_result`` block in a user
  turn (``"is_error": true`` when the result is marked as an error); assistant ->
  its replayable artifacts, then text, then ``tool_use`` blocks.
* Provider artifacts (thinking blocks with their signature) are replayed verbatim
  only to the provider and model that produced them; others are left out and
  the fragment notes it.
* Anything Anthropic cannot express (a message ``name``, a blank text block: empty or
  whitespace, audio or file parts, image URLs of other schemes) raises
  ``UnsupportedFeatureError``: nothing is dropped silently. Left out and noted on the
  fragment: an image part's ``detail`` (unless ``"auto"``), a blank text part beside others.

``to_canonical`` converts the other way. Anthropic blocks -> canonical -> Anthropic
gives back the same blocks, with one normalisation: a message whose content is a
plain string comes back as one text block. Inside an assistant message the
blocks are grouped as thinking, then text, then ``tool_use`` (the order Claude
produces them in), and a ``cache_control`` key on an input block is ignored
(srt places its own breakpoints).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..._types import Reply, Usage
from ...errors import (
    ConfigError,
    InvalidMessageError,
    ProviderResponseError,
    UnsupportedFeatureError,
)
from ...message import canonical_tool
from ...tokens import CLAUDE_ESTIMATE, Tokenizer
from .._input import need, typed_input
from ..base import (
    Event,
    StreamDecoder,
    assistant_message,
    cached_usage,
    check_model,
    check_tool_name,
    dumps,
    function_call,
    params_tail,
    usage_of,
    usage_or_none,
)
from . import replies
from .blocks import BlockFormat, blocks_of, data_url, empty, error_marked, image_spec
from .ids import ANTHROPIC_IDS
from .replies import AnthropicStream

__all__ = ["DEFAULT_MAX_TOKENS", "FORMAT", "NAME", "TOOL_NAME_MAX", "Anthropic", "to_canonical"]

#: The longest tool name the Messages API takes (``tools.N.name``: ``^[a-zA-Z0-9_-]{1,128}$``).
TOOL_NAME_MAX = 128

#: ``max_tokens`` sent when the request parameters do not set it (the API requires one).
DEFAULT_MAX_TOKENS = 4096

_RESERVED = frozenset({"model", "messages", "system", "tools"})
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_CACHE_CONTROL = {
    None: b'{"type":"ephemeral"}',
    "5m": b'{"type":"ephemeral"}',
    "1h": b'{"type":"ephemeral","ttl":"1h"}',
}
_THINKING = frozenset({"thinking", "redacted_thinking"})


def _without_cache_control(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


class Anthropic(BlockFormat):
    name = "anthropic.messages"
    provider = "anthropic"
    marker = "cache_control"
    tool_name_max = TOOL_NAME_MAX

    def tokenizer(self, model: str) -> Tokenizer:
        return CLAUDE_ESTIMATE

    def stream_decoder(self, model: str | None = None) -> StreamDecoder:
        return AnthropicStream(self, model)

    def encode_usage(self, usage: Usage) -> dict[str, Any]:
        return replies.encode_usage(usage)

    def encode_reply(
        self,
        reply: Reply,
        *,
        id: str,
        request: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return replies.encode_reply(reply, id=id, usage=usage)

    def encode_events(
        self,
        response: Mapping[str, Any],
        *,
        request: Mapping[str, Any] | None = None,
        chunks: Sequence[str] | None = None,
    ) -> list[Event]:
        return replies.encode_events(response, chunks)

    # -- canonical -> Anthropic --------------------------------------------------------

    def _text_block(self, text: str) -> dict[str, Any]:
        return {"type": "text", "text": text}

    def _image(self, spec: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
        url = image_spec(spec, self.name, notes)
        data = data_url(url, self.name)
        if data is not None:
            media, b64 = data
            return {
                "type": "image",
                "source": {"type": "base64", "media_type": media, "data": b64},
            }
        if url[:8].lower() == "https://" or url[:7].lower() == "http://":
            return {"type": "image", "source": {"type": "url", "url": url}}
        raise UnsupportedFeatureError(self.name, "image URLs other than http(s) or base64 data")

    def _tool_result(self, call_id: str, content: Any, notes: list[str]) -> dict[str, Any]:
        result = (
            content if isinstance(content, str) else self._parts(content, "a tool message", notes)
        )
        return {
            "type": "tool_result",
            "tool_use_id": ANTHROPIC_IDS.wire(call_id),
            "content": result,
        }

    def _error(self, result: dict[str, Any]) -> dict[str, Any]:
        return {**result, "is_error": True}

    def _tool_use(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": ANTHROPIC_IDS.wire(call_id),
            "name": name,
            "input": arguments,
        }

    def tool_fragment(self, tool: dict[str, Any]) -> bytes:
        fn = json.loads(canonical_tool(tool))["function"]
        out: dict[str, Any] = {"name": check_tool_name(fn["name"], self.name, TOOL_NAME_MAX)}
        if "description" in fn:
            out["description"] = fn["description"]
        out["input_schema"] = fn.get("parameters") or _EMPTY_SCHEMA
        return dumps(out)

    def envelope(
        self, model: str, params: dict[str, Any], system: list[bytes], tools: list[bytes]
    ) -> tuple[bytes, bytes]:
        rest = dict(params)
        max_tokens = rest.pop("max_tokens", DEFAULT_MAX_TOKENS)
        head = b'{"model":' + dumps(check_model(model))
        head += params_tail({"max_tokens": max_tokens}, frozenset())
        if tools:
            head += b',"tools":[' + b",".join(tools) + b"]"
        if system:
            head += b',"system":[' + b",".join(system) + b"]"
        head += b',"messages":['
        return head, b"]" + params_tail(rest, _RESERVED) + b"}"

    def mark(self, fragment: bytes, ttl: str | None) -> bytes:
        """``fragment`` with ``cache_control`` on its last block (message, system or tool)."""
        try:
            control = _CACHE_CONTROL[ttl]
        except (KeyError, TypeError):
            raise ConfigError(f"cache TTL must be None, '5m' or '1h', not {ttl!r}") from None
        if not fragment.endswith(b"}"):
            raise ConfigError("a cache breakpoint goes on a fragment ending in a JSON object")
        return fragment[:-1] + b',"cache_control":' + control + b"}"

    # -- Anthropic -> canonical --------------------------------------------------------

    def parse_reply(self, data: dict[str, Any], model: str | None = None) -> Reply:
        """A Messages API response object -> canonical assistant message and usage.

        Text blocks are joined into one string (their ``citations`` are not kept);
        thinking and redacted_thinking blocks become artifacts for ``data["model"]``.
        """
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise ProviderResponseError("an Anthropic response without a content list")
        model = data.get("model")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        arts: list[dict[str, Any]] = []
        try:
            for block in data["content"]:
                kind = block["type"]
                if kind == "text":
                    texts.append(str(block["text"]))
                elif kind == "tool_use":
                    arguments = block.get("input") or {}
                    calls.append(function_call(block["id"], block["name"], arguments))
                elif kind in _THINKING:
                    if not isinstance(model, str) or not model:
                        raise ProviderResponseError("thinking blocks in a response without model")
                    arts.append(
                        {"provider": self.provider, "model": model, "type": kind, "data": block}
                    )
                else:
                    raise ProviderResponseError(
                        f"an Anthropic {str(kind)[:40]!r} content block srt cannot represent"
                    )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderResponseError(f"a malformed Anthropic content block ({exc!r})") from None
        usage = _usage(data)
        message = assistant_message("".join(texts), calls, arts)
        return Reply(message, usage, model, data.get("id"), data.get("stop_reason"))

    def parse_usage(self, data: Any) -> Usage | None:
        return usage_or_none(data, _usage, whole=True)

    def _check_block(self, block: Any, allowed: Iterable[str]) -> dict[str, Any]:
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            raise InvalidMessageError("an Anthropic content block must be an object with a type")
        keys = {"type", "cache_control", *allowed}
        for key, value in block.items():
            if key not in keys and not empty(value) and value is not False:
                raise UnsupportedFeatureError(
                    self.name, f"the '{key}' field of {block['type']} blocks"
                )
        return dict(block)

    def _to_part(self, block: Any, what: str) -> dict[str, Any]:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            b = self._check_block(block, ("text",))
            return {"type": "text", "text": b["text"]}
        if kind == "image":
            src = self._check_block(block, ("source",))["source"]
            if isinstance(src, Mapping) and src.get("type") == "base64":
                what = "an Anthropic base64 image source"
                media, data = need(src, "media_type", str, what), need(src, "data", str, what)
                url = f"data:{media};base64,{data}"
            elif isinstance(src, Mapping) and src.get("type") == "url":
                url = need(src, "url", str, "an Anthropic url image source")
            else:
                stype = src.get("type") if isinstance(src, Mapping) else None
                raise UnsupportedFeatureError(self.name, f"{stype} image sources")
            return {"type": "image_url", "image_url": {"url": url}}
        raise UnsupportedFeatureError(self.name, f"{kind} blocks in {what}")

    @typed_input("an Anthropic message")
    def to_canonical(
        self, msg: Mapping[str, Any], model: str | None = None
    ) -> list[dict[str, Any]]:
        """An Anthropic message (role user or assistant) as canonical message dicts.

        A user message's ``tool_result`` blocks become one tool message each, then
        its other blocks one user message (string content for a single text block).
        An assistant message's thinking blocks become artifacts for
        ``msg["model"]`` or ``model``.
        """
        if not isinstance(msg, Mapping):
            raise InvalidMessageError("an Anthropic message must be an object")
        role = msg.get("role")
        content = msg.get("content")
        if role not in ("user", "assistant"):
            raise InvalidMessageError("an Anthropic message has role user or assistant")
        if isinstance(content, str):
            return [{"role": role, "content": content}]
        blocks = blocks_of(content)
        if role == "user":
            out: list[dict[str, Any]] = []
            parts: list[dict[str, Any]] = []
            for block in blocks:
                if isinstance(block, Mapping) and block.get("type") == "tool_result":
                    b = self._check_block(block, ("tool_use_id", "content", "is_error"))
                    result = b.get("content", "")
                    if not isinstance(result, str):
                        result = [self._to_part(p, "a tool_result") for p in blocks_of(result)]
                    out.append(
                        error_marked(
                            {"role": "tool", "tool_call_id": b["tool_use_id"], "content": result},
                            b.get("is_error"),
                        )
                    )
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
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind in _THINKING:
                produced_by = msg.get("model") or model
                if not produced_by:
                    raise UnsupportedFeatureError(
                        self.name, "thinking blocks without the model that produced them"
                    )
                data = _without_cache_control(block)
                arts.append(
                    {"provider": self.provider, "model": produced_by, "type": kind, "data": data}
                )
            elif kind == "tool_use":
                b = self._check_block(block, ("id", "name", "input"))
                what = "an Anthropic tool_use block"
                call_id, name = need(b, "id", str, what), need(b, "name", str, what)
                if "input" not in b:
                    raise InvalidMessageError(f"{what} needs an 'input' field")
                calls.append(function_call(call_id, name, b["input"]))
            else:
                texts.append(self._to_part(block, "an assistant message"))
                if texts[-1]["type"] != "text":
                    raise UnsupportedFeatureError(self.name, "images in an assistant message")
        text: Any = texts[0]["text"] if len(texts) == 1 else texts or ""
        return [assistant_message(text, calls, arts)]


FORMAT = Anthropic()
NAME = FORMAT.name

#: ``to_canonical(msg, model=None)`` as a module function (for ``srt.wire.convert``).
to_canonical = FORMAT.to_canonical


def _usage(data: Mapping[str, Any]) -> Usage:
    """A Messages API response's usage as srt's ``Usage``."""
    u = usage_of(data)
    # ``cache_creation`` splits the writes by TTL; ``cache_creation_input_tokens`` is their sum.
    split = usage_of(u, "cache_creation")
    # ``output_tokens_details.thinking_tokens``: the output tokens that were thinking.
    out = usage_of(u, "output_tokens_details")
    return cached_usage(
        u.get("input_tokens"),
        u.get("output_tokens"),
        u.get("cache_read_input_tokens"),
        u.get("cache_creation_input_tokens"),
        split.get("ephemeral_1h_input_tokens"),
        out.get("thinking_tokens"),
    )
