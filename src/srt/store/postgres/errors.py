"""The one place where psycopg's exceptions become srt's.

``translate(action)`` wraps every use of a connection. Messages carry the action, the
SQLSTATE and the server's primary message only: never the DETAIL (which can quote a
row, i.e. message text), never the connection string (which can hold a password).

* srt's own SQLSTATEs from the server-side append: ``ConflictError``,
  ``CorruptionError``, ``SessionNotFoundError``;
* a write naming a node or message that is not stored (a foreign key: gc deleted it
  after the write checked it, ``gc``): ``ConflictError`` (``GONE``), nothing written;
* a connection that broke or could not be made (server restart, ``pg_terminate_backend``,
  a network cut, the pool out of connections past its timeout): ``StoreUnavailableError``,
  retryable; the pool replaces the broken connection on the next borrow;
* serialization failures, deadlocks, lock and statement timeouts: ``StoreBusyError``
  (the store retries the first two itself, see ``RETRY_SQLSTATES``);
* data or index corruption reported by the server, or a schema that is not srt's:
  ``CorruptionError``;
* a prepared statement missing or already there (psycopg's, behind PgBouncer in
  transaction mode without ``prepare_threshold=none``): ``ConfigError`` naming both;
* input PostgreSQL cannot hold (an index entry over its size limit, U+0000 in a
  ``text`` value): ``ConfigError``, nothing written; a privilege the role lacks: a
  ``StoreError`` naming what it needs; anything else: ``StoreError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import psycopg_pool
from psycopg import errors as pge

from ...errors import (
    ConfigError,
    ConflictError,
    CorruptionError,
    SessionNotFoundError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
)
from .schema import SQLSTATE_CONFLICT, SQLSTATE_CORRUPT, SQLSTATE_NO_SESSION

__all__ = [
    "GONE",
    "HEAD_MOVED",
    "RETRY_SQLSTATES",
    "is_connection_error",
    "translate",
    "unreachable",
]

#: Failures after which the whole transaction was rolled back and may simply be run
#: again: serialization_failure, deadlock_detected.
RETRY_SQLSTATES = frozenset({"40001", "40P01"})
#: Server states that mean this connection is gone or the server is going away:
#: admin_shutdown, crash_shutdown, cannot_connect_now, idle_session_timeout,
#: connection exceptions (class 08).
_GONE = frozenset({"57P01", "57P02", "57P03", "57P05"})
#: The server's own reports of damage, and srt SQL meeting a schema that is not srt's.
_DAMAGE = (
    pge.DataCorrupted,
    pge.IndexCorrupted,
    pge.UndefinedTable,
    pge.UndefinedColumn,
    pge.UndefinedFunction,
)
#: What a refused compare-and-swap of the head says.
HEAD_MOVED = (
    "the session head moved since this handle last saw it (a concurrent append); "
    "nothing was written: refresh() and retry, or pass rebase=True"
)

#: What a write naming a node or message that is not stored (any more) is told.
GONE = (
    "a node or message it refers to is not stored (collected by gc?); nothing was "
    "written: refresh() and retry"
)


#: What a statement prepared on a server connection a pooler gave to another client is told.
PREPARED = (
    "a server-side prepared statement was missing or already there: the connection goes "
    "through a pooler that shares server connections (PgBouncer in transaction mode); "
    "add prepare_threshold=none to the URL; the statement failed"
)


#: What libpq says when nothing answered at an address: nothing listens on the port, no
#: socket in the directory, a host name that does not resolve or a ``hostaddr`` that is
#: no address. (Not a timeout, nor a name server that did not answer: those may pass.)
_NOTHING_THERE = (
    "Connection refused",
    "No such file or directory",
    "could not translate host name",
    "could not parse network address",
)
#: ... unless the resolver said it might work later.
_MAY_PASS = ("Temporary failure", "try again")
#: How libpq (16+) lists the attempts of a URL naming several hosts.
_ALL_FAILURES = "All failures were:"


def unreachable(message: str) -> bool:
    """Whether a failed connection's ``message`` (libpq's, as psycopg gives it) says that
    no server could be reached at any of the addresses it tried, rather than a server that
    answered and refused, or one that is starting up, busy or slow."""
    attempts = [message]
    if _ALL_FAILURES in message:
        attempts = message.split(_ALL_FAILURES, 1)[1].split("\n- ")[1:] or attempts
    return all(
        any(m in text for m in _NOTHING_THERE) and not any(m in text for m in _MAY_PASS)
        for text in attempts
    )


def _primary(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    text = diag.message_primary if diag is not None else None
    if not text:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (not the statement) failed."""
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.InterfaceError):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state in _GONE or state.startswith("08")
    return False


@contextlib.contextmanager
def translate(action: str) -> Iterator[None]:
    """Map any psycopg or pool exception raised inside the block to the srt tree."""
    try:
        yield
    except psycopg_pool.PoolTimeout as exc:
        raise StoreUnavailableError(
            f"{action}: no database connection became available in time (the server is "
            "down or unreachable, or every pooled connection is busy); retry later"
        ) from exc
    except psycopg.Error as exc:
        raise convert(exc, action) from exc


def convert(exc: psycopg.Error, action: str) -> Exception:
    """The srt exception for a psycopg one (not raised, so callers can chain it)."""
    state = exc.sqlstate
    if state == SQLSTATE_CONFLICT:
        text = _primary(exc)
        return ConflictError(HEAD_MOVED if text == "the session head moved" else text)
    if state == SQLSTATE_NO_SESSION:
        return SessionNotFoundError("the session was deleted")
    if state == SQLSTATE_CORRUPT:
        return CorruptionError(_primary(exc))
    if isinstance(exc, pge.ForeignKeyViolation):
        return ConflictError(f"{action}: {GONE}")
    if is_connection_error(exc):
        return StoreUnavailableError(
            f"{action}: the database connection failed ({state or 'no SQLSTATE'}: "
            f"{_primary(exc)}); the pool reconnects, retry the operation"
        )
    if isinstance(exc, pge.InvalidSqlStatementName | pge.DuplicatePreparedStatement):
        # srt prepares nothing by name: psycopg's prepared statements, on a server
        # connection that a pooler swapped under this client connection
        return ConfigError(f"{action}: {type(exc).__name__} ({state}): {PREPARED}")
    if isinstance(exc, pge.ProgramLimitExceeded):
        return ConfigError(
            f"{action}: a value is too large for PostgreSQL ({_primary(exc)}); nothing was written"
        )
    if isinstance(exc, psycopg.DataError) and state is None and "NUL" in str(exc):
        return ConfigError(
            f"{action}: PostgreSQL text cannot hold the character U+0000 (NUL); nothing was written"
        )
    where = f"{action}: {type(exc).__name__} ({state}): {_primary(exc)}"
    if state in RETRY_SQLSTATES or isinstance(
        exc, pge.LockNotAvailable | pge.QueryCanceled | pge.TooManyConnections
    ):
        return StoreBusyError(where)
    if isinstance(exc, pge.InsufficientPrivilege):
        return StoreError(
            f"{where}; the role needs USAGE on srt's schema and SELECT, INSERT, UPDATE, "
            "DELETE on its tables (README.md, On PostgreSQL: privileges)"
        )
    if isinstance(exc, _DAMAGE):
        return CorruptionError(f"{where}; the store's schema or data is damaged, run srt verify")
    return StoreError(where)
