"""Usage rows for the Agents SDK session: ledger rows from the SDK's request usage, and
the ledger summed per user turn of a chain; ``Ledger``, the part of ``SrtSession`` that
writes and reads them; ``RUN``, the run context a caller that cannot pass ``wrapper`` to
``SrtSession.add_items`` hands it instead (``SrtCompactionSession``).

A branch's usage is what its own srt session recorded (ledger rows of that session id)
against the items it still holds, as ``AdvancedSQLiteSession`` keeps it: a branch starts
with none, the turns it shares with its parent being the parent's (the SDK copies a
branch's messages but not their usage rows), so adding up over the branches counts each
request once.

A row counts for the user turn of the item it was recorded against; what a pop or a
clear did to it since is kept per branch beside the ledger (which never changes), as
its *marks* (``agents.state`` object ``usage@<branch>``): ``floor``, the newest ledger
row id of the branch when the session was last cleared (rows up to it count no more),
and ``moved``, row id -> the position its usage now stands at, or ``None`` if void.
Popping a reply moves the rows at it down to its turn's user message, as the SDK keeps
a turn's usage until its last message goes; popping a user message voids the rows at
or above it (``replace_items`` removes the items it replaces as if popped). So usage
recorded before a clear or for a popped turn never counts for the same items added
again (content-addressed, they come back as the same nodes), where the SDK's new rows
start from nothing too. The marks are written after the pop or clear they follow: a
crash in between leaves that usage counted, as before this bookkeeping."""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import json
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from .. import _core
from ..errors import ConfigError, SessionNotFoundError
from ..store.base import CallRecord, ChainRow, Store

__all__ = [
    "RUN",
    "Ledger",
    "Marks",
    "ledger_row",
    "marks",
    "model_of",
    "own_turns",
    "per_turn",
    "totals",
]

_STATE = "agents.state"

#: A branch's marks (see the module docstring): ``(floor, moved)``.
Marks = tuple[int, dict[int, "int | None"]]

#: The SDK's run context for an ``add_items`` called without one (``None``: none).
RUN: contextvars.ContextVar[Any] = contextvars.ContextVar("srt_agents_run", default=None)


def model_of(items: Sequence[Any], default: str) -> str:
    """The model named by the newest item's ``provider_data``, else ``default``."""
    for item in reversed(items):
        data = item.get("provider_data") if isinstance(item, dict) else None
        if isinstance(data, dict) and "model" in data:
            return str(data["model"])
    return default


def ledger_row(
    entry: Any, *, session: int | None, name: str, node: int | None, model: str, messages: int
) -> CallRecord:
    """The ledger row of one request the SDK made (its ``RequestUsage``)."""
    details = entry.input_tokens_details
    out = getattr(entry, "output_tokens_details", None)
    return CallRecord(
        at=time.time(),
        session=session,
        session_name=name,
        node=node,
        provider="openai-agents",
        model=model,
        format="external",
        body_hash=_core.digest(b""),
        body_bytes=0,
        messages=messages,
        input_tokens=entry.input_tokens,
        cache_read_tokens=getattr(details, "cached_tokens", 0) or 0,
        cache_write_tokens=getattr(details, "cache_write_tokens", 0) or 0,
        output_tokens=entry.output_tokens,
        reasoning_tokens=getattr(out, "reasoning_tokens", 0) or 0,
    )


def per_turn(
    rows: Sequence[ChainRow], calls: Iterable[CallRecord], marks: Marks = (0, {})
) -> list[dict[str, Any]]:
    """``calls`` summed per user turn of the chain ``rows``, for the turns that have any
    (calls off the chain, or void by the branch's ``marks``, are left out), as the SDK's
    ``get_turn_usage`` lists its turns."""
    at: dict[int, int] = {}
    turn_at: list[int] = []
    turn = 0
    for node, _h, body, *_rest in rows:
        if json.loads(body)["role"] == "user":
            turn += 1
        at[node] = len(turn_at)
        turn_at.append(turn)
    out = {
        t: {"turn": t, "requests": 0, "input_tokens": 0, "cached_tokens": 0, "output_tokens": 0}
        for t in range(1, turn + 1)
    }
    for call in calls:
        pos = position(call, at, marks)
        t = turn_at[pos] if pos is not None and pos < len(turn_at) else 0
        if not t:
            continue
        row = out[t]
        row["requests"] += 1
        row["input_tokens"] += call.input_tokens or 0
        row["cached_tokens"] += call.cache_read_tokens or 0
        row["output_tokens"] += call.output_tokens or 0
    return [out[t] for t in sorted(out) if out[t]["requests"]]


