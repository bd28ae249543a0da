"""``SQLiteStore``: the Store protocol on one SQLite file, through APSW.

Rows:

* ``heap(id, data)``: every distinct canonical message body once, packed in one stream
  of page-sized rows (``heap.py``); a message's id is its place in the stream;
* ``nodes(id, parent, depth, hash, prefix, at, len)``: a prefix tree; ``hash`` and
  ``(at, len)`` name the node's message (XXH3-128 of its body, and where the body is);
  ``prefix`` is H(parent prefix || message hash), so equal histories share nodes;
* ``sessions(id, name, head, ...)``: named heads. Fork, rewind and edit move or
  add a head and copy nothing;
* ``calls``: the usage ledger; ``objects``: values filed by (kind, scope, key);
* ``messages``: a view of the stored messages (id, hash, body), for reading.

Writes run in ``BEGIN IMMEDIATE`` under a per-file in-process lock, so readers
never upgrade into ``SQLITE_BUSY``. An append is a compare-and-swap on the head.
Maintenance (gc, verify, search, vacuum) lives in ``maintenance`` and ``verify``,
the ``ls``/``show --tree`` views in ``views``.
"""

from __future__ import annotations

import contextlib
import operator
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import apsw

from ..._hashing import XXH3, Hashing
from ..._types import SessionInfo
from ...errors import (
    ConfigError,
    ConflictError,
    CorruptionError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
    StoreError,
)
from .. import sqlite_path
from ..base import (
    ANY_HEAD,
    CALL_FIELDS,
    BackupReport,
    CallRecord,
    ChainRow,
    GcReport,
    Hit,
    NewNode,
    ObjectPut,
    ObjectRow,
    SessionOverview,
    SessionRow,
    Store,
    StoredResponse,
    TreeNode,
    VacuumReport,
    VerifyReport,
    check_expect,
    check_object,
    moved_on,
)
from ..checks import check_written_before
from . import backup, chains, heap, maintenance, rekey, verify, views, writes
from .database import Database
from .db import SYNCHRONOUS, translate
from .files import BUSY_TIMEOUT_MS
from .keys import Key
from .schema import OBJECTS_SQL, OBJECTS_TABLE, has_table
from .statements import (
    GET_SESSION_SQL,
    INSERT_CALL,
    LIST_SESSIONS_SQL,
    LIVE_OBJECT,
    SELECT_CALLS,
    TAIL_SQL,
)
from .writes import (
    HAS_VERSION,
    OBJECT_COLUMNS,
    Tip,
    drop_session_objects,
    put_object,
    swap_head,
    zeroing,
)

__all__ = ["TRIM_WAIT_S", "SQLiteStore"]

#: How long ``close`` waits for the file's writer lock to trim the heap (then skips it).
TRIM_WAIT_S = 0.05

_call_values = operator.attrgetter(*CALL_FIELDS)
_NODE = CALL_FIELDS.index("node")
_C0 = re.compile("[\x00-\x1f\x7f]")
_APPENDING = "appending to a session"
_NAMED = "SELECT 1 FROM sessions WHERE name = ?"


