"""Usage rows for the Agents SDK session: ledger rows from the SDK's request usage, and
the ledger summed per user turn of a chain; ``Ledger``, the part of ``SrtSession`` that
writes and reads them; ``RUN``, the run context a caller that cannot pass ``wrapper`` to
``SrtSession.add_items`` hands it instead (``SrtCompactionSession``).

A branch's usage is what its own srt session recorded (ledger rows of that session id)
against the items it still holds, as ``AdvancedSQLiteSession`` keeps it: a branch starts
with none, the turns it shares with its parent being the parent's (the SDK copies a
branch's messages but not their usage rows), so adding up over the branches counts each
request once."""

from __future__ import annotations

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

__all__ = ["RUN", "Ledger", "ledger_row", "model_of", "own_turns", "per_turn", "totals"]

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


def per_turn(rows: Sequence[ChainRow], calls: Iterable[CallRecord]) -> list[dict[str, Any]]:
    """``calls`` summed per user turn of the chain ``rows``, for the turns that have any
    (calls off the chain are left out), as the SDK's ``get_turn_usage`` lists its turns."""
    turn_of: dict[int, int] = {}
    turn = 0
    for node, _h, body, *_rest in rows:
        if json.loads(body)["role"] == "user":
            turn += 1
        turn_of[node] = turn
    out = {
        t: {"turn": t, "requests": 0, "input_tokens": 0, "cached_tokens": 0, "output_tokens": 0}
        for t in range(1, turn + 1)
    }
    for call in calls:
        t = turn_of.get(call.node) if call.node is not None else None
        if not t:
            continue
        row = out[t]
        row["requests"] += 1
        row["input_tokens"] += call.input_tokens or 0
        row["cached_tokens"] += call.cache_read_tokens or 0
        row["output_tokens"] += call.output_tokens or 0
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
        return own_turns(self._store, self._sid, head)

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
                turns += own_turns(self._store, row.id, row.head)
        return totals(turns)


def own_turns(store: Store, session: int | None, head: int | None) -> list[dict[str, Any]]:
    """``per_turn`` of the chain to ``head`` with the ledger rows of srt session id
    ``session`` alone (its branch's own requests)."""
    if session is None or head is None:
        return []
    calls = store.calls(session=session)
    return per_turn(store.chain(head), calls) if calls else []