def position(call: CallRecord, at: dict[int, int], marks: Marks) -> int | None:
    """Where in the branch ``call``'s usage stands (``at``: node -> position), ``None``
    if nowhere: void by the ``marks``, or recorded against an item the branch lost."""
    floor, moved = marks
    if call.id is not None and call.id <= floor:
        return None
    if call.id in moved:
        return moved[call.id]
    return at.get(call.node) if call.node is not None else None


def marks(store: Store, scope: str, branch: str) -> Marks:
    """The marks of branch ``branch`` of agents session ``scope`` (none: ``(0, {})``)."""
    row = store.get_object(_STATE, scope, f"usage@{branch}")
    if row is None:
        return 0, {}
    data = json.loads(row.value)
    return int(data["floor"]), {int(k): v for k, v in data["moved"].items()}


def totals(turns: Sequence[dict[str, Any]]) -> dict[str, int] | None:
    """Turns of ``per_turn`` summed in the shape of the SDK's ``get_session_usage``
    (``None`` for no turn, as there)."""
    if not turns:
        return None
    sums = {k: sum(t[k] for t in turns) for k in ("requests", "input_tokens", "output_tokens")}
    sums["total_tokens"] = sums["input_tokens"] + sums["output_tokens"]
    sums["total_turns"] = len(turns)
    return sums


