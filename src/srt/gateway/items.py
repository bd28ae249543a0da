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

import itertools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .._hashing import XXH3, Hashing
from .._types import Usage
from ..errors import InvalidMessageError
from ..message import DEFAULT_MAX_MESSAGE_BYTES, canonicalize, redact_strings
from ..wire.base import Target
from ..wire.convert import to_canonical
from ..wire.openai_responses import FORMAT as RESPONSES
from .errors import bad_request, not_found

__all__ = [
    "canonical_bodies",
    "chain",
    "item_id",
    "items_of",
    "locate",
    "output_text",
    "page",
    "parse_id",
    "partial_message",
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


def chain(parent: bytes, bodies: Iterable[bytes], hashing: Hashing = XXH3) -> list[bytes]:
    """The prefix hash after each body, chained from ``parent`` (with the store's
    ``hashing``, so the hashes are the store's own)."""
    return hashing.chain_many(parent, [hashing.digest(b) for b in bodies])


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


def partial_message(message_id: str, text: str) -> dict[str, Any]:
    """The message item of a reply still streaming (or cut off): the text so far."""
    return {
        "type": "message",
        "id": message_id,
        "status": "incomplete",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _ordered(items: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    return items if order == "asc" else items[::-1]


def _message_of(ident: str, before: Sequence[bytes], lead: int) -> int | None:
    """The index of the message item ``ident`` is in (from its id), or None."""
    parsed = parse_id(ident)
    if parsed is None:
        return None
    parent = parsed[0]
    for i in range(lead, len(before)):
        if before[i] == parent:
            return i
    return None


def locate(
    bodies: Sequence[bytes], before: Sequence[bytes], lead: int, model: str, ident: str
) -> tuple[int, dict[str, Any], list[dict[str, Any]]] | None:
    """``(message index, the item, all items of its message)`` of item ``ident`` among
    ``bodies[lead:]`` (``before[i]``: the prefix hash before message ``i``), rendering
    only its message when its id names it (every message otherwise)."""
    i = _message_of(ident, before, lead)
    # its own message first; then every message (an item can carry the provider's id)
    first = [] if i is None else [i]
    for k in itertools.chain(first, (k for k in range(lead, len(bodies)) if k != i)):
        rendered = items_of(bodies[k], before[k], model)
        for found in rendered:
            if found["id"] == ident:
                return k, found, rendered
    return None


def page(
    bodies: Sequence[bytes],
    before: Sequence[bytes],
    lead: int,
    model: str,
    after: str | None,
    limit: int,
    order: str,
) -> dict[str, Any]:
    """A list page of the items of ``bodies[lead:]`` (``before[i]``: the prefix hash
    before message ``i``), in ``order``, after item ``after``: only the messages the page
    holds are rendered, so a page costs its own items, not the history's."""
    n = len(bodies)
    data: list[dict[str, Any]] = []
    if after is None:
        rest = range(lead, n) if order == "asc" else range(n - 1, lead - 1, -1)
    else:
        found = locate(bodies, before, lead, model, after)
        if found is None:
            raise not_found("item", after, "after")
        i, _item, rendered = found
        ids = [x["id"] for x in _ordered(rendered, order)]
        data = _ordered(rendered, order)[ids.index(after) + 1 :]
        rest = range(i + 1, n) if order == "asc" else range(i - 1, lead - 1, -1)
    for i in rest:
        if len(data) > limit:
            break
        data.extend(_ordered(items_of(bodies[i], before[i], model), order))
    has_more = len(data) > limit
    data = data[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def usage_json(u: Usage | None) -> dict[str, Any]:
    """A Responses usage object (cache reads and writes, reasoning tokens)."""
    return RESPONSES.encode_usage(u or Usage())
