"""Messages and the objects that describe them, written in one transaction.

``SrtSession`` and ``SrtChatMessageHistory`` keep what a canonical message leaves out of
an item (its patch) as an srt object keyed by the item's place. Written apart from the
append, two handles adding at once could each write a patch for the same place while
only one append wins: the winner's item would come back with the loser's patch, or
none. ``append`` writes the messages and the objects through the Store protocol's
``append``, in one transaction, as ``Session.append`` does for messages alone.

``settled`` awaits a change (run on a thread) to its end even when the caller is cancelled.

``redacted`` applies the runtime's redaction hook to a whole item first, so that what
the patch keeps (ids, provider fields, a reasoning item) is redacted like the text.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from .. import _core
from ..errors import ConflictError, SessionNotFoundError
from ..message import redact_strings
from ..runtime import Runtime
from ..session import Session
from ..store.base import CallRecord, NewNode, ObjectPut

__all__ = ["append", "append_to", "redacted", "settled"]

_T = TypeVar("_T")


def backoff(attempt: int) -> None:
    """Before try ``attempt`` (from 0) of a write or read that other handles keep getting
    in ahead of (a deletion or a clear in a loop): a random pause, doubling from 1 ms
    after the second try, at most 50 ms, so it falls into a gap between theirs (2.9 s in
    all at most; the integrations' asyncio methods run it on their own threads, never on
    the event loop's)."""
    if attempt >= 2:
        time.sleep(random.random() * min(0.001 * 2 ** (attempt - 2), 0.05))


def redacted(rt: Runtime, value: Any) -> Any:
    """``value`` with the runtime's redaction hook applied to every string in it."""
    return value if rt.redact is None else redact_strings(value, rt.redact)


def append(
    rt: Runtime,
    name: str,
    head: int | None,
    depth: int,
    prefix: bytes,
    bodies: Sequence[bytes],
    objects: Sequence[ObjectPut],
    *,
    expected: int | bool | None = False,
    call: CallRecord | None = None,
) -> tuple[list[int], list[bytes]]:
    """Append the canonical ``bodies`` to session ``name`` after ``head`` (``depth``
    messages, prefix hash ``prefix``) and write ``objects`` in the same transaction;
    ``ConflictError`` (nothing written) if the head is no longer ``head`` (or, given,
    ``expected``: then the items replace those after ``head``); ``call``, a ledger row,
    goes in it too, against the new head. Returns the new nodes and their prefix hashes."""
    store = rt.store
    row = store.get_session(name)
    if row is None:
        raise SessionNotFoundError(f"session {name!r} was deleted")
    expected = head if expected is False else expected
    if row.head != expected:
        raise ConflictError(f"session {name!r} moved; nothing was written")
    if head is not None and head == row.head and row.head_prefix not in (None, prefix):
        # (the caller's items are not the head's: a view it read while another handle
        # cleared or replaced them; the store would refuse the chain as a corruption)
        raise ConflictError(f"this handle's view of session {name!r} is stale; nothing was written")
    hashing = store.hashing
    hashes = [hashing.digest(b) for b in bodies]
    prefixes = hashing.chain_many(prefix, hashes)
    nodes = [NewNode(h, b, p) for h, b, p in zip(hashes, bodies, prefixes, strict=True)]
    ids = store.append(
        row.id, row.head, head, depth, nodes, call=call, objects=objects, parent_prefix=prefix
    )
    return ids, prefixes


def append_to(
    rt: Runtime, session: Session, bodies: Sequence[bytes], objects: Sequence[ObjectPut]
) -> None:
    """``append`` after the head ``session`` last saw; the handle is brought up to date."""
    seen = session.prefix_hash
    prefix = bytes.fromhex(seen) if seen is not None else _core.ROOT
    append(rt, session.name, session.head, len(session), prefix, bodies, objects)
    session.refresh()


async def settled(change: Awaitable[_T]) -> _T:
    """The outcome of ``change`` (a write run on a thread, which cannot be stopped). A
    caller cancelled meanwhile still waits for it, then gets the ``CancelledError``: so
    when the cancellation reaches it, the change is whole in the store or not there, and
    no write lands later. (The Agents SDK's own sessions do the same.)"""
    task = asyncio.ensure_future(change)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # (seen: its outcome is the cancellation's to report)
        raise cancelled
    return task.result()
