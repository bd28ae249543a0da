"""The scopes (thread, namespace) a ``SrtSaver`` holds in memory, kept true to the store.

A saver keeps a scope's records, nodes and patches in memory, so a step costs the same
however long the thread. Another saver (another process, or another runtime in this
one) may write the same thread meanwhile: a record read before it added writes to it
would be written back without them, and records packed against an older form of their
parent would no longer read. So each use of a scope first reads the head and update
time of the scope's srt session, which every record write changes, and reads the scope
again when another writer has changed them (one indexed row read per call).

``guarded`` runs a write so that a failure leaves nothing behind (``_lgcheck.undo``). That
check is not atomic with the write: every record write also swaps the scope's version
object (``Tree.put``), so a writer that another got in before since it read the scope
writes nothing (``Stale``), and ``guarded`` reads the scope again and redoes the write.
A scope is read whole against that version too (``_lgread``: readers see one state).
"""

from __future__ import annotations

import builtins
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConflictError, CorruptionError, SessionNotFoundError, SrtError
from ..runtime import Runtime
from . import _lgcheck, _lgread
from ._append import backoff
from ._lgnames import Scope, Stale
from ._lgstate import Tree

__all__ = ["Scopes"]

_T = TypeVar("_T")
_State = tuple[int | None, float] | None
_RETRIES = 64  # a write redone after other writers got in first


class Scopes:
    """The scopes of one saver: at most ``size``, the least recently used go first."""

    def __init__(self, rt: Runtime, tree: Tree, size: int = 64) -> None:
        self.rt, self.tree, self.size = rt, tree, size
        self.held: OrderedDict[tuple[str, str], Scope] = OrderedDict()
        self.seen: dict[tuple[str, str], _State] = {}  # the session's state as last read

    def state(self, sc: Scope) -> _State:
        row = self.rt.store.get_session(sc.session)
        return None if row is None else (row.head, row.updated)

    def get(self, thread: str, ns: str) -> Scope:
        """The scope, read (again) from the store if new or written by another writer."""
        key = (thread, ns)
        sc = self.held.get(key)
        if sc is None:
            sc = self.held[key] = self.tree.scope(thread, ns)
            while len(self.held) > self.size:
                gone, _sc = self.held.popitem(last=False)
                self.seen.pop(gone, None)
        self.held.move_to_end(key)
        now = self.state(sc)
        if sc.loaded and now != self.seen.get(key):
            sc = self.renew(sc, sc.pending)
        if not sc.loaded:
            _lgread.load(self.tree, sc)
            self.seen[key] = now
        return sc

    def fresh(self, sc: Scope) -> Scope:
        """``sc``'s scope read again from the store."""
        self.drop(sc.thread, sc.ns)
        return self.get(sc.thread, sc.ns)

    def renew(self, sc: Scope, pending: dict[str, builtins.list[Any]]) -> Scope:
        """A new, unread scope in place of ``sc``, holding ``pending`` writes."""
        fresh = self.tree.scope(sc.thread, sc.ns)
        fresh.pending = pending
        self.held[(sc.thread, sc.ns)] = fresh
        self.seen.pop((sc.thread, sc.ns), None)
        return fresh

    def drop(self, thread: str, ns: str) -> None:
        self.held.pop((thread, ns), None)
        self.seen.pop((thread, ns), None)

    def wrote(self, sc: Scope) -> None:
        """This saver has just written the scope: its state is the one it knows, if no
        other writer's came after (the state read first, then the version: still this
        write's token, so no write landed before either look). Otherwise it is read
        again at its next use: that state holds a write this scope does not."""
        key = (sc.thread, sc.ns)
        if self.held.get(key) is sc:
            now = self.state(sc)
            if self.tree.version(sc) == sc.version:
                self.seen[key] = now
            else:
                self.seen.pop(key, None)

    def guarded(self, thread: str, ns: str, cid: str, fn: Callable[[Scope], _T]) -> _T:
        """``fn(scope)`` for a write to one checkpoint. If it fails (a value the
        serializer cannot store, a store error), nothing it did stays: the scope's
        session goes back to its head (a scope it made goes), and the scope is read
        again (pending writes kept). A value that cannot be stored is an
        ``InvalidMessageError``. The thread's session deleted by another writer since
        the scope was read (each time), or a record it needs deleted while it was read
        (``CorruptionError``; a deletion under way, ``_lgdelete``): read again and tried
        again."""
        broken: CorruptionError | None = None  # (a record gone while read: read again)
        for attempt in range(_RETRIES):
            backoff(attempt)
            try:
                sc = self.get(thread, ns)
            except CorruptionError as exc:  # (load reads it all again next time)
                broken = exc
                continue
            before = sc.cursor
            if before is None and sc.named:  # (unnamed: the write makes its session)
                row = self.rt.store.get_session(sc.session)
                before = (row.id, row.head) if row is not None else None
            pending = {k: builtins.list(v) for k, v in sc.pending.items()}
            try:
                out = fn(sc)
            except Exception as exc:
                # (undone first: the scope read again must see the name undo may delete)
                _lgcheck.undo(self.rt, self.tree, sc, before)
                self.renew(sc, pending)
                broken = exc if isinstance(exc, CorruptionError) else None
                if isinstance(exc, (Stale, SessionNotFoundError, CorruptionError)):
                    continue  # another writer got in first, or deleted the thread: redo
                if isinstance(exc, (TypeError, ValueError, OverflowError, RecursionError)) and (
                    not isinstance(exc, SrtError)
                ):
                    where = f"checkpoint {cid} of thread {thread!r}"
                    raise _lgcheck.not_storable(exc, where) from None
                raise
            self.wrote(sc)
            return out
        if broken is not None:  # (every time: not a deletion under way)
            raise broken
        raise ConflictError(
            f"could not write checkpoint {cid} of thread {thread!r}: other writers kept "
            "writing the thread first"
        )
