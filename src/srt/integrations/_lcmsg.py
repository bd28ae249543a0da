"""LangChain messages <-> srt's canonical messages (for the LangChain and LangGraph adapters).

``canonical(message)`` is what a model sees of a LangChain message, as a Chat Completions
message: ``HumanMessage`` -> user, ``AIMessage`` (and its chunk) -> assistant with its
tool calls (arguments as JSON text), ``SystemMessage`` -> system, ``ToolMessage`` -> tool,
``ChatMessage`` -> its role when srt knows it (else user); a ``ToolMessage`` with
``status="error"`` is a tool message marked ``is_error``. Text blocks become text parts;
``image_url`` blocks stay; LangChain's ``image`` blocks (``url`` or ``base64``) become
``image_url`` parts; an assistant's text blocks are joined into its content.

``base(message)`` rebuilds LangChain's own serialized form (``message_to_dict``) from the
canonical message alone. What it misses (ids, ``response_metadata``, ``usage_metadata``,
``additional_kwargs``, non-text blocks, the exact class) is the patch an adapter keeps
beside the canonical message, so ``load(apply(base(c), patch))`` is the original message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, RemoveMessage, message_to_dict, messages_from_dict

from ..message import ROLES

__all__ = ["base", "canonical", "dump", "is_message", "load"]

_TYPE_ROLE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def is_message(value: Any) -> bool:
    """A LangChain message srt keeps as a chat message (a ``RemoveMessage`` is an order)."""
    return isinstance(value, BaseMessage) and not isinstance(value, RemoveMessage)


def dump(message: BaseMessage) -> dict[str, Any]:
    """LangChain's own serialized form of ``message``."""
    return message_to_dict(message)


def load(data: Mapping[str, Any]) -> BaseMessage:
    """The message ``dump`` gave ``data`` for."""
    out: BaseMessage = messages_from_dict([dict(data)])[0]
    return out


def _role(message: BaseMessage) -> str:
    kind = message.type.lower()
    if kind.startswith("ai"):
        return "assistant"
    if kind == "function":
        return "tool"
    if kind == "chat":
        role = getattr(message, "role", None)
        return role if role in ROLES and role != "tool" else "user"
    return _TYPE_ROLE.get(kind.removesuffix("messagechunk"), "user")


def _image(block: Mapping[str, Any]) -> dict[str, Any] | None:
    url = block.get("url")
    data = block.get("base64") if block.get("base64") is not None else block.get("data")
    if not isinstance(url, str) and isinstance(data, str):
        mime = block.get("mime_type") or "image/png"
        url = f"data:{mime};base64,{data}"
    if not isinstance(url, str):
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _parts(content: list[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image_url":
            spec = block.get("image_url")
            spec = {"url": spec} if isinstance(spec, str) else spec
            if isinstance(spec, Mapping) and isinstance(spec.get("url"), str):
                parts.append({"type": "image_url", "image_url": dict(spec)})
        elif kind == "image":
            image = _image(block)
            if image is not None:
                parts.append(image)
    return parts


def _args(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)


def canonical(message: BaseMessage) -> dict[str, Any]:
    """The canonical message that stands for a LangChain message (see the module doc)."""
    role = _role(message)
    content: Any = message.content
    out: dict[str, Any] = {"role": role}
    if role == "assistant":
        if not isinstance(content, str):
            content = "".join(p["text"] for p in _parts(content) if p["type"] == "text")
        calls = [
            {
                "id": c.get("id") or "",
                "type": "function",
                "function": {"name": str(c.get("name") or ""), "arguments": _args(c.get("args"))},
            }
            for c in getattr(message, "tool_calls", None) or ()
        ]
        out["content"] = content
        if calls:
            out["tool_calls"] = calls
    else:
        out["content"] = content if isinstance(content, str) else _parts(content) or ""
    if isinstance(message.name, str) and role != "tool":
        out["name"] = message.name
    if role == "tool":
        call_id = getattr(message, "tool_call_id", None) or message.name
        out["tool_call_id"] = call_id if isinstance(call_id, str) else ""
        if getattr(message, "status", None) == "error":  # (a ToolMessage's)
            out["is_error"] = True
    return out


def _call(call: Mapping[str, Any]) -> dict[str, Any]:
    fn = call.get("function") or {}
    try:
        args = json.loads(fn.get("arguments") or "{}")
    except ValueError:
        args = {}
    return {
        "name": fn.get("name"),
        "args": args if isinstance(args, dict) else {},
        "id": call.get("id") or None,
        "type": "tool_call",
    }


def base(message: Mapping[str, Any]) -> dict[str, Any]:
    """LangChain's serialized form of the message a canonical message most likely was."""
    role = message["role"]
    content = message.get("content")
    kind = {"user": "human", "assistant": "ai", "system": "system", "tool": "tool"}.get(
        role, "chat"
    )
    data: dict[str, Any] = {
        "content": content if content is not None else "",
        "additional_kwargs": {},
        "response_metadata": {},
        "type": kind,
        "name": message.get("name"),
        "id": None,
    }
    if kind == "ai":
        data["tool_calls"] = [_call(c) for c in message.get("tool_calls") or ()]
        data["invalid_tool_calls"] = []
        data["usage_metadata"] = None
    elif kind == "tool":
        data["tool_call_id"] = message.get("tool_call_id")
        data["artifact"] = None
        data["status"] = "error" if message.get("is_error") else "success"
    elif kind == "chat":
        data["role"] = role
    return {"type": kind, "data": data}
