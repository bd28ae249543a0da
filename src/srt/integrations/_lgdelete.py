"""``SrtSaver.delete_thread`` against writers that go on writing the thread.

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
scope when it had none would find it as it left it. Values and the thread's entry go
only if last written before the deletion began (``written_before``): a writer that wrote
them meanwhile keeps them.
"""

from __future__ import annotations

import contextlib
import os
import time

from ..errors import ConflictError, SessionNotFoundError
from ..runtime import Runtime
from ._lgnames import BLOB, CKPT, DELETING, KEEP, NS, THREAD, THREADS, VERSION, short
from ._lgscope import Scopes
from ._lgstate import Tree

__all__ = ["delete_thread"]

_PASSES = 64  # a namespace deleted again after writers wrote it meanwhile
_FLAG_TTL = 3600.0  # seconds: a deletion that never ended stops counting as under way


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
        _delete(rt, tree, scopes, thread, since)
    finally:
        store.delete_object(DELETING, short(thread), flag)


def _delete(rt: Runtime, tree: Tree, scopes: Scopes, thread: str, since: float) -> None:
    store = rt.store
    for row in list(tree.rows(NS, thread)):
        ns = row.key[3:]
        sc = tree.scope(thread, ns)
        with contextlib.suppress(SessionNotFoundError):
            rt.delete(sc.session)
        store.delete_object(NS, thread, row.key)
        _wipe(tree, sc.key, thread)
        scopes.drop(thread, ns)
    for row in list(tree.rows(BLOB, short(thread))):
        store.delete_object(BLOB, short(thread), row.key, written_before=since)
    store.delete_object(THREAD, THREADS, thread, written_before=since)
