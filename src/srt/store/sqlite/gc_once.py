"""gc in one ``BEGIN IMMEDIATE`` transaction (the caller holds the file's writer lock):
a dry run (rolled back), and a file the batches (``gc.py``) cannot collect, one whose
node ids are not in parent-before-child order or that another process collects at the
same time. Mark and sweep as ``maintenance``'s docstring says; the mark is one pass over
the nodes, newest first (``_mark``), or the recursive walk when ids are out of order.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence

import apsw

from ... import _core
from ...errors import CorruptionError
from .. import owners
from ..base import GcReport
from . import heap as heap_module
from . import queries as q
from . import schema as db_module
from .statements import KEEP_NODES_FLOOR, orphan_ids

__all__ = [
    "FORGET_ERRORS",
    "GC_EPOCH_KEY",
    "INDEX_PENDING_KEY",
    "broken",
    "bump_epoch",
    "count",
    "drop_objects",
    "epoch",
    "erase_rows",
    "live_prefix",
    "once",
    "prune_heap",
]

#: The ``srt_meta`` key of the gc epoch: a count every gc (this one and each batch of
#: ``gc.py``, in any process) adds one to in its write transaction before it deletes a
#: node, so a batched gc sees that another gc deleted nodes since its mark or its last
#: batch (after which node ids can be reused below its watermark). srt versions before
#: it do not count: see ``gc.py``.
GC_EPOCH_KEY = "gc_epoch"
#: The ``srt_meta`` key a gc sets, in its first transaction (before any message goes),
#: while the search index may hold the words of messages it deletes, and removes once
#: ``gc.clean_index`` has merged them out: a gc stopped in between (a crash, an error)
#: leaves it, and the next gc cleans the index even if it collects nothing itself. Its
#: value is a random token of the gc that set it last, which removes it only if it is
#: still its own (another process's gc may have set it since and stopped).
INDEX_PENDING_KEY = "search_index_pending"


#: The error text of ledger rows whose session is deleted (``gc``).
FORGET_ERRORS = (
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
    """Erase the bodies at ``gone`` (``prune_heap``), a row being in use while a body of
    ``live`` (the remaining nodes' ``(at, len)`` with ``len > 0``, ascending) lies in it."""
    starts = [a for a, _ in live]

    def in_use(rid: int, end: int) -> bool:
        k = bisect.bisect_left(starts, end)  # live bodies starting before the row's end
        return k > 0 and live[k - 1][0] + live[k - 1][1] > rid

    prune_heap(conn, gone, in_use)


def prune_heap(
    conn: apsw.Connection, gone: list[tuple[int, int]], in_use: Callable[[int, int], bool]
) -> None:
    """Erase the bodies at ``gone`` (``(at, len)``, ascending, disjoint) from the heap: a
    row ``[rid, end)`` for which ``in_use(rid, end)`` is false is deleted, and in a row
    still in use their bytes are overwritten with spaces in place by incremental blob
    I/O, which writes only the pages they fall in (never zeros, which mark the free end
    of the last row; with ``secure_delete`` the cells of deleted rows are zeroed too), so
    their text leaves the file. The batched gc (``gc.py``) and this one share it."""
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
            if not in_use(rid, end):
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
    erase_rows(conn, erase, unused)


def _drop_orphans(conn: apsw.Connection) -> int:
    """Delete the objects of sessions that no longer exist (in gc's transaction)."""
    kinds = owners.session_kinds()
    if not kinds:
        return 0
    conn.execute(f"DELETE FROM objects WHERE id IN ({orphan_ids(len(kinds))})", kinds)
    return conn.changes()


def count(conn: apsw.Connection, sql: str) -> int:
    return int(conn.execute(sql).get or 0)


def drop_objects(conn: apsw.Connection) -> tuple[int, int, bool]:
    """Delete the expired objects and those of sessions gone (in a write transaction):
    (expired, orphans, whether the file has an objects table)."""
    if not db_module.has_table(conn, db_module.OBJECTS_TABLE):
        return 0, 0, False
    conn.execute("DELETE FROM objects WHERE expires IS NOT NULL AND expires <= ?", (time.time(),))
    objects = conn.changes()
    return objects, _drop_orphans(conn), True


def epoch(conn: apsw.Connection) -> int:
    """The file's gc epoch (0 if no gc has counted yet)."""
    row = conn.execute("SELECT value FROM srt_meta WHERE key = ?", (GC_EPOCH_KEY,)).fetchone()
    return int(row[0]) if row is not None else 0


def bump_epoch(conn: apsw.Connection) -> int:
    """Add one to the gc epoch (in a write transaction, before any node is deleted);
    the new value."""
    sql = (
        "INSERT INTO srt_meta(key, value) VALUES (?, 1) "
        "ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value"
    )
    return int(conn.execute(sql, (GC_EPOCH_KEY,)).get)


def broken(conn: apsw.Connection, what: str) -> None:
    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise CorruptionError(
            f"{what}: {table} row {rowid} refers to a missing {parent} row "
            f"({len(broken)} such references); run srt verify"
        )


def once(
    conn: apsw.Connection, secure_delete: bool, dry_run: bool, watch: Sequence[bytes]
) -> GcReport:
    """gc in one ``BEGIN IMMEDIATE`` transaction (the caller holds the lock): a dry
    run, and a file the batches cannot collect."""
    page_size = count(conn, "PRAGMA page_size")
    conn.execute("BEGIN IMMEDIATE")
    try:
        bump_epoch(conn)  # (a batched gc elsewhere then stops: see gc.py)
        free_before = count(conn, "PRAGMA freelist_count")
        objects, orphans, has_objects = drop_objects(conn)
        dead_nodes, remaining = _mark(conn, has_objects)
        nodes = len(dead_nodes)
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS srt_gc_dead("
            "id INTEGER PRIMARY KEY, at INTEGER, len INTEGER)"
        )
        conn.execute("DELETE FROM temp.srt_gc_dead")
        conn.executemany("INSERT INTO temp.srt_gc_dead VALUES (?, ?, ?)", dead_nodes)
        # A row's params rebuild its body from its node (``srt verify``): they go with
        # it (a request's tools, their descriptions, are a client's text). A node that
        # is not live is a dead one or one that does not exist.
        q.rows(
            conn,
            "UPDATE calls SET node = NULL, params = NULL WHERE node IS NOT NULL AND ("
            "node IN (SELECT id FROM temp.srt_gc_dead) "
            "OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = calls.node))",
        )
        ledger_rows = conn.changes()
        # An error's text (an upstream's words, which may quote a request) goes with
        # its session; the row's status stays, for the accounting.
        conn.execute(FORGET_ERRORS)
        conn.execute("DELETE FROM nodes WHERE id IN (SELECT id FROM temp.srt_gc_dead)")
        conn.execute(KEEP_NODES_FLOOR.format(table="srt_gc_dead"))  # (no id given again)
        conn.execute("DROP TABLE temp.srt_gc_dead")
        # A message goes with the last node that names it (its place in the heap).
        kept = {at for at, _ in remaining}
        gone = sorted({(at, n) for _, at, n in dead_nodes if at not in kept})
        messages, message_bytes = len(gone), sum(n for _, n in gone)
        if gone:
            live = [r for r in remaining if r[1] > 0]
            live.sort()  # nearly sorted already: nodes are mostly stored in heap order
            _prune_heap(conn, gone, live)
        broken(conn, "gc stopped and changed nothing")
        free_after = count(conn, "PRAGMA freelist_count")
        dead = tuple(p for p in watch if not live_prefix(conn, p))
    except BaseException:
        if not conn.get_autocommit():
            conn.execute("ROLLBACK")
        raise
    conn.execute("ROLLBACK" if dry_run else "COMMIT")
    return GcReport(
        nodes=nodes,
        messages=int(messages),
        message_bytes=int(message_bytes),
        ledger_rows=ledger_rows,
        pages_freed=max(0, free_after - free_before),
        free_pages=free_before if dry_run else free_after,
        page_size=page_size,
        secure_delete=secure_delete,
        checkpointed=False,
        dry_run=dry_run,
        objects=objects,
        orphan_objects=orphans,
        dead_prefixes=dead,
    )


def live_prefix(conn: apsw.Connection, prefix: bytes) -> bool:
    """Whether a node of gc's live set carries ``prefix`` (inside gc's transaction, after
    the sweep: the nodes left are the live ones)."""
    sql = "SELECT 1 FROM nodes WHERE prefix = ?"
    return conn.execute(sql, (prefix,)).fetchone() is not None


def erase_rows(
    conn: apsw.Connection, erase: list[tuple[int, int, int]], unused: list[tuple[int]]
) -> None:
    """Overwrite each freed place ``(heap row, offset, length)`` with spaces in place
    (incremental blob I/O: only those bytes are written), and delete the heap rows no
    body uses any more (``secure_delete`` zeroes their cells)."""
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
