"""gc in batches: the mark in a read snapshot, without the write lock, then the sweep a
thousand nodes at a time, each batch a short ``BEGIN IMMEDIATE`` transaction that
first re-checks its nodes against everything written since the mark.

What the mark finds unreachable can become reachable again only through writes made
after it, and each batch, under the lock, takes them into account before it deletes:

- a new node (every node stored since the mark has a larger id than any the batch has
  seen: rowids grow by one past the largest, and only gc deletes nodes) whose parent is
  a candidate: the candidate and its ancestors are kept ("rescued");
- a new node that names a candidate's body (content addressing: an append reuses a
  stored body found by hash): the body is kept while any node names it;
- a session head or an object's node on a candidate: rescued, with its ancestors.

The batches take the candidates newest first, so a node's children (larger ids) are
decided in its batch or before it: a child rescued rescues it, and a child deleted can
no longer hold it. The live set therefore stays closed under parents at every commit.

Another process's gc deleting nodes between two batches could let new nodes take ids
at or below the batch's watermark (rowids are reused past a deleted largest one, and
ids a gc left free below it are taken again once the largest goes): a new node there,
below a candidate, would be missed, and the candidate deleted under it. So every gc
counts: the gc epoch in ``srt_meta`` (``gc_once.GC_EPOCH_KEY``), one added by every
gc's write transaction before it deletes a node (each batch's, and the one-transaction
gc's), in any process. The mark reads it in its snapshot; each batch, under the lock,
finds it where this gc last left it, or the rest is collected in one transaction
(``gc_once``, which marks anew). A gc of an srt version before the epoch does not count:
the batch's check that the node it last saw as the largest is still there, unchanged,
catches most of its deletions, but not an identical node stored again at that id, so
do not run such a version's gc on a file a newer one collects. In one process, gcs of a
file take turns (a lock per file): a second one waits, then collects what the first
left (usually nothing).

Checkpoints: gc's connection runs none in its commits (``wal_autocheckpoint=0``).
Each batch checkpoints its pages (``PASSIVE``) right after its commit, still under the
lock: outside it, the next turn's commit would find the WAL over the auto-checkpoint
size and copy the batch's pages itself, under the lock, with the other turns waiting.
Between two batches the gc waits a moment (``_give_way``) so the turns waiting for the
lock get it before the next batch.

Bodies are erased as in the one-transaction gc (``gc_once.prune_heap``): a
body is freed when the last node naming it goes; a heap row no remaining body overlaps
is deleted (``secure_delete`` zeroes its cells), and the freed bytes of a row still in
use are overwritten with spaces in place.
"""

from __future__ import annotations

import bisect
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import apsw

from . import gc_once
from . import queries as q
from . import schema as db_module
from .database import Database, file_lock

__all__ = ["BATCH", "Sweep", "gc_lock", "mark", "passive_checkpoint", "sweep"]

#: Nodes a batch deletes at most. A batch holds the writer lock for its re-check, its
#: deletes, its commit and its checkpoint: ~40-60 ms for 1,000 nodes at 1,000,000 (a
#: deleted node dirties about one page of the ``nodes_prefix`` index, at random, so
#: each batch writes and checkpoints ~1,100 pages). Measured at 10,000 x 100, load
#: 4.6-6.3 (``bench/gateway_gc_sweep.py --batch``): 1,000 gives turns p99 82 ms, max
#: 228 ms, gc 9.95 s; 2,000 p99 113 ms, max 168 ms, gc 8.08 s; 5,000 p99 ~235 ms.
BATCH = 1000

#: Seconds at most between two batches, without the lock, for a turn waiting for it to
#: take it: a lock just released is otherwise often taken again by the releasing thread
#: before a waiting one wakes (measured: one turn waited through four batches in a
#: row). The pause ends as soon as another thread holds the lock, and is no longer
#: than the batch held it (with no writer about, it costs at most that).
PAUSE = 0.01

#: Tests set this to run writes between the phases, deterministically: called with
#: ``"marked"`` after the mark and ``"batch"`` after each batch's commit, outside any
#: transaction and without the lock.
hook: Callable[[str], None] | None = None


def gc_lock(db: Database) -> threading.Lock:
    """The lock gcs of ``db``'s file in this process take turns on (no file is made)."""
    return file_lock(db.path + "-srt-gc") if db.path != ":memory:" else file_lock(db.path)


