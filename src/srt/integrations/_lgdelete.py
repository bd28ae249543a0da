"""``SrtSaver``'s deletions against writers that go on writing the thread.

The store deletes one object at a time, and a writer's record write (the record, the
values it names and the scope's version swap) is one transaction. Deleting records and
then the thread's values one by one, the old deletion let a record land in between: one
packed against a parent it then deleted, or naming a value it then deleted, which no
longer read. So, per namespace: the session and name go first; then, until a pass finds
nothing, the scope's version is swapped (every writer that read the scope before writes
nothing, reads it again and writes its record whole, ``Stale``) and the records left are
deleted, children first. A record that survives was written after the last swap, from a
scope read after it: whole, naming only values it wrote itself or a surviving parent
wrote. The version object stays (16 bytes): were it deleted, a writer that had read the
scope when it had none would find it as it left it. Values no record names and the
thread's entry go by the store's order, not by clocks (``_delete``): deleted, then
written back if a record read after the deletes names them (or a namespace is there).

``drop`` (``delete_for_runs``, ``prune``) deletes some records of a scope and keeps the
rest, so it cannot delete until a pass finds nothing. It writes the records it keeps
(none packed against one it deletes) and makes the others gone in one transaction with
the scope's version swap: each deleted record (and its ``lg.keep`` objects) is written
again empty with an expiry long past, which the store reads as gone at once and ``srt
gc`` removes. Deleted one at a time after the kept records were written, as before, a
record another saver wrote in between, packed against one about to go, stayed and no
longer read. ``sweep`` then deletes the values no record names, each only if last
written before it began; one that a record written meanwhile names is written back.
"""

from __future__ import annotations

import contextlib
import os
import time

from ..errors import ConflictError, SessionNotFoundError
from ..runtime import Runtime
from ..store.base import ObjectPut
from ._lgcodec import key_id
from ._lgnames import (
    BLOB,
    CKPT,
    DELETING,
    KEEP,
    NS,
    THREAD,
    THREADS,
    VERSION,
    Records,
    Scope,
    short,
)
from ._lgscope import Scopes
from ._lgstate import Tree

__all__ = ["delete_thread", "drop", "sweep"]

_PASSES = 64  # a namespace deleted again after writers wrote it meanwhile
_FLAG_TTL = 3600.0  # seconds: a deletion that never ended stops counting as under way
_GONE = 1.0  # an expiry long past: the object is gone at once (``srt gc`` removes it)


def _wipe(tree: Tree, key: str, thread: str) -> None:
    store = tree.store
    for _ in range(_PASSES):
        store.put_object(VERSION, key, "v", os.urandom(16))
        rows = [*tree.rows(CKPT, key, descending=True), *tree.rows(KEEP, key)]
        if not rows:  # (the version stays: a writer that read none would take a
            return  # scope without one for the one it read, and write on)
        for row in rows:
            store.delete_object(row.kind, key, row.key)
    raise ConflictError(f"could not delete thread {thread!r}: its writers kept writing")


def delete_thread(rt: Runtime, tree: Tree, scopes: Scopes, thread: str) -> None:
    """Delete every checkpoint, write and value of ``thread`` (see the module docstring).
    While it runs, an object of its own says a deletion is under way: a reader that
    finds a record it cannot read, its scope's version unchanged, reads it as gone
    (``_lgread``); should the deletion never end, the object expires."""
    store = rt.store
    since = time.time()
    flag = os.urandom(8).hex()
    store.put_object(DELETING, short(thread), flag, b"", expires=since + _FLAG_TTL)
    try:
        _delete(rt, tree, scopes, thread)
    finally:
        store.delete_object(DELETING, short(thread), flag)