class SQLiteStore(Store):
    """The Store protocol on one SQLite file (the embedded default engine).

    ``vfs`` names a registered SQLite VFS for every connection (``None``: the default).
    ``key`` (a passphrase or bytes, or a ``keys.Key``) encrypts the file with SQLite3
    Multiple Ciphers (the ``encryption`` extra); ``hashing`` is a new file's hashing
    (``srt._hashing``; an existing file must have been created with the same);
    ``durability``: ``"normal"`` or ``"full"`` (``db.SYNCHRONOUS``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        vfs: str | None = None,
        key: str | bytes | Key | None = None,
        hashing: Hashing = XXH3,
        durability: str = "normal",
    ) -> None:
        path = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(path, str) or not path:
            raise ConfigError(
                f"a SQLite store's path must be a str or os.PathLike, not {path!r:.60}"
            )
        if durability not in SYNCHRONOUS:
            raise ConfigError(f"durability must be one of {sorted(SYNCHRONOUS)}")
        self.path = path
        self.location = path
        self.hashing = hashing
        self.busy_timeout = BUSY_TIMEOUT_MS / 1000
        #: The file's connections and writer lock (the maintenance jobs use it too).
        self.db = Database(
            path,
            vfs=vfs,
            key=Key(key) if key is not None else None,
            hashing=hashing,
            durability=durability,
        )
        self._store_id: str | None = None
        with translate("opening the database"):
            page_size = int(self.db.connection().execute("PRAGMA page_size").get)
        #: Body bytes per heap row (heap.py): what fills one page of this file.
        self._page_size = page_size
        self._row = heap.row_bytes(page_size, self.db.reserved)
        #: The pid of the process this store first appended in since it opened (``None``:
        #: it has not): ``close`` trims the heap then, and only in that process.
        self._wrote: int | None = None
        #: What the last append left (``writes.Tip``), for the next one on its connection.
        self._tip: Tip | None = None
        # Whether the objects table is known to exist (created by the first object
        # written; never dropped, so once seen it stays).
        self._objects = False

    def _has_objects(self) -> bool:
        if not self._objects:
            with translate("reading the schema"):
                self._objects = has_table(self.db.connection(), OBJECTS_TABLE)
        return self._objects

    def _ensure_objects(self, conn: apsw.Connection) -> None:
        """Inside a write transaction: create the objects table if the file has none."""
        if not self._objects:
            conn.execute(OBJECTS_SQL)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """``sqlite:PATH``, ``sqlite:///PATH`` or a plain path (see ``srt.store.open_store``)."""
        return cls(sqlite_path(url), **options)

    def __repr__(self) -> str:
        return f"<srt.SQLiteStore path={self.path!r}>"

    def close(self) -> None:
        """Close every connection; first, if this store appended since it was opened,
        give the heap's unused end back to the file (``heap.trim``, best effort)."""
        wrote, self._wrote = self._wrote, None
        self._tip = None
        if wrote == os.getpid() and self.path != ":memory:":
            self._trim()
        self.db.close()

    def _trim(self) -> None:
        """Cut the heap's last row to the pages it uses, in one short write transaction.
        Best effort: a busy file (given ``TRIM_WAIT_S``, no more), a read-only one, a
        full disk or a damaged row leaves the row as it was, and nothing is raised."""
        deadline = time.monotonic() + TRIM_WAIT_S
        with (
            contextlib.suppress(StoreError, apsw.Error, ValueError, TypeError),
            self.db.write("trimming the heap", deadline) as conn,
        ):
            heap.trim(conn, self._page_size, self.db.reserved)

    @property
    def store_id(self) -> str:
        if self._store_id is None:
            rows = self.db.read(
                "reading the store id", "SELECT value FROM srt_meta WHERE key = 'store_id'"
            )
            self._store_id = bytes(rows[0][0]).hex() if rows else ""
        return self._store_id

    @property
    def encrypted(self) -> bool:
        """Whether the file is encrypted (opened with a key)."""
        return self.db.key is not None

    def rekey(self, key: str | bytes | Key | None) -> None:
        """Re-encrypt the file under ``key`` (``None``: decrypt it; a plain file is
        encrypted by its first rekey). No other process may have it open meanwhile."""
        rekey.rekey(self.db, Key(key) if key is not None else None)

    def backup(self, dest: str) -> BackupReport:
        return backup.backup(self.db, dest)

    # -- sessions ----------------------------------------------------------------

    def get_session(self, name: str) -> SessionRow | None:
        rows = self.db.read("reading a session", GET_SESSION_SQL, (name,))
        if not rows:
            return None
        if not rows[0][4]:
            raise CorruptionError(
                f"session {name!r}: its row names a head that is not its own, lost its "
                "fields or holds another name (the file is damaged); run srt verify"
            )
        r = rows[0]
        return SessionRow(r[0], name, r[1], r[2], r[3], r[5] if r[1] is not None else None)

    def create_session(
        self,
        name: str,
        head: int | None,
        *,
        exist_ok: bool,
        head_prefix: bytes | None = None,
        limit: int | None = None,
    ) -> SessionRow:
        now = time.time()
        with self.db.write("creating a session") as conn:
            if head is not None and head_prefix is not None:
                found = conn.execute("SELECT prefix FROM nodes WHERE id = ?", (head,)).fetchone()
                if found is None or found[0] != head_prefix:
                    raise ConflictError(
                        "the history this handle saw is no longer stored (collected by gc?); "
                        "refresh() and retry"
                    )
            row = conn.execute(
                "SELECT id, head, created, updated FROM sessions WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                if exist_ok:
                    return SessionRow(row[0], name, *row[1:])
                raise SessionExistsError(f"a session named {name!r} already exists")
            if limit is not None:
                count = int(conn.execute("SELECT count(*) FROM sessions").get or 0)
                if count >= limit:
                    raise SessionLimitError(
                        f"the store holds {count} sessions, its maximum is {limit}; "
                        "delete one (and run srt gc) or raise max_sessions"
                    )
            conn.execute(
                "INSERT INTO sessions(name, head, head_prefix, created, updated) "
                "VALUES (?1, ?2, (SELECT prefix FROM nodes WHERE id = ?2), ?3, ?3)",
                (name, head, now),
            )
            return SessionRow(conn.last_insert_rowid(), name, head, now, now)

    def delete_session(self, name: str, *, if_head: int | Literal["any"] | None = ANY_HEAD) -> None:
        any_head = isinstance(if_head, str)
        sql = "DELETE FROM sessions WHERE name = ?" + ("" if any_head else " AND head IS ?")
        args = (name,) if any_head else (name, if_head)
        with self.db.write("deleting a session") as conn, zeroing(conn):
            gone: list[Any] = conn.execute(sql + " RETURNING id", args).fetchall()
            if not gone:
                if not any_head and conn.execute(_NAMED, (name,)).fetchone():
                    raise ConflictError(moved_on(name))
                raise SessionNotFoundError(f"no session named {name!r}")
            drop_session_objects(conn, gone[0][0])  # (its records, in this transaction)

    def rename_session(self, old: str, new: str) -> None:
        with self.db.write("renaming a session") as conn:
            if conn.execute(_NAMED, (new,)).fetchone():
                raise SessionExistsError(f"a session named {new!r} already exists")
            conn.execute("UPDATE sessions SET name = ? WHERE name = ?", (new, old))
            if conn.changes() == 0:
                raise SessionNotFoundError(f"no session named {old!r}")

    def list_sessions(self) -> list[SessionInfo]:
        rows = self.db.read("listing sessions", LIST_SESSIONS_SQL)
        # srt never stores a name that is not text or holds a control character.
        if any(type(r[1]) is not str or _C0.search(r[1]) for r in rows):
            raise CorruptionError("a session name in the file is damaged; run srt verify")
        table = sorted((r[1:] for r in rows if r[0] == 0), key=operator.itemgetter(0))
        if [r[0] for r in table] != sorted(r[1] for r in rows if r[0] == 1):
            raise CorruptionError(
                "the sessions table and its name index disagree (the file is damaged); "
                "run srt verify"
            )
        if not all(_listed(r) for r in table):
            raise CorruptionError("a session's row in the file is damaged; run srt verify")
        return [
            SessionInfo(name, depth, created, updated, prefix.hex() if prefix else None)
            for name, depth, created, updated, prefix in table
        ]

    def overview(self) -> list[SessionOverview]:
        return views.overview(self.db)

    def tree(self, name: str, *, width: int = 200) -> TreeNode | None:
        return views.tree(self.db, name, width=width)

    # -- nodes ---------------------------------------------------------------------

    def chain(self, head: int | None) -> list[ChainRow]:
        return chains.read(self.db.connection(), head, self.hashing)

    def chain_extension(self, head: int, above: int, prefix: bytes) -> list[ChainRow] | None:
        return chains.extension(self.db.connection(), head, above, prefix, self.hashing)

    def node_prefix(self, node: int) -> bytes:
        rows = self.db.read("reading a node", "SELECT prefix FROM nodes WHERE id = ?", (node,))
        if not rows:
            raise CorruptionError(f"node {node} is missing")
        return rows[0][0]  # type: ignore[no-any-return]

    def node_depth(self, node: int) -> int:
        rows = self.db.read("reading a node", "SELECT depth FROM nodes WHERE id = ?", (node,))
        if not rows:
            raise CorruptionError(f"node {node} is missing")
        return int(rows[0][0])

    def node_meta(self, node: int) -> bytes | str | None:
        rows = self.db.read("reading a node", "SELECT meta FROM nodes WHERE id = ?", (node,))
        return rows[0][0] if rows else None

    def tail(self, node: int, depth: int) -> list[tuple[int, bytes]]:
        conn = self.db.connection()
        with translate("reading a chain's tail"):
            conn.execute("BEGIN")  # one snapshot for the nodes and their bodies
            try:
                found: list[Any] = conn.execute(TAIL_SQL, (node, depth)).fetchall()
                rows = sorted((r for r in found if r[1] > depth), key=operator.itemgetter(1))
                try:
                    bodies = heap.read(conn, [r[2] for r in rows], [r[3] for r in rows])
                except (ValueError, TypeError):
                    raise CorruptionError(
                        "a chain's messages are missing from the file (it is damaged); "
                        "run srt verify"
                    ) from None
            finally:
                if not conn.get_autocommit():
                    conn.execute("ROLLBACK")
        return [(int(r[0]), b) for r, b in zip(rows, bodies, strict=True)]

    # -- writes ----------------------------------------------------------------------

    def move_head(self, session: int, expected: int | None, new: int | None) -> None:
        with self.db.write("moving a session head") as conn:
            swap_head(conn, session, expected, new)

    def append(
        self,
        session: int,
        expected: int | None,
        parent: int | None,
        depth: int,
        items: Sequence[NewNode],
        *,
        call: CallRecord | None = None,
        objects: Sequence[ObjectPut] = (),
        deadline: float | None = None,
        parent_prefix: bytes | None = None,
    ) -> list[int]:
        # (``db.begin``/``commit`` rather than ``with db.write``: this runs after every
        # reply, when each Python call costs several times what it costs hot)
        db = self.db
        conn = db.begin(_APPENDING, deadline)
        try:
            tip, self._tip = self._tip, None  # recorded again only once this commits
            if tip is not None and (tip[0] is not conn or conn.data_version() != tip[1]):
                tip = None  # another thread's connection, or a commit since
            # The first append since the store opened makes its new heap rows small: a
            # store that appends once and closes (the CLI) would otherwise write a row's
            # zeros only to cut them at close. Later appends preallocate whole rows.
            small = None if self._wrote is not None else (self._page_size, db.reserved)
            ids, head, prefix, end, floor = writes.append(
                conn,
                session,
                expected,
                parent,
                depth,
                items,
                self._row,
                self.hashing,
                tip,
                parent_prefix,
                small,
            )
            if call is not None:
                row = list(_call_values(call))
                row[_NODE] = head
                conn.execute(INSERT_CALL, row)
            if objects:
                self._ensure_objects(conn)
                for obj in objects:
                    if not put_object(conn, obj, head if obj.at_head else obj.node):
                        raise ConflictError(writes.object_refused(conn, obj))
        except BaseException as exc:
            db.abort(conn, exc, _APPENDING)
            raise
        db.commit(conn, _APPENDING)
        if self._wrote is None:
            self._wrote = os.getpid()
        if objects:
            self._objects = True
        if HAS_VERSION:
            self._tip = (conn, conn.data_version(), session, head, prefix, end, floor)
        return ids

    # -- the ledger ------------------------------------------------------------------

    def record_call(self, call: CallRecord) -> int:
        with self.db.write("recording a provider call") as conn:
            conn.execute(INSERT_CALL, _call_values(call))
            return conn.last_insert_rowid()

    def calls(
        self, *, session: int | None = None, session_name: str | None = None
    ) -> list[CallRecord]:
        args: list[Any]
        where, args = "", []
        if session is not None:
            where, args = " WHERE session = ?", [session]
        elif session_name is not None:
            where, args = " WHERE session_name = ?", [session_name]
        rows = self.db.read("reading the ledger", SELECT_CALLS + where + " ORDER BY id", args)
        return [CallRecord(*r) for r in rows]

    def last_response(self, nodes: Sequence[int], format: str, model: str) -> StoredResponse | None:
        if not nodes:
            return None
        marks = ",".join("?" for _ in nodes)
        rows = self.db.read(
            "reading server-side state",
            f"SELECT node, response_id, at FROM calls WHERE node IN ({marks}) AND format = ? "
            "AND model = ? AND stored = 1 AND status = 'ok' AND response_id IS NOT NULL "
            "ORDER BY node DESC, id DESC LIMIT 1",
            (*nodes, format, model),
        )
        return StoredResponse(*rows[0]) if rows else None

    # -- objects ---------------------------------------------------------------------

    def put_object(
        self,
        kind: str,
        scope: str,
        key: str,
        value: bytes,
        *,
        node: int | None = None,
        expires: float | None = None,
        if_absent: bool = False,
        expect: bytes | None = None,
    ) -> bool:
        check_object(kind, scope, key, value)
        check_expect(expect, if_absent)
        if expect is not None and not self._has_objects():
            return False  # no object at all: none holds ``expect``
        with self.db.write("storing an object") as conn:
            self._ensure_objects(conn)
            put = ObjectPut(kind, scope, key, value, node, expires, False, if_absent, expect)
            written = put_object(conn, put, node)
        self._objects = True  # committed
        return written

    def get_object(self, kind: str, scope: str, key: str) -> ObjectRow | None:
        check_object(kind, scope, key)
        if not self._has_objects():
            return None
        rows = self.db.read(
            "reading an object",
            f"SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = ? AND scope = ? AND key = ? "
            f"AND {LIVE_OBJECT}",
            (kind, scope, key, time.time()),
        )
        return ObjectRow(*rows[0]) if rows else None

    def list_objects(
        self,
        kind: str,
        scope: str,
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[ObjectRow]:
        check_object(kind, scope, after if after is not None else "-")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError("limit must be a positive int")
        if not self._has_objects():
            return []
        order, cmp = ("DESC", "<") if descending else ("ASC", ">")
        where = "kind = ? AND scope = ? AND " + LIVE_OBJECT
        args: list[Any] = [kind, scope, time.time()]
        if after is not None:
            where += (
                f" AND id {cmp} coalesce((SELECT id FROM objects WHERE kind = ? AND scope = ? "
                "AND key = ?), ?)"
            )
            # An unknown cursor lists nothing rather than everything.
            args += [kind, scope, after, -1 if descending else 2**62]
        rows = self.db.read(
            "listing objects",
            f"SELECT {OBJECT_COLUMNS} FROM objects WHERE {where} ORDER BY id {order} LIMIT ?",
            [*args, min(limit, 2**62)],  # (SQLite's integers are 64-bit; no table holds more)
        )
        return [ObjectRow(*r) for r in rows]

    def delete_object(
        self, kind: str, scope: str, key: str, *, written_before: float | None = None
    ) -> bool:
        check_object(kind, scope, key)
        check_written_before(written_before)
        if not self._has_objects():
            return False
        with self.db.write("deleting an object") as conn, zeroing(conn):
            conn.execute(
                "DELETE FROM objects WHERE kind = ? AND scope = ? AND key = ? "
                "AND (? IS NULL OR updated < ?)",
                (kind, scope, key, written_before, written_before),
            )
            return bool(conn.changes())

    def scan_objects(self, *, batch: int = 500, kind: str | None = None) -> Iterator[ObjectRow]:
        if kind is not None:
            check_object(kind, "", "-")
        if not self._has_objects():
            return
        after = 0
        while True:
            rows = self.db.read(
                "listing objects",
                f"SELECT id, {OBJECT_COLUMNS} FROM objects WHERE id > ? "
                f"AND (? IS NULL OR kind = ?) AND {LIVE_OBJECT} ORDER BY id LIMIT ?",
                (after, kind, kind, time.time(), batch),
            )
            yield from (ObjectRow(*r[1:]) for r in rows)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    # -- maintenance -------------------------------------------------------------------

    def gc(
        self, *, secure_delete: bool = True, dry_run: bool = False, watch: Sequence[bytes] = ()
    ) -> GcReport:
        return maintenance.gc(self.db, secure_delete=secure_delete, dry_run=dry_run, watch=watch)

    def verify(self) -> VerifyReport:
        return verify.verify(self.db)

    def search(
        self,
        text: str,
        *,
        limit: int = 20,
        syntax: bool = False,
        announce: Callable[[int], None] | None = None,
    ) -> list[Hit]:
        return maintenance.search(self.db, text, limit=limit, syntax=syntax, announce=announce)

    def has_search_index(self) -> bool:
        return maintenance.has_search_index(self.db)

    def build_search_index(self, *, announce: Callable[[int], None] | None = None) -> int | None:
        return maintenance.build_search_index(self.db, announce=announce)

    def drop_search_index(self) -> bool:
        return maintenance.drop_search_index(self.db)

    def vacuum(self) -> VacuumReport:
        return maintenance.vacuum(self.db)

    def checkpoint(self) -> bool:
        return maintenance.checkpoint(self.db, "checkpointing the database")


def _listed(row: tuple[Any, ...]) -> bool:
    """A ``list_sessions`` row as srt writes it: its depth a count, its times numbers,
    its head's prefix hash 16 bytes or none (a damaged file may hold any value)."""
    _, depth, created, updated, prefix = row
    return (
        (depth is None or type(depth) is int)
        and type(created) in (int, float)
        and type(updated) in (int, float)
        and (prefix is None or (type(prefix) is bytes and len(prefix) == 16))
    )
