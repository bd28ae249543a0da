"""Responses items from stored messages, their ids, and the reply's usage object.

A stored message is rendered by srt's own ``openai.responses`` wire format (the same
code that builds Responses request bodies), then given the fields a Responses *item*
has: ``type``, ``id`` and ``status``.

Item ids name a position in a history: ``<kind>_<prefix hash of the message before,
masked>`` followed by two hex digits, the item's place within its message (an assistant
message with text and two tool calls is three items). They are derived, not stored, so
they cost nothing per turn and are known before a reply arrives (streaming announces them
first). The mask is a key of the ids' scope (``Ids``): a conversation, or the thread of a
chain of responses, so equal histories in two conversations (or two tenants) show
different ids while their messages stay stored once. A scope can change at an item
(counted after the instructions): a fork keeps its parent's scope for the items it
inherits and has its own from its first new item, and a conversation takes a new
generation of its scope from the end of a rewritten history on (``renew``), so nothing
made after a deletion shows a deleted item's id. Rewriting a history (an item deleted
from the middle of a conversation, new instructions re-rooting it) moves items to other
prefix hashes: the ids they showed are then kept beside the chain (``Kept``: 16 bytes a
message, stored once as a text, ``gateway.idmap``), so an item keeps its id for its
life. Records written before the mask (no ``ids``) also accept the unmasked ids they
showed then.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._hashing import XXH3, Hashing
from .._types import Usage
from ..errors import InvalidMessageError
from ..message import DEFAULT_MAX_MESSAGE_BYTES, canonicalize, redact_strings
from ..wire.base import Target
from ..wire.convert import to_canonical
from ..wire.images import any_image
from ..wire.openai_responses import FORMAT as RESPONSES
from .errors import bad_request, not_found
from .idmap import Kept, xor

__all__ = [
    "PLAIN",
    "Ids",
    "Inherited",
    "Kept",
    "Scope",
    "canonical_bodies",
    "chain",
    "check_outputs",
    "conversation_ids",
    "conversation_scope",
    "default_scope",
    "forked",
    "inherited",
    "item_id",
    "items_of",
    "locate",
    "mark_scope",
    "page",
    "parse_id",
    "partial_message",
    "renew",
    "response_ids",
    "scope_of",
    "usage_json",
]

_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
_KINDS = {v: k for k, v in _PREFIX.items()}
#: The digits of an id's hex part (lowercase, as ``item_id`` writes them).
_HEX = frozenset("0123456789abcdef")


_ZERO = bytes(16)


@dataclass(frozen=True)
class Ids:
    """The scope of the item ids shown: ``key`` masks the prefix hash in an id;
    ``legacy``: unmasked ids (as shown before ids had a scope) are accepted too. The
    scope holds from item ``start`` on (counted after the instructions); the items
    before it are in scope ``below``, and those ``kept`` holds show what it keeps
    (``at`` gives them as ``fixed`` scopes of one message, whose ``key``, when
    ``legacy``, unmasks them)."""

    key: bytes = _ZERO
    legacy: bool = False
    start: int = 0
    below: Ids | None = None
    kept: Kept | None = None
    fixed: bytes | None = None
    subs: Mapping[str, Sequence[int]] | None = None

    @classmethod
    def of(
        cls, tenant: str, scope: str, legacy: bool = False, start: int = 0, below: Ids | None = None
    ) -> Ids:
        key = hashlib.blake2b(
            f"{tenant}\0{scope}".encode(), digest_size=16, person=b"srt-item-ids"
        ).digest()
        return cls(key, legacy, start, below)

    def mask(self, prefix: bytes) -> bytes:
        if self.fixed is not None:
            return self.fixed
        if self.key == _ZERO:
            return prefix
        if len(prefix) != 16:
            raise ValueError("a prefix hash is 16 bytes")
        key = int.from_bytes(self.key, "big")  # (one XOR of two ints, not 16 of bytes)
        return (int.from_bytes(prefix, "big") ^ key).to_bytes(16, "big")

    def sub(self, kind: str, sub: int) -> int:
        """The place item ``sub`` of its kind in its message shows in its id."""
        given = self.subs.get(kind) if self.subs else None
        return given[sub] if given is not None and sub < len(given) else sub

    def scopes(self) -> list[Ids]:
        """The scopes an id given by a client is looked up in."""
        if self.fixed is not None:
            if not self.legacy:
                return [self]
            return [self, Ids(fixed=xor(self.fixed, self.key), subs=self.subs)]
        return [self, PLAIN] if self.legacy and self.key != _ZERO else [self]

    def at(self, pos: int) -> Ids:
        """The scope of the item ``pos`` places after the instructions (of its message)."""
        kept = self.kept
        if kept is not None and kept.start <= pos < kept.end:
            legacy = pos - kept.start < kept.plain
            base = self._base() if legacy else _ZERO
            return Ids(base, legacy, fixed=kept.shown(pos), subs=kept.subs.get(pos))
        ids = self
        while pos < ids.start and ids.below is not None:
            ids = ids.below
        return ids

    def _base(self) -> bytes:
        ids = self
        while ids.below is not None:
            ids = ids.below
        return ids.key

    def with_kept(self, kept: Kept | None) -> Ids:
        return Ids(self.key, self.legacy, self.start, self.below, kept)


@dataclass(frozen=True)
class Inherited:
    """The id scope a response takes from the one it continues (or a re-rooted history
    from the one it copies), with the ids kept for its items (``kept``: its text key)."""

    scope: Scope | None
    kept: Kept | None = None
    key: str | None = None


#: Unmasked ids (tests of the rendering; scoped ids come from ``Ids.of``).
PLAIN = Ids()

#: An id scope as a record keeps it: a scope's name, or ``[[start, name], ...]``, the
#: name from item ``start`` on (starts rising from 0; ``None``: the record's default).
Scope = str | list[list[Any]]


def _segments(given: Any, default: str) -> list[tuple[int, str]]:
    """``(start, name)`` of each part of a scope as a record keeps it."""
    if isinstance(given, str):
        return [(0, given)]
    if not isinstance(given, list) or not given:
        return [(0, default)]
    out: list[tuple[int, str]] = []
    for part in given:
        if not isinstance(part, list) or len(part) != 2:
            raise ValueError("'ids': a scope's part is [start, name]")
        start, name = part
        if not isinstance(start, int) or start < (out[-1][0] + 1 if out else 0):
            raise ValueError("'ids': a scope's parts start in order from 0")
        out.append((start, name if isinstance(name, str) else default))
    if out[0][0] != 0:
        raise ValueError("'ids': a scope's parts start in order from 0")
    return out


def _ids(tenant: str, parts: list[tuple[int, str]], legacy: str | None) -> Ids:
    """The ``Ids`` of a scope's parts; the first, if it is scope ``legacy``, also takes
    unmasked ids (those a record made before ids had a scope showed)."""
    ids: Ids | None = None
    for start, name in parts:
        ids = Ids.of(tenant, name, ids is None and name == legacy, start, ids)
    assert ids is not None
    return ids


def conversation_scope(conv: dict[str, Any]) -> Scope:
    """A conversation's scope: its own, and a new generation of it from each item
    deleted on (``renew``)."""
    base = f"conv/{conv['id']}"
    gens = conv.get("gens")
    if not gens:
        return base
    first = [] if gens[0][0] == 0 else [[0, base]]
    return [*first, *([start, f"{base}/{gen}"] for start, gen in gens)]


def renew(conv: dict[str, Any], start: int) -> None:
    """After a conversation's history was rewritten (an item deleted, new instructions),
    ``start`` items long (counted after the instructions; the moved ones keep their ids,
    ``idmap``): the items made from there on take a generation of its scope never used,
    so none shows an id a deleted item showed."""
    gen = int(conv.get("gen", 0)) + 1
    conv["gen"] = gen
    conv["gens"] = [g for g in conv.get("gens") or () if g[0] < start] + [[start, gen]]


def conversation_ids(tenant: str, conv: dict[str, Any]) -> Ids:
    """The ids of a conversation's items (``ids`` marks a record made with scoped ids;
    the ids of one made before also take unmasked ids, in its first generation), with
    those it keeps (``_kept``, read by ``Records``)."""
    base = f"conv/{conv['id']}"
    legacy = None if "ids" in conv else base
    ids = _ids(tenant, _segments(conversation_scope(conv), base), legacy)
    return ids.with_kept(conv.get("_kept"))


def default_scope(rec: dict[str, Any]) -> str:
    """A response's id scope unless its record names another: its conversation's, or
    its thread's (each response without ``previous_response_id`` starts a thread)."""
    conv = rec["response"].get("conversation")
    return "conv/" + conv["id"] if conv else str(rec["thread"])


