"""``PostgresStore``: the Store protocol on a PostgreSQL database, through psycopg 3.

The schema and the server-side append are in ``schema``, the client's side of the
append in ``appends``; the pool, the URL options, migrations and the retry loop in
``pool``; gc, verify and search in ``maintenance`` (what ``--fts`` may ask in
``search``), the views of ``srt ls`` and ``srt show --tree`` in ``views``. Every
statement is fixed text with bound parameters; ``{s}`` is srt's schema name, rendered
once.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import psycopg
import psycopg_pool

from ..._types import SessionInfo
from ...errors import (
    ConfigError,
    ConflictError,
    CorruptionError,
    SessionExistsError,
    SessionLimitError,
    SessionNotFoundError,
)
from ..base import (
    ANY_HEAD,
    CALL_FIELDS,
    CallRecord,
    ChainRow,
    GcReport,
    Hit,
    SessionOverview,
    SessionRow,
    Store,
    StoredResponse,
    TreeNode,
    VacuumReport,
    VerifyReport,
    moved_on,
)
from ..owners import session_kinds
from . import chains, maintenance, search, views
from .appends import AppendMixin
from .errors import HEAD_MOVED
from .gc import gc as collect
from .objects import DROP, ObjectsMixin
from .pool import AUTO, AUTO_THRESHOLD, Database, parse_url, redact_url
from .statements import (
    INSERT_CALL,
    SELECT_CALLS,
    no_nul,
)
from .urls import as_url

__all__ = ["PostgresStore"]

_call_values = operator.attrgetter(*CALL_FIELDS)


def _threshold(given: int | str | None) -> tuple[int | None, bool]:
    """``prepare_threshold`` as psycopg takes it, and whether it is the default (``AUTO``).
    0 would prepare every statement at its first run, and PostgreSQL refuses to prepare
    a string of several statements (some of srt's are): refused here, with 1 to use."""
    if isinstance(given, str) and given.lower() == AUTO:
        return AUTO_THRESHOLD, True
    if given is None or str(given).lower() == "none":
        return None, False
    threshold = int(given)
    if threshold < 1:
        raise ConfigError(
            f"prepare_threshold must be 1 or more (a statement is prepared after that many "
            f"runs on a connection), none or auto, got {given!r}"
        )
    return threshold, False


class PostgresStore(AppendMixin, ObjectsMixin, Store):
    """The Store protocol on one PostgreSQL database (scale-out: many processes and
    machines on the same sessions).

    ``url`` is a libpq URL (``postgresql://user:password@host:port/dbname``) that may
    also carry srt's own query parameters: ``schema`` (default ``srt``: srt's tables
    live in a schema of their own, created on first use), ``prepare_threshold``
    (psycopg's: a statement run more than that many times on a connection is prepared
    on the server; ``none``: never; the default, ``auto``, is 5, turned to ``none`` when
    srt finds PgBouncer, which refuses the ``options`` srt pins the search path with; a
    number or ``none`` given is kept: a number behind PgBouncer needs 1.21+ with
    ``max_prepared_statements`` set, or its session mode), ``pool_min``,
    ``pool_max`` and ``pool_timeout`` (seconds a call waits for a connection before
    ``StoreUnavailableError``). The same are keyword arguments. The store's first
    connection is made in the caller's thread and kept until ``close()``; a
    ``psycopg_pool`` pool holds the others and is made when a second is first wanted at
    once (``pool_min`` and ``pool_max`` count the first). ``pool`` is a
    ``psycopg_pool.ConnectionPool`` someone else owns: srt borrows from it and never
    closes it. ``create=False`` opens only a schema that holds an srt store already
    (``NotAnSrtDatabaseError`` otherwise, and nothing is created: ``srt copy``'s source).
    """

    remote = True

    def __init__(
        self,
        url: str | None = None,
        *,
        pool: psycopg_pool.ConnectionPool[Any] | None = None,
        schema: str | None = None,
        prepare_threshold: int | str | None = AUTO,
        pool_min: int | str = 1,
        pool_max: int | str = 10,
        pool_timeout: float | str = 10.0,
        create: bool = True,
    ) -> None:
        if (url is None) == (pool is None):
            raise ConfigError("give a PostgreSQL store either a URL or a pool, not both")
        conninfo: str | None = None
        options: dict[str, str] = {}
        if url is not None:
            if "://" not in url:  # libpq's keyword/value form ("host=db dbname=chats")
                url = as_url(url)
            conninfo, options = parse_url(url)
            self.location = redact_url(url)
        else:
            assert pool is not None
            self.location = f"pool {pool.name!r}"
        self._store_id: str | None = None
        try:
            threshold, auto = _threshold(options.get("prepare_threshold", prepare_threshold))
            self.db = Database(
                conninfo,
                pool=pool,
                schema=options.get("schema", schema or "srt"),
                prepare_threshold=threshold,
                prepare_auto=auto,
                min_size=int(options.get("pool_min", pool_min)),
                max_size=int(options.get("pool_max", pool_max)),
                timeout=float(options.get("pool_timeout", pool_timeout)),
                create=create,
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

    def delete_session(self, name: str, *, if_head: int | Literal["any"] | None = ANY_HEAD) -> None:
        any_head, drop = isinstance(if_head, str), DROP
        where = "name = %s" + ("" if any_head else " AND head IS NOT DISTINCT FROM %s")
        row = self.db.sql("DELETE FROM {s}.sessions WHERE " + where + " RETURNING id")
        args = (name,) if any_head else (name, if_head)
        exists = self.db.sql("SELECT 1 FROM {s}.sessions WHERE name = %s")

        def delete(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():  # (the row first: see put_object's lock)
                gone = conn.execute(row, args).fetchone()
                if gone is None:
                    if not any_head and conn.execute(exists, (name,)).fetchone():
                        raise ConflictError(moved_on(name))
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
        return views.overview(self.db)

    def tree(self, name: str, *, width: int = 200) -> TreeNode | None:
        return views.tree(self.db, name, width=width)

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
        return collect(self.db, dry_run=dry_run, watch=watch)

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
        return search.search(
            self.db, text, limit=limit, syntax=syntax, announce=announce, wait=self.busy_timeout
        )

    def has_search_index(self) -> bool:
        return search.has_search_index(self.db)

    def build_search_index(self, *, announce: Callable[[int], None] | None = None) -> int | None:
        return search.build_search_index(self.db, wait=self.busy_timeout, announce=announce)

    def drop_search_index(self) -> bool:
        return search.drop_search_index(self.db)

    def vacuum(self) -> VacuumReport:
        return maintenance.vacuum(self.db)

    def checkpoint(self) -> bool:
        # A commit is durable when it returns (synchronous_commit): there is no WAL
        # for srt to copy anywhere.
        return True
