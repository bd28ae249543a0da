"""The statements of srt's write transactions on SQLite: insert (or find) messages (in
the heap, ``heap.py``) and nodes, compare-and-swap a session's head (and its
``head_prefix``), put an object. Each runs inside a write
transaction ``SQLiteStore`` opened; the caller rolls back on any error.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import apsw

from ... import _core
from ..._hashing import XXH3, Hashing
from ...errors import ConflictError, CorruptionError, SessionNotFoundError
from ..base import (
    NewNode,
    ObjectPut,
    broken_link,
    check_expect,
    check_object,
    not_below,
    not_stored,
    object_changed,
    object_node_gone,
    object_session_gone,
)
from ..checks import head_not_stored
from ..owners import session_kinds, session_of
from . import heap
from .db import SECURE_DELETE
from .schema import OBJECTS_TABLE, has_table
from .statements import LIVE_OBJECT, NODES_FLOOR_KEY

__all__ = [
    "HAS_VERSION",
    "OBJECT_COLUMNS",
    "Appended",
    "Tip",
    "append",
    "check_head",
    "drop_session_objects",
    "one",
    "put_object",
    "secure_delete",
    "swap_head",
    "zeroing",
]

#: The columns of ``objects`` that ``ObjectRow`` holds, in its order.
OBJECT_COLUMNS = "kind, scope, key, value, node, expires, created, updated"

_INSERT_NODE = (
    "INSERT INTO nodes(parent, depth, hash, prefix, at, len, meta, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
#: The first node stored after a gc left ``NODES_FLOOR_KEY``: its id is given.
_INSERT_NODE_AT = (
    "INSERT INTO nodes(id, parent, depth, hash, prefix, at, len, meta, status) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: The session row as an append reads it, with the floor gc may have left.
_SESSION_TIP = (
    "SELECT head, head_prefix, "
    f"(SELECT value FROM srt_meta WHERE key = '{NODES_FLOOR_KEY}') FROM sessions WHERE id = ?"
)
#: The node holding a message below a parent, else (NULL ids) the place of the message
#: below any parent, else nothing: one statement, both through ``nodes_hash``.
_FIND = (
    "SELECT id, depth, prefix, at, len, status FROM nodes WHERE hash = ?1 AND parent IS ?2 "
    "UNION ALL SELECT NULL, NULL, NULL, at, len, NULL FROM "
    "(SELECT at, len FROM nodes WHERE hash = ?1 LIMIT 1) LIMIT 1"
)
#: ``PRAGMA secure_delete``'s values (what the pragma reads back) by name.
_SECURE = {0: "OFF", 1: "ON", 2: "FAST"}


#: What ``zeroing`` leaves: every store connection's own setting.
_RESTORE = f"PRAGMA secure_delete={SECURE_DELETE}"


def secure_delete(on: bool = True) -> str:
    """The pragma that makes SQLite overwrite what a connection deletes with zeros:
    freed cells, and freed pages (an overflowing value's) whole."""
    return f"PRAGMA secure_delete={_SECURE[int(on)]}"


@contextlib.contextmanager
def zeroing(conn: apsw.Connection) -> Iterator[apsw.Connection]:
    """Inside a write transaction on a store's connection: what its statements delete
    is overwritten with zeros, freed pages whole (``secure_delete``, as gc's
    transaction), the connection's own setting (``db.SECURE_DELETE``) back after, so
    the appends that share the connection pay nothing more."""
    conn.execute(secure_delete())
    try:
        yield conn
    finally:
        conn.execute(_RESTORE)


_SESSION_HEAD = "SELECT head, head_prefix FROM sessions WHERE id = ?"
_SET_HEAD = "UPDATE sessions SET head = ?, head_prefix = ?, updated = ? WHERE id = ? AND head IS ?"
_MOVED = (
    "the session head moved since this handle last saw it (a concurrent "
    "append); nothing was written: refresh() and retry, or pass rebase=True"
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
        raise ConflictError(_MOVED)


def swap_head(conn: apsw.Connection, session: int, expected: int | None, new: int | None) -> None:
    """Compare-and-swap the head inside a write transaction; the caller rolls back. The
    new head is a stored node (of any chain: nodes belong to no session) or ``None``;
    one not stored (never, or collected by gc) is a ``ConflictError``, as on
    PostgreSQL, where its foreign key refuses it."""
    prefix = None
    if new is not None:
        row = conn.execute("SELECT prefix FROM nodes WHERE id = ?", (new,)).fetchone()
        if row is None:
            raise ConflictError(head_not_stored(new))
        prefix = row[0]
    conn.execute(_SET_HEAD, (new, prefix, time.time(), session, expected))
    if not conn.changes():
        check_head(conn, session, expected)
        raise AssertionError("unreachable: head unchanged but CAS failed")


#: What a store's last append left on a connection: (the connection, its data version
#: right after the append committed, the session it moved, its new head, that head's
#: prefix hash, the heap's end (``None``: unknown)). Good for the connection's next
#: append only while nothing has been committed to the file since, by any connection
#: this one included: a rolled-back transaction leaves the version as it was, so the
#: caller records a tip only after a commit and forgets the one it holds when a
#: transaction begins. A plain tuple: it is made after every commit.
Tip = tuple[
    apsw.Connection, int, int, "int | None", "bytes | None", "heap.End | None", "int | None"
]


#: Whether this APSW reads a connection's data version (``Connection.data_version``:
#: SQLite's ``SQLITE_FCNTL_DATA_VERSION``, which changes with every commit to the file,
#: this connection's and others'); without it no tip is kept.
HAS_VERSION: bool = hasattr(apsw.Connection, "data_version")


#: An append's new nodes, the session's new head and its prefix hash, the heap's end
#: (``None``: unknown), and the node id floor still in force (``NODES_FLOOR_KEY``).
Appended = tuple[list[int], "int | None", "bytes | None", "heap.End | None", "int | None"]


def append(
    conn: apsw.Connection,
    session: int,
    expected: int | None,
    parent: int | None,
    depth: int,
    items: Sequence[NewNode],
    row: int,
    hashing: Hashing = XXH3,
    tip: Tip | None = None,
    parent_prefix: bytes | None = None,
    small: tuple[int, int] | None = None,
) -> Appended:
    """Link ``items`` below ``parent`` and compare-and-swap the session head from
    ``expected`` to the last of them, inside a write transaction (the caller rolls back
    on any error).

    The session row is read first: a head that moved is a ``ConflictError`` before
    anything is written, and its ``head_prefix`` is the parent's prefix hash when
    appending at the head. ``tip`` (the connection's last append, still current) stands
    in for that read and for finding the heap's end. ``parent_prefix`` (if given) must
    be the parent's stored prefix hash. ``small`` (the page size and reserved bytes):
    new heap rows are as small as their bytes allow (``heap.write``).

    Each message is inserted (or found) below the one before: a node with the same
    message below the same parent is reused after a structural check (its depth and
    prefix hash); a message already stored is reused after a byte-for-byte check; a
    mismatch is a ``CorruptionError``. New bodies go to the end of the heap (``row``: a
    heap row's size). Each prefix hash must chain from its parent's under ``hashing``.
    (One function, few calls: it runs after every reply, when each call costs several
    times what it costs hot.)
    """
    execute = conn.execute
    end = None
    if tip is not None and tip[2] == session and tip[3] == expected:
        head_prefix, end, floor = tip[4], tip[5], tip[6]
    else:
        found = execute(_SESSION_TIP, (session,)).fetchone()
        if found is None:
            raise SessionNotFoundError("the session was deleted")
        if found[0] != expected:
            raise ConflictError(_MOVED)
        head_prefix, floor = found[1], found[2]
        if tip is not None:
            end = tip[5]
    if parent is None:
        above = _core.ROOT
    elif parent == expected:
        if not isinstance(head_prefix, bytes):
            raise CorruptionError(
                "the session row lost its head's prefix hash (the file is damaged); "
                "nothing was written: run srt verify"
            )
        above = head_prefix
    else:
        top = execute("SELECT prefix FROM nodes WHERE id = ?", (parent,)).fetchone()
        if top is None:
            raise ConflictError(not_stored(parent))
        above = top[0]
    if parent_prefix is not None and parent_prefix != above:
        raise CorruptionError(not_below(parent, above, parent_prefix))
    ids: list[int] = []
    chain = hashing.chain
    for mhash, body, prefix, meta, status in items:
        depth += 1
        if prefix != chain(above, mhash):
            raise CorruptionError(broken_link(NewNode(mhash, body, prefix)))
        above = prefix
        found = execute(_FIND, (mhash, parent)).fetchone()
        if found is not None:
            nid, ndepth, nprefix, at, length, nstatus = found
            if length != len(body) or heap.read(conn, [at], [length])[0] != body:
                raise CorruptionError(
                    f"hash collision or damaged row: message {mhash.hex()} is stored with "
                    "different bytes; nothing was linked"
                )
            if nid is not None:  # the node itself: reuse it
                if (ndepth, nprefix) != (depth, prefix):
                    raise CorruptionError(
                        f"node {nid} holds message {mhash.hex()} below the same parent but a "
                        "different depth or prefix hash; nothing was linked"
                    )
                if nstatus is not None and status is None:  # a complete reply completes it
                    execute("UPDATE nodes SET status = NULL WHERE id = ?", (nid,))
                parent = nid
                ids.append(nid)
                continue
        else:
            if end is None:
                end = heap.end(conn)
            at, end = heap.write(conn, body, row, end, small)
        if floor is None:
            execute(_INSERT_NODE, (parent, depth, mhash, prefix, at, len(body), meta, status))
            parent = conn.last_insert_rowid()
        else:  # (gc deleted the largest ids: none is given again)
            largest = execute("SELECT max(id) FROM nodes").fetchone()
            nid = max(int(floor), largest[0] if largest and largest[0] else 0) + 1
            execute(
                _INSERT_NODE_AT, (nid, parent, depth, mhash, prefix, at, len(body), meta, status)
            )
            execute("DELETE FROM srt_meta WHERE key = ?", (NODES_FLOOR_KEY,))
            parent, floor = nid, None
        ids.append(parent)
    head = ids[-1] if ids else parent
    top = above if head is not None else None
    execute(_SET_HEAD, (head, top, time.time(), session, expected))
    if not conn.changes():
        check_head(conn, session, expected)  # the tip was not current after all
        raise CorruptionError("a session row found in this transaction could not be updated")
    return ids, head, top, end, floor


def object_refused(conn: apsw.Connection, obj: ObjectPut) -> str:
    """Why ``put_object`` did not write ``obj`` (asked in its transaction): the session
    it is filed under is gone, else another writer changed it."""
    sid = session_of(obj.kind, obj.scope)
    if sid is not None and conn.execute(_SESSION_HEAD, (sid,)).fetchone() is None:
        return object_session_gone(obj.kind, obj.key, sid)
    return object_changed(obj.kind, obj.scope, obj.key)


def put_object(conn: apsw.Connection, obj: ObjectPut, node: int | None) -> bool:
    """Store ``obj`` under ``node`` (inside a write transaction); with ``obj.if_absent``
    only where no live object has its name (an expired one is written over), with
    ``obj.expect`` only over a live object holding exactly those bytes; an object filed
    under a session (``store.owners``) only while that session exists. True if written.
    ``zeroing``: the bytes an overwrite frees, and the copies a page split leaves, are
    zeros, so an object deleted later leaves nothing behind (``delete_object``)."""
    with zeroing(conn):
        return _put_object(conn, obj, node)


def _put_object(conn: apsw.Connection, obj: ObjectPut, node: int | None) -> bool:
    check_object(obj.kind, obj.scope, obj.key, obj.value)
    check_expect(obj.expect, obj.if_absent, obj.check)
    sid = session_of(obj.kind, obj.scope)
    if sid is not None and conn.execute(_SESSION_HEAD, (sid,)).fetchone() is None:
        return False
    if (
        node is not None
        and conn.execute("SELECT 1 FROM nodes WHERE id = ?", (node,)).fetchone() is None
    ):
        raise ConflictError(object_node_gone(node))
    now = time.time()
    if obj.check:  # (the write transaction holds it: no other writer until it ends)
        found = conn.execute(
            "SELECT 1 FROM objects "
            f"WHERE kind = ? AND scope = ? AND key = ? AND value = ? AND {LIVE_OBJECT}",
            (obj.kind, obj.scope, obj.key, obj.expect, now),
        ).fetchone()
        return found is not None
    if obj.expect is not None:
        conn.execute(
            "UPDATE objects SET value = ?, node = ?, expires = ?, updated = ? "
            f"WHERE kind = ? AND scope = ? AND key = ? AND value = ? AND {LIVE_OBJECT}",
            (obj.value, node, obj.expires, now, obj.kind, obj.scope, obj.key, obj.expect, now),
        )
        return conn.changes() > 0
    values = (obj.kind, obj.scope, obj.key, obj.value, node, obj.expires, now, now)
    if obj.if_absent:
        conn.execute(
            f"INSERT INTO objects({OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(kind, scope, key) DO UPDATE SET value = excluded.value, "
            "node = excluded.node, expires = excluded.expires, created = excluded.created, "
            "updated = excluded.updated WHERE objects.expires IS NOT NULL "
            "AND objects.expires <= excluded.created",
            values,
        )
        return conn.changes() > 0
    conn.execute(
        f"INSERT INTO objects({OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(kind, scope, key) DO UPDATE SET value = excluded.value, "
        "node = excluded.node, expires = excluded.expires, updated = excluded.updated",
        values,
    )
    return True


def drop_session_objects(conn: apsw.Connection, session: int) -> int:
    """Delete the objects filed under session id ``session`` (``store.owners``; inside
    the write transaction that deletes its row); how many there were."""
    kinds = session_kinds()
    if not kinds or not has_table(conn, OBJECTS_TABLE):
        return 0
    sid = str(session)
    conn.execute(
        f"DELETE FROM objects WHERE kind IN ({', '.join('?' * len(kinds))}) "
        "AND (scope = ? OR (scope >= ? AND scope < ?))",  # (":" + 1 is ";")
        (*kinds, sid, sid + ":", sid + ";"),
    )
    return conn.changes()
