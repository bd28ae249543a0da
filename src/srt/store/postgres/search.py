"""Search on PostgreSQL: its full-text search over an expression GIN index of each
message's text (``schema.SEARCH_INDEX_SQL``), built by the first search and kept in step
by PostgreSQL from then on. The build is ``CREATE INDEX CONCURRENTLY``: writers go on
while it runs (it waits for the transactions open on the database to end, and reads the
table twice); the search that started it, and any other search meanwhile, waits for it
(without a lock: ``build_search_index``), so no search reads a half-built index
(PostgreSQL would not use one anyway: without the index a search reads every message,
whole but slow). Both are bounded by the store's ``busy_timeout``: the waiter looks
again until then, and the build, watched from a second connection (``_Watch``), is
cancelled once it has waited that long on end for an older transaction (one left idle
in transaction would hold it forever). A build cut short leaves an invalid
index, which the next build drops and makes again (or the cancelled build at once, if
the table's lock can be had). The index reads the first
``schema.SEARCH_TEXT_CAP`` characters of a message's text: PostgreSQL refuses a tsvector
over 1 MB, which the words of a longer text can make, and that refusal would fail the
index's build and the append of such a message.

A ``syntax=True`` search (``srt search --fts``) reads the query with
``websearch_to_tsquery``: quoted phrases, ``OR``, ``-word`` and ``NOT``, every other
word required. It reads any text without a syntax error, so SQLite FTS5's operators it
does not have would be searched as plain words and match nothing, as if nothing held
the words asked for. ``check_query`` refuses those, saying what to use instead.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ...errors import ConfigError, StoreBusyError, StoreError
from ..base import SEARCH_BATCH_MAX, Hit, check_search
from . import schema as sch
from .errors import translate
from .maintenance import NUL_ESCAPE, index_building, index_state, places_of, snapshot, text_of
from .pool import Database

__all__ = [
    "BUILD_POLL",
    "build_search_index",
    "check_query",
    "drop_search_index",
    "has_search_index",
    "query",
    "search",
    "search_sql",
]

#: PostgreSQL's duplicate_table: the notice of ``IF NOT EXISTS`` skipping the index.
DUPLICATE_TABLE = "42P07"

_HEAD = "PostgreSQL's search (--fts: quoted phrases, OR, -word or NOT) has no "

#: FTS5's operators that websearch_to_tsquery does not know (outside double quotes).
_NEAR = re.compile(r"(?<![\w\"])NEAR\s*\(")
_PREFIX = re.compile(r"\w\*(?=\s|\)|$)")


def check_query(text: str) -> None:
    """``ConfigError`` if ``text`` uses an FTS5 operator PostgreSQL's search lacks."""
    bare = " ".join(text.split('"')[0::2])  # (the parts outside double quotes)
    if _NEAR.search(bare):
        raise ConfigError(
            _HEAD + "NEAR(...): put the words in one quoted phrase, or give each as a word "
            "(all of them are required)"
        )
    if _PREFIX.search(bare):
        raise ConfigError(
            _HEAD + "prefix search (word*): search without --fts (syntax=False), where "
            "word* matches a prefix on both engines"
        )


def has_search_index(db: Database) -> bool:
    """Whether a search would use an index now (a build under way does not count)."""
    return db.run("reading the schema", lambda c: index_state(db, c) is True, retry_reads=True)


#: How long a caller that found another's build of the index under way waits before it
#: looks again.
BUILD_POLL = 0.1


