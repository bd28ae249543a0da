"""``PostgresStore``: the Store protocol on a PostgreSQL database, through psycopg 3.

The schema and the server-side append are in ``schema``; the pool, the URL options,
migrations and the retry loop in ``pool``; gc, verify, search and the views in
``maintenance``. Every statement is fixed text with bound parameters; ``{s}`` is srt's
schema name, rendered once.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import psycopg
import psycopg_pool
from psycopg.types.json import Jsonb

from ... import _core
from ..._types import SessionInfo
from ...errors import (
    ConfigError,
    ConflictError,
    CorruptionError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
    StoreUnavailableError,
)
from ..base import (
    CALL_FIELDS,
    CallRecord,
    ChainRow,
    GcReport,
    Hit,
    NewNode,
    ObjectPut,
    SessionOverview,
    SessionRow,
    Store,
    StoredResponse,
    TreeNode,
    VacuumReport,
    VerifyReport,
    check_expect,
    check_object,
    link_error,
    not_below,
    not_stored,
    object_changed,
    object_node_gone,
)
from ..owners import session_kinds
from . import chains, maintenance
from .errors import HEAD_MOVED, is_connection_error
from .objects import DROP, ObjectsMixin, conditional
from .pool import Database, parse_url, redact_url
from .statements import (
    APPEND,
    APPEND_BY,
    INSERT_CALL,
    SELECT_CALLS,
    call_json,
    no_nul,
)

__all__ = ["PostgresStore"]

_call_values = operator.attrgetter(*CALL_FIELDS)


def _meta_bytes(meta: bytes | str | None) -> bytes | None:
    return meta.encode("utf-8") if isinstance(meta, str) else meta


class PostgresStore(ObjectsMixin, Store):
    """The Store protocol on one PostgreSQL database (scale-out: many processes and
    machines on the same sessions).

    ``url`` is a libpq URL (``postgresql://user:password@host:port/dbname``) that may
    also carry srt's own query parameters: ``schema`` (default ``srt``: srt's tables
    live in a schema of their own, created on first use), ``prepare_threshold``
    (``none`` behind PgBouncer in transaction mode; default 5, psycopg's), ``pool_min``,
    ``pool_max`` and ``pool_timeout`` (seconds a call waits for a connection before
    ``StoreUnavailableError``). The same are keyword arguments. The store's first
    connection is made in the caller's thread and kept until ``close()``; a
    ``psycopg_pool`` pool holds the others and is made when a second is first wanted at
    once (``pool_min`` and ``pool_max`` count the first). ``pool`` is a
    ``psycopg_pool.ConnectionPool`` someone else owns: srt borrows from it and never
    closes it.
    """

    remote = True

    def __init__(
        self,
        url: str | None = None,
        *,
        pool: psycopg_pool.ConnectionPool[Any] | None = None,
        schema: str | None = None,
        prepare_threshold: int | str | None = 5,
        pool_min: int | str = 1,
        pool_max: int | str = 10,
        pool_timeout: float | str = 10.0,
    ) -> None:
        if (url is None) == (pool is None):
            raise ConfigError("give a PostgreSQL store either a URL or a pool, not both")
        conninfo: str | None = None
        options: dict[str, str] = {}
        if url is not None:
            conninfo, options = parse_url(url)
            self.location = redact_url(url)
        else:
            assert pool is not None
            self.location = f"pool {pool.name!r}"
        threshold = options.get("prepare_threshold", prepare_threshold)
        self._store_id: str | None = None
        try:
            self.db = Database(
                conninfo,
                pool=pool,
                schema=options.get("schema", schema or "srt"),
                prepare_threshold=(
                    None
                    if threshold is None or str(threshold).lower() == "none"
                    else int(threshold)
                ),
                min_size=int(options.get("pool_min", pool_min)),
                max_size=int(options.get("pool_max", pool_max)),
                timeout=float(options.get("pool_timeout", pool_timeout)),
            )
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"a PostgreSQL store option is not a number: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        return cls(url, **options)

    @property
    def store_id(self) -> str:
        if self._store_id is None:
            rows = self._read("reading the store id", "SELECT store_id FROM {s}.srt_schema")
            self._store_id = str(rows[0][0]) if rows else ""
        return self._store_id

    def __repr__(self) -> str:
        return f"<srt.PostgresStore {self.location!r} schema={self.db.schema!r}>"

    def close(self) -> None:
        self.db.close()

    def _read(self, action: str, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        text = self.db.sql(sql)
        return self.db.run(action, lambda c: c.execute(text, args).fetchall(), retry_reads=True)

    def _write(self, action: str, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it touched."""
        text = self.db.sql(sql)
        return self.db.run(action, lambda c: c.execute(text, args).rowcount)

    # -- sessions ----------------------------------------------------------------

    def get_session(self, name: str) -> SessionRow | None:
        rows = self._read(
            "reading a session",
            "SELECT s.id, s.head, s.created, s.updated, n.prefix FROM {s}.sessions s "
            "LEFT JOIN {s}.nodes n ON n.id = s.head WHERE s.name = %s",
            (name,),
        )
        if not rows:
            return None
        sid, head, created, updated, prefix = rows[0]
        return SessionRow(
            sid, name, head, created, updated, bytes(prefix) if prefix is not None else None
        )

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
        lock = self.db.sql("LOCK TABLE {s}.sessions IN SHARE ROW EXCLUSIVE MODE")
        count = self.db.sql("SELECT count(*) FROM {s}.sessions")
        check = self.db.sql("SELECT prefix FROM {s}.nodes WHERE id = %s FOR KEY SHARE")
        insert = self.db.sql(
            "INSERT INTO {s}.sessions(name, head, created, updated) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING id"
        )
        found = self.db.sql("SELECT id, head, created, updated FROM {s}.sessions WHERE name = %s")

        def create(conn: psycopg.Connection[Any]) -> SessionRow:
            with conn.transaction():
                if head is not None and head_prefix is not None:
                    row = conn.execute(check, (head,)).fetchone()
                    if row is None or bytes(row[0]) != head_prefix:
                        raise ConflictError(
                            "the history this handle saw is no longer stored (collected by "
                            "gc?); refresh() and retry"
                        )
                if limit is not None:
                    # Creators take turns (the lock conflicts with itself, not with
                    # readers), so none counts before another's insert is visible.
                    conn.execute(lock)
                    existing = conn.execute(found, (name,)).fetchone()
                    n = conn.execute(count).fetchone()
                    if existing is None and n is not None and int(n[0]) >= limit:
                        raise SessionLimitError(
                            f"the store holds {n[0]} sessions, its maximum is {limit}; "
                            "delete one (and run srt gc) or raise max_sessions"
                        )
                made = conn.execute(insert, (name, head, now, now)).fetchone()
                if made is not None:
                    return SessionRow(made[0], name, head, now, now)
                old = conn.execute(found, (name,)).fetchone()
            if old is None:  # deleted between the two statements: let the caller retry
                raise ConflictError(f"session {name!r} was deleted while it was being opened")
            if exist_ok:
                return SessionRow(old[0], name, *old[1:])
            raise SessionExistsError(f"a session named {name!r} already exists")

        return self.db.run("creating a session", create)

    def delete_session(self, name: str) -> None:
        row, drop = self.db.sql("DELETE FROM {s}.sessions WHERE name = %s RETURNING id"), DROP

        def delete(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():  # (the row first: see put_object's lock)
                gone = conn.execute(row, (name,)).fetchone()
                if gone is None:
                    raise SessionNotFoundError(f"no session named {name!r}")
                sid = str(gone[0])
                conn.execute(self.db.sql(drop), (list(session_kinds()), sid, len(sid) + 1, sid))

        self.db.run("deleting a session", delete)

    def rename_session(self, old: str, new: str) -> None:
        sql = self.db.sql(
            "UPDATE {s}.sessions SET name = %s WHERE name = %s "
            "AND NOT EXISTS (SELECT 1 FROM {s}.sessions WHERE name = %s) RETURNING id"
        )
        exists = self.db.sql("SELECT 1 FROM {s}.sessions WHERE name = %s")

        def rename(conn: psycopg.Connection[Any]) -> None:
            try:
                done = conn.execute(sql, (new, old, new)).fetchone()
            except psycopg.errors.UniqueViolation:
                done = None
            if done is None:
                if old != new and conn.execute(exists, (new,)).fetchone():
                    raise SessionExistsError(f"a session named {new!r} already exists")
                if not conn.execute(exists, (old,)).fetchone():
                    raise SessionNotFoundError(f"no session named {old!r}")

        self.db.run("renaming a session", rename)

    def list_sessions(self) -> list[SessionInfo]:
        rows = self._read(
            "listing sessions",
            "SELECT s.name, coalesce(n.depth, 0), s.created, s.updated, n.prefix "
            "FROM {s}.sessions s LEFT JOIN {s}.nodes n ON n.id = s.head ORDER BY s.name",
        )
        return [
            SessionInfo(name, depth, created, updated, bytes(prefix).hex() if prefix else None)
            for name, depth, created, updated, prefix in rows
        ]

    def overview(self) -> list[SessionOverview]:
        return maintenance.overview(self.db)

    def tree(self, name: str, *, width: int = 200) -> TreeNode | None:
        return maintenance.tree(self.db, name, width=width)

    # -- nodes ---------------------------------------------------------------------

    def chain(self, head: int | None) -> list[ChainRow]:
        return chains.chain(self.db, head)

    def chain_extension(self, head: int, above: int, prefix: bytes) -> list[ChainRow] | None:
        if above < 1:
            return super().chain_extension(head, above, prefix)
        return chains.extension(self.db, head, above, prefix)

    def node_prefix(self, node: int) -> bytes:
        rows = self._read("reading a node", "SELECT prefix FROM {s}.nodes WHERE id = %s", (node,))
        if not rows:
            raise CorruptionError(f"node {node} is missing")
        return bytes(rows[0][0])

    def node_depth(self, node: int) -> int:
        rows = self._read("reading a node", "SELECT depth FROM {s}.nodes WHERE id = %s", (node,))
        if not rows:
            raise CorruptionError(f"node {node} is missing")
        return int(rows[0][0])

    def node_meta(self, node: int) -> bytes | str | None:
        rows = self._read("reading a node", "SELECT meta FROM {s}.nodes WHERE id = %s", (node,))
        return rows[0][0] if rows else None

    # -- writes ----------------------------------------------------------------------

    def move_head(self, session: int, expected: int | None, new: int | None) -> None:
        sql = self.db.sql(
            "UPDATE {s}.sessions SET head = %s, updated = %s "
            "WHERE id = %s AND head IS NOT DISTINCT FROM %s"
        )
        exists = self.db.sql("SELECT 1 FROM {s}.sessions WHERE id = %s")

        def move(conn: psycopg.Connection[Any]) -> None:
            if conn.execute(sql, (new, time.time(), session, expected)).rowcount:
                return
            if conn.execute(exists, (session,)).fetchone() is None:
                raise SessionNotFoundError("the session was deleted")
            raise ConflictError(HEAD_MOVED)

        self.db.run("moving a session head", move)

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
        for obj in objects:
            check_object(obj.kind, obj.scope, obj.key, obj.value)
            check_expect(obj.expect, obj.if_absent)
        # Objects written on a condition go after the append's statement, in its transaction.
        held = [o for o in objects if o.if_absent or o.expect is not None]
        if held:
            objects = [o for o in objects if not (o.if_absent or o.expect is not None)]
        # The links are checked here, where srt can hash; the first one's parent prefix
        # hash goes with the statement, which compares it with the stored one.
        above = parent_prefix
        if parent is None:
            if above is not None and above != _core.ROOT:
                self._refuse(session, expected, CorruptionError(not_below(None, _core.ROOT, above)))
            above = _core.ROOT
        elif above is None and items:  # not given: read it, a round trip more
            above = self._parent_prefix(session, expected, parent)
        broken = link_error(items, above, self.hashing) if above is not None and items else None
        if broken is not None:
            self._refuse(session, expected, CorruptionError(broken))
        args = (
            session,
            expected,
            parent,
            depth,
            [it.hash for it in items],
            [it.body for it in items],
            [it.prefix for it in items],
            [_meta_bytes(it.meta) for it in items],
            [it.status for it in items],
            time.time(),
            Jsonb(call_json(call)) if call is not None else None,
            [o.kind for o in objects],
            [o.scope for o in objects],
            [o.key for o in objects],
            [o.value for o in objects],
            [o.node for o in objects],
            [o.expires for o in objects],
            [o.at_head for o in objects],
            above,
        )
        sql = self.db.sql(APPEND if deadline is None else APPEND_BY)

        def send(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
            if deadline is None:
                return conn.execute(sql, args)
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            return conn.execute(sql, (*args, f"{left_ms:d}ms"))

        def swap_first(conn: psycopg.Connection[Any]) -> list[int]:
            # One statement: the object's conditional write, then the append only if it
            # wrote (else NULL: nothing written; an append that fails undoes the write).
            (obj,) = held
            write, values = conditional(obj, obj.node, args[9])
            text = self.db.sql(
                f"WITH w AS ({write} RETURNING 1) SELECT CASE WHEN EXISTS (SELECT 1 FROM w) "
                f"THEN {APPEND.removeprefix('SELECT ')} END"
            )
            row = conn.execute(text, (*values, *args)).fetchone()
            assert row is not None
            if row[0] is None:  # the condition found another value: nothing was written
                raise ConflictError(self._held_error(conn, obj, None))
            return list(row[0])

        def ids_of(cur: psycopg.Cursor[Any]) -> list[int]:
            row = cur.fetchone()
            assert row is not None
            return list(row[0])

        def run(conn: psycopg.Connection[Any]) -> list[int]:
            if not held:
                return ids_of(send(conn))
            if deadline is None and len(held) == 1 and not held[0].at_head:
                # One statement: its one condition failing writes nothing at all. (With
                # two, the first's write would stand when the second's fails: they go in
                # the transaction below.)
                return swap_first(conn)
            # In a pipeline: the statements go in one round trip (the head's node is
            # awaited first only if an object is filed under it), the commit in another.
            with conn.pipeline() as pipe, conn.transaction():
                cur = send(conn)
                ids = ids_of(cur) if any(o.at_head for o in held) else None
                head = parent if not ids else ids[-1]
                done = []
                for obj in held:
                    text, values = conditional(obj, head if obj.at_head else obj.node, args[9])
                    done.append(conn.execute(self.db.sql(text), values))
                pipe.sync()  # (every result in, each swap's row count with it)
                ids = ids_of(cur) if ids is None else ids
                head = ids[-1] if ids else parent
                for obj, swapped in zip(held, done, strict=True):
                    if swapped.rowcount != 1:
                        raise ConflictError(self._held_error(conn, obj, head))
                return ids

        try:
            return self.db.run("appending to a session", run)
        except StoreUnavailableError as exc:
            if not isinstance(exc.__cause__, psycopg.Error) or not is_connection_error(
                exc.__cause__
            ):
                raise  # no connection was had: nothing was sent
            landed, ids = self._landed(session, items)
            if landed is None:
                raise StoreUnavailableError(
                    f"{exc}; the server could not say whether this append was stored: "
                    "Session.refresh() shows it before a retry"
                ) from exc.__cause__
            if landed:
                return ids
        # Not stored: the append is run once more on a new connection. The head's
        # compare-and-swap makes that safe even if the first statement were still to
        # commit somewhere (a network cut): then one of the two gets ConflictError.
        return self.db.run("appending to a session", run)

    def _held_error(self, conn: psycopg.Connection[Any], obj: ObjectPut, head: int | None) -> str:
        """Why a conditional object of an append was not written (asked in its
        transaction, on its connection)."""
        node = head if obj.at_head else obj.node
        find = self.db.sql("SELECT 1 FROM {s}.nodes WHERE id = %s")
        if node is not None and conn.execute(find, (node,)).fetchone() is None:
            return object_node_gone(node)
        return object_changed(obj.kind, obj.scope, obj.key)

    def _parent_prefix(self, session: int, expected: int | None, parent: int) -> bytes:
        """The prefix hash node ``parent`` carries; refused (``_refuse``) if it is not
        stored."""
        rows = self._read(
            "appending to a session", "SELECT prefix FROM {s}.nodes WHERE id = %s", (parent,)
        )
        if not rows:
            self._refuse(session, expected, ConflictError(not_stored(parent)))
        return bytes(rows[0][0])

    def _refuse(self, session: int, expected: int | None, error: Exception) -> NoReturn:
        """Raise what SQLite's append would for an append found wrong before it was
        sent: the compare-and-swap's error first (the session is gone, or its head
        moved), else ``error``."""
        rows = self._read(
            "appending to a session", "SELECT head FROM {s}.sessions WHERE id = %s", (session,)
        )
        if not rows:
            raise SessionNotFoundError("the session was deleted")
        if rows[0][0] != expected:
            raise ConflictError(HEAD_MOVED)
        raise error

    def _landed(self, session: int, items: Sequence[NewNode]) -> tuple[bool | None, list[int]]:
        """After the connection broke during an append: (True, node ids) if it was
        committed (the session's head is its last node), (False, []) if the server says
        it was not, (None, []) if the server cannot be asked."""
        prefixes = [it.prefix for it in items]
        try:
            rows = self._read(
                "checking an interrupted append",
                "SELECT s.head, n.id, n.prefix FROM {s}.sessions s "
                "LEFT JOIN {s}.nodes n ON n.prefix = ANY(%s) WHERE s.id = %s",
                (prefixes, session),
            )
        except StoreUnavailableError:
            return None, []
        ids = {bytes(p): nid for _head, nid, p in rows if p is not None}
        head = rows[0][0] if rows else None
        if prefixes and len(ids) == len(prefixes) and head == ids[prefixes[-1]]:
            return True, [ids[p] for p in prefixes]
        return False, []

    # -- the ledger ------------------------------------------------------------------

    def record_call(self, call: CallRecord) -> int:
        sql = self.db.sql(INSERT_CALL)
        values = tuple(map(no_nul, _call_values(call)))

        def insert(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(sql, values).fetchone()
            assert row is not None
            return int(row[0])

        return self.db.run("recording a provider call", insert)

    def calls(
        self, *, session: int | None = None, session_name: str | None = None
    ) -> list[CallRecord]:
        args: tuple[Any, ...] = ()
        where = ""
        if session is not None:
            where, args = " WHERE session = %s", (session,)
        elif session_name is not None:
            where, args = " WHERE session_name = %s", (session_name,)
        rows = self._read("reading the ledger", SELECT_CALLS + where + " ORDER BY id", args)
        out = []
        for r in rows:
            r = list(r)
            r[CALL_FIELDS.index("body_hash")] = bytes(r[CALL_FIELDS.index("body_hash")])
            out.append(CallRecord(*r))
        return out

    def last_response(self, nodes: Sequence[int], format: str, model: str) -> StoredResponse | None:
        if not nodes:
            return None
        rows = self._read(
            "reading server-side state",
            "SELECT node, response_id, at FROM {s}.calls WHERE node = ANY(%s) AND format = %s "
            "AND model = %s AND stored = 1 AND status = 'ok' AND response_id IS NOT NULL "
            "ORDER BY node DESC, id DESC LIMIT 1",
            (list(nodes), format, model),
        )
        return StoredResponse(*rows[0]) if rows else None

    # -- maintenance -------------------------------------------------------------------

    def gc(
        self, *, secure_delete: bool = True, dry_run: bool = False, watch: Sequence[bytes] = ()
    ) -> GcReport:
        return maintenance.gc(self.db, secure_delete=secure_delete, dry_run=dry_run, watch=watch)

    def verify(self) -> VerifyReport:
        return maintenance.verify(self.db)

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
        # A commit is durable when it returns (synchronous_commit): there is no WAL
        # for srt to copy anywhere.
        return True
