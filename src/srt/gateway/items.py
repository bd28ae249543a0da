"""Responses items from stored messages, their ids, and the reply's usage object.

A stored message is rendered by srt's own ``openai.responses`` wire format (the same
code that builds Responses request bodies), then given the fields a Responses *item*
has: ``type``, ``id`` and ``status``.

Item ids name a position in a history: ``<kind>_<prefix hash of the message before>``
followed by two hex digits, the item's place within its message (an assistant message
with text and two tool calls is three items). They are derived, not stored, so they cost
nothing per turn and are known before a reply arrives (streaming announces them first).
Equal histories give equal ids; rewriting a history (an item deleted from the middle of
a conversation, or new instructions re-rooting it) gives the items after the change
new ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import _core
from .._types import Usage
from ..errors import InvalidMessageError
from ..message import DEFAULT_MAX_MESSAGE_BYTES, canonicalize, redact_strings
from ..wire.base import Target
from ..wire.convert import to_canonical
from ..wire.openai_responses import FORMAT as RESPONSES
from .errors import bad_request

__all__ = [
    "canonical_bodies",
    "chain",
    "find",
    "item_id",
    "items_of",
    "output_text",
    "parse_id",
    "usage_json",
]

_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
_KINDS = {v: k for k, v in _PREFIX.items()}


def item_id(kind: str, parent: bytes, sub: int) -> str:
    return f"{_PREFIX.get(kind, 'item')}_{parent.hex()}{sub:02x}"


def parse_id(ident: str) -> tuple[bytes, int] | None:
    """``(parent prefix, place)`` of an item id, or None if it is not one of ours."""
    kind, _, rest = ident.partition("_")
    if kind not in _KINDS or len(rest) != 34:
        return None
    try:
        return bytes.fromhex(rest[:32]), int(rest[32:], 16)
    except ValueError:
        return None


def canonical_bodies(
    items: Sequence[dict[str, Any]],
    model: str | None,
    redact: Callable[[str], str] | None = None,
    limit: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[bytes]:
    """The canonical bytes srt stores for a Responses input (one list = one input)."""
    given: Any = list(items)
    if redact is not None:
        given = redact_strings(given, redact)
    try:
        return [canonicalize(m, limit)[0] for m in to_canonical(given, model)]
    except InvalidMessageError as exc:
        raise bad_request(str(exc), "input", "invalid_value") from None


def chain(parent: bytes, bodies: Iterable[bytes]) -> list[bytes]:
    """The prefix hash after each body, chained from ``parent``."""
    return _core.chain_many(parent, [_core.digest(b) for b in bodies])


def _parts(content: Any, kind: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        part: dict[str, Any] = {"type": kind, "text": content}
        if kind == "output_text":
            part.update(annotations=[], logprobs=[])
        return [part]
    out = []
    for p in content or ():
        p = dict(p)
        if p.get("type") == "output_text":
            p.setdefault("annotations", [])
            p.setdefault("logprobs", [])
        out.append(p)
    return out


def items_of(
    body: bytes, parent: bytes, model: str, status: str = "completed"
) -> list[dict[str, Any]]:
    """One stored message as Responses items, with ids from ``parent`` (the prefix hash
    of the message before it). Provider artifacts of ``model`` (reasoning items) are
    included; those of any other model are not."""
    frag = RESPONSES.render(body, Target("openai", model))
    raw = json.loads(b"[" + frag.data + b"]")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for item in raw:
        kind = item.get("type", "message")
        sub = seen[kind] = seen.get(kind, -1) + 1
        ident = item_id(kind, parent, sub)
        if kind == "message":
            role = item["role"]
            part = "output_text" if role == "assistant" else "input_text"
            out.append(
                {
                    "type": "message",
                    "id": ident,
                    "status": status,
                    "role": role,
                    "content": _parts(item.get("content"), part),
                }
            )
        else:
            out.append(
                {**item, "type": kind, "id": item.get("id") or ident, "status": status}
                if kind != "reasoning"
                else {**item, "id": item.get("id") or ident}
            )
    return out


def output_text(items: Iterable[dict[str, Any]]) -> str:
    return "".join(
        p.get("text", "")
        for item in items
        if item.get("type") == "message"
        for p in item.get("content", ())
        if p.get("type") == "output_text"
    )


def find(bodies: Sequence[bytes], ident: str, lead: int = 0) -> tuple[int, int] | None:
    """``(message index, place)`` of item ``ident`` among ``bodies`` (after ``lead``
    leading messages that are not items), or None."""
    parsed = parse_id(ident)
    if parsed is None:
        return None
    parent, sub = parsed
    prefixes = chain(_core.ROOT, bodies)
    before = [_core.ROOT, *prefixes]
    for i in range(lead, len(bodies)):
        if before[i] == parent:
            return i, sub
    return None


def usage_json(u: Usage | None) -> dict[str, Any]:
    u = u or Usage()
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.input_tokens + u.output_tokens,
    }
