"""All of srt's SQL. The store never speaks HTTP and never serializes messages.

Rows:

* ``messages(id, hash, body)``: canonical message bytes, content-addressed by
  XXH3-128 and stored once however many sessions share them;
* ``nodes(id, parent, message, depth, prefix)``: a prefix tree; ``prefix`` is
  H(parent prefix || message hash), so equal histories share nodes;
* ``sessions(id, name, head, ...)``: named heads. Fork, rewind and edit move or
  add a head and copy nothing.

Writes run in ``BEGIN IMMEDIATE`` under a per-file in-process lock, so readers
never upgrade into ``SQLITE_BUSY``. An append is a compare-and-swap on the head.
"""

from __future__ import annotations

import contextlib
import operator
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import apsw

from . import _core, _db, _keys
from ._hashing import XXH3, Hashing
from .errors import (
    ConfigError,
    ConflictError,
    CorruptionError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
    StoreBusyError,
)

__all__ = ["CALL_COLUMNS", "ChainRow", "NewNode", "SessionRow", "Store"]

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()

# (session id, head node id or None, created, updated)
SessionRow = tuple[int, "int | None", float, float]
# (node id, message hash, canonical body, prefix hash, status, metadata JSON, depth)
ChainRow = tuple[int, bytes, bytes, bytes, "str | None", "bytes | str | None", int]
# (message hash, canonical body, prefix hash, metadata JSON or None, status or None)
NewNode = tuple[bytes, bytes, bytes, "bytes | None", "str | None"]
#: Columns of the ``calls`` ledger that a caller fills in, in order.
CALL_COLUMNS = (
    "at",
    "session",
    "session_name",
    "node",
    "provider",
    "model",
    "format",
    "body_hash",
    "body_bytes",
    "messages",
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "predicted_cached_tokens",
    "explain",
    "latency_ms",
    "ttft_ms",
    "retries",
    "status",
    "error",
    "response_id",
    "previous_response_id",
    "stored",
    "fallback",
)
_INSERT_CALL = (
    f"INSERT INTO calls({', '.join(CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in CALL_COLUMNS)})"
)

_INSERT_MESSAGE = "INSERT INTO messages(hash, body) VALUES (?, ?) ON CONFLICT(hash) DO NOTHING"
_INSERT_NODE = (
    "INSERT INTO nodes(parent, message, depth, prefix, meta, status) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(prefix) DO NOTHING"
)

_CHAIN_SQL = """
WITH RECURSIVE chain(id, parent, message, depth, prefix, status, meta) AS (
    SELECT id, parent, message, depth, prefix, status, meta FROM nodes WHERE id = ?
    UNION ALL
    SELECT n.id, n.parent, n.message, n.depth, n.prefix, n.status, n.meta
    FROM nodes n JOIN chain c ON n.id = c.parent AND n.depth < c.depth
)
SELECT chain.id, m.hash, m.body, chain.prefix, chain.status, chain.meta, chain.depth
FROM chain CROSS JOIN messages m ON m.id = chain.message
"""
#: The chain's nodes deeper than a given depth (a rebase reads only what it lacks).
_CHAIN_ABOVE_SQL = _CHAIN_SQL.replace("WHERE id = ?", "WHERE id = ? AND depth > ?").replace(
    "AND n.depth < c.depth", "AND n.depth < c.depth AND n.depth > ?"
)
# No ORDER BY: SQLite would copy every body through a temporary sorter (three
# quarters of the load time at 2,000 messages). CROSS JOIN keeps the chain as the
# outer loop, so rows come deepest first; ``Store.chain`` reverses them and sorts by
# depth, which costs one pass over rows already in order.


_depth = operator.itemgetter(6)


def _one(cursor: apsw.Cursor) -> Any:
    row = cursor.fetchone()
    if row is None:  # the row vanished inside our own write transaction
        raise CorruptionError("a row found by its unique hash could not be read back")
    return row


