"""gc on PostgreSQL: the mark in a snapshot without a lock, then the sweep in short
batches, each re-checking its candidates against the tables as they are, under brief
table locks.

**The prelude** (one short transaction under the locks a batch takes, below): expired
objects go, and those filed under a session id no session has (``store.owners``), so a
session created meanwhile waits and then files its objects; then a ledger row's error
text (an upstream's words) goes with its session, its status stays (one statement).

**The mark** (one ``REPEATABLE READ`` snapshot, no lock: writers go on): the live nodes
are every node on the chain of a session head or of an object's node, found in one pass
over the nodes, newest first (a node is stored after its parent, so the pass knows
whether a node is live when it reaches it; ``pending``: the live ids not reached yet).
Every other node is a candidate, and so is every message no node uses.

**The batches**: ``BATCH`` candidates at a time, newest first, each one transaction
that first takes ``SHARE ROW EXCLUSIVE`` locks on srt's tables (as the one-transaction
gc did for its whole run): every write of a reference to a node or a message (a node's
parent and message, a head, an object's or a ledger row's node) takes ``ROW
EXCLUSIVE`` on its table, which conflicts, so a writer under way when the batch asks has
committed when the batch gets its locks, and one that comes later waits for the batch's
commit. An append that found a message by hash holds ``ROW EXCLUSIVE`` on ``messages``
from that insert to its commit, so it is never between the two for a batch. Under the
locks the batch keeps each candidate that

- a session head or an object names (moved there since the mark), or
- a node outside the batch has as its parent: a node stored since the mark, whatever its
  id (commit order is not id order: a node with a smaller id than the mark saw can
  commit after it), or a candidate kept, or
- another transaction holds a row lock on (``FOR UPDATE SKIP LOCKED``: a session being
  created with it as its head has checked it ``FOR KEY SHARE``, with no table lock that
  conflicts, and inserts when the batch is done),

and with a kept candidate its ancestors (the mark's parents: a node's parent never
changes). The others go, with their ledger rows' node and params (which rebuild the
body from the node); then, in a transaction of its own under the same locks (each holds
them half as long), each message of theirs, or found unused by the mark, that no node
uses now goes. A node's children have larger ids, so they are decided in its batch or
before it (a child below, from ids handed out of order, only keeps it for this gc).
Nothing depends on what the mark saw beyond the candidates: another gc at the same
time (another process) deletes what it finds dead under the same locks, and a batch
drops a candidate found gone, so two gcs stay correct and count each node once.

A writer that checked a node before a batch deleted it and refers to it after (an
append below a node it just read, a head moved onto it) finds it gone, as after a gc in
one transaction: the foreign key refuses it, which ``errors`` makes a ``ConflictError``
(``GONE``: not stored, collected by gc?), nothing written.

Lock waits: writers take srt's tables in different orders (an append ``messages``
before ``objects``, its conditional object first, a deletion ``sessions`` first), so a
batch waiting for one table while holding another could deadlock with a writer: each
batch waits at most ``LOCK_WAIT`` (``lock_timeout``) and tries again, so the writer
never waits for a deadlock to be found.

Node ids out of parent-before-child order (rows written by hand): the pass needs the
order only along the live chains. A live node whose parent's id is not smaller than its
own ends the pass (``_pass`` returns None: the parent would be passed before it is known
to be live), and that store is collected in one transaction (``once``, by the recursive
walk), as is a dry run over it. A candidate whose parent has a larger id does not: it
stays in the batches; its parent, decided in the same batch or before it (newest
first), goes with it in the same batch, or else finds it as a child outside its batch
(``_KEEP``) and is kept, with its ancestors, for this gc (the next gc, the child gone,
collects them). A dry run counts in the mark's snapshot and writes nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pge

from ...errors import StoreBusyError
from .. import owners
from ..base import GcReport
from .maintenance import NO_JIT
from .objects import ORPHANS
from .pool import Database

__all__ = ["BATCH", "gc", "once"]

#: Candidates a batch decides at most. A batch held the locks ~70 ms, its messages'
#: transaction ~55 ms, at load ~7 on 2 cores; at 10,000 x 100 turns committing during the
#: gc waited p99 114 ms, max 134 ms (``bench/gateway_gc_sweep.py --url ...``, docs/gateway.md).
BATCH = 1000
#: How long a batch waits for its table locks before it lets go and tries again.
LOCK_WAIT = "200ms"
#: How many times a batch asks for its locks before gc gives up (``StoreBusyError``).
LOCK_TRIES = 200

#: Tests set this to run writes between the phases, deterministically: called with
#: ``"marked"`` after the mark, ``"locked"`` in each batch once it holds its locks (on
#: the gc's connection: a writer there must run on another and may wait for the batch),
#: and ``"batch"`` after each batch's commit.
hook: Callable[[str], None] | None = None

_LOCK = (
    "LOCK TABLE {s}.messages, {s}.nodes, {s}.sessions, {s}.calls, {s}.objects "
    "IN SHARE ROW EXCLUSIVE MODE"
)
_ROOTS = (
    "SELECT head FROM {s}.sessions WHERE head IS NOT NULL "
    "UNION SELECT node FROM {s}.objects WHERE node IS NOT NULL"
)
#: A dry run's roots: the objects the prelude would delete are not among them.
_DRY_ROOTS = (
    "SELECT head FROM {s}.sessions WHERE head IS NOT NULL "
    "UNION SELECT x.node FROM {s}.objects x WHERE x.node IS NOT NULL "
    "AND (x.expires IS NULL OR x.expires > %s) AND x.id NOT IN (SELECT o.id " + ORPHANS + ")"
)
_EXPIRED = "FROM {s}.objects WHERE expires IS NOT NULL AND expires <= %s"
#: An error's text goes with its session (its status stays).
_ERRORS = (
    "UPDATE {s}.calls c SET error = NULL WHERE c.error IS NOT NULL "
    "AND c.session IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM {s}.sessions x WHERE x.id = c.session)"
)
_UNUSED = (
    "SELECT m.id FROM {s}.messages m WHERE NOT EXISTS "
    "(SELECT 1 FROM {s}.nodes n WHERE n.message = m.id)"
)
#: The candidates of a batch (``%(ids)s``) something outside it refers to.
_KEEP = (
    "SELECT head FROM {s}.sessions WHERE head = ANY(%(ids)s) "
    "UNION ALL SELECT node FROM {s}.objects WHERE node = ANY(%(ids)s) "
    "UNION ALL SELECT parent FROM {s}.nodes WHERE parent = ANY(%(ids)s) "
    "AND NOT (id = ANY(%(ids)s))"
)
_GONE_MESSAGES = (
    "WITH gone AS (DELETE FROM {s}.messages m WHERE m.id = ANY(%s) AND NOT EXISTS "
    "(SELECT 1 FROM {s}.nodes n WHERE n.message = m.id) RETURNING length(body) AS n) "
    "SELECT count(*), coalesce(sum(n), 0) FROM gone"
)
#: The dead nodes, in a temporary table named by its schema (``pg_temp``): a caller's
#: pool may look names up in a schema of its own before ``pg_temp``.
_DEAD = "CREATE TEMP TABLE pg_temp.srt_gc_dead(id bigint PRIMARY KEY) ON COMMIT DROP"


def _call(phase: str) -> None:
    if hook is not None:
        hook(phase)


def _report(
    dry_run: bool,
    watch: Sequence[bytes],
    live: set[bytes],
    *,
    nodes: int,
    messages: int,
    message_bytes: int,
    ledger_rows: int,
    objects: int,
    orphan_objects: int,
) -> GcReport:
    return GcReport(
        nodes=nodes,
        messages=messages,
        message_bytes=message_bytes,
        ledger_rows=ledger_rows,
        pages_freed=0,
        free_pages=0,
        page_size=0,
        secure_delete=False,
        checkpointed=False,
        dry_run=dry_run,
        objects=objects,
        orphan_objects=orphan_objects,
        dead_prefixes=tuple(p for p in watch if p not in live),
    )


def _pass(
    db: Database, conn: psycopg.Connection[Any], roots: str, args: Sequence[Any] = ()
) -> dict[int, int | None] | None:
    """The nodes no root reaches, newest first, each with its parent (module docstring);
    None if a live node's parent id is not smaller than its own (then the walk of
    ``once``; a candidate's parent may have any id)."""
    pending = {r[0] for r in conn.execute(db.sql(roots), args)}
    dead: dict[int, int | None] = {}
    with conn.cursor(name="srt_gc_nodes") as cur:
        cur.itersize = 10_000
        cur.execute(db.sql("SELECT id, parent FROM {s}.nodes ORDER BY id DESC"))
        for nid, parent in cur:
            if nid in pending:
                pending.discard(nid)
                if parent is not None:
                    if parent >= nid:
                        return None
                    pending.add(parent)
            else:
                dead[nid] = parent
    return dead


