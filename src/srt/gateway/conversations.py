"""The Conversations API: a conversation is an srt session plus a small stored object.

Items are the session's messages rendered as Responses items (``items.items_of``).
Adding items appends them in one compare-and-swap; deleting one rebuilds the history
after it in a new session (a fork before the item, then the rest appended: stored
messages are reused, never copied), and the conversation object is switched to it, with
the ids its moved items showed kept beside the chain (``idmap``). A function call and
its output are deleted together (``_kept_after``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from .. import _core
from .errors import ApiError, bad_request, not_found
from .idmap import rewritten, subs_left
from .items import chain, check_outputs, conversation_ids, items_of, locate, page, renew
from .params import check_items
from .records import new_id
from .service import Gateway
from .threads import Live, thread_name
from .values import check_metadata

__all__ = ["Conversations"]

#: Items per ``POST /v1/conversations`` or ``.../items`` call, as OpenAI allows.
MAX_ITEMS = 20


def _only(body: dict[str, Any], keys: set[str], required: str | None = None) -> None:
    unknown = set(body) - keys
    if unknown:
        k = sorted(unknown)[0]
        raise bad_request(f"Unrecognized request argument supplied: {k}", k, "unknown_parameter")
    if required is not None and required not in body:
        raise bad_request(
            f"Missing required parameter: '{required}'.", required, "missing_required_parameter"
        )


def _public(conv: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": conv["id"],
        "object": "conversation",
        "created_at": conv["created_at"],
        "metadata": conv.get("metadata") or {},
    }


def _answers(m: Any, call_id: Any) -> bool:
    return bool(m.get("role") == "tool" and m.get("tool_call_id") == call_id)


def _kept_after(
    ident: str, item: dict[str, Any], after: list[Any], call_of: Callable[[Any], str | None]
) -> list[int]:
    """The places in ``after`` (the messages after a deleted item) of those that stay. A
    function call and its output go together: deleting the call deletes its outputs
    (left alone, an output would be an orphan, and every later response refused); an
    output whose call (``call_of``: its item's id, None if none precedes it) precedes it
    and whose items after it are not all outputs is not deleted alone: the call would be
    left unanswered in the history, and every later response refused upstream."""
    call_id = item.get("call_id")
    if item.get("type") == "function_call":
        return [k for k, m in enumerate(after) if not _answers(m, call_id)]
    if item.get("type") == "function_call_output" and any(m.get("role") != "tool" for m in after):
        call = call_of(call_id)
        if call is not None:
            raise bad_request(
                f"Item '{ident}' is the function_call_output of call_id {call_id}, and items "
                f"follow it: deleting it alone would leave function call '{call}' unanswered. "
                f"To remove both, delete the function call '{call}': its output goes with it.",
                code="invalid_value",
            )
    return list(range(len(after)))


class Conversations:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.records = gw.records
        self.threads = gw.threads

    def _get(self, tenant: str, cid: str) -> dict[str, Any]:
        conv = self.records.get_conversation(tenant, cid)
        if conv is None:
            raise not_found("conversation", cid)
        return conv

    def _take(self, conv: dict[str, Any]) -> Live:
        return self.threads.conversation(conv, create=True)

    def create(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, {"items", "metadata"})
        metadata = check_metadata(body.get("metadata"))
        given = body.get("items")
        items = [] if given is None else check_items(given, "items", MAX_ITEMS, text=False)
        check_outputs(items, "items", list)
        cid = new_id("conv")
        conv: dict[str, Any] = {
            "id": cid,
            "created_at": int(time.time()),
            "metadata": metadata or {},
            "thread": thread_name(tenant, cid),
            "lead": 0,
            "instructions": None,
            "ids": 1,  # item ids scoped to the conversation (``items.conversation_ids``)
        }
        live = self.threads.adopt(conv["thread"], self.gw.rt.session(conv["thread"]), 0, None)
        try:
            if items:
                live.session.append(items)
            self.records.put_conversation(tenant, conv)
        finally:
            self.threads.release(live)
        return _public(conv)

    def get(self, tenant: str, cid: str) -> dict[str, Any]:
        return _public(self._get(tenant, cid))

    def update(self, tenant: str, cid: str, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, {"metadata"}, "metadata")
        conv = self._get(tenant, cid)
        conv["metadata"] = check_metadata(body["metadata"]) or {}
        self.records.put_conversation(tenant, conv)
        return _public(conv)

    def delete(self, tenant: str, cid: str) -> dict[str, Any]:
        conv = self._get(tenant, cid)
        if not self.records.delete_conversation(tenant, cid):
            raise not_found("conversation", cid)
        self.threads.forget(conv["thread"])
        if self.gw.rt.store.get_session(conv["thread"]) is not None:
            self.gw.rt.delete(conv["thread"])
        return {"id": cid, "object": "conversation.deleted", "deleted": True}

    # -- items -------------------------------------------------------------------------

    def add_items(self, tenant: str, cid: str, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, {"items"}, "items")
        items = check_items(body["items"], "items", MAX_ITEMS, text=False)
        if not items:
            raise bad_request("Invalid 'items': at least one item.", "items", "empty_array")
        conv = self._get(tenant, cid)
        live = self._take(conv)
        try:
            s = live.session
            n = len(s)
            parent = bytes.fromhex(s.prefix_hash) if s.prefix_hash else _core.ROOT
            check_outputs(items, "items", s.messages_bytes)
            s.append(items)
            bodies = s.messages_bytes()[n:]
        finally:
            self.threads.release(live)
        before = [parent, *chain(parent, bodies, self.gw.rt.store.hashing)]
        ids = conversation_ids(tenant, conv)
        data = [x for i, b in enumerate(bodies) for x in items_of(b, before[i], "", ids=ids)]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": False,
        }

    def _bodies(self, tenant: str, cid: str) -> tuple[dict[str, Any], list[bytes], list[bytes]]:
        """A conversation, its messages' bytes, and the prefix hash before each: from its
        live session, or, while a request works on it, as the store holds it (what that
        request has committed), so reading is never refused as busy."""
        conv = self._get(tenant, cid)
        try:
            live = self._take(conv)
        except ApiError as exc:
            if exc.status != 409:
                raise
            return self._stored(tenant, cid, conv)
        try:
            s = live.session
            return conv, s.messages_bytes(), [_core.ROOT, *s.prefix_hashes()[:-1]]
        finally:
            self.threads.release(live)

    def _stored(
        self, tenant: str, cid: str, conv: dict[str, Any]
    ) -> tuple[dict[str, Any], list[bytes], list[bytes]]:
        store = self.gw.rt.store
        row = store.get_session(conv["thread"])
        if row is None:  # moved to a new session meanwhile (an item deleted): read again
            conv = self._get(tenant, cid)
            row = store.get_session(conv["thread"])
        rows = store.chain(row.head) if row is not None and row.head is not None else []
        return conv, [r[2] for r in rows], [_core.ROOT, *(r[3] for r in rows[:-1])]

    def list_items(
        self, tenant: str, cid: str, after: str | None, limit: int, order: str
    ) -> dict[str, Any]:
        conv, bodies, before = self._bodies(tenant, cid)
        ids = conversation_ids(tenant, conv)
        return page(bodies, before, conv["lead"], "", after, limit, order, ids)

    def _locate(
        self,
        tenant: str,
        conv: dict[str, Any],
        bodies: list[bytes],
        before: list[bytes],
        item: str,
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        found = locate(bodies, before, conv["lead"], "", item, conversation_ids(tenant, conv))
        if found is None:
            raise not_found("item", item)
        return found

    def get_item(self, tenant: str, cid: str, item: str) -> dict[str, Any]:
        conv, bodies, before = self._bodies(tenant, cid)
        return self._locate(tenant, conv, bodies, before, item)[1]

    def _call(
        self,
        tenant: str,
        conv: dict[str, Any],
        bodies: list[bytes],
        before: list[bytes],
        earlier: list[Any],
        call_id: Any,
    ) -> str | None:
        """The id of the function call item of ``call_id`` in the ``earlier`` messages."""
        ids = conversation_ids(tenant, conv)
        for j in range(len(earlier) - 1, conv["lead"] - 1, -1):
            if any(c.get("id") == call_id for c in earlier[j].get("tool_calls") or ()):
                for x in items_of(bodies[j], before[j], "", ids=ids.at(j - conv["lead"])):
                    if x.get("type") == "function_call" and x.get("call_id") == call_id:
                        return str(x["id"])
        return None

    def delete_item(self, tenant: str, cid: str, item: str) -> dict[str, Any]:
        conv = self._get(tenant, cid)
        live = self._take(conv)
        try:
            s = live.session
            bodies = s.messages_bytes()
            before = [_core.ROOT, *s.prefix_hashes()[:-1]]
            i, found, rendered = self._locate(tenant, conv, bodies, before, item)
            messages = s.messages()
            call_of = functools.partial(self._call, tenant, conv, bodies, before, messages[:i])
            stay = _kept_after(item, found, messages[i + 1 :], call_of)
            lead = conv["lead"]
            ids = conversation_ids(tenant, conv)
            moved = list(range(i - lead))  # item p of the new history: item moved[p] here
            rest: list[Any] = []
            partial = None
            others = [r for r in rendered if r["id"] != found["id"]]
            if others:  # the message keeps its other items
                rest.append(
                    [{k: v for k, v in r.items() if k not in ("id", "status")} for r in others]
                )
                moved.append(i - lead)
                partial = subs_left(rendered, found["id"], ids.at(i - lead))
            rest += [messages[i + 1 + k] for k in stay]
            moved += [i + 1 + k - lead for k in stay]
            name = thread_name(tenant, f"{cid}~{new_id('d')[2:14]}")
            fork = s.fork(name, at=i)
            if rest:
                fork.append(*rest)
            conv["thread"] = name
            # the items that moved keep the ids they showed; those made from the end on
            # take a generation of the scope never used, so none shows a deleted one's
            kept = rewritten(ids, before, lead, moved, i - lead, partial)
            self.records.put_kept(tenant, conv, kept)
            renew(conv, len(moved))
            self.records.put_conversation(tenant, conv)
            old = live.name
        finally:
            self.threads.release(live)
        self.threads.forget(old)
        self.gw.rt.delete(old)
        return _public(conv)
