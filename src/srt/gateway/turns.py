"""Where a response's turn happens: the live session it works on, positioned.

A new response gets a thread of its own; one with a ``conversation`` works on the
conversation's session; a ``previous_response_id`` naming the thread's newest response
continues that session, and one naming an older response forks it there (no message
copied) in a session that ends with the turn (``Placer.end_own``): the response's record
keeps the nodes it added, and continuing the fork makes its session again at the
record's node. New ``instructions`` start a history with the instructions message first;
other instructions than the thread's re-root it in a new session (new nodes, the same
stored messages), whose items keep the ids they showed (``idmap.rewritten``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from .. import _core
from ..errors import ConflictError, SessionExistsError, SessionNotFoundError
from ..runtime import Runtime
from ..session import Session
from ..store.heads import delete_session
from . import items as it
from .errors import ApiError, bad_request, not_found
from .events import Events
from .idmap import rewritten
from .params import CreateResponse
from .records import Records, digest
from .threads import Live, Threads, thread_name

__all__ = ["Placer", "Turn", "previous_not_found"]


@dataclass
class Turn:
    """What one create-response request works on."""

    live: Live
    session: Session
    lead: int
    instructions: str | None
    prefix: list[Any]  # messages staged before the input (instructions, a re-rooted history)
    conversation: dict[str, Any] | None
    reroot: bool
    fork: bool = False  # the session was made for this response from an older one
    committed: bool = False  # the response record was written in the turn's commit
    record: dict[str, Any] | None = None  # the response's record, once made
    stored: bool = False  # the record was stored in progress (a streamed response)
    settled: bool = False  # ... and its end was stored (or it was removed)
    ended: bool = False  # the session made for it ended with it (``end_own``)
    deleted: bool = False  # its record was deleted while it ran (its end not written)
    events: Events | None = None  # a streamed (or background) response's events
    scope: it.Inherited | None = None  # the item ids' scope, when the turn continues another's
    ids: it.Ids = it.PLAIN  # the scope of its items' ids (``_prepare``)

    def rerooted(self) -> dict[str, Any] | None:
        """A conversation whose history this turn moved to a new session, updated."""
        if self.conversation is None or not self.reroot:
            return None
        conv = dict(self.conversation)
        conv.update(thread=self.live.name, lead=self.lead, instructions=self.instructions)
        return conv


class Placer:
    """Positions each response's turn on its thread (shared by the gateway's threads)."""

    def __init__(self, runtime: Runtime, records: Records, threads: Threads) -> None:
        self.rt = runtime
        self.records = records
        self.threads = threads

    def begin(self, tenant: str, p: CreateResponse, rid: str) -> Turn:
        instructions = digest(p.instructions)
        if p.previous_response_id is not None:
            found = self.records.get_response(tenant, p.previous_response_id)
            if found is None:
                raise previous_not_found(p.previous_response_id)
            rec, node = found
            if rec["response"]["status"] in ("in_progress", "queued"):
                raise bad_request(
                    f"Previous response '{p.previous_response_id}' is still in progress.",
                    "previous_response_id",
                    "previous_response_in_progress",
                )
            return self._continue(tenant, rec, node, rid, p)
        if p.conversation is not None:
            conv = self.records.get_conversation(tenant, p.conversation)
            if conv is None:
                raise not_found("conversation", p.conversation, "conversation")
            live = self.threads.conversation(conv)
            old = it.conversation_ids(tenant, conv)
            return self._positioned(tenant, live, len(live.session), p, rid, conv, old)
        name = thread_name(tenant, rid)
        live = self.threads.adopt(name, self.rt.session(name), 0, instructions)
        prefix = [{"role": "system", "content": p.instructions}] if instructions else []
        return Turn(live, live.session, len(prefix), instructions, prefix, None, False)

    def _continue(
        self, tenant: str, rec: dict[str, Any], node: int | None, rid: str, p: CreateResponse
    ) -> Turn:
        name, depth = rec["thread"], rec["depth"]
        lead, instructions = rec["lead"], rec.get("instructions")
        try:
            live = self.threads.take(name, lead, instructions, create=False)
        except SessionNotFoundError:
            # a fork's session ends with its turn: the first continuation brings it back
            own = name == thread_name(tenant, rec["response"]["id"])
            live = self._at_node(name, node, lead, instructions) if own else None
        old = it.response_ids(tenant, rec)
        if live is not None and live.session.head == node:
            turn = self._positioned(tenant, live, depth, p, rid, None, old)
            if not turn.reroot:
                turn.scope = it.inherited(rec, it.scope_of(rec))
            return turn
        source = None
        if live is not None:
            self.threads.release(live)
            source = live.session
        fork_name = thread_name(tenant, rid)
        fork = None
        if source is not None:  # open here: the fork shares its history in memory
            with contextlib.suppress(ConflictError):
                fork = source.fork(fork_name, at=depth)
            if fork is not None and fork.head != node:
                self.rt.delete(fork_name)
                fork = None
        live = (
            self.threads.adopt(fork_name, fork, lead, instructions)
            if fork is not None
            else self._at_node(fork_name, node, lead, instructions)
        )
        if live is None:
            raise _gone()
        turn = self._positioned(tenant, live, depth, p, rid, None, old, fork=True)
        if not turn.reroot:
            turn.scope = it.inherited(rec, it.forked(it.scope_of(rec), depth - lead))
        return turn

    def _at_node(
        self, name: str, node: int | None, lead: int, instructions: str | None
    ) -> Live | None:
        """A new session ``name`` whose head is a stored response's ``node``, reserved;
        ``None`` if a session of that name exists (another request made it first)."""
        store = self.rt.store
        try:
            prefix = store.node_prefix(node) if node is not None else None
            store.create_session(
                name, node, exist_ok=False, head_prefix=prefix, limit=self.rt.max_sessions
            )
        except SessionExistsError:
            return None
        except (ConflictError, LookupError):
            raise _gone() from None
        return self.threads.claim(name, self.rt.session(name, create=False), lead, instructions)

    def end_own(self, tenant: str, rid: str, turn: Turn) -> None:
        """Once: a session made for this turn goes with it if it is a fork, or if it holds
        nothing (the turn failed, or kept nothing): ``_continue`` makes it again. An empty
        one goes before the response's end is stored, so none is left once it reads so
        (one holding nodes after: the record keeps them from gc)."""
        if not turn.ended:
            turn.ended = True
            if turn.fork or (turn.live.name == thread_name(tenant, rid) and not len(turn.session)):
                self._drop_fork(turn.live)

    def retire(self, tenant: str, turn: Turn) -> None:
        """After a turn (its session released): the threads nothing names any more go,
        so their messages can be collected. A response deleted while it ran leaves the
        head of its own thread on its reply: that thread goes (``Threads.drop``). A
        conversation this turn re-rooted leaves two sessions, of which its record names
        one: the other goes (the old one once the record moved on; the new one if the
        turn failed, kept nothing, or the conversation was deleted meanwhile). A record
        that cannot be read keeps both (its routes answer the damaged 500)."""
        if turn.deleted and turn.conversation is None:
            self.threads.drop(turn.live.name, turn.session.head)
        if turn.conversation is None or not turn.reroot:
            return
        try:
            conv = self.records.get_conversation(tenant, turn.conversation["id"])
        except ApiError:
            return
        current = None if conv is None else conv["thread"]
        for name in (turn.conversation["thread"], turn.live.name):
            if name != current:
                self.threads.drop(name, any_head=True)

    def _drop_fork(self, live: Live) -> bool:
        """End a fork's session with its turn: the response's record keeps the nodes it
        added (``gc`` spares what an object names), so a fork that is never continued
        costs no session row; continuing it makes the session again (``_continue``).
        Deleted only while its head is the one this turn left (a compare-and-swap): a
        turn another worker added to it meanwhile keeps it. Whether it is gone."""
        head = live.session.head
        self.threads.forget(live.name)
        try:
            delete_session(self.rt.store, live.name, if_head=head)
        except ConflictError:
            return False
        except SessionNotFoundError:
            pass
        return True

    def _positioned(
        self,
        tenant: str,
        live: Live,
        depth: int,
        p: CreateResponse,
        rid: str,
        conv: dict[str, Any] | None,
        old: it.Ids,
        *,
        fork: bool = False,
    ) -> Turn:
        """A live session at the base; re-rooted when the instructions changed, its items
        keeping the ids they showed (``old``). ``fork``: the session was made for this
        response (it ends with the turn)."""
        instructions = digest(p.instructions)
        if instructions == live.instructions or (instructions is None and not live.lead):
            return Turn(live, live.session, live.lead, instructions, [], conv, False, fork=fork)
        s = live.session
        items = s.messages()[live.lead : depth]
        before = [_core.ROOT, *s.prefix_hashes()[: depth - 1]]
        kept = rewritten(old, before, live.lead, range(len(items)), 0, legacy=conv is not None)
        self.threads.release(live)
        if fork and not self._drop_fork(live):  # the new history takes its name
            raise ApiError(
                409,
                "Another request added to this response's history while it was being "
                "prepared; retry.",
                param="previous_response_id",
                code="conversation_locked",
            )
        name = thread_name(tenant, f"{conv['id']}~{rid[5:17]}" if conv else rid)
        new = self.threads.adopt(name, self.rt.session(name), 0, instructions)
        prefix: list[Any] = [{"role": "system", "content": p.instructions}] if instructions else []
        lead = len(prefix)
        prefix += items
        scope = None
        if conv is not None:  # its record, as the turn's commit writes it (``rerooted``)
            conv = dict(conv)
            self.records.put_kept(tenant, conv, kept)
            it.renew(conv, len(items))  # items made from here on: a new generation
        elif kept is not None:
            scope = it.Inherited(None, kept, self.records.put_text(tenant, kept.as_json()))
        turn = Turn(new, new.session, lead, instructions, prefix, conv, True)
        turn.scope = scope
        return turn


def previous_not_found(rid: str) -> ApiError:
    """What a request whose ``previous_response_id`` names no stored response is told."""
    return bad_request(
        f"Previous response with id '{rid}' not found.",
        "previous_response_id",
        "previous_response_not_found",
    )


def _gone() -> ApiError:
    return bad_request(
        "The history of the previous response is no longer available.",
        "previous_response_id",
        "previous_response_not_found",
    )
