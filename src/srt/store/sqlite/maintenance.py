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
a session never harms its forks: what they reach is live. The sweep runs in one
transaction with ``PRAGMA secure_delete=ON`` (by default), so freed cells and pages
are zeroed, then merges the search index if the file has one (``optimize``: a deleted
row's terms leave the index only when its segments are rewritten) and checkpoints the
WAL with TRUNCATE, so the text of swept messages is left neither in the file nor in
``-wal``.

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

import bisect
import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence

import apsw

from ... import _core
from ...errors import ConfigError, CorruptionError, StoreError
from .. import owners
from ..base import SEARCH_BATCH_MAX, GcReport, Hit, VacuumReport, check_search
from . import heap as heap_module
from . import queries as q
from . import schema as db_module
from . import writes
from .database import Database
from .db import translate
from .queries import ROLE, TEXT
from .statements import orphan_ids

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


#: The error text of ledger rows whose session is deleted (``gc``).
_FORGET_ERRORS = (
    "UPDATE calls SET error = NULL WHERE error IS NOT NULL AND session IS NOT NULL "
    "AND session NOT IN (SELECT id FROM sessions)"
)

_LIVE = """
INSERT INTO temp.srt_gc_live(id)
WITH RECURSIVE live(id) AS (
    SELECT head FROM sessions WHERE head IS NOT NULL
    UNION{objects}
    SELECT n.parent FROM nodes n JOIN live ON n.id = live.id WHERE n.parent IS NOT NULL
)
SELECT id FROM live
"""
_OBJECT_ROOTS = """
    SELECT node FROM objects WHERE node IS NOT NULL
    UNION"""
_DEAD_NODES = "id NOT IN (SELECT id FROM temp.srt_gc_live)"

#: A node and what gc needs of it: (id, at, len) of a dead one, (at, len) of a live one.
_Dead = tuple[int, int, int]
_Place = tuple[int, int]


def _mark(conn: apsw.Connection, has_objects: bool) -> tuple[list[_Dead], list[_Place]]:
    """The dead nodes and the live ones' places: every node on the chain of a session head
    or of an object's node (``has_objects``) is live.

    A node is stored after its parent, so its id is larger: one pass over the nodes,
    newest first, meets every child of a node before the node, and so knows whether it
    is live when it reaches it (``pending`` holds the live ids not reached yet: about one
    per chain, not the whole live set). A parent whose id is not smaller (a file whose
    ids were written by hand) makes the pass give way to the recursive walk, which
    needs no order."""
    roots = "SELECT head FROM sessions WHERE head IS NOT NULL"
    if has_objects:
        roots += " UNION SELECT node FROM objects WHERE node IS NOT NULL"
    pending = {r for (r,) in q.rows(conn, roots)}
    dead: list[_Dead] = []
    live: list[_Place] = []
    cursor = q.rows(conn, "SELECT id, parent, at, len FROM nodes ORDER BY id DESC")
    try:
        for nid, parent, at, n in cursor:
            if nid in pending:
                pending.discard(nid)
                if parent is not None:
                    if parent >= nid:
                        break
                    pending.add(parent)
                live.append((at, n))
            else:
                dead.append((nid, at, n))
        else:
            dead.reverse()
            return dead, live
    finally:
        cursor.close()  # (its statement would lock the temp schema _walk changes)
    return _walk(conn, has_objects)


def _walk(conn: apsw.Connection, has_objects: bool) -> tuple[list[_Dead], list[_Place]]:
    """``_mark`` by the recursive walk up from every root, in SQL (any id order)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS srt_gc_live(id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.srt_gc_live")
    conn.execute(_LIVE.format(objects=_OBJECT_ROOTS if has_objects else ""))
    dead = q.rows(conn, f"SELECT id, at, len FROM nodes WHERE {_DEAD_NODES}").fetchall()
    live = q.rows(
        conn, "SELECT at, len FROM nodes WHERE id IN (SELECT id FROM temp.srt_gc_live)"
    ).fetchall()
    conn.execute("DROP TABLE temp.srt_gc_live")
    return dead, live


def _prune_heap(
    conn: apsw.Connection, gone: list[tuple[int, int]], live: list[tuple[int, int]]
) -> None:
    """Erase the bodies at ``gone`` (``(at, len)``, ascending, disjoint) from the heap: a
    row no body of ``live`` (the remaining nodes' ``(at, len)`` with ``len > 0``,
    ascending) uses is deleted, and in a row still in use their bytes are overwritten
    with spaces in place by incremental blob I/O, which writes only the pages they fall in
    (never zeros, which mark the free end of the last row; with ``secure_delete`` the
    cells of deleted rows are zeroed too), so their text leaves the file."""
    starts = [a for a, _ in live]
    gone_ats = [a for a, _ in gone]
    longest = max(n for _, n in gone)
    seen: set[int] = set()
    unused: list[tuple[int]] = []
    erase: list[tuple[int, int, int]] = []  # (row, offset in it, bytes)
    for lo, hi in _core.heap_spans(gone, 0, 1, heap_module.GAP):
        for rid, size, _is_blob in q.rows(conn, heap_module.SIZES_SQL, (lo, hi)):
            if rid in seen:
                continue  # the row that ended the previous span
            seen.add(rid)
            end = rid + int(size or 0)
            k = bisect.bisect_left(starts, end)  # live bodies starting before the row's end
            if not (k > 0 and live[k - 1][0] + live[k - 1][1] > rid):
                unused.append((rid,))
                continue
            # every place that may reach into the row starts after rid - longest
            for i in range(bisect.bisect_right(gone_ats, rid - longest), len(gone)):
                at, n = gone[i]
                if at >= end:
                    break
                lo_b, hi_b = max(at, rid), min(at + n, end)
                if lo_b < hi_b:
                    erase.append((rid, lo_b - rid, hi_b - lo_b))
    if erase:
        blob = conn.blob_open("main", "heap", "data", erase[0][0], True)
        try:
            row = erase[0][0]
            for rid, offset, n in erase:
                if rid != row:
                    blob.reopen(rid)
                    row = rid
                blob.seek(offset)
                blob.write(b" " * n)
        finally:
            blob.close()
    if unused:
        conn.executemany("DELETE FROM heap WHERE id = ?", unused)


def _drop_orphans(conn: apsw.Connection) -> int:
    """Delete the objects of sessions that no longer exist (in gc's transaction)."""
    kinds = owners.session_kinds()
    if not kinds:
        return 0
    conn.execute(f"DELETE FROM objects WHERE id IN ({orphan_ids(len(kinds))})", kinds)
    return conn.changes()


def _count(conn: apsw.Connection, sql: str) -> int:
    return int(conn.execute(sql).get or 0)


def gc(
    db: Database,
    *,
    secure_delete: bool = True,
    dry_run: bool = False,
    watch: Sequence[bytes] = (),
) -> GcReport:
    """Sweep expired objects, the nodes no session or object reaches and the messages
    no node uses (see the module docstring). ``dry_run`` counts what would go and
    writes nothing. Of the prefix hashes in ``watch``, those no live node carries are
    reported (``dead_prefixes``)."""
    pragmas = [
        writes.secure_delete(secure_delete),
        # The sweep keeps the references intact itself (the live set is closed under
        # parents) and proves it with foreign_key_check before it commits; per-row
        # checks would scan nodes once per deleted row (nodes.parent has no index).
        "PRAGMA foreign_keys=OFF",
        "PRAGMA temp_store=MEMORY",
        # 64 MiB of page cache for this job's connection (closed afterwards): deleting
        # nodes updates their two hash indexes at random places (0.62 -> 0.23 s for
        # 100,000 nodes of 1,000,000 with the default 2 MiB).
        "PRAGMA cache_size=-65536",
    ]
    action = "collecting garbage"
    with db.job(action, pragmas) as conn, translate(action), db.lock:
        page_size = _count(conn, "PRAGMA page_size")
        conn.execute("BEGIN IMMEDIATE")
        try:
            free_before = _count(conn, "PRAGMA freelist_count")
            objects = orphans = 0
            has_objects = db_module.has_table(conn, db_module.OBJECTS_TABLE)
            if has_objects:
                conn.execute(
                    "DELETE FROM objects WHERE expires IS NOT NULL AND expires <= ?",
                    (time.time(),),
                )
                objects = conn.changes()
                orphans = _drop_orphans(conn)
            dead_nodes, remaining = _mark(conn, has_objects)
            nodes = len(dead_nodes)
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS srt_gc_dead("
                "id INTEGER PRIMARY KEY, at INTEGER, len INTEGER)"
            )
            conn.execute("DELETE FROM temp.srt_gc_dead")
            conn.executemany("INSERT INTO temp.srt_gc_dead VALUES (?, ?, ?)", dead_nodes)
            # A row's params rebuild its body from its node (``srt verify``): they go
            # with it (a request's tools, their descriptions, are a client's text). A
            # node that is not live is a dead one or one that does not exist.
            q.rows(
                conn,
                "UPDATE calls SET node = NULL, params = NULL WHERE node IS NOT NULL AND ("
                "node IN (SELECT id FROM temp.srt_gc_dead) "
                "OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = calls.node))",
            )
            ledger_rows = conn.changes()
            # An error's text (an upstream's words, which may quote a request) goes with
            # its session; the row's status stays, for the accounting.
            conn.execute(_FORGET_ERRORS)
            conn.execute("DELETE FROM nodes WHERE id IN (SELECT id FROM temp.srt_gc_dead)")
            conn.execute("DROP TABLE temp.srt_gc_dead")
            # A message goes with the last node that names it (its place in the heap).
            kept = {at for at, _ in remaining}
            gone = sorted({(at, n) for _, at, n in dead_nodes if at not in kept})
            messages, message_bytes = len(gone), sum(n for _, n in gone)
            if gone:
                live = [r for r in remaining if r[1] > 0]
                live.sort()  # nearly sorted already: nodes are mostly stored in heap order
                _prune_heap(conn, gone, live)
            if messages and db_module.has_search_index(conn):
                conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                table, rowid, parent, _ = broken[0]
                raise CorruptionError(
                    f"gc stopped and changed nothing: {table} row {rowid} refers to a "
                    f"missing {parent} row ({len(broken)} such references); run srt verify"
                )
            free_after = _count(conn, "PRAGMA freelist_count")
            dead = tuple(p for p in watch if not _live_prefix(conn, p))
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
        conn.execute("ROLLBACK" if dry_run else "COMMIT")
    checkpointed = False
    if not dry_run:
        checkpointed = checkpoint(db, action)
    return GcReport(
        nodes=nodes,
        messages=int(messages),
        message_bytes=int(message_bytes),
        ledger_rows=ledger_rows,
        pages_freed=max(0, free_after - free_before),
        free_pages=free_before if dry_run else free_after,
        page_size=page_size,
        secure_delete=secure_delete,
        checkpointed=checkpointed,
        dry_run=dry_run,
        objects=objects,
        orphan_objects=orphans,
        dead_prefixes=dead,
    )


def _live_prefix(conn: apsw.Connection, prefix: bytes) -> bool:
    """Whether a node of gc's live set carries ``prefix`` (inside gc's transaction, after
    the sweep: the nodes left are the live ones)."""
    sql = "SELECT 1 FROM nodes WHERE prefix = ?"
    return conn.execute(sql, (prefix,)).fetchone() is not None


def checkpoint(db: Database, action: str, wait_ms: int = 2000) -> bool:
    """Copy the WAL into the file and truncate it; False if readers kept it busy."""
    with db.job(action) as conn, translate(action):
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
                    count = _count(conn, "SELECT count(DISTINCT at) FROM nodes")
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
