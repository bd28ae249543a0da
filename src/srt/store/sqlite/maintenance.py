"""Keeping an srt file tidy: gc, vacuum, checkpoint and search (``verify`` and the
views behind ``srt ls`` and ``srt show --tree`` are modules of their own).

Each job runs on a connection of its own (``Database.job``, closed afterwards), so its
pragmas never leak into the connections the store lends to sessions. Writers take the store's
in-process writer lock, then ``BEGIN IMMEDIATE``; other processes wait on SQLite's
busy timeout. Readers run in one read transaction, so they see one snapshot.

**Garbage collection** (``gc``) is mark and sweep. It first removes the objects past
their ``expires`` time, and those filed under a session id no session has
(``store.owners``). The live nodes are every node on the chain of some session
head or of some object's node (one pass over the nodes, newest first: ``_mark``).
Every other node is swept, then every message that no remaining node uses. The usage
ledger is never deleted: a ledger row whose node was swept keeps all its figures and
its session name, and its ``node`` becomes NULL. Forks share nodes with their origin, so deleting
a session never harms its forks: what they reach is live. With ``PRAGMA secure_delete=ON``
(by default) freed cells and pages are zeroed; then the search index (if the file has
one) is merged (``gc.clean_index``: a deleted row's terms leave the index only when its
segments are rewritten; in steps, each a short write transaction, so writers go on
between them) and the WAL checkpointed with TRUNCATE, so the text of swept messages is
left neither in the file nor in ``-wal``.

The collection runs in batches (``gc.py``): the mark in a read snapshot, without the
write lock, then about a thousand nodes at a time, each batch a short write transaction
that re-checks its nodes against what was written since the mark (new nodes below
them or naming their bodies, heads and objects moved onto them). A dry run, a file
whose node ids are not in parent-before-child order and a file another process
collects meanwhile (every gc counts the gc epoch in ``srt_meta``; a batch that finds it
moved stops) are collected in one transaction (``gc_once.py``).

**Verify** re-derives every message hash from its body, every node's depth and
prefix hash from its parent and message, checks that session heads and ledger nodes
exist, that the search index (if the file has one) holds exactly the stored messages
and still has its triggers, and runs ``PRAGMA integrity_check`` and
``PRAGMA foreign_key_check``. A fault names the table, the row and the sessions (and
positions) that reach it.

**Search** runs on a full-text index that no migration creates: a file that has
never been searched carries none, so appends do not pay for it. The first search
builds it (``build_search_index``: the FTS5 table and its triggers, filled from every
stored message, in one ``BEGIN IMMEDIATE`` transaction under the writer lock); from
then on the triggers keep it in step with every append and every gc, whoever writes.
``drop_search_index`` removes it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from array import array
from collections.abc import Callable, Sequence
from typing import NamedTuple

import apsw

from ...errors import ConfigError, StoreError
from ..base import SEARCH_BATCH_MAX, GcReport, Hit, VacuumReport, check_search
from . import gc as batched
from . import gc_once, writes
from . import queries as q
from . import schema as db_module
from .database import Database
from .db import translate
from .queries import ROLE, TEXT

__all__ = [
    "build_search_index",
    "check_fts_query",
    "checkpoint",
    "drop_search_index",
    "fts_query",
    "gc",
    "has_search_index",
    "search",
    "vacuum",
]


# -- gc ---------------------------------------------------------------------------------


def gc(
    db: Database,
    *,
    secure_delete: bool = True,
    dry_run: bool = False,
    watch: Sequence[bytes] = (),
) -> GcReport:
    """Sweep expired objects, the nodes no session or object reaches and the messages
    no node uses (see the module docstring). ``dry_run`` counts what would go and
    writes nothing (one transaction, rolled back). Of the prefix hashes in ``watch``,
    those no live node carries are reported (``dead_prefixes``).

    The collection runs in batches (``gc.py``: the mark without the lock, then short
    write transactions); a file whose node ids are not in parent-before-child order,
    or one another process collects meanwhile, is collected in one transaction."""
    pragmas = [
        writes.secure_delete(secure_delete),
        # The sweep keeps the references intact itself (the live set is closed under
        # parents) and proves it with foreign_key_check; per-row checks would scan
        # nodes once per deleted row (nodes.parent has no index).
        "PRAGMA foreign_keys=OFF",
        "PRAGMA temp_store=MEMORY",
        # 64 MiB of page cache for this job's connection (closed afterwards): deleting
        # nodes updates their two hash indexes at random places (0.62 -> 0.23 s for
        # 100,000 nodes of 1,000,000 with the default 2 MiB).
        "PRAGMA cache_size=-65536",
        # No auto-checkpoint in a commit of this connection, under the writer lock:
        # each batch checkpoints its pages after its commit (``gc.passive_checkpoint``),
        # and ``checkpoint`` at the end.
        "PRAGMA wal_autocheckpoint=0",
    ]
    action = "collecting garbage"
    if dry_run:
        with db.job(action, pragmas) as conn, translate(action), db.lock:
            report = gc_once.once(conn, secure_delete, True, watch)
        return report
    with batched.gc_lock(db), db.job(action, pragmas) as conn, translate(action):
        with q.snapshot(conn, action):  # a damaged file: nothing changed
            gc_once.broken(conn, "gc stopped and changed nothing")
        with db.lock:
            first = _expire(conn)
        s = batched.mark(conn, first.has_objects)
        if s is not None and batched.sweep(db, conn, s):
            report = _finish(conn, first, s, secure_delete, watch)
        else:
            with db.lock:
                report = gc_once.once(conn, secure_delete, False, watch)
            report = _add(report, first, s)
        if report.messages or first.index_pending:
            batched.clean_index(db, conn)
        with db.lock:  # (the index holds no deleted message's words now)
            # Only this gc's own marker: another process's gc that set it since is
            # still to clean the index (a crash, and the next gc does it).
            conn.execute(
                "DELETE FROM srt_meta WHERE key = ? AND (value = ? OR ? IS NULL)",
                (gc_once.INDEX_PENDING_KEY, first.index_token, first.index_token),
            )
    return dataclasses.replace(report, checkpointed=checkpoint(db, action))


class _First(NamedTuple):
    """What gc's first transaction did and found."""

    page_size: int
    free_before: int
    objects: int
    orphans: int
    has_objects: bool
    #: an earlier gc stopped before its search index cleanup ended
    index_pending: bool
    #: the value of the marker this gc set (``None``: the file has no search index)
    index_token: bytes | None