def _delete(rt: Runtime, tree: Tree, scopes: Scopes, thread: str) -> None:
    store = rt.store
    for row in list(tree.rows(NS, thread)):
        ns = row.key[3:]
        sc = tree.scope(thread, ns)
        with contextlib.suppress(SessionNotFoundError):
            rt.delete(sc.session)
        store.delete_object(NS, thread, row.key)
        _wipe(tree, sc.key, thread)
        scopes.drop(thread, ns)
    # The values and the thread's entry: what a record written meanwhile needs is
    # decided by the store's order, not by clocks (a writer's ``updated`` is its own
    # clock's, the deletion began by this one's: a writer whose clock ran behind had
    # its values deleted under a record that names them, one whose clock ran ahead
    # kept old values for good). Deleted unless a record names them, then written
    # back if a record read after the deletes names them: that record's write came
    # before the delete (a later one writes them itself, or its parent is such a
    # record: ``_wipe``). A record so written meanwhile reads as gone until then.
    scope = short(thread)
    used = _used(tree, scopes, thread)
    deleted: dict[str, bytes] = {}
    for row in list(tree.rows(BLOB, scope)):
        if row.key not in used and store.delete_object(BLOB, scope, row.key):
            deleted[row.key] = row.value
    store.delete_object(THREAD, THREADS, thread)
    # (a writer names its namespace before it lists the thread, ``Tree.cursor``: one
    # that listed it before the delete above has its namespace read here)
    if store.list_objects(NS, thread, limit=1):
        store.put_object(THREAD, THREADS, thread, b"")
    for key in sorted(_used(tree, scopes, thread) & deleted.keys()):
        store.put_object(BLOB, scope, key, deleted[key])


def drop(tree: Tree, scopes: Scopes, sc: Scope, cids: set[str]) -> None:
    """Delete records of one scope (see the module docstring). The survivors are written
    again: each takes over the patches of the nodes it names that only a deleted record
    had stored first, and none stays compressed against a deleted record. ``Stale`` if
    another writer wrote the scope since it was read: nothing is written."""
    keys = {key_id(c) for c in cids}
    gone = [ObjectPut(CKPT, sc.key, k, b"", expires=_GONE) for k in sorted(keys)]
    gone += [
        ObjectPut(KEEP, sc.key, row.key, b"", expires=_GONE)
        for row in tree.rows(KEEP, sc.key)
        if row.key.split("/", 1)[0] in keys
    ]
    try:
        old = dict(sc.extras)
        survivors = Records({c: r for c, r in sc.records.items() if c not in cids})
        sc.records = survivors
        sc.bases.clear()
        sc.extras.clear()
        for rec in survivors.values():
            for enc in rec["ch"].values():
                if enc[0] == "L":
                    for node, patch in enc[2].items():
                        sc.extras.setdefault(node, patch)
        objects: list[ObjectPut] = []
        head = None  # (the session follows the last survivor's message list, as before)
        for cid, rec in survivors.items():
            for enc in rec["ch"].values():
                if enc[0] == "L":
                    head = enc[1]
                    for node in tree.path(sc, enc[1])[0]:
                        if node not in sc.extras and node in old:
                            enc[2][node] = sc.extras[node] = old[node]
            objects += tree.objects(sc, cid, rec)
        tree.put(sc, [*objects, *gone], head)
    except BaseException:
        scopes.drop(sc.thread, sc.ns)  # (its records changed in memory: read again)
        raise
    sc.last = None
    scopes.wrote(sc)


def _used(tree: Tree, scopes: Scopes, thread: str) -> set[str]:
    """The values the thread's records name."""
    used: set[str] = set()
    for row in list(tree.rows(NS, thread)):
        for rec in scopes.get(thread, row.key[3:]).records.values():
            encs = [*rec["ch"].values(), *(w[4] for w in rec["w"])]
            used.update(e[1] for e in encs if e[0] in ("B", "b"))
    return used


def sweep(tree: Tree, scopes: Scopes, thread: str) -> None:
    """Delete the thread's values no record names any more: only those last written
    before the sweep began (a writer that wrote one meanwhile keeps it); one a record
    written meanwhile names all the same (its write began before) is written back."""
    store = tree.store
    since = time.time()
    used = _used(tree, scopes, thread)
    scope = short(thread)
    deleted: dict[str, bytes] = {}
    for row in list(tree.rows(BLOB, scope)):
        if row.key in used:
            continue
        if store.delete_object(BLOB, scope, row.key, written_before=since):
            deleted[row.key] = row.value
    if deleted:
        for key in sorted(_used(tree, scopes, thread) & deleted.keys()):
            store.put_object(BLOB, scope, key, deleted[key])
