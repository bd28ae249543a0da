"""Reading a scope while other savers write or delete it: a consistent view, or a typed
error.

A scope is read whole (``load``) between two reads of its version object, which every
record write swaps in the write's own transaction (``Tree.put``; a record written again
and the records packed against it go in one), ``delete_thread`` swaps after its last
delete and ``delete_for_runs`` and ``prune`` in the transaction that takes the records
(``_lgdelete``). A load that saw the version move reads
again: the records held are those of one state. A tuple is built from those records
alone; what else it reads is either immutable (message nodes; values stored under the
hash of their bytes) or a sign that the scope is out of date (a record the store has and
the scope does not: ``Moved``). So a read costs no more round trips than before when
nothing moved. When something did, a value is gone or bytes do not decode, the version
is read again: moved, the scope is read again and the tuple built again; not moved, the
store is damaged (``CorruptionError``, naming the thread and checkpoint), unless a
deletion of the thread is under way. That one deletes one object at a time, and a
writer may write a record packed against one it then deletes, which its next pass
deletes: such a record, or one naming a value deleted already, is read as gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ..errors import ConflictError, CorruptionError, SrtError
from ._append import backoff
from ._lgcodec import full_id, key_id
from ._lgnames import CKPT, DELETING, NS, Scope, session_name
from ._lgstate import Tree


class Scopes(Protocol):
    """What ``reading`` asks of the saver's scopes (``_lgscope.Scopes``, which imports
    this module: named here by what it does, not imported)."""

    def get(self, thread: str, ns: str) -> Scope: ...

    def drop(self, thread: str, ns: str) -> None: ...


__all__ = ["Moved", "build", "find", "held", "load", "reading"]

_T = TypeVar("_T")
_RETRIES = 64  # a scope read again after other savers changed it meanwhile


class Moved(Exception):
    """The store holds a record the scope does not: the scope is older than the store."""


def _decoding(exc: BaseException) -> bool:
    """Whether ``exc`` may come of bytes read across another saver's write (a store or
    connection error, or a saver's own typed error, is not)."""
    if isinstance(exc, SrtError):
        return isinstance(exc, CorruptionError)
    return isinstance(exc, Exception)


def _deleting(tree: Tree, sc: Scope) -> bool:
    """Whether a deletion of the scope's thread is under way (``_lgdelete``)."""
    return bool(tree.store.list_objects(DELETING, sc.blobs, limit=1))


def _broken(sc: Scope, cid: str | None, exc: BaseException) -> CorruptionError:
    what = f"checkpoint {cid} of thread {sc.thread!r}" if cid else f"thread {sc.thread!r}"
    if sc.ns:
        what += f" (namespace {sc.ns!r})"
    if isinstance(exc, CorruptionError):
        return CorruptionError(f"{what} cannot be read: {exc}")
    kind = type(exc).__name__
    return CorruptionError(f"{what} cannot be read: its stored bytes do not decode ({kind})")


def _read(tree: Tree, sc: Scope) -> list[tuple[str, Exception]]:
    """Read every record of the scope, and the patch each node was first stored with
    (its version first: a record written meanwhile makes the next write stale); the
    records that did not decode, and why, left out."""
    sc.version = tree.version(sc)
    # The name read again after the version: a deletion that took it swapped the
    # version after, and a scope read before would write on without it (_lgdelete).
    row = tree.store.get_object(NS, sc.thread, "ns:" + sc.ns)
    sc.named, sc.cursor = row is not None, None
    sc.session = session_name(sc.thread, sc.ns)
    if row is not None:
        sc.session = tree.stored_name(sc, row.value)
    for held_ in (sc.records, sc.extras, sc.bases, sc.gone):
        held_.clear()
    failed: list[tuple[str, Exception]] = []
    for row in tree.rows(CKPT, sc.key):
        cid = full_id(row.key)
        try:
            rec = sc.records[cid] = tree.decode(sc, cid, row.value)
        except Exception as exc:
            if not _decoding(exc):
                raise
            failed.append((cid, exc))
            continue
        for enc in rec["ch"].values():
            if enc[0] == "L":
                for node, patch in enc[2].items():
                    sc.extras.setdefault(node, patch)
    return failed