def build_search_index(
    db: Database, *, wait: float, announce: Callable[[int], None] | None = None
) -> int | None:
    """Create the search index unless it is there: the messages indexed, or ``None``.

    No lock: a build under way (``index_building``: PostgreSQL's progress view, seen from
    any connection) is waited for, a look every ``BUILD_POLL`` s in autocommit, so the
    waiter holds no snapshot between looks, then the index is found built; ``wait``
    seconds at most (the store's ``busy_timeout``), then ``StoreBusyError`` (retryable:
    the build goes on, and a search once it has ended finds the index). A session
    advisory lock did this before: a waiter blocked on it held a snapshot, which the
    build (``CREATE INDEX CONCURRENTLY``) waits for, so two first searches at once
    deadlocked (one got ``StoreBusyError`` after 19 s); and behind PgBouncer in
    transaction mode the lock was taken on one server connection and released on another,
    left held (the next build's waiter would block forever) and serializing nothing. Two
    callers that start a build at the same instant: PostgreSQL lets one create it (the
    other's ``IF NOT EXISTS`` skips it, or its catalog insert is refused), and the other
    waits for it like any waiter."""

    def build(conn: psycopg.Connection[Any]) -> int | None:
        deadline = time.monotonic() + wait
        while True:
            found = index_state(db, conn)
            if found:
                return None
            if index_building(db, conn):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _still_building(db, wait)
                time.sleep(min(BUILD_POLL, left))
                continue
            if found is False:  # left invalid by a build cut short: built again
                if index_state(db, conn) is False and not _drop_invalid(db, conn, wait):
                    raise _undroppable(db, wait)
                continue
            row = conn.execute(db.sql("SELECT count(*) FROM {s}.messages")).fetchone()
            count = int(row[0]) if row else 0
            if announce is not None:
                announce(count)
            if _create_index(db, conn, wait):
                return count

    return db.run("building the search index", build)


def _still_building(db: Database, wait: float) -> StoreBusyError:
    return StoreBusyError(
        f"building the search index: another connection's build of it (CREATE INDEX "
        f"CONCURRENTLY on {db.schema}.messages) was still under way after {wait:g} s (the "
        "store's busy_timeout); nothing was changed: retry once that build has ended"
    )


#: The build of srt's search index while it waits for other transactions to end (a
#: ``CREATE INDEX CONCURRENTLY`` waits for every writer of the table, then for every
#: transaction older than its snapshots): its backend, phase, the backend it waits for,
#: that one's state and its transaction's age (NULL where the role may not see them).
_WAITING = (
    "SELECT p.pid, p.phase, p.current_locker_pid, a.state, "
    "extract(epoch FROM now() - a.xact_start)::float8 "
    "FROM pg_stat_progress_create_index p "
    "LEFT JOIN pg_stat_activity a ON a.pid = p.current_locker_pid "
    "WHERE p.index_relid = to_regclass(%s) AND p.phase LIKE 'waiting for%%'"
)
#: Cancel that build if it still waits (one statement: a build that moved on meanwhile,
#: or ended and left its server connection to another client, is not touched).
_CANCEL = (
    "SELECT pg_cancel_backend(p.pid) FROM pg_stat_progress_create_index p "
    "WHERE p.pid = %s AND p.index_relid = to_regclass(%s) AND p.phase LIKE 'waiting for%%'"
)
#: How long the invalid index a cancelled build leaves is waited for to be dropped
#: (a ``DROP INDEX`` queues behind the old transaction's lock on the table, if it has
#: one): if it cannot be, the next build drops it.
CLEANUP_WAIT = 1.0


