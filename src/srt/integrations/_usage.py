"""Usage rows for the Agents SDK session: ledger rows from the SDK's request usage, and
the ledger summed per user turn of a chain; ``Ledger``, the part of ``SrtSession`` that
writes and reads them; ``RUN``, the run context a caller that cannot pass ``wrapper`` to
``SrtSession.add_items`` hands it instead (``SrtCompactionSession``).

A branch's usage is what its own srt session recorded (ledger rows of that session id)
against the items it still holds, as ``AdvancedSQLiteSession`` keeps it: a branch starts
with none, the turns it shares with its parent being the parent's (the SDK copies a
branch's messages but not their usage rows), so adding up over the branches counts each
request once.

What a pop or a clear did to a branch's rows since they were written (the ledger never
changes) is kept beside it as the branch's *marks* (``_marks``)."""

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
from ..errors import ConfigError, ConflictError, SessionNotFoundError
from ..store.base import CallRecord, ChainRow, ObjectPut, Store
from ._marks import STATE, Marks, at, fold, like, marks, swap

#: How many times ``_wrote`` tries to write the marks before it gives up (typed).
_TRIES = 64

__all__ = [
    "RUN",
    "Ledger",
    "Marks",
    "fold",
    "ledger_row",
    "marks",
    "model_of",
    "own_turns",
    "per_turn",
    "sdk_turn",
    "totals",
]

