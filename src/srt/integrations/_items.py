"""OpenAI Responses items (as the Agents SDK keeps them) <-> srt's canonical messages.

One item is one canonical message, so a session's message ``i`` is its item ``i``:

- a ``message`` item of a user, system or developer becomes that role's message
  (``input_text``/``output_text`` parts as text, ``input_image`` as ``image_url``);
- an assistant ``message`` item becomes an assistant message with its text;
- a ``function_call`` becomes an assistant message with one tool call, and a
  ``function_call_output`` (or any ``*_call_output`` with a ``call_id``) a tool message;
- anything else (``reasoning``, hosted-tool calls, references) becomes an empty assistant
  message: a model sees nothing of it through a Chat request.

``canonical(item)`` is that message; ``rebuild(message)`` is the item srt would guess back
from the message alone, in the shapes the SDK itself writes. The difference between the
guess and the real item (ids, statuses, ``provider_data``, annotations, the whole of a
reasoning item) is a small patch (``srt.integrations._patch``) that the adapter keeps
beside the message, so the item comes back exactly as it was given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidMessageError

__all__ = ["canonical", "rebuild"]

_INPUT_ROLES = frozenset({"user", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidMessageError(f"a session item holds a value that is not JSON: {exc}") from None


def _input_content(content: Any) -> Any:
    """Responses input content -> canonical content (a string, or text and image parts)."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, (list, tuple)) else ():
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if isinstance(kind, str) and kind in _TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            spec = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                spec["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": spec})
    if not parts:
        return "" if content is None or isinstance(content, (list, tuple)) else _text(content)
    return parts


def _output_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, (list, tuple)):
        return ""
    return "".join(
        p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
    )


def canonical(item: Any) -> dict[str, Any]:
    """The canonical message that stands for one Responses item (see the module doc)."""
    if not isinstance(item, Mapping):
        raise InvalidMessageError(
            f"a session item must be a Responses item dict, got {type(item).__name__}"
        )
    kind = item.get("type", "message" if "role" in item else None)
    role = item.get("role")
    if kind == "message" and isinstance(role, str) and role in _INPUT_ROLES:
        return {"role": role, "content": _input_content(item.get("content"))}
    if kind == "message" and role == "assistant":
        return {"role": "assistant", "content": _output_text(item.get("content"))}
    call_id = item.get("call_id")
    if kind == "function_call" and isinstance(call_id, str):
        call = {
            "id": call_id,
            "type": "function",
            "function": {
                "name": _text(item.get("name")),
                "arguments": _text(item.get("arguments")),
            },
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    if isinstance(kind, str) and kind.endswith("_output") and isinstance(call_id, str):
        output = item.get("output")
        content = output if isinstance(output, str) else _input_content(output)
        if content == "" and output not in ("", None, []):
            content = _text(output)
        return {"role": "tool", "content": content, "tool_call_id": call_id}
    return {"role": "assistant", "content": ""}


def rebuild(message: Mapping[str, Any]) -> dict[str, Any]:
    """The item a canonical message most likely came from, in the SDK's own shapes."""
    role = message["role"]
    content = message.get("content")
    if role in _INPUT_ROLES:
        if isinstance(content, str):
            return {"content": content, "role": role}
        parts: list[dict[str, Any]] = []
        for part in content or ():
            if part.get("type") == "text":
                parts.append({"type": "input_text", "text": part.get("text")})
            elif part.get("type") == "image_url":
                spec = part.get("image_url") or {}
                parts.append(
                    {
                        "type": "input_image",
                        "image_url": spec.get("url"),
                        "detail": spec.get("detail", "auto"),
                    }
                )
        return {"content": parts, "role": role, "type": "message"}
    if role == "tool":
        return {
            "call_id": message.get("tool_call_id"),
            "output": content,
            "type": "function_call_output",
        }
    calls = list(message.get("tool_calls") or ())
    if len(calls) == 1 and not content:
        fn = calls[0].get("function") or {}
        return {
            "arguments": fn.get("arguments"),
            "call_id": calls[0].get("id"),
            "name": fn.get("name"),
            "type": "function_call",
        }
    text = content if isinstance(content, str) else _output_text(content)
    return {
        "content": [{"annotations": [], "text": text, "type": "output_text"}],
        "role": "assistant",
        "status": "completed",
        "type": "message",
    }