def scope_of(rec: dict[str, Any]) -> Scope:
    """A response's id scope, for a response that continues it."""
    default = default_scope(rec)
    parts = _segments(rec.get("ids"), default)
    return parts[0][1] if len(parts) == 1 else [list(p) for p in parts]


def inherited(rec: dict[str, Any], scope: Scope | None) -> Inherited:
    """What a response continuing ``rec`` (in ``scope``) takes: the ids ``rec`` keeps."""
    return Inherited(scope, rec.get("_kept"), rec.get("kept"))


def forked(scope: Scope, start: int) -> Scope:
    """The scope of a fork of a response in ``scope``, whose first new item is item
    ``start``: the items it inherits keep the ids they showed, and its own items are in
    its own scope (``None``, the fork's default: the thread it starts)."""
    parts = [[s, n] for s, n in _segments(scope, "") if s < start]
    return [*parts, [start, None]]


def mark_scope(
    tenant: str,
    rec: dict[str, Any],
    scope: Scope | Inherited | None,
    conv: dict[str, Any] | None = None,
) -> Ids:
    """Mark a new response record as having scoped ids, and return them: ``scope``,
    kept when it is not the default (a response continuing another's thread takes that
    one's scope, a fork its parent's for the items it inherits), or on a conversation
    ``conv``'s, as its items show now; with the ids kept for its items (``Inherited``,
    or the conversation's)."""
    rec["ids"] = 1
    kept, key = None, None
    if isinstance(scope, Inherited):
        kept, key, scope = scope.kept, scope.key, scope.scope
    if conv is not None:
        scope = conversation_scope(conv)
        kept, key = conv.get("_kept"), conv.get("kept")
    if key is not None:
        rec["kept"], rec["_kept"] = key, kept
    if scope is not None:
        default = default_scope(rec)
        parts = _segments(scope, default)
        if len(parts) > 1:
            rec["ids"] = [[s, None if n == default else n] for s, n in parts]
        elif parts[0][1] != default:
            rec["ids"] = parts[0][1]
    return response_ids(tenant, rec)


