"""Connections to one PostgreSQL database: a ``psycopg_pool`` pool, and the
retry/translate loop every store operation runs in. The URL's srt options and secrets
are ``urls``'s (re-exported here); the schema check and migration at open, ``migrate``'s.

One pool per store (so per ``Runtime``). The store's first connection is made in the
caller's thread when the store opens and kept for its life; the ``psycopg_pool`` pool
(its threads start and stop with it) is made only when a second connection is needed at
once, holding the rest (``pool_max - 1``). A one-thread user, and a new ``Runtime`` that
opens a session and builds one request, never wait for the pool's threads to start,
hand over a connection and stop (docs/bench.md, PostgreSQL, has the figures).

A borrowed connection that sat idle for more than ``CHECK_AFTER_IDLE`` is checked
(``ConnectionPool.check_connection``, an empty query), so one the server dropped
meanwhile is replaced before use; a connection used (or made) within the last second is
trusted, and if it turns out broken, a read is run again on a new connection and an
interrupted append is resolved (``PostgresStore.append``).
There is no process-wide lock: concurrency is PostgreSQL's. A pool passed in by the
caller (``Runtime(store=PostgresStore(pool=...))``) is used as it is and never closed
by srt; its connections are switched to autocommit while srt holds them. Its settings are
the caller's too: its threads make its connections (not watched: ``_watching`` is srt's
pools'), so srt cannot tell a server that cannot be reached from one slow to answer, and
a call on it waits out the pool's own ``timeout`` before ``StoreUnavailableError``, where
an srt-made pool fails at once (README.md says how to fail sooner with one's own pool).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from ...errors import ConfigError, StoreBusyError, StoreError, StoreUnavailableError
from . import schema as sch
from .errors import RETRY_SQLSTATES, is_connection_error, translate, unreachable
from .migrate import migrate
from .urls import ENCODE, parse_url, redact_url, scrub, secrets_of, unquoted

__all__ = ["AUTO", "AUTO_THRESHOLD", "Database", "parse_url", "redact_url", "scrub", "secrets_of"]

T = TypeVar("T")

#: A connection idle for longer than this is checked with an empty query when it is
#: borrowed; one given back more recently is trusted (a break shows at its next statement,
#: which reads retry and appends resolve).
CHECK_AFTER_IDLE = 1.0
#: ``prepare_threshold``'s default: psycopg's own threshold (``AUTO_THRESHOLD``), turned
#: off where srt finds PgBouncer (``Database._unpin``). A number or ``none`` given by the
#: caller is kept there too: PgBouncer 1.21+ with ``max_prepared_statements`` set keeps
#: protocol-level prepared statements (psycopg's) apart per client in transaction mode,
#: and its session mode never shares a server connection.
AUTO = "auto"
AUTO_THRESHOLD = 5
#: Times a transaction that failed with a serialization failure or a deadlock is run again.
RETRIES = 5


#: What a server says when it answers a connection and refuses it for good (checked in
#: the message: libpq gives no SQLSTATE for a failed connection). Another attempt would
#: fail the same way, so none is made; anything else is tried again until pool_timeout.
REFUSALS = (
    "password authentication failed",
    "authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "invalid value for parameter",
    "unrecognized configuration parameter",
    "permission denied",
    "SSL was required",
    "does not support SSL",
    "invalid connection option",
    "invalid integer value",
    "unsupported startup parameter",  # PgBouncer, on the URL's options= (or PGOPTIONS)
)
#: What PgBouncer says to a connection that sets ``options`` (srt's search path pin).
UNPINNABLE = "unsupported startup parameter: options"


#: How long a caller waits on the pool at a time before it looks whether the pool's latest
#: attempt to connect was refused (the pool's threads make its connections and would
#: otherwise keep trying, the caller waiting out pool_timeout).
REFUSAL_POLL = 0.1


def _refusal(reason: str) -> StoreUnavailableError:
    refused = StoreUnavailableError(
        f"connecting to the database: {reason} (not retried: check the "
        "URL's host, user, password, database and options)"
    )
    refused.retryable = False
    return refused


def _nowhere(reason: str) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"connecting to the database: no server could be reached: {reason} (not waited "
        "for: check the URL's host and port, or start the server; once the store has "
        "opened, a server that goes away is waited for up to pool_timeout)"
    )


def _late(reason: str, timeout: float, where: str) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"connecting to the database at {where}: no connection in time ({timeout:g} s, "
        f"pool_timeout): {reason}; retry later"
    )


def _where(options: dict[str, Any]) -> str:
    """Where a connection string points (libpq's defaults and environment filled in),
    for a message whose reason may not say (``connection timeout expired``)."""
    host = options.get("hostaddr") or options.get("host") or os.environ.get("PGHOST")
    port = options.get("port") or os.environ.get("PGPORT") or "5432"
    return f"host {host}, port {port}" if host else f"the default socket, port {port}"


def _watching(db: Database) -> type[psycopg.Connection[Any]]:
    """The pool's connection class: it tells ``db`` how each attempt to connect went
    (the reason only, scrubbed: psycopg's exception keeps the password)."""
    ref = weakref.ref(db)

    class Watched(psycopg.Connection[Any]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            try:
                conn = super().connect(conninfo, **kwargs)
            except psycopg.Error as exc:
                found = ref()
                if found is not None:
                    found.attempted(exc)
                raise
            found = ref()
            if found is not None:
                found.attempted(None)
            return conn

    return Watched


def _busy(held: int, timeout: float) -> str:
    return (
        f"every one of the store's {held} database connections stayed busy for "
        f"{timeout:g} s (pool_timeout); nothing was done: retry, or raise pool_max"
    )


class Database:
    """A pool of connections to one PostgreSQL database, and srt's schema in it."""

    def __init__(
        self,
        conninfo: str | None,
        *,
        pool: psycopg_pool.ConnectionPool[Any] | None,
        schema: str,
        prepare_threshold: int | None,
        prepare_auto: bool = False,
        min_size: int,
        max_size: int,
        timeout: float,
        create: bool = True,
    ) -> None:
        if not sch.SCHEMA_NAME.match(schema):
            raise ConfigError(
                f"the schema name must be a lower-case SQL identifier, got {schema!r}"
            )
        if schema.startswith("pg_") or schema == "information_schema":
            # (pg_* is reserved; pg_dump leaves information_schema out of every backup)
            raise ConfigError(
                f"schema {schema!r} is one of PostgreSQL's own, not for srt's tables: "
                "give srt a schema of its own (?schema=, default srt)"
            )
        if min_size < 0 or max_size < max(1, min_size) or timeout <= 0:
            raise ConfigError("pool sizes must satisfy 0 <= min <= max, max >= 1; timeout > 0")
        self.schema = schema
        self.conninfo = conninfo
        self._owned = pool is None
        self._kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": prepare_threshold}
        self._sizes = (min_size, max_size, timeout)
        # The first connection is made in the caller's thread: it waits for the server as
        # long as a pooled one would (unless the URL says how long).
        self._first_kwargs = dict(self._kwargs)
        self._pin_only = False  # the URL's options are srt's search path pin alone
        self._prepare_auto = prepare_auto  # prepare_threshold not given: off behind PgBouncer
        self._secrets = secrets_of(conninfo) if conninfo is not None else []
        options: dict[str, Any] = {}
        bad = ""
        try:
            options = conninfo_to_dict(conninfo) if conninfo is not None else {}
        except psycopg.Error as exc:  # libpq may quote the password: unquoted, not chained
            bad = unquoted(self.scrub(str(exc)))
        if bad:
            raise ConfigError(f"the PostgreSQL URL is not valid: {bad}; {ENCODE}")
        self._where = _where(options) if conninfo is not None else "the caller's pool's server"
        if conninfo is not None and "connect_timeout" not in options:
            self._first_kwargs["connect_timeout"] = max(2, math.ceil(timeout))
        if conninfo is not None:
            # srt's statements name its tables by schema, but built-ins and operators
            # (``=``, ``to_tsvector``) are looked up on the search_path: srt's own
            # connections start with it pinned (the last ``-c`` wins, and the client's
            # setting beats a role's default), with the URL's other options kept.
            given = options.get("options") or os.environ.get("PGOPTIONS", "")
            # PgBouncer refuses any ``options`` (``unsupported startup parameter``; one
            # set to ignore it drops it): a pin srt added alone is then left off
            # (``_unpin``), and the role's default path is used, as on a caller's pool
            # (srt's functions pin their own, and its statements name its schema).
            pinned = f"{given} -csearch_path={sch.PINNED_PATH.replace(' ', '')}".strip()
            self._kwargs["options"] = self._first_kwargs["options"] = pinned
            self._pin_only = not given
        self._given = pool
        self._pool: psycopg_pool.ConnectionPool[Any] | None = pool
        self._pid = os.getpid()
        self._guard = threading.Lock()
        # The first connection (an owned pool's only): who holds it, and since when idle.
        self._first: psycopg.Connection[Any] | None = None
        self._first_held = threading.Lock()
        self._first_idle = 0.0
        self._generation = 0  # close() counts up: a connection given back late is closed
        self._sql: dict[str, str] = {}
        self._idle_since: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        # The pool's latest failed attempt to connect, if the server refused it for good.
        self._refused: str | None = None
        self._last_failure = ""
        # Whether a connection was ever made: until one is, a server that cannot be
        # reached at all (nothing listening, no socket, no such host) fails at once; after
        # one was, the same is a server restarting, waited for (``_connect``).
        self._reached = False
        # The pool's last attempt to connect failed (a server restarting or gone): a
        # wait for a connection that then times out is the server's, not a busy pool's.
        self._failing = False
        try:
            self.run(
                "opening the database",
                lambda conn: migrate(conn, schema, self.sql, create),
                retry_reads=True,
            )
        except BaseException:
            self.close()  # a store that failed to open leaves no pool (nor its threads)
            raise

    # -- the pool ------------------------------------------------------------------

    def _forked(self) -> None:
        """In a forked child: forget the parent's connections (closing them would end the
        parent's sessions) so new ones are made."""
        with self._guard:
            if self._pid != os.getpid():
                if not self._owned:
                    raise StoreError(
                        "a PostgreSQL store on a caller's pool cannot be used after fork()"
                    )
                self._pool = None
                self._first = None
                self._first_held = threading.Lock()  # maybe held by a parent's thread
                self._pid = os.getpid()

    def pool(self) -> psycopg_pool.ConnectionPool[Any]:
        """The pool of every connection but the first (made on first need)."""
        if self._pid != os.getpid():
            self._forked()
        found = self._pool
        if found is not None:
            return found
        with self._guard:
            if self._pool is None:
                min_size, max_size, timeout = self._sizes
                assert self.conninfo is not None
                self._pool = psycopg_pool.ConnectionPool(
                    self.conninfo,
                    min_size=max(0, min_size - 1),  # the first connection is one of them
                    max_size=max(1, max_size - 1),
                    timeout=timeout,
                    kwargs=self._kwargs,
                    configure=self._returned,  # a connection just made needs no check
                    check=self._check,
                    reset=self._returned,
                    connection_class=_watching(self),
                    open=False,
                    name=f"srt:{self.schema}",
                )
                with translate("connecting to the database"):
                    self._pool.open(wait=False)
            return self._pool

    def _take_first(self) -> tuple[psycopg.Connection[Any], int] | None:
        """The first connection, made or checked in this thread, if no other thread
        holds it (with ``pool_max=1`` it is the only one: wait for it as for the pool);
        ``None`` if another holds it."""
        if self._pid != os.getpid():
            self._forked()
        held = self._first_held
        _min, max_size, timeout = self._sizes
        deadline = time.monotonic() + timeout
        if max_size > 1:
            if not held.acquire(blocking=False):
                return None
        elif not held.acquire(timeout=timeout):
            raise StoreBusyError(_busy(1, timeout))
        try:
            generation, conn = self._generation, self._first
            if conn is not None and (
                conn.broken or time.monotonic() - self._first_idle > CHECK_AFTER_IDLE
            ):
                try:
                    psycopg_pool.ConnectionPool.check_connection(conn)
                except psycopg.Error:
                    self._drop(conn)
                    conn = None
            if conn is None:
                conn = self._first = self._connect(deadline)
            return conn, generation
        except BaseException:
            held.release()
            raise

    def _connect(self, deadline: float) -> psycopg.Connection[Any]:
        """A new connection, tried again until ``deadline`` while the server is starting,
        busy, slow, or (once the store has reached it) cannot be reached (as the pool
        would, for a caller waiting on it). A server that refuses it for good fails at once,
        and so does one that cannot be reached before any connection was made: an address
        where nothing answers is a wrong URL far more often than a server about to start."""
        assert self.conninfo is not None
        delay = 0.05
        while True:
            try:
                conn = psycopg.Connection.connect(self.conninfo, **self._first_kwargs)
            except psycopg.Error as exc:
                if self._unpin(exc):
                    continue
                reason, final = self._classify(exc)
                nowhere = not self._reached and unreachable(str(exc))
            else:
                self._reached = True
                return conn
            # Raised out here, neither chained nor in context: psycopg's exception keeps
            # the connection's parameters, password included (its ``pgconn``).
            if final:
                raise _refusal(reason)
            if nowhere:
                raise _nowhere(reason)
            left = deadline - time.monotonic()
            if left <= 0:
                raise _late(reason, self._sizes[2], self._where)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    def _unpin(self, exc: psycopg.Error) -> bool:
        """Whether ``exc`` is PgBouncer refusing the ``options`` srt added alone (the
        search path's pin): then the pin is left off this store's connections, and so
        are psycopg's server-side prepared statements (``prepare_threshold=none``: behind
        PgBouncer before 1.21, or without ``max_prepared_statements``, in transaction
        mode a statement prepared on one server connection is missing on the next one)
        unless the caller gave ``prepare_threshold`` (``AUTO``); try again."""
        if not self._pin_only or UNPINNABLE not in str(exc):
            return False
        self._pin_only = False
        for kwargs in (self._kwargs, self._first_kwargs):
            del kwargs["options"]
            if self._prepare_auto:
                kwargs["prepare_threshold"] = None
        return True

    def _classify(self, exc: psycopg.Error) -> tuple[str, bool]:
        """A failed connection's reason (scrubbed), and whether it is a refusal."""
        reason = self.scrub(" ".join(str(exc).split()))
        return reason, not isinstance(exc, psycopg.OperationalError) or any(
            r in reason for r in REFUSALS
        )

    def attempted(self, exc: psycopg.Error | None) -> None:
        """One of the pool's attempts to connect succeeded, or failed with ``exc`` (in
        the pool's thread)."""
        if exc is None:
            self._reached = True
            self._refused = None
            self._failing = False
            return
        reason, final = self._classify(exc)
        self._last_failure = reason
        self._refused = reason if final else None
        self._failing = True

    def _give_first(self, conn: psycopg.Connection[Any], generation: int) -> None:
        """Back from its user: kept if it is usable (rolled back if a transaction was
        left open), else closed, so the next user makes a new one."""
        try:
            status = conn.info.transaction_status
            if status in (
                psycopg.pq.TransactionStatus.INTRANS,
                psycopg.pq.TransactionStatus.INERROR,
            ):
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
                status = conn.info.transaction_status
            if (
                conn.broken
                or status != psycopg.pq.TransactionStatus.IDLE
                or generation != self._generation
                or self._pid != os.getpid()
            ):
                self._drop(conn)
            self._first_idle = time.monotonic()
        finally:
            self._first_held.release()

    def _drop(self, conn: psycopg.Connection[Any]) -> None:
        if self._first is conn:
            self._first = None
        if self._pid == os.getpid():
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _returned(self, conn: psycopg.Connection[Any]) -> None:
        self._idle_since[conn] = time.monotonic()

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        since = self._idle_since.get(conn)
        if since is None or time.monotonic() - since > CHECK_AFTER_IDLE or conn.broken:
            psycopg_pool.ConnectionPool.check_connection(conn)

    def close(self) -> None:
        with self._guard:
            found, self._pool = self._pool, (None if self._owned else self._given)
            first, self._first = self._first, None
            self._generation += 1  # the first connection, if held now, closes when given back
        if self._pid != os.getpid():
            return
        if first is not None and self._first_held.acquire(blocking=False):
            try:
                with contextlib.suppress(psycopg.Error):
                    first.close()
            finally:
                self._first_held.release()
        if found is not None and self._owned:
            with contextlib.suppress(psycopg.Error, psycopg_pool.PoolTimeout):
                found.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection in autocommit mode (given back, and rolled back, after): the
        first connection if it is free, else one from the pool."""
        if self._owned:
            first = self._take_first()
            if first is not None:
                try:
                    yield first[0]
                finally:
                    self._give_first(*first)
                return
        pool = self.pool()
        with contextlib.ExitStack() as stack:
            conn = self._borrow(pool, stack)
            if conn.autocommit:
                yield conn
                return
            conn.autocommit = True  # a caller's pool: srt runs its own transactions
            try:
                yield conn
            finally:
                if not conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        conn.autocommit = False

    def _borrow(
        self, pool: psycopg_pool.ConnectionPool[Any], stack: contextlib.ExitStack
    ) -> psycopg.Connection[Any]:
        """A connection from ``pool`` (given back when ``stack`` closes), waited for in
        short turns: one the pool could not make because the server refused it fails at
        once, as the first connection does, with the server's reason."""
        deadline = time.monotonic() + pool.timeout
        while True:
            turn = max(0.001, min(REFUSAL_POLL, deadline - time.monotonic()))
            try:
                return stack.enter_context(pool.connection(timeout=turn))
            except psycopg_pool.PoolTimeout as exc:
                refused = self._refused
                if refused is None and time.monotonic() < deadline:
                    continue
                stats = pool.get_stats()
                if (
                    refused is None
                    and not self._failing
                    and stats.get("pool_size", 0) >= pool.max_size
                    and not stats.get("pool_available")
                ):
                    raise StoreBusyError(_busy(pool.max_size + 1, pool.timeout)) from exc
            # Raised out here, not in the PoolTimeout's context.
            if refused is not None:
                raise _refusal(refused)
            raise _late(
                self._last_failure or "no connection was free or could be made",
                pool.timeout,
                self._where,
            )

    def run(
        self,
        action: str,
        fn: Callable[[psycopg.Connection[Any]], T],
        *,
        retry_reads: bool = False,
    ) -> T:
        """``fn(conn)`` on a pooled connection, psycopg's errors translated. A transaction
        that failed as a serialization failure or a deadlock is run again (it left
        nothing behind). With ``retry_reads``, a connection that broke is replaced once
        and ``fn`` run again (only for work that may run twice)."""
        lost = 0
        for attempt in range(RETRIES + 1):
            try:
                with translate(action), self.connection() as conn:
                    return fn(conn)
            except StoreError as exc:
                cause = exc.__cause__
                if isinstance(cause, psycopg.Error):
                    if cause.sqlstate in RETRY_SQLSTATES and attempt < RETRIES:
                        continue
                    if retry_reads and lost == 0 and is_connection_error(cause):
                        lost += 1
                        self.recheck()
                        continue
                raise
        raise AssertionError("unreachable")

    def scrub(self, text: str) -> str:
        """``text`` without any secret of this store's URL."""
        return scrub(text, self._secrets)

    def recheck(self) -> None:
        """Drop the idle connections that the server no longer answers (the first one
        is checked when it is next taken: a broken one is replaced there)."""
        self._first_idle = 0.0
        found = self._pool
        if found is not None:
            with contextlib.suppress(psycopg.Error, psycopg_pool.PoolTimeout):
                found.check()

    # -- SQL -----------------------------------------------------------------------

    def sql(self, text: str) -> str:
        """``text`` with ``{s}`` naming srt's schema (rendered once per text)."""
        found = self._sql.get(text)
        if found is None:
            found = self._sql[text] = sch.render(text, self.schema)
        return found