def _expire(conn: apsw.Connection) -> _First:
    """The batched gc's first transaction (under the lock): expired and orphaned
    objects go, and what the ledger holds of nodes or sessions already gone."""
    page_size = gc_once.count(conn, "PRAGMA page_size")
    conn.execute("BEGIN IMMEDIATE")
    try:
        free_before = gc_once.count(conn, "PRAGMA freelist_count")
        objects, orphans, has_objects = gc_once.drop_objects(conn)
        conn.execute(
            "UPDATE calls SET node = NULL, params = NULL WHERE node IS NOT NULL AND "
            "NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = calls.node)"
        )
        conn.execute(gc_once.FORGET_ERRORS)
        key = gc_once.INDEX_PENDING_KEY
        pending = conn.execute("SELECT 1 FROM srt_meta WHERE key = ?", (key,)).fetchone()
        token = None
        if db_module.has_search_index(conn):  # (before any message goes: see the key)
            token = os.urandom(8)
            conn.execute("INSERT OR REPLACE INTO srt_meta(key, value) VALUES (?, ?)", (key, token))
    except BaseException:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return _First(page_size, free_before, objects, orphans, has_objects, pending is not None, token)


def _finish(
    conn: apsw.Connection,
    first: _First,
    s: batched.Sweep,
    secure_delete: bool,
    watch: Sequence[bytes],
) -> GcReport:
    """The batched gc's report, read in one snapshot after the last batch, which also
    proves the references whole (``foreign_key_check``)."""
    with q.snapshot(conn, "collecting garbage"):
        gc_once.broken(conn, "gc collected in batches, and then found")
        free_after = gc_once.count(conn, "PRAGMA freelist_count")
        dead = tuple(p for p in watch if not gc_once.live_prefix(conn, p))
    return GcReport(
        nodes=s.nodes,
        messages=s.messages,
        message_bytes=s.message_bytes,
        ledger_rows=s.ledger_rows,
        pages_freed=max(0, free_after - first.free_before),
        free_pages=free_after,
        page_size=first.page_size,
        secure_delete=secure_delete,
        checkpointed=False,
        dry_run=False,
        objects=first.objects,
        orphan_objects=first.orphans,
        dead_prefixes=dead,
    )


