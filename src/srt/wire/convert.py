"""Any provider's message shape -> canonical (OpenAI Chat Completions) messages.

``to_canonical(msg_or_items, model=None)`` looks at the shape and dispatches:

- **OpenAI Responses items** (``openai_responses.to_canonical``): a dict whose
  ``type`` is ``message``, ``function_call``, ``function_call_output`` or
  ``reasoning``, or a message dict whose content parts are ``input_text``,
  ``output_text``, ``input_image`` or ``refusal``; or a list holding any such item
  (the whole list is then read as one Responses input, since an assistant turn spans
  several items).
- **Anthropic Messages** (``srt.wire.anthropic.to_canonical``): content blocks with a
  ``type``, one of them ``tool_use``, ``tool_result``, ``thinking`` or
  ``redacted_thinking``, or an ``image``/``document`` block with a ``source``. An
  Anthropic *response object* (``"type": "message"`` with typed blocks such as
  ``text``) is Anthropic too: a Responses message item never has ``text`` parts.
- **Bedrock Converse** (``srt.wire.bedrock.to_canonical``): content blocks without a
  ``type`` key (``{"text"}``, ``{"image"}``, ``{"toolUse"}``, ``{"toolResult"}``,
  ``{"reasoningContent"}``, ``{"document"}``, ``{"cachePoint"}``...).
- **OpenAI Chat Completions** (passed through as ``[msg]``): everything else, i.e.
  string content, ``text``/``image_url`` parts, ``tool_calls``, tool messages, and
  srt's own ``image`` parts with ``data`` bytes.

Ambiguities: ``{"role": "user", "content": "hi"}`` and
``{"role": "user", "content": [{"type": "text", "text": "x"}]}`` are valid Chat,
Anthropic and (the first) Responses messages with the same meaning in all of them,
so they are taken as Chat and passed through unchanged (the Anthropic converter
would give a single text block as string content: the same text for the model,
though not the same canonical bytes, so not the same message hash). A list with no
Responses item is converted element by element and concatenated. A message mixing
blocks of different formats raises ``InvalidMessageError``. ``model`` names the model
that produced any provider artifacts (reasoning items, thinking blocks); it is
ignored for Chat.

The Anthropic and Bedrock converters (``to_canonical`` of those modules, or of their
``FORMAT``) are imported when first needed, so this module works without them;
without them those shapes raise ``ImportError``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .._types import Message
from ..errors import InvalidMessageError
from ._input import typed_input

__all__ = ["detect", "to_canonical"]

_RESPONSES_ITEMS = frozenset({"message", "function_call", "function_call_output", "reasoning"})
_RESPONSES_PARTS = frozenset({"input_text", "output_text", "input_image", "refusal"})
_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking"})
_ANTHROPIC_SOURCED = frozenset({"image", "document"})
_BEDROCK_KEYS = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "toolUse",
        "toolResult",
        "reasoningContent",
        "cachePoint",
        "guardContent",
    }
)


def _part_format(part: Any, i: int) -> str | None:
    """The format content part ``i`` points to, or None when it says nothing."""
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    if kind is None:
        return "bedrock" if _BEDROCK_KEYS.intersection(part) else None
    if not isinstance(kind, str):  # (an object or array: no set holds it)
        raise InvalidMessageError(f"content[{i}].type must be a string, got {type(kind).__name__}")
    if kind in _RESPONSES_PARTS:
        return "responses"
    if kind in _ANTHROPIC_BLOCKS or (kind in _ANTHROPIC_SOURCED and "source" in part):
        return "anthropic"
    return None


def _message_format(msg: Mapping[str, Any]) -> str:
    kind = msg.get("type")
    if kind is not None and not isinstance(kind, str):
        raise InvalidMessageError(
            f"a message's or item's 'type' must be a string, got {type(kind).__name__}"
        )
    content = msg.get("content")
    found = set()
    if isinstance(content, (list, tuple)):
        found = {f for f in map(_part_format, content, range(len(content))) if f}
    if len(found) > 1:
        raise InvalidMessageError(
            f"a message mixes content blocks of different formats: {sorted(found)}"
        )
    if kind == "message" and found == {"anthropic"}:
        return "anthropic"  # an Anthropic response object
    # A Responses message item never has ``text`` parts; an Anthropic response does.
    if (
        kind == "message"
        and isinstance(content, (list, tuple))
        and not found
        and any(isinstance(p, Mapping) and p.get("type") == "text" for p in content)
    ):
        return "anthropic"
    if kind in _RESPONSES_ITEMS:
        if found - {"responses"}:
            raise InvalidMessageError(
                f"a Responses {kind} item with {sorted(found)} content blocks"
            )
        return "responses"
    if kind is not None and "role" not in msg:
        return "responses"  # an unknown item type: the Responses converter names it
    return found.pop() if found else "chat"


def detect(msg_or_items: Any) -> str:
    """``"chat"``, ``"responses"``, ``"anthropic"``, ``"bedrock"`` or ``"list"`` (mixed)."""
    if isinstance(msg_or_items, Message):
        return "chat"
    if isinstance(msg_or_items, Mapping):
        return _message_format(msg_or_items)
    if isinstance(msg_or_items, (list, tuple)):
        for m in msg_or_items:
            if not isinstance(m, (Mapping, Message)):
                raise InvalidMessageError(
                    f"a list of messages or items holds a value of type {type(m).__name__}"
                )
        kinds = [detect(m) for m in msg_or_items]
        return "responses" if "responses" in kinds else "list"
    raise InvalidMessageError(
        f"expected a message dict or a list of them, got {type(msg_or_items).__name__}"
    )


def _converter(module: str) -> Any:
    """``srt.wire.<module>.to_canonical`` (or its ``FORMAT.to_canonical`` method)."""
    name = f"{__package__}.{module}"
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"converting this message needs {name}, which is not available") from exc
    fn = getattr(mod, "to_canonical", None) or getattr(
        getattr(mod, "FORMAT", None), "to_canonical", None
    )
    if fn is None:
        raise ImportError(f"{name} has no to_canonical to convert this message with")
    return fn


@typed_input("a message")
def to_canonical(msg_or_items: Any, model: str | None = None) -> list[dict[str, Any]]:
    """Canonical messages for a message or list of items in any known provider shape."""
    shape = detect(msg_or_items)
    if shape == "chat":
        if isinstance(msg_or_items, Message):
            return [msg_or_items.to_dict()]
        return [dict(msg_or_items)]
    if shape == "responses":
        from . import openai_responses

        return openai_responses.to_canonical(msg_or_items, model)
    if shape in ("anthropic", "bedrock"):
        out: list[dict[str, Any]] = _converter(shape)(msg_or_items, model)
        return out
    out = []
    for msg in msg_or_items:
        out.extend(to_canonical(msg, model))
    return out