def _file_lock(path: str) -> threading.Lock:
    key = os.path.realpath(path) if path != ":memory:" else f":memory:{id(object())}"
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class Store:
    """One SQLite file: a connection per thread, a writer lock, and the SQL.

    ``vfs`` names a registered SQLite VFS for every connection (``None``: the default).
    ``key`` decrypts an encrypted file (``_keys``); ``hashing`` is how the file's
    messages and prefix chain are hashed (``_hashing``; the file records it);
    ``durability`` is ``"normal"`` or ``"full"`` (``_db.SYNCHRONOUS``).
    """

    def __init__(
        self,
        path: str,
        *,
        vfs: str | None = None,
        key: _keys.Key | None = None,
        hashing: Hashing = XXH3,
        durability: str = "normal",
    ) -> None:
        self.path = path
        self._durability = durability
        self._vfs = vfs
        self._key = key
        #: The file's hashing: ``digest``, ``chain`` and ``chain_many`` of its hashes.
        self.hashing = hashing
        self._lock = _file_lock(path)
        self._local = threading.local()
        self._pid = os.getpid()
        self._conns: list[apsw.Connection] = []
        self._conns_guard = threading.Lock()
        if key is not None:
            _keys.require()
        if path != ":memory:":
            _db.check_header(path, vfs=vfs, key=key)
            _db.create_private_file(path)
        self._conn()  # verify identity and migrate now, so errors surface at open

    def __repr__(self) -> str:
        return f"<srt.Store path={self.path!r}>"

    # -- connections -------------------------------------------------------------

    def _conn(self) -> apsw.Connection:
        if os.getpid() != self._pid:
            # A forked child must never use its parent's connections.
            self._local = threading.local()
            self._conns = []
            self._pid = os.getpid()
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.open_connection()
            self._local.conn = conn
            with self._conns_guard:
                self._conns.append(conn)
        return conn

    def open_connection(self) -> apsw.Connection:
        """A new connection to the file, keyed, checked and configured like the store's
        own (the maintenance jobs and the backup use one of their own; the caller
        closes it)."""
        return _db.connect(
            self.path,
            self._lock,
            migrate=True,
            vfs=self._vfs,
            key=self._key,
            hashing=self.hashing,
            durability=self._durability,
        )

    @property
    def store_id(self) -> str:
        """The file's random id (hex), made when it was created: it names files derived
        from this store elsewhere (the local provider's saved KV states)."""
        sid: str | None = getattr(self, "_store_id", None)
        if sid is None:
            rows = self.read(
                "reading the store id", "SELECT value FROM srt_meta WHERE key = 'store_id'"
            )
            sid = bytes(rows[0][0]).hex() if rows else ""
            self._store_id = sid
        return sid

    @property
    def lock(self) -> threading.Lock:
        """The in-process writer lock every write to this file takes first."""
        return self._lock

    @property
    def encrypted(self) -> bool:
        """Whether the store was opened with an encryption key."""
        return self._key is not None

    @property
    def key(self) -> _keys.Key | None:
        """The encryption key (a ``Key``, which never shows its value), or ``None``."""
        return self._key

    def rekey(self, new_key: _keys.Key | None) -> None:
        """Re-encrypt the file under ``new_key`` (``None``: decrypt it).

        Every connection this store opened is closed first (threads reopen theirs on
        their next use); no other process may have the file open meanwhile. The new
        key is checked by reading the file with it before it replaces the old one.
        """
        _keys.require()
        if self.path == ":memory:":
            raise ConfigError("an in-memory store cannot be encrypted")
        with self._lock:
            self.close()
            conn = self.open_connection()
            try:
                with _db.translate("re-encrypting the database"):
                    if self._key is None and new_key is not None:
                        # Encrypting a plain file rewrites every page with room for the
                        # cipher's MAC, which SQLite3 Multiple Ciphers does only outside
                        # WAL mode: leave it for the rekey (this needs the only handle).
                        if conn.pragma("journal_mode", "delete") != "delete":
                            raise StoreBusyError(
                                "re-encrypting the database: another connection has it open"
                            )
                        try:
                            _keys.apply(conn, new_key, rekey=True)
                        finally:
                            conn.pragma("journal_mode", "wal")
                    else:
                        _keys.apply(conn, new_key, rekey=True)
            finally:
                conn.close()
            old, self._key = self._key, new_key
            try:
                self.open_connection().close()
            except BaseException:
                self._key = old
                raise

    def close(self) -> None:
        with self._conns_guard:
            conns, self._conns = self._conns, []
        self._local = threading.local()
        for conn in conns:
            with contextlib.suppress(apsw.Error):
                conn.close()

    @property
    def busy_timeout(self) -> float:
        """Seconds a write waits for other writers before ``StoreBusyError``."""
        return _db.BUSY_TIMEOUT_MS / 1000

    @contextlib.contextmanager
    def write(self, action: str, deadline: float | None = None) -> Iterator[apsw.Connection]:
        """A write transaction: the writer lock, then ``BEGIN IMMEDIATE``; commit or roll back.

        Waiting for other writers (this process's, then other processes') ends at
        ``deadline`` (a ``time.monotonic()`` value; default: the busy timeout from now)
        with ``StoreBusyError``.
        """
        conn = self._conn()
        if deadline is None:
            deadline = time.monotonic() + self.busy_timeout
        with _db.translate(action):
            if not self._lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise StoreBusyError(
                    f"{action}: another writer in this process held the database too long"
                )
            try:
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms < _db.BUSY_TIMEOUT_MS:
                    conn.set_busy_timeout(max(1, left_ms))
                try:
                    conn.execute("BEGIN IMMEDIATE")
                finally:
                    if left_ms < _db.BUSY_TIMEOUT_MS:
                        conn.set_busy_timeout(_db.BUSY_TIMEOUT_MS)
                try:
                    yield conn
                except BaseException:
                    if not conn.get_autocommit():
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                self._lock.release()

    def read(self, action: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _db.translate(action):
            return self._conn().execute(sql, args).fetchall()

    # -- sessions ----------------------------------------------------------------

    def get_session(self, name: str) -> SessionRow | None:
        rows = self.read(
            "reading a session",
            "SELECT id, head, created, updated FROM sessions WHERE name = ?",
            (name,),
        )
        return rows[0] if rows else None

    def create_session(
        self,
        name: str,
        head: int | None,
        *,
        exist_ok: bool,
        head_prefix: bytes | None = None,
        limit: int | None = None,
    ) -> SessionRow:
        """Create a session at ``head``. With ``head_prefix``, the node must still carry
        that prefix hash (a node id seen earlier may have been collected and reused).
        With ``limit``, a store holding that many sessions refuses a new one
        (``SessionLimitError``), counted inside the write transaction, so creators in
        other threads and processes cannot pass it together."""
        now = time.time()
        with self.write("creating a session") as conn:
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
                    return row  # type: ignore[no-any-return]
                raise SessionExistsError(f"a session named {name!r} already exists")
            if limit is not None:
                count = int(conn.execute("SELECT count(*) FROM sessions").get or 0)
                if count >= limit:
                    raise SessionLimitError(
                        f"the store holds {count} sessions, its maximum is {limit}; "
                        "delete one (and run srt gc) or raise max_sessions"
                    )
            conn.execute(
                "INSERT INTO sessions(name, head, created, updated) VALUES (?, ?, ?, ?)",
                (name, head, now, now),
            )
            return (conn.last_insert_rowid(), head, now, now)

    def delete_session(self, name: str) -> None:
        with self.write("deleting a session") as conn:
            conn.execute("DELETE FROM sessions WHERE name = ?", (name,))
            if conn.changes() == 0:
                raise SessionNotFoundError(f"no session named {name!r}")

    def rename_session(self, old: str, new: str) -> None:
        with self.write("renaming a session") as conn:
            if conn.execute("SELECT 1 FROM sessions WHERE name = ?", (new,)).fetchone():
                raise SessionExistsError(f"a session named {new!r} already exists")
            conn.execute("UPDATE sessions SET name = ? WHERE name = ?", (new, old))
            if conn.changes() == 0:
                raise SessionNotFoundError(f"no session named {old!r}")

    def list_sessions(self) -> list[tuple[str, int, float, float, bytes | None]]:
        return self.read(
            "listing sessions",
            "SELECT s.name, coalesce(n.depth, 0), s.created, s.updated, n.prefix "
            "FROM sessions s LEFT JOIN nodes n ON n.id = s.head ORDER BY s.name",
        )

    # -- nodes ---------------------------------------------------------------------

    def chain(self, head: int | None) -> list[ChainRow]:
        """The messages from the root to ``head``, in order.

        Every body is checked against its hash and every prefix hash against the
        chain, so a damaged file raises ``CorruptionError`` instead of returning
        altered text or bytes that are not JSON. (The walk up the parents stops at a
        depth that does not decrease, so a damaged parent link cannot loop.)
        """
        if head is None:
            return []
        rows = self.read("loading a session", _CHAIN_SQL, (head,))
        rows.reverse()
        rows.sort(key=_depth)
        hashes = [r[1] for r in rows]
        digest = self.hashing.digest
        if (
            not all(type(r[2]) is bytes and type(r[1]) is bytes for r in rows)
            or [digest(r[2]) for r in rows] != hashes
            or self.hashing.chain_many(_core.ROOT, hashes) != [r[3] for r in rows]
            or not rows
            or rows[-1][0] != head
        ):
            raise CorruptionError(
                "the session's stored messages fail their hash check (the file is "
                "damaged); run srt verify"
            )
        return rows

    def chain_extension(self, head: int, above: int, prefix: bytes) -> list[ChainRow] | None:
        """The messages of ``head``'s chain deeper than ``above``, in order, if they
        continue the history whose prefix hash is ``prefix`` (the chain up to depth
        ``above``); ``None`` if they do not (the head moved to another branch).

        Reads only the new rows, so a rebase costs what was appended meanwhile, not the
        whole history. Every body is checked against its hash (``CorruptionError``).
        """
        rows = self.read("loading a session", _CHAIN_ABOVE_SQL, (head, above, above))
        rows.reverse()
        rows.sort(key=_depth)
        if not rows or rows[0][6] != above + 1 or rows[-1][0] != head:
            return None
        digest = self.hashing.digest
        if not all(type(r[2]) is bytes and type(r[1]) is bytes for r in rows) or [
            digest(r[2]) for r in rows
        ] != [r[1] for r in rows]:
            raise CorruptionError(
                "the session's stored messages fail their hash check (the file is "
                "damaged); run srt verify"
            )
        if self.hashing.chain_many(prefix, [r[1] for r in rows]) != [r[3] for r in rows]:
            return None
        return rows

    def node_prefix(self, node: int) -> bytes:
        rows = self.read("reading a node", "SELECT prefix FROM nodes WHERE id = ?", (node,))
        if not rows:
            raise CorruptionError(f"node {node} is missing")
        return rows[0][0]  # type: ignore[no-any-return]

    @staticmethod
    def _check_head(conn: apsw.Connection, session: int, expected: int | None) -> None:
        row = conn.execute("SELECT head FROM sessions WHERE id = ?", (session,)).fetchone()
        if row is None:
            raise SessionNotFoundError("the session was deleted")
        if row[0] != expected:
            raise ConflictError(
                "the session head moved since this handle last saw it (a concurrent "
                "append); nothing was written: refresh() and retry, or pass rebase=True"
            )

    @staticmethod
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
                mid, stored = _one(
                    execute("SELECT id, body FROM messages WHERE hash = ?", (mhash,))
                )
                if stored != body:
                    raise CorruptionError(
                        f"hash collision or damaged row: message {mid} has hash "
                        f"{mhash.hex()} but different bytes; nothing was linked"
                    )
            execute(_INSERT_NODE, (parent, mid, depth, prefix, meta, status))
            if conn.changes():
                parent = conn.last_insert_rowid()
            else:
                row = _one(
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

    @classmethod
    def _swap_head(
        cls, conn: apsw.Connection, session: int, expected: int | None, new: int | None
    ) -> None:
        """Compare-and-swap the head inside a write transaction; the caller rolls back."""
        conn.execute(
            "UPDATE sessions SET head = ?, updated = ? WHERE id = ? AND head IS ?",
            (new, time.time(), session, expected),
        )
        if not conn.changes():
            cls._check_head(conn, session, expected)
            raise AssertionError("unreachable: head unchanged but CAS failed")

    def move_head(self, session: int, expected: int | None, new: int | None) -> None:
        """Compare-and-swap the head without adding nodes (rewind)."""
        with self.write("moving a session head") as conn:
            self._swap_head(conn, session, expected, new)

    def append(
        self,
        session: int,
        expected: int | None,
        parent: int | None,
        depth: int,
        items: Sequence[NewNode],
        call: Sequence[Any] | None = None,
        deadline: float | None = None,
    ) -> list[int]:
        """Add ``items`` below ``parent`` and make the last one the head, if the head
        is still ``expected``; otherwise raise ``ConflictError`` and write nothing.

        ``call`` is a ledger row (``CALL_COLUMNS`` order, ``node`` filled in with the
        last new node) written in the same transaction. ``deadline``: see ``write``.
        """
        with self.write("appending to a session", deadline) as conn:
            ids = self.insert_nodes(conn, parent, depth, items)
            self._swap_head(conn, session, expected, ids[-1] if ids else parent)
            if call is not None:
                row = list(call)
                row[CALL_COLUMNS.index("node")] = ids[-1] if ids else parent
                conn.execute(_INSERT_CALL, row)
            return ids

    def node_meta(self, node: int) -> bytes | None:
        rows = self.read("reading a node", "SELECT meta FROM nodes WHERE id = ?", (node,))
        return rows[0][0] if rows else None

    def record_call(self, call: Sequence[Any]) -> int:
        """Write one ledger row on its own (a request that stored no reply)."""
        with self.write("recording a provider call") as conn:
            conn.execute(_INSERT_CALL, list(call))
            return conn.last_insert_rowid()

    def calls(self, where: str = "", args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Ledger rows as dicts, oldest first; ``where`` is a fixed SQL condition."""
        cols = ("id", *CALL_COLUMNS)
        sql = f"SELECT {', '.join(cols)} FROM calls {where} ORDER BY id"
        return [dict(zip(cols, r, strict=True)) for r in self.read("reading the ledger", sql, args)]

    def last_response(
        self, nodes: Sequence[int], fmt: str, model: str
    ) -> tuple[int, str, float] | None:
        """The newest stored server-side response among ``nodes``: (node, response id, at)."""
        if not nodes:
            return None
        marks = ",".join("?" for _ in nodes)
        rows = self.read(
            "reading server-side state",
            f"SELECT node, response_id, at FROM calls WHERE node IN ({marks}) AND format = ? "
            "AND model = ? AND stored = 1 AND status = 'ok' AND response_id IS NOT NULL "
            "ORDER BY node DESC, id DESC LIMIT 1",
            (*nodes, fmt, model),
        )
        return rows[0] if rows else None