def passive_checkpoint(conn: apsw.Connection) -> None:
    """Copy what the WAL holds into the file as far as readers allow, without blocking
    other processes' writers (``PASSIVE``)."""
    q.rows(conn, "PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _give_way(db: Database, held: float) -> None:
    """Let a writer waiting for ``db.lock`` take it before the next batch (``PAUSE``;
    ``held``: the seconds the batch held it)."""
    end = time.monotonic() + min(PAUSE, held)
    while not db.lock.locked() and time.monotonic() < end:
        time.sleep(0.001)


def _call(phase: str) -> None:
    if hook is not None:
        hook(phase)


@dataclass
class Sweep:
    """The mark's result and what the batches keep up to date."""

    #: The candidates, newest first: id -> (parent, at, len), in id order descending.
    dead: dict[int, tuple[int | None, int, int]]
    #: Every distinct body's start in the heap, ascending, and its length.
    starts: array[int]
    lens: dict[int, int]
    #: Of each body some candidate names: how many nodes (live or candidate) name it.
    refs: dict[int, int]
    #: The largest node id seen and its prefix hash (the watermark).
    top: int
    top_prefix: bytes | None
    #: The gc epoch as the mark read it, then as the last batch left it.
    epoch: int = 0
    #: Bodies named by nodes stored since the mark (not in ``starts``), ascending.
    fresh: list[tuple[int, int]] = field(default_factory=list)
    nodes: int = 0
    messages: int = 0
    message_bytes: int = 0
    ledger_rows: int = 0


def mark(conn: apsw.Connection, has_objects: bool) -> Sweep | None:
    """The candidates, in one read snapshot (no lock); ``None`` if a node's parent id is
    not smaller than its own (the one-transaction gc's walk then collects)."""
    roots = "SELECT head FROM sessions WHERE head IS NOT NULL"
    if has_objects:
        roots += " UNION SELECT node FROM objects WHERE node IS NOT NULL"
    with q.snapshot(conn, "collecting garbage"):
        pending = {r for (r,) in q.rows(conn, roots)}
        epoch = gc_once.epoch(conn)
        first = conn.execute("SELECT id, prefix FROM nodes ORDER BY id DESC LIMIT 1").fetchone()
        top, top_prefix = (int(first[0]), bytes(first[1])) if first else (0, None)
        dead: dict[int, tuple[int | None, int, int]] = {}
        lens: dict[int, int] = {}
        count: dict[int, int] = {}
        cursor = q.rows(conn, "SELECT id, parent, at, len FROM nodes ORDER BY id DESC")
        try:
            for nid, parent, at, n in cursor:
                count[at] = count.get(at, 0) + 1
                lens[at] = n
                if nid in pending:
                    pending.discard(nid)
                    if parent is not None:
                        if parent >= nid:
                            return None
                        pending.add(parent)
                else:
                    dead[nid] = (parent, at, n)
        finally:
            cursor.close()
    refs = {at: count[at] for _, at, _ in dead.values()}
    return Sweep(dead, array("q", sorted(lens)), lens, refs, top, top_prefix, epoch)


def _rescue(s: Sweep, nid: int | None) -> None:
    """Keep candidate ``nid`` and every candidate above it."""
    while nid is not None and nid in s.dead:
        nid = s.dead.pop(nid)[0]


def _recheck(conn: apsw.Connection, s: Sweep) -> bool:
    """Under the lock: take in what was written since the mark or the last batch (see
    the module docstring); False if another gc deleted nodes since (collect in one
    transaction instead). A True leaves the epoch counted for this batch."""
    if gc_once.epoch(conn) != s.epoch:
        return False
    if s.top:  # (another gc of a version that does not count the epoch)
        row = conn.execute("SELECT prefix FROM nodes WHERE id = ?", (s.top,)).fetchone()
        if row is None or bytes(row[0]) != s.top_prefix:
            return False
    for nid, parent, prefix, at, n in q.rows(
        conn, "SELECT id, parent, prefix, at, len FROM nodes WHERE id > ? ORDER BY id", (s.top,)
    ):
        s.top, s.top_prefix = nid, bytes(prefix)
        if at in s.refs:
            s.refs[at] += 1
        elif at not in s.lens:
            s.lens[at] = n
            bisect.insort(s.fresh, (at, n))
        _rescue(s, parent)
    roots = "SELECT head FROM sessions WHERE head IS NOT NULL"
    # (the objects table is made by the first object, which may come after the mark)
    if db_module.has_table(conn, db_module.OBJECTS_TABLE):
        roots += " UNION SELECT node FROM objects WHERE node IS NOT NULL"
    for (root,) in q.rows(conn, roots):
        if root in s.dead:
            _rescue(s, root)
    s.epoch = gc_once.bump_epoch(conn)
    return True


def _in_use(s: Sweep, lo: int, hi: int) -> bool:
    """Whether a body still named by some node overlaps ``[lo, hi)`` of the heap."""

    def used(at: int) -> bool:
        return s.lens[at] > 0 and s.refs.get(at, 1) > 0

    i = bisect.bisect_right(s.starts, lo) - 1  # the body holding lo, if one does
    if i >= 0 and s.starts[i] + s.lens[s.starts[i]] > lo and used(s.starts[i]):
        return True
    i += 1
    while i < len(s.starts) and s.starts[i] < hi:
        if used(s.starts[i]):
            return True
        i += 1
    k = bisect.bisect_left(s.fresh, (lo, -1)) - 1
    return any(a < hi and a + n > lo and n > 0 for a, n in s.fresh[max(k, 0) :])


def _prune(conn: apsw.Connection, s: Sweep, gone: list[tuple[int, int]]) -> None:
    """Erase the bodies ``gone`` (``(at, len)``, ascending; no node names them now), a
    heap row being in use while a body some node names, a candidate not yet decided or
    one stored since the mark lies in it (``gc_once.prune_heap``)."""
    gc_once.prune_heap(conn, gone, lambda lo, hi: _in_use(s, lo, hi))


def _batches(s: Sweep) -> Iterator[list[int]]:
    """The candidates still to decide, newest first, ``BATCH`` at a time (each batch's
    ids are taken from what is left when it starts)."""
    order = list(s.dead)  # newest first (the mark's order)
    for i in range(0, len(order), BATCH):
        yield order[i : i + BATCH]


def _delete(conn: apsw.Connection, s: Sweep, ids: list[int]) -> None:
    """Delete the candidates ``ids`` (under the lock, after ``_recheck``), the ledger's
    references to them, and the bodies no node names any more."""
    conn.execute("DELETE FROM temp.srt_gc_batch")
    conn.executemany("INSERT INTO temp.srt_gc_batch(id) VALUES (?)", [(i,) for i in ids])
    # a ledger row's params rebuild its body from its node: they go with it
    conn.execute(
        "UPDATE calls SET node = NULL, params = NULL "
        "WHERE node IN (SELECT id FROM temp.srt_gc_batch)"
    )
    s.ledger_rows += conn.changes()
    conn.execute("DELETE FROM nodes WHERE id IN (SELECT id FROM temp.srt_gc_batch)")
    s.nodes += len(ids)
    freed: set[tuple[int, int]] = set()
    for nid in ids:
        _parent, at, n = s.dead.pop(nid)
        s.refs[at] -= 1
        if s.refs[at] == 0:
            freed.add((at, n))
    if s.top in ids:  # the next batch's watermark: the largest id left
        row = conn.execute("SELECT id, prefix FROM nodes ORDER BY id DESC LIMIT 1").fetchone()
        s.top, s.top_prefix = (int(row[0]), bytes(row[1])) if row else (0, None)
    gone = sorted(freed)
    s.messages += len(gone)
    s.message_bytes += sum(n for _, n in gone)
    if any(n > 0 for _, n in gone):
        _prune(conn, s, [g for g in gone if g[1] > 0])


def sweep(db: Database, conn: apsw.Connection, s: Sweep) -> bool:
    """Delete the candidates of ``s`` in batches (see the module docstring); False if
    another gc's deletions were found (what is left is then for the one-transaction gc;
    ``s``'s counts hold what the batches did)."""
    _call("marked")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS srt_gc_batch(id INTEGER PRIMARY KEY)")
    search = False
    try:
        while s.dead:
            with db.lock:
                took = time.monotonic()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if not _recheck(conn, s):
                        conn.execute("ROLLBACK")
                        return False
                    ids = next(_batches(s), [])
                    _delete(conn, s, ids)
                except BaseException:
                    if not conn.get_autocommit():
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                passive_checkpoint(conn)
                took = time.monotonic() - took
            search = search or bool(ids)
            _call("batch")
            _give_way(db, took)
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.srt_gc_batch")
    if search and s.messages and db_module.has_search_index(conn):
        with db.lock:
            conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
    return True