class _Watch:
    """On a second connection, a look every ``BUILD_POLL`` s at this store's build of the
    search index; once it has waited for other transactions for ``wait`` s on end, the
    build is cancelled and what it waited for kept (``stuck``). Through PostgreSQL's
    progress view and ``pg_cancel_backend``, so it needs no session setting (a
    ``lock_timeout`` would reach other clients behind PgBouncer in transaction mode, and
    ``CREATE INDEX CONCURRENTLY`` cannot run in a transaction to ``SET LOCAL`` one). With
    no second connection to be had (``pool_max=1``) the build is not watched."""

    def __init__(self, db: Database, wait: float) -> None:
        self.db, self.wait = db, wait
        self.index = f'"{db.schema}".{sch.SEARCH_INDEX}'
        self.stuck: tuple[Any, ...] | None = None
        self._done = threading.Event()
        self._polling = threading.Event()
        self._thread = threading.Thread(target=self._run, name="srt-index-watch", daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._polling.is_set():  # (one still waiting for a connection ends once it
            # has one or gave up, without a look: not waited for; one whose look the
            # server does not answer is left behind, a daemon, after the store's wait)
            self._thread.join(max(self.wait, 1.0))

    def _run(self) -> None:
        with (
            contextlib.suppress(StoreError, psycopg.Error),
            translate("watching the search index's build"),
            self.db.connection() as c,
        ):
            self._polling.set()
            since: float | None = None
            while not self._done.wait(BUILD_POLL):
                row = c.execute(_WAITING, (self.index,)).fetchone()
                now = time.monotonic()
                if row is None:
                    since = None
                elif since is None:
                    since = now
                elif now - since >= self.wait:
                    if c.execute(_CANCEL, (row[0], self.index)).fetchone():
                        self.stuck = tuple(row)
                        return
                    since = None  # (it had just moved on)


def _create_index(db: Database, conn: psycopg.Connection[Any], wait: float) -> bool:
    """``CREATE INDEX CONCURRENTLY IF NOT EXISTS``: whether this call built the index
    (not if another build's made it first: skipped, or its catalog row refused).
    ``StoreBusyError`` if it waited ``wait`` s on end for older transactions (``_Watch``):
    cancelled, its invalid index dropped, nothing left changed."""
    skipped: list[str] = []

    def notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.sqlstate == DUPLICATE_TABLE:  # "... already exists, skipping"
            skipped.append(diag.sqlstate)

    conn.add_notice_handler(notice)
    try:
        with _Watch(db, wait) as watch:
            conn.execute(db.sql(sch.SEARCH_INDEX_SQL))
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
        return False
    except psycopg.errors.QueryCanceled:
        if watch.stuck is None:
            raise
        _drop_invalid(db, conn, CLEANUP_WAIT)
        raise _stuck(db, wait, watch.stuck) from None
    finally:
        conn.remove_notice_handler(notice)
    return not skipped


def _stuck(db: Database, wait: float, row: tuple[Any, ...]) -> StoreBusyError:
    _pid, phase, locker, state, age = row
    who = "another transaction"
    if locker:
        seen = [str(state)] if state else []
        seen += [f"open for {age:.0f} s"] if age is not None else []
        who = f"the transaction of backend pid {locker}"
        who += f" ({', '.join(seen)})" if seen else ""
    return StoreBusyError(
        f"building the search index: its CREATE INDEX CONCURRENTLY on {db.schema}.messages "
        f"waited {wait:g} s (the store's busy_timeout) for {who} to end ({phase}: the build "
        "waits for every transaction older than it); the build was cancelled and nothing "
        "was changed: end that transaction (pg_stat_activity shows it), then retry"
    )


def _drop_invalid(db: Database, conn: psycopg.Connection[Any], wait: float) -> bool:
    """Drop the search index (one a build left invalid), waiting ``wait`` s at most for
    the lock on the table (a transaction-local ``lock_timeout``: nothing reaches other
    clients behind a pooler); whether it was dropped."""
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {max(1, round(wait * 1000))}")
            conn.execute(db.sql(sch.SEARCH_DROP_SQL))
    except psycopg.errors.LockNotAvailable:
        return False
    return True


def _undroppable(db: Database, wait: float) -> StoreBusyError:
    return StoreBusyError(
        f"building the search index: the invalid index a build cut short left on "
        f"{db.schema}.messages could not be dropped in {wait:g} s (the store's "
        "busy_timeout): an older transaction holds a lock on the table; nothing was "
        "changed: end that transaction (pg_stat_activity shows it), then retry"
    )


def drop_search_index(db: Database) -> bool:
    def drop(conn: psycopg.Connection[Any]) -> bool:
        had = index_state(db, conn) is not None
        conn.execute(db.sql(sch.SEARCH_DROP_SQL))
        return had

    return db.run("dropping the search index", drop)


def _tsquery(text: str) -> tuple[str, list[str]]:
    """SQL for a tsquery matching every word of ``text`` (``word*``: a prefix), and
    its parameters. Each word is a bound parameter, so nothing in it is syntax."""
    parts: list[str] = []
    args: list[str] = []
    for word in text.split():
        if word.endswith("*") and len(word) > 1:
            # a quoted lexeme with a prefix mark; the quotes make anything inside it text
            core = word[:-1].replace("\\", "\\\\").replace("'", "''")
            parts.append(f"to_tsquery('{sch.SEARCH_CONFIG}', %s)")
            args.append(f"'{core}':*")
        else:
            parts.append(f"plainto_tsquery('{sch.SEARCH_CONFIG}', %s)")
            args.append(word)
    if not parts:
        raise ConfigError("the search text is empty")
    return " && ".join(parts), args


def _websearch(text: str) -> str:
    """``text`` for ``websearch_to_tsquery``, with FTS5's ``AND``, ``OR`` and ``NOT``
    read as FTS5 reads them. That is as far as the two syntaxes meet: FTS5's ``NEAR(...)``
    and ``word*`` are refused before (``check_query``), and its parentheses do not group
    here (``websearch_to_tsquery`` drops them: ``(a OR b) c`` is ``a OR (b c)``), nor does
    ``column:word`` name a column, so an ``--fts`` query may mean other things on the two
    engines."""
    out = []
    negate = False
    for word in text.split():
        if word == "AND":
            continue
        if word == "NOT":
            negate = True
            continue
        out.append(("-" if negate else "") + ("or" if word == "OR" else word))
        negate = False
    return " ".join(out)


def query(text: str, syntax: bool) -> tuple[str, list[str]]:
    """SQL for the tsquery of ``text`` (``syntax``: a ``websearch_to_tsquery`` query),
    and its parameters."""
    if syntax:
        return f"websearch_to_tsquery('{sch.SEARCH_CONFIG}', %s)", [_websearch(text)]
    return _tsquery(text)


def search_sql(db: Database, tsquery: str) -> str:
    """The messages matching ``tsquery`` (SQL from ``query``, its parameters first, then
    the limit and the offset), best first. The match is on the index's own expression
    (``schema.SEARCH_VECTOR``, of ``messages.body``), so the index serves it."""
    vec = sch.SEARCH_VECTOR
    return db.sql(
        f"SELECT m.id, {{s}}.message_role(m.body), {{s}}.message_text(m.body), "
        f"CASE WHEN position({NUL_ESCAPE} IN m.body) > 0 THEN m.body END "
        f"FROM {{s}}.messages m, (SELECT {tsquery}) AS q(q) WHERE {vec} @@ q.q "
        f"ORDER BY ts_rank({vec}, q.q) DESC, m.id LIMIT %s OFFSET %s"
    )


def search(
    db: Database,
    text: str,
    *,
    limit: int = 20,
    syntax: bool = False,
    announce: Callable[[int], None] | None = None,
    wait: float,
) -> list[Hit]:
    """Messages some session uses whose text matches, best match first. ``syntax``:
    ``text`` is a ``websearch_to_tsquery`` query (quotes, ``or``, ``-word``). The index
    reads the first ``schema.SEARCH_TEXT_CAP`` characters of each message's text: a
    word only past them is not found. ``wait``: as ``build_search_index``'s."""
    if syntax and isinstance(text, str):
        check_query(text)  # (FTS5's operators PostgreSQL lacks: before any work)
    check_search(text, limit)
    if not text.strip():
        raise ConfigError("the search text is empty")
    tsquery, qargs = query(text, syntax)
    build_search_index(db, wait=wait, announce=announce)
    sql = search_sql(db, tsquery)
    users_sql = db.sql("SELECT id, message FROM {s}.nodes WHERE message = ANY(%s)")

    def find(conn: psycopg.Connection[Any]) -> list[Hit]:
        hits: list[Hit] = []
        batch, offset = max(min(limit, SEARCH_BATCH_MAX), 50), 0
        with snapshot(conn):
            while len(hits) < limit:
                found = conn.execute(sql, [*qargs, batch, offset]).fetchall()
                if not found:
                    break
                offset += len(found)
                users = conn.execute(users_sql, ([r[0] for r in found],)).fetchall()
                reach = places_of(db, conn, [n for n, _ in users])
                for mid, role, body_text, body in found:
                    places = sorted({p for n, m in users if m == mid for p in reach[n]})
                    if places:
                        hits.append(Hit(mid, str(role), text_of(body, body_text), tuple(places)))
                        if len(hits) == limit:
                            break
        return hits

    return db.run("searching", find, retry_reads=True)