class Ledger:
    """The usage ledger of ``SrtSession`` (a mixin: its ``self`` is an ``SrtSession``,
    which this module cannot import). Each run context's requests are written once: the
    handle remembers how many of a context's ``request_usage_entries`` it has written."""

    _recorded: dict[int, tuple[weakref.ref[Any], int]]

    def _record_usage(
        self: Any,
        wrapper: Any,
        items: Sequence[Any],
        head: int | None,
        *,
        start: int | None = None,
        model: str | None = None,
    ) -> None:
        """Ledger rows against ``head`` for the requests of run context ``wrapper`` not
        written yet; those from ``start`` on were made for ``model`` (the others' model
        is the items' or the session's)."""
        usage = getattr(wrapper, "usage", None)
        entries = list(getattr(usage, "request_usage_entries", None) or ())
        if not entries:
            return
        for key, (ref, _n) in list(self._recorded.items()):
            if ref() is None:
                del self._recorded[key]
        seen = self._recorded.get(id(wrapper))
        done = seen[1] if seen is not None and seen[0]() is wrapper else 0
        start = len(entries) if start is None else start
        default = model_of(items, self.model or "unknown")
        n = len(self._cache or ())
        row = self._store.get_session(self._s.name)
        sid = row.id if row is not None else None
        for i in range(done, len(entries)):
            self._store.record_call(
                ledger_row(
                    entries[i],
                    session=sid,
                    name=self._s.name,
                    node=head,
                    model=model if model is not None and i >= start else default,
                    messages=n,
                )
            )
        with contextlib.suppress(TypeError):
            self._recorded[id(wrapper)] = (weakref.ref(wrapper), len(entries))

    async def record_requests(self: Any, wrapper: Any, start: int, model: str) -> None:
        """Write the requests of run context ``wrapper`` not written yet against the
        current branch's newest item: those from ``start`` on (``SrtCompactionSession``'s
        ``responses.compact``) were made for ``model``."""

        def record() -> None:
            self._items()
            head = self._cache_key[0] if self._cache_key is not None else None
            self._record_usage(wrapper, (), head, start=start, model=model)

        await self._change(record)

    async def store_run_usage(self: Any, result: Any) -> None:
        """Write the requests of a finished run (``result``, the ``Runner``'s) not written
        yet against the current branch's newest item, as ``AdvancedSQLiteSession``'s
        method of that name does: for a session the SDK gave no run context, such as one
        under the SDK's own ``OpenAIResponsesCompactionSession`` (``SrtCompactionSession``
        writes each request against its own items and names the compaction model)."""
        wrapper = getattr(result, "context_wrapper", None)
        usage = getattr(wrapper, "usage", None)
        if usage is None or not hasattr(usage, "request_usage_entries"):
            raise ConfigError(f"store_run_usage takes a Runner result, got {type(result).__name__}")
        await self.record_requests(wrapper, len(usage.request_usage_entries), self.model)

    async def turn_usage(self: Any) -> list[dict[str, Any]]:
        """The current branch's usage per user turn, for the turns that have any: ``turn``,
        ``requests``, ``input_tokens``, ``cached_tokens``, ``output_tokens``. Only the
        requests the branch itself recorded count: a fork's shared turns are its parent's
        (see the module docstring)."""
        out: list[dict[str, Any]] = await self._run(self._turn_usage)
        return out

    def _turn_usage(self: Any) -> list[dict[str, Any]]:
        self._items()
        head = self._cache_key[0] if self._cache_key is not None else None
        return own_turns(self._store, self._sid, head, self._marks(self._branch))

    def _marks(self: Any, branch: str) -> Marks:
        return marks(self._store, self.session_id, branch)

    def _put_marks(self: Any, branch: str, floor: int, moved: dict[int, int | None]) -> None:
        value = json.dumps({"floor": floor, "moved": {str(k): v for k, v in moved.items()}})
        self._store.put_object(_STATE, self.session_id, f"usage@{branch}", value.encode())

    def _usage_cut(self: Any, items: Any, users: Sequence[int] | None, pos: int) -> None:
        """The current branch's ``items`` from ``pos`` on (``users``: where its user
        messages are, if known) have just been removed (popped, or replaced): as if
        popped one by one, the usage standing there moves down to its turn's user
        message if that stays, and is void if it went."""
        if pos >= len(items):
            return
        calls = self._own_calls()
        if not calls:
            return
        if users is None:
            users = [i for i, m in enumerate(items.messages()) if m["role"] == "user"]
        floor, moved = self._marks(self._branch)
        at = {node: i for i, node in enumerate(items.ids)}
        changed = False
        for call in calls:
            where = position(call, at, (floor, moved))
            if where is not None and where >= pos and call.id is not None:
                i = bisect.bisect_right(users, where)  # (the last user message at or above)
                moved[call.id] = users[i - 1] if i and users[i - 1] < pos else None
                changed = True
        if changed:
            self._put_marks(self._branch, floor, moved)

    def _usage_cleared(self: Any) -> None:
        """The current branch (``main``) is about to be emptied by a clear: none of the
        usage it recorded so far counts any more."""
        ids = [c.id for c in self._own_calls() if c.id is not None]
        if ids:
            self._put_marks(self._branch, max(ids), {})

    def _own_calls(self: Any) -> list[CallRecord]:
        """The ledger rows the current branch's srt session recorded."""
        return self._store.calls(session=self._sid) if self._sid is not None else []

    def _usage_forget(self: Any, branch: str) -> None:
        """Branch ``branch`` is deleted: its marks go (a branch made again under its
        name is another srt session, which starts with no usage)."""
        self._store.delete_object(_STATE, self.session_id, f"usage@{branch}")

    async def session_usage(self: Any, branch: str | None = None) -> dict[str, int] | None:
        """The usage of every branch (``branch=None``) or of one, as the SDK's
        ``get_session_usage``: ``requests``, ``input_tokens``, ``output_tokens``,
        ``total_tokens`` and ``total_turns`` (the turns with usage), or ``None`` if no
        turn has any. A branch that does not exist is a ``SessionNotFoundError``."""
        if branch is not None and (not isinstance(branch, str) or not branch):
            raise ConfigError(f"branch must be a branch name or None, got {branch!r}")
        out: dict[str, int] | None = await self._run(self._session_usage, branch)
        return out

    async def get_session_usage(self: Any, branch_id: str | None = None) -> dict[str, int] | None:
        """``session_usage`` under ``AdvancedSQLiteSession``'s name for it."""
        out: dict[str, int] | None = await self.session_usage(branch_id)
        return out

    def _session_usage(self: Any, branch: str | None) -> dict[str, int] | None:
        self._branches = self._load_branches()
        if branch is not None and branch not in self._branches:
            raise SessionNotFoundError(f"session {self.session_id!r} has no branch {branch!r}")
        turns: list[dict[str, Any]] = []
        for name in [branch] if branch is not None else list(self._branches):
            row = self._store.get_session(self._branches[name].session)
            if row is not None:
                turns += own_turns(self._store, row.id, row.head, self._marks(name))
        return totals(turns)


def own_turns(
    store: Store, session: int | None, head: int | None, marks: Marks = (0, {})
) -> list[dict[str, Any]]:
    """``per_turn`` of the chain to ``head`` with the ledger rows of srt session id
    ``session`` alone (its branch's own requests), under its branch's ``marks``."""
    if session is None or head is None:
        return []
    calls = store.calls(session=session)
    return per_turn(store.chain(head), calls, marks) if calls else []