def _live_prefixes(
    db: Database, conn: psycopg.Connection[Any], watch: Sequence[bytes], but: str = ""
) -> set[bytes]:
    if not watch:
        return set()
    sql = db.sql("SELECT prefix FROM {s}.nodes n WHERE prefix = ANY(%s)" + but)
    return {bytes(r[0]) for r in conn.execute(sql, (list(watch),))}


# -- the one-transaction gc (live ids out of order) ---------------------------------------

#: The live nodes, by a recursive walk that needs no order of ids.
_LIVE = """
CREATE TEMP TABLE pg_temp.srt_gc_live ON COMMIT DROP AS
WITH RECURSIVE live(id) AS (
    SELECT head FROM {s}.sessions WHERE head IS NOT NULL
    UNION
    SELECT node FROM {s}.objects WHERE node IS NOT NULL
    UNION
    SELECT n.parent FROM live CROSS JOIN LATERAL (
        SELECT parent FROM {s}.nodes p WHERE p.id = live.id LIMIT 1
    ) n WHERE n.parent IS NOT NULL
)
SELECT id FROM live
"""


def _fill_dead(conn: psycopg.Connection[Any], dead: Sequence[int]) -> None:
    conn.execute(_DEAD)
    with conn.cursor().copy("COPY pg_temp.srt_gc_dead(id) FROM STDIN") as copy:
        for nid in dead:
            copy.write_row((nid,))