def _orphans(tree: Tree, sc: Scope) -> list[tuple[str, Exception]]:
    """The records whose message lists name a node whose patch (stored once, by the first
    record of the scope to name the node) no record of the scope holds: a writer that
    read the scope while a deletion of the thread was under way left it out, the record
    holding it still there; the deletion then deleted that record (and its next pass
    deletes this one). Read, such a record's messages would lack their ids."""
    out: list[tuple[str, Exception]] = []
    for cid, rec in list(sc.records.items()):
        for enc in rec["ch"].values():
            node = enc[1] if enc[0] == "L" else None
            while node is not None and node in sc.extras:
                node = tree.known(sc, node).parent
            if node is not None:
                del sc.records[cid]
                out.append((cid, CorruptionError(f"the patch of node {node} is missing")))
                break
    return out


def load(tree: Tree, sc: Scope) -> None:
    """Read the scope whole, again until its version is the same after as before. While
    a deletion of the thread is under way, a record it left unreadable, or left without
    a patch of its messages (``_orphans``), is read as gone."""
    for attempt in range(_RETRIES):
        backoff(attempt)
        failed = _read(tree, sc)
        if tree.version(sc) != sc.version:
            continue
        deleting = _deleting(tree, sc)
        if failed and not deleting:
            raise _broken(sc, *failed[0]) from None
        if deleting:
            failed += _orphans(tree, sc)
        sc.gone.update(cid for cid, _exc in failed)
        sc.loaded = True
        return
    raise ConflictError(f"could not read thread {sc.thread!r}: other savers kept changing it")


def held(tree: Tree, sc: Scope, cid: str) -> dict[str, Any] | None:
    """The record of ``cid`` as the scope holds it (``None``: the store has none either)."""
    rec = sc.records.get(cid)
    if rec is None and cid not in sc.gone and tree.store.get_object(CKPT, sc.key, key_id(cid)):
        raise Moved(cid)
    return rec


def find(tree: Tree, sc: Scope, cid: str | None, attempt: int) -> tuple[str, dict[str, Any]] | None:
    """The checkpoint ``cid`` names, or the scope's latest (its newest id, as ``list``
    gives first and LangGraph's own savers take), as the scope holds it. The latest is
    looked for first in the store's newest rows (a few, however long the thread): one
    the scope does not hold means it is older than the store (``Moved``); read again
    (``attempt``), the scope's own, so writers that go on writing do not keep a reader
    reading."""
    if cid is not None:
        rec = held(tree, sc, cid)
    else:
        if not attempt:
            for row in tree.store.list_objects(CKPT, sc.key, limit=4, descending=True):
                if full_id(row.key) not in sc.records and full_id(row.key) not in sc.gone:
                    raise Moved(row.key)
        cid = sc.records.latest()
        rec = sc.records.get(cid) if cid is not None else None
    if rec is None or rec["c"] is None or cid is None:
        return None
    return cid, rec


def _failed(tree: Tree, sc: Scope, cid: str | None, exc: Exception) -> bool:
    """After ``exc`` building a tuple: True to read the scope again and build it again
    (its version moved), False if the checkpoint is gone (a deletion under way); else
    raised (``CorruptionError`` for bytes or parts the store no longer reads)."""
    if not _decoding(exc):
        raise exc
    if tree.version(sc) != sc.version:
        return True
    if _deleting(tree, sc):
        return False
    raise _broken(sc, cid, exc) from None


def reading(
    tree: Tree,
    scopes: Scopes,
    thread: str,
    ns: str,
    cid: str | None,
    fn: Callable[[Scope, int], _T | None],
) -> _T | None:
    """``fn(scope, attempt)``, run again on the scope read again while other savers
    change it (see the module docstring); ``None`` if gone."""
    for attempt in range(_RETRIES):
        backoff(attempt)
        sc = scopes.get(thread, ns)
        try:
            return fn(sc, attempt)
        except Moved:
            pass
        except Exception as exc:
            if not _failed(tree, sc, cid, exc):
                return None
        scopes.drop(thread, ns)
    raise ConflictError(f"could not read thread {thread!r}: other savers kept changing it")


def build(
    tree: Tree,
    refresh: Callable[[Scope], Scope],
    sc: Scope,
    cid: str,
    tuple_: Callable[[Scope, str, dict[str, Any]], _T],
) -> _T | None:
    """``tuple_`` of checkpoint ``cid`` from ``sc``; built again from the scope read
    again (``refresh``) if it fails while the scope's version moved (``None``: the
    checkpoint is gone meanwhile)."""
    for _ in range(_RETRIES):
        rec = sc.records.get(cid)
        if rec is None:
            return None
        try:
            return tuple_(sc, cid, rec)
        except Exception as exc:
            if not _failed(tree, sc, cid, exc):
                return None
        sc = refresh(sc)
    raise ConflictError(f"could not read thread {sc.thread!r}: other savers kept changing it")
