"""gc in batches: the mark in a read snapshot, without the write lock (one pass over the
nodes, ``_core.mark_nodes``), then the sweep in batches sized to hold the lock about
``HOLD`` seconds (~1,000 nodes), each a short ``BEGIN IMMEDIATE`` transaction that first
re-checks its nodes against everything written since the mark.

What the mark finds unreachable can become reachable again only through writes made
after it, and each batch, under the lock, takes them into account before it deletes:

- a new node (every node stored since the mark has a larger id than any the batch has
  seen: rowids grow by one past the largest, and only gc deletes nodes) whose parent is
  a candidate: the candidate and its ancestors are kept ("rescued");
- a new node that names a candidate's body (content addressing: an append reuses a
  stored body found by hash): the body is kept while any node names it;
- a session head or an object's node on one of the batch's candidates: rescued, with
  its ancestors (a candidate is looked at in the batch that would delete it, not in
  every batch before: the look-up in objects probes their index once per candidate).

The batches take the candidates newest first, so a node's children (larger ids) are
decided in its batch or before it: a child rescued rescues it, and a child deleted can
no longer hold it. The live set therefore stays closed under parents at every commit.
A candidate below a parent of a larger id (rows written by hand) keeps that parent, and
its ancestors, for this gc (``mark``).

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
(A thread checkpointing beside the next batch was measured, docs/gateway.md: the gc
took a third less wall time, but the turns' p99 wait grew by a fifth to two thirds; on
2 cores the thread likely takes one from their commits.) Between two batches the gc
waits a moment (``_give_way``) so the turns waiting for the lock get it before the
next batch.

Bodies are erased as in the one-transaction gc (``gc_once.prune_heap``): a
body is freed when the last node naming it goes; a heap row no remaining body overlaps
is deleted (``secure_delete`` zeroes its cells), and the freed bytes of a row still in
use are overwritten with spaces in place.

The search index (a contentless FTS5 table, if the file has one) keeps a deleted
message's words in its segments until a merge rewrites them: after either gc,
``clean_index`` merges every segment into one, in steps sized like the batches, each a
short transaction (where one ``optimize`` would hold every writer for the whole
index). FTS5's ``secure-delete`` option, which removes a row's terms as it is
deleted, does not apply to a contentless table: its deletes record tombstones.
"""

from __future__ import annotations

import bisect
import itertools
import json
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import apsw

from ... import _core
from . import gc_once
from . import queries as q
from . import schema as db_module
from .database import Database, file_lock
from .statements import KEEP_NODES_FLOOR

__all__ = [
    "BATCH",
    "HOLD",
    "Sweep",
    "clean_index",
    "gc_lock",
    "mark",
    "next_size",
    "passive_checkpoint",
    "sweep",
]

#: Seconds a batch aims to hold the writer lock for its re-check, its deletes, its
#: commit and its checkpoint: the next batch's size is this batch's scaled by ``HOLD``
#: over the time it held the lock (at most doubled or halved, at most ``BATCH``). A
#: deleted node dirties about one page of each hash index (``nodes_prefix``,
#: ``nodes_hash``), at random, so a batch's time grows with its nodes: ~1,000 nodes
#: take ~50 ms at 10,000 x 100 on 2 loaded cores, and a turn waiting for the lock waits
#: about one batch. Measured there (``bench/gateway_gc_sweep.py``, 4 writers, load
#: 3-5): 50 ms gives turns p99 62-80 ms as fixed batches of 1,000 did (56-92 ms) with
#: 25-40% less wall time; 70 ms p99 91-122 ms; 100 ms p99 120-162 ms.
HOLD = 0.05

#: Nodes the first batch deletes; ``BATCH``: nodes a batch deletes at most.
FIRST = 1000
BATCH = 20_000

#: Seconds at most between two batches, without the lock, for a turn waiting for it to
#: take it: a lock just released is otherwise often taken again by the releasing thread
#: before a waiting one wakes (measured: one turn waited through four batches in a
#: row). The pause ends as soon as another thread holds the lock, and is no longer
#: than the batch held it (with no writer about, it costs at most that).
PAUSE = 0.01

#: Leaf pages of the search index the index's first cleanup step writes, and the most
#: a step writes (its steps are sized by ``HOLD`` as the batches are; FTS5's leaf pages
#: are ~4 KB).
MERGE_FIRST = 100
MERGE_MOST = 20_000