def response_ids(tenant: str, rec: dict[str, Any]) -> Ids:
    """The ids of a response's items (its input items and its output)."""
    default = default_scope(rec)
    legacy = None if "ids" in rec else default
    return _ids(tenant, _segments(rec.get("ids"), default), legacy).with_kept(rec.get("_kept"))


def item_id(kind: str, parent: bytes, sub: int, ids: Ids = PLAIN) -> str:
    return f"{_PREFIX.get(kind, 'item')}_{ids.mask(parent).hex()}{ids.sub(kind, sub):02x}"


def parse_id(ident: str) -> tuple[bytes, int] | None:
    """``(masked parent prefix, place)`` of an item id, or None if it is not one of ours."""
    kind, _, rest = ident.partition("_")
    if kind not in _KINDS or len(rest) != 34 or not _HEX.issuperset(rest):
        return None  # (Python's hex parsers also take spaces, signs and other digits)
    return bytes.fromhex(rest[:32]), int(rest[32:], 16)


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


def check_outputs(
    items: Sequence[dict[str, Any]], param: str, history: Callable[[], Sequence[bytes]]
) -> None:
    """Refuse (400, as OpenAI does) a ``function_call_output`` whose ``call_id`` no
    ``function_call`` before it names: in ``items`` or in the stored ``history`` (read
    only when an output is not answered by the items, newest message first)."""
    calls: set[str] = set()
    wanted: dict[str, int] = {}
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "function_call":
            calls.add(item["call_id"])
        elif kind == "function_call_output" and item["call_id"] not in calls:
            wanted.setdefault(item["call_id"], i)
    if not wanted:
        return
    for body in reversed(history()):
        if b'"tool_calls"' in body:
            for call in json.loads(body).get("tool_calls") or ():
                wanted.pop(call.get("id"), None)
            if not wanted:
                return
    call_id = min(wanted, key=wanted.__getitem__)
    raise bad_request(f"No tool call found for function call output with call_id {call_id}.", param)


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