def _add(report: GcReport, first: _First, s: batched.Sweep | None) -> GcReport:
    """``report`` (the one-transaction gc after the first transaction and, maybe, some
    batches) with what those did counted in."""
    done = s if s is not None else batched.Sweep({}, array("q"), array("q"), {}, 0, None)
    return dataclasses.replace(
        report,
        nodes=report.nodes + done.nodes,
        messages=report.messages + done.messages,
        message_bytes=report.message_bytes + done.message_bytes,
        ledger_rows=report.ledger_rows + done.ledger_rows,
        pages_freed=max(0, report.free_pages - first.free_before),
        objects=report.objects + first.objects,
        orphan_objects=report.orphan_objects + first.orphans,
    )


def checkpoint(db: Database, action: str, wait_ms: int = 2000) -> bool:
    """Copy the WAL into the file and truncate it; False if readers kept it busy.

    First ``PASSIVE``, which copies while writers go on, then ``TRUNCATE``, which
    blocks new writers while it runs (and while it waits for readers): it then has
    little left to copy."""
    with db.job(action) as conn, translate(action):
        batched.passive_checkpoint(conn)
        conn.set_busy_timeout(wait_ms)
        busy, _log, _done = q.rows(conn, "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy


# -- vacuum -----------------------------------------------------------------------------


def _file_bytes(path: str) -> int:
    total = 0
    for p in (path, path + "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += os.path.getsize(p)
    return total


def vacuum(db: Database) -> VacuumReport:
    """Rebuild the file without its free pages (``VACUUM``), then truncate the WAL."""
    action = "vacuuming the database"
    before = _file_bytes(db.path)
    with db.job(action) as conn, translate(action), db.lock:
        conn.execute("VACUUM")
    checkpointed = checkpoint(db, action)
    return VacuumReport(before, _file_bytes(db.path), checkpointed)


# -- search -----------------------------------------------------------------------------


def has_search_index(db: Database) -> bool:
    """Whether the file carries the search index (built by the first search)."""
    action = "reading the schema"
    with db.job(action) as conn, translate(action):
        return db_module.has_search_index(conn)


def build_search_index(
    db: Database, *, announce: Callable[[int], None] | None = None
) -> int | None:
    """Create the search index and fill it from every stored message, unless the file
    has it already; ``search`` does this first. Returns the number of messages indexed,
    or ``None`` if the index was there (another search, maybe in another process,
    built it). ``announce`` is called with that number before the work starts.

    It is one ``BEGIN IMMEDIATE`` transaction under the writer lock, so other writers
    wait for it (up to the busy timeout), a concurrent first search finds the index
    built and does nothing, and a failure (a read-only file, a full disk) leaves the
    file as it was.
    """
    action = "building the search index"
    with db.job(action) as conn:
        return _build_search_index(conn, db.lock, action, announce)


def _build_search_index(
    conn: apsw.Connection,
    lock: threading.Lock,
    action: str,
    announce: Callable[[int], None] | None,
) -> int | None:
    with translate(action):
        if db_module.has_search_index(conn):
            return None
        try:
            with lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if db_module.has_search_index(conn):  # built by another connection meanwhile
                        conn.execute("ROLLBACK")
                        return None
                    count = gc_once.count(conn, "SELECT count(DISTINCT at) FROM nodes")
                    if announce is not None:
                        announce(count)
                    conn.execute(db_module.SEARCH_INDEX_SQL)
                    conn.execute(db_module.SEARCH_FILL_SQL)
                except BaseException:
                    if not conn.get_autocommit():
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except apsw.ReadOnlyError as exc:
            raise StoreError(
                f"{action}: the database has no search index yet, and it cannot be built "
                f"because the database is read-only ({type(exc).__name__}: {exc})"
            ) from exc
    return count


def drop_search_index(db: Database) -> bool:
    """Remove the search index and its triggers; False if the file had none. Its pages
    go to the file's free list (reused by later writes; ``vacuum`` returns them)."""
    action = "dropping the search index"
    with db.job(action) as conn, translate(action), db.lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            had = db_module.has_search_index(conn)
            conn.execute(db_module.SEARCH_DROP_SQL)
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return had


def fts_query(text: str) -> str:
    """``text`` as an FTS5 query matching messages with every word in it.

    Each whitespace-separated word is quoted, so punctuation and FTS5 operators are
    searched for literally; a word ending in ``*`` matches as a prefix.
    """
    terms = []
    for word in text.split():
        star = word.endswith("*") and len(word) > 1
        core = word[:-1] if star else word
        terms.append('"' + core.replace('"', '""') + '"' + ("*" if star else ""))
    if not terms:
        raise ConfigError("the search text is empty")
    return " ".join(terms)


def check_fts_query(query: str) -> None:
    """``ConfigError`` unless ``query`` is a valid FTS5 query over the search index's
    one column. FTS5 parses the query on an empty table of its own in memory, so every
    error is the query's own, never the file's; the message says what is wrong with it."""
    conn = apsw.Connection(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE q USING fts5(text)")
        conn.execute("SELECT rowid FROM q WHERE q MATCH ?", (query,)).fetchall()
    except apsw.SQLError as exc:
        raise ConfigError(_query_fault(str(exc))) from None
    finally:
        conn.close()


def _query_fault(error: str) -> str:
    """What is wrong with an FTS5 query, from the error FTS5 gave for it."""
    head = "the search text is not a valid FTS5 query"
    hint = "; put a word in double quotes to search for it as written"
    if error.startswith("unterminated string"):
        return f'{head}: a double quote (") is never closed{hint}'
    if error.startswith("no such column: "):
        column = error.removeprefix("no such column: ")
        return (
            f"{head}: {column}:… or -{column} filters on a column {column!r}, "
            f"and the index has one column, 'text'{hint}"
        )
    if error.startswith("unknown special query"):
        return f"{head}: it starts with '*', which FTS5 keeps for commands{hint}"
    near = error.removeprefix("fts5: syntax error near ")
    if near == '""':
        return f"{head}: it ends too soon, where a word or a closing bracket is missing{hint}"
    if near != error:
        return (
            f"{head}: {near} is out of place (AND, OR and NOT need a word on each side, "
            f"and brackets must match){hint}"
        )
    return f"{head} ({error}){hint}"


def search(
    db: Database,
    text: str,
    *,
    limit: int = 20,
    syntax: bool = False,
    announce: Callable[[int], None] | None = None,
) -> list[Hit]:
    """Messages that some session uses and whose text matches, best match first.

    ``text`` is words to find (see ``fts_query``), or with ``syntax`` an FTS5 query.
    The first search of a file builds the index (``build_search_index``, which calls
    ``announce`` with the number of messages it is about to index).
    """
    check_search(text, limit)
    query = text if syntax else fts_query(text)
    if not query.strip():
        raise ConfigError("the search text is empty")
    if syntax:
        check_fts_query(query)
    action = "searching"
    with db.job(action) as conn:
        _build_search_index(conn, db.lock, "building the search index", announce)
        with q.snapshot(conn, action):
            hits = _search(conn, query, limit)
    return hits


def _search(conn: apsw.Connection, query: str, limit: int) -> list[Hit]:
    hits: list[Hit] = []
    batch = max(min(limit, SEARCH_BATCH_MAX), 50)
    offset = 0
    while len(hits) < limit:
        ids = [
            r[0]
            for r in q.rows(
                conn,
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? "
                "ORDER BY rank LIMIT ? OFFSET ?",
                (query, batch, offset),
            )
        ]
        if not ids:
            break
        offset += len(ids)
        marks = q.marks(len(ids))
        users = q.rows(
            conn, f"SELECT id, at FROM nodes WHERE at IN ({marks}) ORDER BY id", ids
        ).fetchall()
        owners: dict[int, int] = {}
        for nid, at in users:
            owners.setdefault(at, nid)
        rows = {
            mid: (role, body_text)
            for mid, role, body_text in q.rows(
                conn,
                f"SELECT b.at, {ROLE}, {TEXT} FROM (SELECT n.at AS at, {q.body('n')} AS body "
                f"FROM nodes n WHERE n.id IN ({q.marks(len(owners))}) LIMIT -1) b",
                list(owners.values()),
            )
        }
        reach = q.places(conn, [n for n, _ in users])
        for mid in ids:
            places = sorted({p for n, m in users if m == mid for p in reach[n]})
            if places and mid in rows:
                role, body_text = rows[mid]
                hits.append(Hit(mid, str(role), str(body_text), tuple(places)))
                if len(hits) == limit:
                    break
    return hits