#: Tests set this to run writes between the phases, deterministically: called with
#: ``"marked"`` after the mark, ``"batch"`` after each batch's commit and ``"index"``
#: after each step of the search index's cleanup (``clean_index``), outside any
#: transaction and without the lock; and with ``"locked"`` in each batch once it holds
#: the lock (its transaction begun: a writer must run in another thread, and waits).
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
    lens: array[int]
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
    not smaller than its own, or a node's row is damaged (the one-transaction gc's walk
    then collects). The pass is ``_core.mark_nodes``."""
    roots = "SELECT head FROM sessions WHERE head IS NOT NULL"
    if has_objects:
        roots += " UNION SELECT node FROM objects WHERE node IS NOT NULL"
    with q.snapshot(conn, "collecting garbage"):
        pending = {r for (r,) in q.rows(conn, roots)}
        epoch = gc_once.epoch(conn)
        first = conn.execute("SELECT id, prefix FROM nodes ORDER BY id DESC LIMIT 1").fetchone()
        top, top_prefix = (int(first[0]), bytes(first[1])) if first else (0, None)
        cursor = q.rows(conn, "SELECT id, parent, at, len FROM nodes ORDER BY id DESC")
        try:
            marked = _core.mark_nodes(cursor, pending)
        except (TypeError, ValueError):
            return None
        finally:
            cursor.close()
    if marked is None:
        return None
    rows, starts, lens, counts = marked
    dead = {nid: (parent, at, n) for nid, parent, at, n in rows}
    refs = {at: counts[bisect.bisect_left(starts, at)] for _, at, _ in dead.values()}
    s = Sweep(dead, starts, lens, refs, top, top_prefix, epoch)
    # A candidate whose parent has a larger id (rows written by hand: only a live one
    # sends the mark to the walk) would see its parent go in an earlier batch, and a
    # rescue after that would keep it below a missing node: its parent and their
    # ancestors are kept for this gc (as on PostgreSQL, where the child keeps it).
    for parent in [p for nid, p, _, _ in rows if p is not None and p >= nid]:
        _rescue(s, parent)
    return s


def _rescue(s: Sweep, nid: int | None) -> None:
    """Keep candidate ``nid`` and every candidate above it."""
    while nid is not None and nid in s.dead:
        nid = s.dead.pop(nid)[0]


def _recheck(conn: apsw.Connection, s: Sweep, ids: list[int]) -> bool:
    """Under the lock: take in what was written since the mark or the last batch (see
    the module docstring), of heads and objects those on the batch's candidates ``ids``
    (``temp.srt_gc_batch``: each candidate is re-checked in the transaction that would
    delete it, where looking at every candidate left cost each batch a probe of the
    objects' index per candidate); False if another gc deleted nodes since (collect in
    one transaction instead). A True leaves the epoch counted for this batch."""
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
        elif not _known(s, at):
            bisect.insort(s.fresh, (at, n))
        _rescue(s, parent)
    _ids_into(conn, "srt_gc_batch", ids)
    batch = "(SELECT id FROM temp.srt_gc_batch)"
    roots = f"SELECT head FROM sessions WHERE head IN {batch}"
    # (the objects table is made by the first object, which may come after the mark)
    if db_module.has_table(conn, db_module.OBJECTS_TABLE):
        roots += f" UNION SELECT node FROM objects WHERE node IN {batch}"
    for (root,) in q.rows(conn, roots):
        if root in s.dead:
            _rescue(s, root)
    s.epoch = gc_once.bump_epoch(conn)
    return True


def _known(s: Sweep, at: int) -> bool:
    """Whether the body at ``at`` is one the mark or an earlier re-check met."""
    i = bisect.bisect_left(s.starts, at)
    if i < len(s.starts) and s.starts[i] == at:
        return True
    k = bisect.bisect_left(s.fresh, (at, -1))
    return k < len(s.fresh) and s.fresh[k][0] == at


def _in_use(s: Sweep, lo: int, hi: int) -> bool:
    """Whether a body still named by some node overlaps ``[lo, hi)`` of the heap."""

    def used(i: int) -> bool:
        return s.lens[i] > 0 and s.refs.get(s.starts[i], 1) > 0

    i = bisect.bisect_right(s.starts, lo) - 1  # the body holding lo, if one does
    if i >= 0 and s.starts[i] + s.lens[i] > lo and used(i):
        return True
    i += 1
    while i < len(s.starts) and s.starts[i] < hi:
        if used(i):
            return True
        i += 1
    k = bisect.bisect_left(s.fresh, (lo, -1)) - 1
    return any(a < hi and a + n > lo and n > 0 for a, n in s.fresh[max(k, 0) :])


def _prune(conn: apsw.Connection, s: Sweep, gone: list[tuple[int, int]]) -> None:
    """Erase the bodies ``gone`` (``(at, len)``, ascending; no node names them now), a
    heap row being in use while a body some node names, a candidate not yet decided or
    one stored since the mark lies in it (``gc_once.prune_heap``)."""
    gc_once.prune_heap(conn, gone, lambda lo, hi: _in_use(s, lo, hi))


def next_size(size: int, held: float, most: int | None = None) -> int:
    """The next batch's size, after one of ``size`` nodes (or index pages) held the
    lock ``held`` seconds (``HOLD``), at most ``most`` (``BATCH``)."""
    want = int(size * HOLD / held) if held > 0 else 2 * size
    return max(1, min(BATCH if most is None else most, 2 * size, max(size // 2, want)))


def _ids_into(conn: apsw.Connection, table: str, ids: list[int]) -> None:
    """Make the temp table ``table`` hold ``ids``, inserted in one statement (one step,
    where ``executemany`` takes one per id, each taking the GIL again from the turns'
    threads)."""
    conn.execute(f"DELETE FROM temp.{table}")
    sql = f"INSERT INTO temp.{table}(id) SELECT value FROM json_each(?)"
    conn.execute(sql, (json.dumps(ids),))


def _delete(conn: apsw.Connection, s: Sweep, ids: list[int]) -> None:
    """Delete the candidates ``ids`` (under the lock, after ``_recheck``; the temp table
    ``srt_gc_batch`` holds them), the ledger's references to them, and the bodies no
    node names any more."""
    # a ledger row's params rebuild its body from its node: they go with it
    conn.execute(
        "UPDATE calls SET node = NULL, params = NULL "
        "WHERE node IN (SELECT id FROM temp.srt_gc_batch)"
    )
    s.ledger_rows += conn.changes()
    conn.execute("DELETE FROM nodes WHERE id IN (SELECT id FROM temp.srt_gc_batch)")
    conn.execute(KEEP_NODES_FLOOR.format(table="srt_gc_batch"))  # (no id given again)
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
    size = min(FIRST, BATCH)
    try:
        while s.dead:
            held = _batch(db, conn, s, size)
            if held is None:
                return False
            size = next_size(size, held)
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.srt_gc_batch")
    return True


def _batch(db: Database, conn: apsw.Connection, s: Sweep, size: int) -> float | None:
    """One batch of ``size`` candidates at most, newest first: re-check, delete, commit,
    checkpoint, give way. The seconds it held the lock; ``None`` if the
    re-check found another gc's deletions (nothing done). The batch's candidates are
    taken before the re-check: what it rescues leaves them, and no candidate it did not
    look at joins them."""
    ids = list(itertools.islice(s.dead, size))
    with db.lock:
        took = time.monotonic()
        conn.execute("BEGIN IMMEDIATE")
        try:
            _call("locked")
            if not _recheck(conn, s, ids):
                conn.execute("ROLLBACK")
                return None
            kept = [nid for nid in ids if nid in s.dead]  # (the rescued left)
            if len(kept) < len(ids):
                _ids_into(conn, "srt_gc_batch", kept)
            _delete(conn, s, kept)
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        passive_checkpoint(conn)
        took = time.monotonic() - took
    _call("batch")
    _give_way(db, took)
    return took


def clean_index(db: Database, conn: apsw.Connection) -> int:
    """Rewrite the search index's segments (if the file has the index), so that the
    words of the messages gc deleted leave it: its table is contentless, so a delete
    only records the row's id (a tombstone), and the row's terms stay in its segment
    until a merge rewrites it. One ``optimize`` would do it in one statement, holding
    every writer for as long as the whole index takes to rewrite; this merges in steps
    instead, each a short ``BEGIN IMMEDIATE`` transaction sized like the batches
    (``HOLD``; ``MERGE_FIRST``, ``MERGE_MOST`` pages), checkpointed, then giving way.

    The first step is FTS5's ``('merge', -N)``: all the segments become inputs of one
    merge (as ``optimize`` makes them), of which it writes N pages. The next steps are
    ``('merge', N)``, which go on with a merge under way before starting another: so
    the segments that turns write meanwhile (each commit adds one) do not restart it,
    as a new ``('merge', -N)`` would. A step that did no work (``total_changes`` moved
    by less than 2, as FTS5 documents) ends the cleanup: the merge of every segment
    that held a deleted row has then been written. The number of steps taken."""
    size, steps = MERGE_FIRST, 0
    while True:
        with db.lock:
            took = time.monotonic()
            before = conn.total_changes()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not db_module.has_search_index(conn):  # (dropped meanwhile)
                    conn.execute("ROLLBACK")
                    return steps
                conn.execute(
                    "INSERT INTO messages_fts(messages_fts, rank) VALUES ('merge', ?)",
                    (-size if steps == 0 else size,),
                )
            except BaseException:
                if not conn.get_autocommit():
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            idle = conn.total_changes() - before < 2
            passive_checkpoint(conn)
            took = time.monotonic() - took
        steps += 1
        _call("index")
        if idle:
            return steps
        _give_way(db, took)
        size = next_size(size, took, MERGE_MOST)