def _mark_once(db: Database, conn: psycopg.Connection[Any]) -> None:
    """Fill ``pg_temp.srt_gc_dead`` with the nodes no root reaches (in the
    one-transaction gc, its locks held): the pass, or the walk if live ids are out of order."""
    dead = _pass(db, conn, _ROOTS)
    if dead is not None:
        _fill_dead(conn, list(dead))
        return
    conn.execute(_DEAD)
    conn.execute(db.sql(_LIVE))
    conn.execute("ALTER TABLE pg_temp.srt_gc_live ADD PRIMARY KEY (id)")
    conn.execute(
        db.sql(
            "INSERT INTO pg_temp.srt_gc_dead SELECT n.id FROM {s}.nodes n WHERE NOT EXISTS "
            "(SELECT 1 FROM pg_temp.srt_gc_live l WHERE l.id = n.id)"
        )
    )


def once(
    db: Database, conn: psycopg.Connection[Any], dry_run: bool, watch: Sequence[bytes]
) -> GcReport:
    """gc in one transaction holding ``SHARE ROW EXCLUSIVE`` locks on srt's tables for
    the whole mark and sweep (appends wait; readers do not)."""
    with conn.transaction(force_rollback=dry_run):
        conn.execute(db.sql(_LOCK + "; " + NO_JIT))
        objects = conn.execute(db.sql("DELETE " + _EXPIRED), (time.time(),)).rowcount
        kinds = (list(owners.session_kinds()),)
        orphans = conn.execute(db.sql("DELETE " + ORPHANS), kinds).rowcount
        _mark_once(db, conn)
        ledger = conn.execute(
            db.sql(
                "UPDATE {s}.calls c SET node = NULL, params = NULL "
                "WHERE c.node IN (SELECT id FROM pg_temp.srt_gc_dead)"
            )
        ).rowcount
        conn.execute(db.sql(_ERRORS))
        nodes = conn.execute(
            db.sql("DELETE FROM {s}.nodes n USING pg_temp.srt_gc_dead d WHERE n.id = d.id")
        ).rowcount
        live = _live_prefixes(db, conn, watch)  # the nodes left are the live ones
        row = conn.execute(
            db.sql(
                "WITH gone AS (DELETE FROM {s}.messages m WHERE NOT EXISTS "
                "(SELECT 1 FROM {s}.nodes n WHERE n.message = m.id) "
                "RETURNING length(body) AS n)"
                " SELECT count(*), coalesce(sum(n), 0) FROM gone"
            )
        ).fetchone()
        assert row is not None
    return _report(
        dry_run,
        watch,
        live,
        nodes=nodes,
        messages=int(row[0]),
        message_bytes=int(row[1]),
        ledger_rows=ledger,
        objects=objects,
        orphan_objects=orphans,
    )