#: What ``per_turn`` sums per turn (with ``detail``: ``_DETAIL``).
_SUMS = ("requests", "input_tokens", "cached_tokens", "output_tokens")
_DETAIL = (*_SUMS, "cache_write_tokens", "reasoning_tokens")

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
    rows: Sequence[ChainRow],
    calls: Iterable[CallRecord],
    marks: Marks | None = None,
    *,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """``calls`` summed per user turn of the chain ``rows``, for the turns that have any
    (calls off the chain, or void by the branch's ``marks``, are left out), as the SDK's
    ``get_turn_usage`` lists its turns; with ``detail``, ``cache_write_tokens`` and
    ``reasoning_tokens`` too."""
    at: dict[int, int] = {}
    turn_at: list[int] = []
    turn = 0
    for node, _h, body, *_rest in rows:
        if json.loads(body)["role"] == "user":
            turn += 1
        at[node] = len(turn_at)
        turn_at.append(turn)
    keys = _DETAIL if detail else _SUMS
    out = {t: {"turn": t, **dict.fromkeys(keys, 0)} for t in range(1, turn + 1)}
    marks = marks if marks is not None else Marks()
    for call in calls:
        pos = marks.where(call, at)
        t = turn_at[pos] if pos is not None and pos < len(turn_at) else 0
        if not t:
            continue
        row = out[t]
        row["requests"] += 1
        row["input_tokens"] += call.input_tokens or 0
        row["cached_tokens"] += call.cache_read_tokens or 0
        row["output_tokens"] += call.output_tokens or 0
        if detail:
            row["cache_write_tokens"] += call.cache_write_tokens or 0
            row["reasoning_tokens"] += call.reasoning_tokens or 0
    return [out[t] for t in sorted(out) if out[t]["requests"]]


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
    _cache: Any  # (``SrtSession``'s read cache)

    def _unwritten(
        self: Any,
        wrapper: Any,
        items: Sequence[Any],
        *,
        start: int | None = None,
        model: str | None = None,
    ) -> list[CallRecord]:
        """The ledger rows (their node not set) of the requests of run context
        ``wrapper`` this handle has not written; those from ``start`` on were made for
        ``model`` (the others' model is the items' or the session's)."""
        usage = getattr(wrapper, "usage", None)
        entries = list(getattr(usage, "request_usage_entries", None) or ())
        if not entries:
            return []
        for key, (ref, _n) in list(self._recorded.items()):
            if ref() is None:
                del self._recorded[key]
        seen = self._recorded.get(id(wrapper))
        done = seen[1] if seen is not None and seen[0]() is wrapper else 0
        start = len(entries) if start is None else start
        default = model_of(items, self.model or "unknown")
        n = len(self._cache or ())
        return [
            ledger_row(
                entries[i],
                session=self._sid,
                name=self._s.name,
                node=None,
                model=model if model is not None and i >= start else default,
                messages=n,
            )
            for i in range(done, len(entries))
        ]

    def _fresh(self: Any, wrapper: Any) -> bool:
        """Whether run context ``wrapper`` is a run this handle has written no request of
        (a new ``Runner.run``; call after ``_unwritten``, which forgets dead ones)."""
        seen = self._recorded.get(id(wrapper))
        return seen is None or seen[0]() is not wrapper

    def _rows_puts(
        self: Any, wrapper: Any, rows: Sequence[CallRecord], users: Sequence[int], items: Any
    ) -> list[ObjectPut]:
        """The write of the marks to go with ``rows`` (none: none) of run context
        ``wrapper``, added with items after the branch's ``items`` (``users``: where the
        user messages are, those added included): ``_ledger_puts`` for the newest turn,
        whose usage the rows of a new run replace if it was there before the add."""
        if not rows:
            return []
        user = users[-1] if users else None
        new_run = user is not None and user < len(items) and self._fresh(wrapper)
        puts: list[ObjectPut] = self._ledger_puts(user, items if new_run else None)
        return puts

    def _ledger_puts(self: Any, user: int | None = None, items: Any = None) -> list[ObjectPut]:
        """The write of the current branch's marks to go with a write of ledger rows
        (the first, at least; ``_wrote`` the others), so that a pop or a clear that read
        the ledger before it is refused, and reads it again (and a row whose transaction
        is still open when a pop or clear folds the marks, on PostgreSQL, commits only
        if it was not refused). ``user``: the place of the user message of the turn the
        rows are for, whose usage they replace (a popped reply's rows, which the pop
        moved there), as ``AdvancedSQLiteSession.store_run_usage`` replaces a turn's.
        With ``items`` (the branch's items before the write), the rows are a new run's:
        every row that counts in that turn is void, the new run's usage replacing the
        turn's as the SDK's ``INSERT OR REPLACE`` of its turn row does (a second
        ``Runner.run`` in a turn, or a run resumed from its ``RunState``, whose usage
        holds the first's requests again)."""
        old = self._marks(self._branch)
        moved = {k: (None if user is not None and v == user else v) for k, v in old.moved.items()}
        calls = self._own_calls() if items is not None and user is not None else []
        if calls:
            where = {node: i for i, node in enumerate(items.ids)}
            for call in calls:
                pos = old.where(call, where)
                if pos is not None and pos >= user and call.id is not None:
                    moved[call.id] = None
            return [old.put(self.session_id, self._branch, fold(calls, old.floor, moved, old))]
        return [old.put(self.session_id, self._branch, Marks(old.floor, old.void, moved))]

    def _wrote(
        self: Any, wrapper: Any, rows: Sequence[CallRecord], node: int | None, marks: ObjectPut
    ) -> None:
        """``rows[0]`` was written against ``node`` with ``marks``: remember the run
        context's requests as written, and write the others (a run context with more
        than one request since the last write), then the marks again, the others given
        whatever ``rows[0]`` has had meanwhile (void, or moved, by a pop or clear that
        ran between the two writes and could not see them)."""
        with contextlib.suppress(TypeError):
            usage = wrapper.usage
            self._recorded[id(wrapper)] = (
                weakref.ref(wrapper),
                len(usage.request_usage_entries),
            )
        if len(rows) < 2:
            return
        extras = [self._store.record_call(at(r, node)) for r in rows[1:]]
        for _ in range(_TRIES):
            old = self._marks(self._branch)
            new = old
            if old.raw != marks.value:  # (a pop or a clear since: rows[0]'s fate for all)
                new = like(self._own_calls(), old, at(rows[0], node), extras)
            if swap(self._store, old.put(self.session_id, self._branch, new)):
                return
        raise ConflictError(
            f"the usage of {len(extras)} request(s) of a run in session {self.session_id!r} "
            f"(branch {self._branch!r}) is written, but its marks were not: other handles "
            f"changed them {_TRIES} times in a row; the items are stored, and those "
            "requests count where they were written, whatever a pop or clear did meanwhile"
        )

    def _record_usage(
        self: Any,
        wrapper: Any,
        items: Sequence[Any],
        *,
        start: int | None = None,
        model: str | None = None,
        run: bool = False,
    ) -> None:
        """Ledger rows against the current branch's newest item for the requests of run
        context ``wrapper`` not written yet (see ``_unwritten``): written with the head's
        compare-and-swap and the marks' (an append of no item), again from the
        head as it is then if either moved. ``run``: ``wrapper`` is a whole run's
        (``store_run_usage``), whose usage, if new, replaces its turn's."""
        from . import _append

        for _ in range(64):
            cached = self._items()
            rows = self._unwritten(wrapper, items, start=start, model=model)
            if not rows:
                return
            head = self._cache_key[0] if self._cache_key is not None else None
            prefix = cached.prefixes[-1] if len(cached) else _core.ROOT
            users = self._user_positions(cached) if run and self._fresh(wrapper) else []
            puts = self._ledger_puts(users[-1], cached) if users else self._ledger_puts()
            try:
                _append.append(
                    self._rt, self._s.name, head, len(cached), prefix, [], puts, call=rows[0]
                )
            except ConflictError:
                self._cache = None
                continue
            self._mark(head, cached, self._user_positions(cached))
            self._wrote(wrapper, rows, head, puts[0])
            return
        raise ConflictError(f"could not record usage in {self.session_id!r}: it kept moving")

    async def record_requests(self: Any, wrapper: Any, start: int, model: str) -> None:
        """Write the requests of run context ``wrapper`` not written yet against the
        current branch's newest item: those from ``start`` on (``SrtCompactionSession``'s
        ``responses.compact``) were made for ``model``."""
        await self._change(lambda: self._record_usage(wrapper, (), start=start, model=model))

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
        n = len(usage.request_usage_entries)
        await self._change(
            lambda: self._record_usage(wrapper, (), start=n, model=self.model, run=True)
        )

    async def turn_usage(self: Any) -> list[dict[str, Any]]:
        """The current branch's usage per user turn, for the turns that have any: ``turn``,
        ``requests``, ``input_tokens``, ``cached_tokens``, ``output_tokens``. Only the
        requests the branch itself recorded count: a fork's shared turns are its parent's
        (see the module docstring)."""
        out: list[dict[str, Any]] = await self._run(self._turn_usage)
        return out

    def _turn_usage(self: Any, *, detail: bool = False) -> list[dict[str, Any]]:
        self._items()
        head = self._cache_key[0] if self._cache_key is not None else None
        return own_turns(self._store, self._sid, head, self._marks(self._branch), detail=detail)

    def _marks(self: Any, branch: str) -> Marks:
        return marks(self._store, self.session_id, branch)

    def _usage_cut(self: Any, items: Any, users: Sequence[int] | None, pos: int) -> list[ObjectPut]:
        """The current branch's ``items`` from ``pos`` on (``users``: where its user
        messages are, if known) are about to be removed (popped, or replaced): the
        write of its marks to go with the head move, after which, as if popped one by
        one, the usage standing there has moved down to its turn's user message if that
        stays, and is void if it went. (Checked, not written, if nothing changes: a
        ledger row written meanwhile, with its own write of the marks, sends one of the
        two back.)"""
        old = self._marks(self._branch)
        calls = self._own_calls() if pos < len(items) else []
        if not calls:
            return [old.cut(self.session_id, self._branch, old)]
        if users is None:
            users = [i for i, m in enumerate(items.messages()) if m["role"] == "user"]
        moved = dict(old.moved)
        at = {node: i for i, node in enumerate(items.ids)}
        for call in calls:
            where = old.where(call, at)
            if where is not None and where >= pos and call.id is not None:
                i = bisect.bisect_right(users, where)  # (the last user message at or above)
                moved[call.id] = users[i - 1] if i and users[i - 1] < pos else None
        return [old.cut(self.session_id, self._branch, fold(calls, old.floor, moved, old))]

    def _usage_cleared(self: Any) -> list[ObjectPut]:
        """The current branch (``main``) is about to be emptied by a clear: the write of
        its marks to go with it, after which none of the usage it recorded so far
        counts any more (every ledger row of the branch written before it, by the
        compare-and-swap: ``_ledger_puts``)."""
        old = self._marks(self._branch)
        ids = [c.id for c in self._own_calls() if c.id is not None]
        return [old.cut(self.session_id, self._branch, Marks(max(ids, default=old.floor)))]

    def _own_calls(self: Any) -> list[CallRecord]:
        """The ledger rows the current branch's srt session recorded."""
        return self._store.calls(session=self._sid) if self._sid is not None else []

    def _usage_forget(self: Any, branch: str) -> None:
        """Branch ``branch`` is deleted: its marks go (a branch made again under its
        name is another srt session, which starts with no usage)."""
        self._store.delete_object(STATE, self.session_id, f"usage@{branch}")

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
            turns += self._turns_of(name)
        return totals(turns)

    def _turns_of(self: Any, branch: str, *, detail: bool = False) -> list[dict[str, Any]]:
        """``own_turns`` of branch ``branch`` (in ``self._branches``), as stored."""
        row = self._store.get_session(self._branches[branch].session)
        if row is None:
            return []
        return own_turns(self._store, row.id, row.head, self._marks(branch), detail=detail)

    async def get_turn_usage(
        self: Any, user_turn_number: int | None = None, branch_id: str | None = None
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """Usage per user turn of the current branch (or ``branch_id``), as
        ``AdvancedSQLiteSession``'s method of that name gives it: a list of the turns
        with usage (``user_turn_number``, ``requests``, ``input_tokens``,
        ``output_tokens``, ``total_tokens``, ``input_tokens_details``,
        ``output_tokens_details``), or with ``user_turn_number`` that turn's (without its
        number; ``{}`` if it has none). A branch that does not exist is a
        ``SessionNotFoundError`` (the SDK answers as for a branch with no usage)."""
        n = user_turn_number
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ConfigError(f"user_turn_number must be a positive int or None, got {n!r}")
        if branch_id is not None and (not isinstance(branch_id, str) or not branch_id):
            raise ConfigError(f"branch_id must be a branch name or None, got {branch_id!r}")
        turns: list[dict[str, Any]] = await self._run(self._detailed_turns, branch_id)
        out = [sdk_turn(t) for t in turns]
        if n is None:
            return out
        for turn in out:
            if turn.pop("user_turn_number") == n:
                return turn
        return {}

    def _detailed_turns(self: Any, branch: str | None) -> list[dict[str, Any]]:
        if branch is None:
            out: list[dict[str, Any]] = self._turn_usage(detail=True)
            return out
        self._branches = self._load_branches()
        if branch not in self._branches:
            raise SessionNotFoundError(f"session {self.session_id!r} has no branch {branch!r}")
        out = self._turns_of(branch, detail=True)
        return out


def own_turns(
    store: Store,
    session: int | None,
    head: int | None,
    marks: Marks | None = None,
    *,
    detail: bool = False,
) -> list[dict[str, Any]]:
    """``per_turn`` of the chain to ``head`` with the ledger rows of srt session id
    ``session`` alone (its branch's own requests), under its branch's ``marks``."""
    if session is None or head is None:
        return []
    calls = store.calls(session=session)
    return per_turn(store.chain(head), calls, marks, detail=detail) if calls else []


def sdk_turn(turn: dict[str, Any]) -> dict[str, Any]:
    """A turn of ``per_turn`` (with ``detail``) in the shape of ``AdvancedSQLiteSession``'s
    ``get_turn_usage`` (which keeps the details of the SDK's ``Usage``; the ledger has no
    breakdown of the cache writes: ``cache_write_tokens_details`` is ``None``)."""
    return {
        "user_turn_number": turn["turn"],
        "requests": turn["requests"],
        "input_tokens": turn["input_tokens"],
        "output_tokens": turn["output_tokens"],
        "total_tokens": turn["input_tokens"] + turn["output_tokens"],
        "input_tokens_details": {
            "cache_write_tokens": turn["cache_write_tokens"],
            "cached_tokens": turn["cached_tokens"],
            "cache_write_tokens_details": None,
        },
        "output_tokens_details": {"reasoning_tokens": turn["reasoning_tokens"]},
    }
