"""The statements of srt's write transactions on SQLite: insert (or find) messages and
nodes, compare-and-swap a session's head, put an object. Each runs inside a write
transaction ``SQLiteStore`` opened; the caller rolls back on any error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import apsw

from ...errors import ConflictError, CorruptionError, SessionNotFoundError
from ..base import NewNode, ObjectPut, check_object

__all__ = ["OBJECT_COLUMNS", "check_head", "insert_nodes", "one", "put_object", "swap_head"]

#: The columns of ``objects`` that ``ObjectRow`` holds, in its order.
OBJECT_COLUMNS = "kind, scope, key, value, node, expires, created, updated"

_INSERT_MESSAGE = "INSERT INTO messages(hash, body) VALUES (?, ?) ON CONFLICT(hash) DO NOTHING"
_INSERT_NODE = (
    "INSERT INTO nodes(parent, message, depth, prefix, meta, status) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(prefix) DO NOTHING"
)


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
        "UPDATE sessions SET head = ?, updated = ? WHERE id = ? AND head IS ?",
        (new, time.time(), session, expected),
    )
    if not conn.changes():
        check_head(conn, session, expected)
        raise AssertionError("unreachable: head unchanged but CAS failed")


def insert_nodes(
    conn: apsw.Connection, parent: int | None, depth: int, items: Sequence[NewNode]
) -> list[int]:
    """Insert (or find) the messages and nodes of ``items`` below ``parent``.

    A message or node whose hash already exists is reused after a byte-for-byte
    (message) or structural (node) check; a mismatch is a ``CorruptionError``.
    Must run inside a write transaction.
    """
    ids: list[int] = []
    execute = conn.execute
    for mhash, body, prefix, meta, status in items:
        depth += 1
        execute(_INSERT_MESSAGE, (mhash, body))
        if conn.changes():
            mid = conn.last_insert_rowid()
        else:
            mid, stored = one(execute("SELECT id, body FROM messages WHERE hash = ?", (mhash,)))
            if stored != body:
                raise CorruptionError(
                    f"hash collision or damaged row: message {mid} has hash "
                    f"{mhash.hex()} but different bytes; nothing was linked"
                )
        execute(_INSERT_NODE, (parent, mid, depth, prefix, meta, status))
        if conn.changes():
            parent = conn.last_insert_rowid()
        else:
            row = one(
                execute(
                    "SELECT id, parent, message, depth, status FROM nodes WHERE prefix = ?",
                    (prefix,),
                )
            )
            if (row[1], row[2], row[3]) != (parent, mid, depth):
                raise CorruptionError(
                    f"prefix hash {prefix.hex()} names node {row[0]} with a different "
                    "parent or message; nothing was linked"
                )
            parent = row[0]
            if row[4] is not None and status is None:  # a complete reply completes it
                execute("UPDATE nodes SET status = NULL WHERE id = ?", (parent,))
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