# -- the dry run --------------------------------------------------------------------------


def _dry(db: Database, conn: psycopg.Connection[Any], watch: Sequence[bytes]) -> GcReport | None:
    """What gc would remove, counted in one snapshot: nothing is locked or written; None
    if live ids are out of order (``once`` then counts)."""
    now = time.time()
    kinds = list(owners.session_kinds())
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; " + NO_JIT)
        expired = conn.execute(db.sql("SELECT count(*) " + _EXPIRED), (now,)).fetchone()
        orphans = conn.execute(
            db.sql("SELECT count(*) " + ORPHANS + " AND (o.expires IS NULL OR o.expires > %s)"),
            (kinds, now),
        ).fetchone()
        dead = _pass(db, conn, _DRY_ROOTS, (now, kinds))
        if dead is None:
            return None
        _fill_dead(conn, list(dead))
        ledger = conn.execute(
            db.sql("SELECT count(*) FROM {s}.calls c JOIN pg_temp.srt_gc_dead d ON d.id = c.node")
        ).fetchone()
        freed = conn.execute(
            db.sql(
                "SELECT count(*), coalesce(sum(length(m.body)), 0) FROM {s}.messages m "
                "WHERE NOT EXISTS (SELECT 1 FROM {s}.nodes n WHERE n.message = m.id AND NOT "
                "EXISTS (SELECT 1 FROM pg_temp.srt_gc_dead d WHERE d.id = n.id))"
            )
        ).fetchone()
        live = _live_prefixes(
            db,
            conn,
            watch,
            " AND NOT EXISTS (SELECT 1 FROM pg_temp.srt_gc_dead d WHERE d.id = n.id)",
        )
    assert expired and orphans and ledger and freed
    return _report(
        True,
        watch,
        live,
        nodes=len(dead),
        messages=int(freed[0]),
        message_bytes=int(freed[1]),
        ledger_rows=int(ledger[0]),
        objects=int(expired[0]),
        orphan_objects=int(orphans[0]),
    )


# -- the batched gc -----------------------------------------------------------------------


@dataclass
class Sweep:
    """The mark's candidates and what the batches did."""

    #: Candidate nodes not yet decided, newest first, each with its parent.
    dead: dict[int, int | None]
    #: Messages no node used at the mark.
    unused: list[int] = field(default_factory=list)
    #: The messages of the nodes the last batch deleted.
    freed: list[int] = field(default_factory=list)
    nodes: int = 0
    messages: int = 0
    message_bytes: int = 0
    ledger_rows: int = 0


def _rescue(s: Sweep, nid: int | None) -> None:
    """Keep candidate ``nid`` and every candidate above it."""
    while nid is not None and nid in s.dead:
        nid = s.dead.pop(nid)


def _batch(
    db: Database, conn: psycopg.Connection[Any], s: Sweep, ids: list[int], unused: list[int]
) -> None:
    """Decide the candidates ``ids`` (their messages: ``s.freed``), or delete the
    messages ``unused`` that no node uses now, in one transaction under the locks
    (module docstring)."""
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'; " + NO_JIT)
        conn.execute(db.sql(_LOCK))
        _call("locked")
        nodes = ledger = 0
        freed: list[int] = []
        if ids:
            mine = conn.execute(
                db.sql("SELECT id FROM {s}.nodes WHERE id = ANY(%s) FOR UPDATE SKIP LOCKED"),
                (ids,),
            )
            free = {r[0] for r in mine}
            held: list[int] = []
            if len(free) < len(ids):
                rest = [n for n in ids if n not in free]
                there = conn.execute(db.sql("SELECT id FROM {s}.nodes WHERE id = ANY(%s)"), (rest,))
                held = [r[0] for r in there]  # locked by a writer: kept
                for nid in set(rest) - set(held):  # another gc's: gone already
                    s.dead.pop(nid, None)
            keep = conn.execute(db.sql(_KEEP), {"ids": ids})
            for nid in held + [r[0] for r in keep]:
                _rescue(s, nid)
            gone = [n for n in ids if n in s.dead]
            if gone:
                ledger = conn.execute(
                    db.sql("UPDATE {s}.calls SET node = NULL, params = NULL WHERE node = ANY(%s)"),
                    (gone,),
                ).rowcount
                cur = conn.execute(
                    db.sql("DELETE FROM {s}.nodes WHERE id = ANY(%s) RETURNING message"),
                    (gone,),
                )
                freed = [r[0] for r in cur]
                nodes = len(freed)
        row = (
            conn.execute(db.sql(_GONE_MESSAGES), (sorted(set(unused)),)).fetchone()
            if unused
            else (0, 0)
        )
        assert row is not None
    for nid in ids:
        s.dead.pop(nid, None)
    s.freed = freed
    s.nodes += nodes
    s.ledger_rows += ledger
    s.messages += int(row[0])
    s.message_bytes += int(row[1])