_SHOWN = any_image(RESPONSES)


def items_of(
    body: bytes, parent: bytes, model: str, status: str = "completed", ids: Ids = PLAIN
) -> list[dict[str, Any]]:
    """One stored message as Responses items, with ids from ``parent`` (the prefix hash
    of the message before it) in scope ``ids``. Provider artifacts of ``model``
    (reasoning items) are included; those of any other model are not."""
    # what is stored is shown as stored: a compatible upstream's session may hold an
    # image OpenAI itself would refuse (a BMP, a file:// URL)
    frag = _SHOWN.render(body, Target("openai", model))
    raw = json.loads(b"[" + frag.data + b"]")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for art in json.loads(body).get("artifacts") or ():  # (an Anthropic or Bedrock reply's)
        if isinstance(art, Mapping) and art.get("provider") in _REASONERS:
            sub = seen["reasoning"] = seen.get("reasoning", -1) + 1
            shown = reasoning_item(art.get("data"), item_id("reasoning", parent, sub, ids))
            if shown is not None:
                out.append(shown)
    for item in raw:
        kind = item.get("type", "message")
        sub = seen[kind] = seen.get(kind, -1) + 1
        ident = item_id(kind, parent, sub, ids)
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


def mark_ended(output: list[dict[str, Any]], status: object) -> None:
    """The output items of a response that ended ``status``: as api.openai.com marks
    them, every item but a reasoning one reads ``incomplete`` unless the response is
    ``completed`` (an ``incomplete`` one's message too: cut at its token cap)."""
    if status != "completed":
        for item in output:
            if item.get("type") != "reasoning":
                item["status"] = "incomplete"


#: Providers whose reasoning a stored reply keeps as artifacts in their own form (replayed
#: to them as they require, an Anthropic thinking block with its signature), shown as
#: Responses ``reasoning`` items (an OpenAI Responses upstream's are its own items).
_REASONERS = frozenset({"anthropic", "bedrock"})


def reasoning_item(block: Any, ident: str) -> dict[str, Any] | None:
    """An Anthropic ``thinking`` block or a Bedrock ``reasoningContent`` block as a
    Responses ``reasoning`` item ``ident``, as OpenAI shows a reasoning model's: its text
    as the summary (a redacted one, encrypted, with none); None: not reasoning."""
    if not isinstance(block, Mapping):
        return None
    rc = block.get("reasoningContent")
    if block.get("type") == "thinking":
        text = str(block.get("thinking") or "")
    elif block.get("type") == "redacted_thinking":
        text = ""
    elif isinstance(rc, Mapping):
        rt = rc.get("reasoningText")
        text = str(rt.get("text") or "") if isinstance(rt, Mapping) else ""
    else:
        return None
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"type": "reasoning", "id": ident, "summary": summary}


