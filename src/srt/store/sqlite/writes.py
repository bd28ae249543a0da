"""The statements of srt's write transactions on SQLite: insert (or find) messages (in
the heap, ``heap.py``) and nodes, compare-and-swap a session's head (and its
``head_prefix``), put an object. Each runs inside a write
transaction ``SQLiteStore`` opened; the caller rolls back on any error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import apsw

from ... import _core
from ..._hashing import XXH3, Hashing
from ...errors import ConflictError, CorruptionError, SessionNotFoundError
from ..base import NewNode, ObjectPut, check_object
from . import heap

__all__ = ["OBJECT_COLUMNS", "check_head", "insert_nodes", "one", "put_object", "swap_head"]

#: The columns of ``objects`` that ``ObjectRow`` holds, in its order.
OBJECT_COLUMNS = "kind, scope, key, value, node, expires, created, updated"

_INSERT_NODE = (
    "INSERT INTO nodes(parent, depth, hash, prefix, at, len, meta, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_FIND_NODE = "SELECT id, depth, prefix, at, len, status FROM nodes WHERE hash = ? AND parent IS ?"
_FIND_MESSAGE = "SELECT at, len FROM nodes WHERE hash = ? LIMIT 1"


def one(cursor: apsw.Cursor) -> Any:
    row = cursor.fetchone()
    if row is None:  # the row vanished inside our own write transaction
        raise CorruptionError("a row found by its unique hash could not be read back")
    return row


def check_head(conn: apsw.Connection, session: int, expected: int | None) -> None:
    row = conn.execute("SELECT head FROM sessions WHERE id = ?", (session,)).fetchone()
    if row is None:
        raise SessionNotFoundError("the session was deleted")
    if row[0] != expected:
        raise ConflictError(
            "the session head moved since this handle last saw it (a concurrent "
            "append); nothing was written: refresh() and retry, or pass rebase=True"
        )


def swap_head(conn: apsw.Connection, session: int, expected: int | None, new: int | None) -> None:
    """Compare-and-swap the head inside a write transaction; the caller rolls back."""
    conn.execute(
        "UPDATE sessions SET head = ?1, head_prefix = (SELECT prefix FROM nodes WHERE id = ?1), "
        "updated = ?2 WHERE id = ?3 AND head IS ?4",
        (new, time.time(), session, expected),
    )
    if not conn.changes():
        check_head(conn, session, expected)
        raise AssertionError("unreachable: head unchanged but CAS failed")


def insert_nodes(
    conn: apsw.Connection,
    parent: int | None,
    depth: int,
    items: Sequence[NewNode],
    row: int,
    hashing: Hashing = XXH3,
) -> list[int]:
    """Insert (or find) the messages and nodes of ``items`` below ``parent``.

    A node with the same message below the same parent is reused after a structural
    check (its depth and prefix hash); a message already stored is reused after a
    byte-for-byte check; a mismatch is a ``CorruptionError``. New bodies go to the end
    of the heap (``row``: its row size). Each prefix hash must chain from its parent's
    under the store's ``hashing``. Must run inside a write transaction.
    """
    ids: list[int] = []
    execute = conn.execute
    above = _core.ROOT
    if parent is not None:
        top = execute("SELECT prefix FROM nodes WHERE id = ?", (parent,)).fetchone()
        if top is None:
            raise ConflictError(
                f"the node to append below ({parent}) is not stored (collected by gc?); "
                "nothing was written"
            )
        above = top[0]
    for mhash, body, prefix, meta, status in items:
        depth += 1
        if prefix != hashing.chain(above, mhash):
            raise CorruptionError(
                f"prefix hash {prefix.hex()} does not chain from its parent and message "
                f"{mhash.hex()}; nothing was linked"
            )
        above = prefix
        found = execute(_FIND_NODE, (mhash, parent)).fetchone()
        if found is not None:
            nid, ndepth, nprefix, at, length, nstatus = found
            if (ndepth, nprefix) != (depth, prefix):
                raise CorruptionError(
                    f"node {nid} holds message {mhash.hex()} below the same parent but a "
                    "different depth or prefix hash; nothing was linked"
                )
            if length != len(body) or heap.read(conn, [at], [length])[0] != body:
                raise CorruptionError(
                    f"hash collision or damaged row: message {mhash.hex()} is stored with "
                    "different bytes; nothing was linked"
                )
            if nstatus is not None and status is None:  # a complete reply completes it
                execute("UPDATE nodes SET status = NULL WHERE id = ?", (nid,))
            parent = nid
            ids.append(nid)
            continue
        stored = execute(_FIND_MESSAGE, (mhash,)).fetchone()
        if stored is None:
            at = heap.append(conn, body, row)
        else:
            at, length = stored
            if length != len(body) or heap.read(conn, [at], [length])[0] != body:
                raise CorruptionError(
                    f"hash collision or damaged row: message {mhash.hex()} is stored with "
                    "different bytes; nothing was linked"
                )
        execute(_INSERT_NODE, (parent, depth, mhash, prefix, at, len(body), meta, status))
        parent = conn.last_insert_rowid()
        ids.append(parent)
    return ids


def put_object(conn: apsw.Connection, obj: ObjectPut, node: int | None) -> None:
    check_object(obj.kind, obj.scope, obj.key, obj.value)
    if (
        node is not None
        and conn.execute("SELECT 1 FROM nodes WHERE id = ?", (node,)).fetchone() is None
    ):
        raise ConflictError(
            f"the node an object refers to ({node}) is not stored (collected by gc?); "
            "nothing was written"
        )
    now = time.time()
    conn.execute(
        f"INSERT INTO objects({OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(kind, scope, key) DO UPDATE SET value = excluded.value, "
        "node = excluded.node, expires = excluded.expires, updated = excluded.updated",
        (obj.kind, obj.scope, obj.key, obj.value, node, obj.expires, now, now),
    )