def _retrying(fn: Callable[[], None]) -> None:
    """``fn`` (one transaction that first takes table locks), tried again while its
    locks are not had in ``LOCK_WAIT`` (or a deadlock or serialization failure undid
    it)."""
    for attempt in range(LOCK_TRIES):
        try:
            fn()
            return
        except (pge.LockNotAvailable, pge.DeadlockDetected, pge.SerializationFailure):
            time.sleep(min(0.005 * (attempt + 1), 0.1))
    raise StoreBusyError(
        f"collecting garbage: srt's tables were not had in {LOCK_TRIES} tries of "
        f"{LOCK_WAIT} (a long write transaction?); what was collected stays collected, "
        "run gc again later"
    )


def _prelude(db: Database, conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Delete the expired objects and those filed under a session id no session has
    (the tables locked, as a batch locks them: a session made meanwhile waits, then
    files its objects); their counts."""
    got: list[int] = []

    def run() -> None:
        got.clear()
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            conn.execute(db.sql(_LOCK))
            kinds = (list(owners.session_kinds()),)
            got.append(conn.execute(db.sql("DELETE " + _EXPIRED), (time.time(),)).rowcount)
            got.append(conn.execute(db.sql("DELETE " + ORPHANS), kinds).rowcount)

    _retrying(run)
    conn.execute(db.sql(_ERRORS))  # (row locks only: its own statement)
    return got[0], got[1]


def _sweep(db: Database, conn: psycopg.Connection[Any], watch: Sequence[bytes]) -> GcReport:
    objects, orphans = _prelude(db, conn)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; " + NO_JIT)
        dead = _pass(db, conn, _ROOTS)
        unused = [] if dead is None else [r[0] for r in conn.execute(db.sql(_UNUSED))]
    if dead is None:
        report = once(db, conn, False, watch)
        return _report(
            False,
            watch,
            {p for p in watch if p not in report.dead_prefixes},
            nodes=report.nodes,
            messages=report.messages,
            message_bytes=report.message_bytes,
            ledger_rows=report.ledger_rows,
            objects=objects + report.objects,
            orphan_objects=orphans + report.orphan_objects,
        )
    s = Sweep(dead, unused)
    _call("marked")
    order, at = list(dead), 0  # newest first; each batch takes what is left
    while s.dead:
        ids: list[int] = []
        while len(ids) < BATCH and at < len(order):
            if order[at] in s.dead:
                ids.append(order[at])
            at += 1
        _retrying(functools.partial(_batch, db, conn, s, ids, []))
        _call("batch")
        if s.freed:  # (a transaction of their own: each holds the locks half as long)
            _retrying(functools.partial(_batch, db, conn, s, [], s.freed))
            _call("batch")
    for i in range(0, len(s.unused), BATCH):
        _retrying(functools.partial(_batch, db, conn, s, [], s.unused[i : i + BATCH]))
        _call("batch")
    return _report(
        False,
        watch,
        _live_prefixes(db, conn, watch),
        nodes=s.nodes,
        messages=s.messages,
        message_bytes=s.message_bytes,
        ledger_rows=s.ledger_rows,
        objects=objects,
        orphan_objects=orphans,
    )


def gc(db: Database, *, dry_run: bool = False, watch: Sequence[bytes] = ()) -> GcReport:
    """Sweep expired objects, unreachable nodes and unused messages (module docstring);
    of the prefix hashes in ``watch``, report those no node carries after it."""

    def run(conn: psycopg.Connection[Any]) -> GcReport:
        if not dry_run:
            return _sweep(db, conn, watch)
        report = _dry(db, conn, watch)
        return report if report is not None else once(db, conn, True, watch)

    return db.run("collecting garbage", run)