def leading_items(
    raw: Sequence[dict[str, Any]], parent: bytes, ids: Ids = PLAIN
) -> list[dict[str, Any]]:
    """The items a stream finished before its text (``ReplyStream.leading``) as the
    reply's output shows them (``items_of``): a Responses upstream's reasoning items as
    they came, an Anthropic or Bedrock reasoning block as its ``reasoning_item``."""
    out: list[dict[str, Any]] = []
    for item in raw:
        if item.get("type") == "reasoning":
            out.append(item)
            continue
        shown = reasoning_item(item, item_id("reasoning", parent, len(out), ids))
        if shown is not None:
            out.append(shown)
    return out


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


def _message_of(ident: str, before: Sequence[bytes], lead: int, ids: Ids) -> int | None:
    """The index of the message item ``ident`` is in (from its id), or None."""
    parsed = parse_id(ident)
    if parsed is None:
        return None
    kept = ids.kept
    if kept is not None:  # one search of the kept bytes
        k = kept.find(parsed[0])
        if k is None and kept.plain:
            k = kept.find(xor(parsed[0], ids.at(kept.start).key), 0, kept.plain)
        if k is not None and lead + k < len(before):
            return lead + k
    parents: dict[int, set[bytes]] = {}  # by scope (its ``id``): the prefix hash it names
    for i in range(lead, len(before)):
        if kept is not None and kept.start <= i - lead < kept.end:
            continue
        scope = ids.at(i - lead)
        mine = parents.get(id(scope))
        if mine is None:
            mine = parents[id(scope)] = {k.mask(parsed[0]) for k in scope.scopes()}
        if before[i] in mine:
            return i
    return None


def locate(
    bodies: Sequence[bytes],
    before: Sequence[bytes],
    lead: int,
    model: str,
    ident: str,
    ids: Ids = PLAIN,
) -> tuple[int, dict[str, Any], list[dict[str, Any]]] | None:
    """``(message index, the item, all items of its message)`` of item ``ident`` among
    ``bodies[lead:]`` (``before[i]``: the prefix hash before message ``i``), rendering
    only its message when its id names it (every message otherwise). The items are those
    of scope ``ids`` (the item found by an unmasked id of a legacy scope too)."""
    i = _message_of(ident, before, lead, ids)
    # its own message first; then every message that can hold it (an item can carry the
    # provider's id, which its stored body then holds: a body without those bytes is not
    # rendered, so an unknown id costs a scan of bytes, not a rendering of the history)
    first = [] if i is None else [i]
    plain = ident.isascii() and ident.isprintable() and not ('"' in ident or "\\" in ident)
    needle = ident.encode()
    others = (k for k in range(lead, len(bodies)) if k != i and (not plain or needle in bodies[k]))
    for k in itertools.chain(first, others):
        mine = ids.at(k - lead)
        rendered = items_of(bodies[k], before[k], model, ids=mine)
        for scope in mine.scopes():
            shown = rendered if scope is mine else items_of(bodies[k], before[k], model, ids=scope)
            for j, found in enumerate(shown):
                if found["id"] == ident:
                    return k, rendered[j], rendered
    return None


def page(
    bodies: Sequence[bytes],
    before: Sequence[bytes],
    lead: int,
    model: str,
    after: str | None,
    limit: int,
    order: str,
    ids: Ids = PLAIN,
) -> dict[str, Any]:
    """A list page of the items of ``bodies[lead:]`` (``before[i]``: the prefix hash
    before message ``i``), in ``order``, after item ``after``: only the messages the page
    holds are rendered, so a page costs its own items, not the history's."""
    n = len(bodies)
    data: list[dict[str, Any]] = []
    if after is None:
        rest = range(lead, n) if order == "asc" else range(n - 1, lead - 1, -1)
    else:
        found = locate(bodies, before, lead, model, after, ids)
        if found is None:
            raise not_found("item", after, "after")
        i, item, rendered = found
        mine = _ordered(rendered, order)
        data = mine[[x["id"] for x in mine].index(item["id"]) + 1 :]
        rest = range(i + 1, n) if order == "asc" else range(i - 1, lead - 1, -1)
    for i in rest:
        if len(data) > limit:
            break
        data.extend(_ordered(items_of(bodies[i], before[i], model, ids=ids.at(i - lead)), order))
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
