"""Keeping an srt schema on PostgreSQL tidy and honest: verify and vacuum (gc is
``gc``'s, search ``search``'s, the views behind ``srt ls`` and ``srt show --tree`` are
``views``'s, on the same snapshot and walk).

Readers run in one ``REPEATABLE READ, READ ONLY`` transaction, so each sees one
snapshot while writers go on.

**Verify** re-derives every message hash from its body and every node's depth and
prefix hash from its parent and message (client-side: the hash is XXH3-128, which
PostgreSQL does not compute), checks that each node's metadata is a JSON object, as
SQLite's verify does, and that session heads, ledger nodes and object nodes exist and
that the search index, if there is one, is valid (or being built). Foreign keys make
PostgreSQL itself refuse dangling references, so those checks find only damage.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from ... import _core
from .. import owners
from ..base import (
    Fault,
    FaultList,
    VacuumReport,
    VerifyReport,
)
from ..checks import metadata_ok
from . import schema as sch
from .objects import ORPHANS
from .pool import Database

__all__ = [
    "CHAINS",
    "NUL_ESCAPE",
    "index_building",
    "index_state",
    "places_of",
    "snapshot",
    "text_of",
    "vacuum",
    "verify",
]

#: Every session's chain, walked up from its head: (session id, node, parent, message,
#: depth). ``n.depth < up.depth`` makes the walk end even on a damaged parent cycle; each
#: step is a LATERAL lookup by primary key (see ``store._CHAIN``).
CHAINS = """
WITH RECURSIVE up(sid, id, parent, message, depth) AS (
    SELECT s.id, n.id, n.parent, n.message, n.depth
    FROM {s}.sessions s JOIN {s}.nodes n ON n.id = s.head
    UNION ALL
    SELECT up.sid, n.id, n.parent, n.message, n.depth
    FROM up CROSS JOIN LATERAL (
        SELECT * FROM {s}.nodes p WHERE p.id = up.parent AND p.depth < up.depth LIMIT 1
    ) n
)
"""
_TABLES = ("messages", "nodes", "sessions", "calls", "objects")


#: For the whole-store walks below, in their transaction: no JIT. The planner prices a
#: recursive walk far above ``jit_above_cost`` (on by default since PostgreSQL 12), and
#: compiling it took 0.6 s for a store of one message, where the walk itself takes
#: microseconds to milliseconds. (Not set for the connection: behind PgBouncer in
#: transaction mode a session setting would reach other clients.)
NO_JIT = "SET LOCAL jit = off"

#: A body holding this escape has U+0000 in its text, which PostgreSQL's ``text`` cannot
#: hold: ``message_text`` reads it as a space, and search and tree take the text from
#: the body instead (``_text``), as SQLite gives it.
NUL_ESCAPE = "'\\x5c7530303030'::bytea"  # the six bytes \u0000


def text_of(body: Any, sql_text: Any, width: int | None = None) -> str:
    """The text SQLite's search and tree give: the content string, or the text parts
    joined by newlines, from the canonical body (only for a body with an escaped NUL,
    ``body`` is not None); else the text PostgreSQL computed."""
    if body is None:
        return str(sql_text)
    content = json.loads(bytes(body)).get("content")
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "\n".join(p for p in parts if isinstance(p, str))
    text = content if isinstance(content, str) else ""
    return text if width is None else text[:width]


@contextlib.contextmanager
def snapshot(conn: psycopg.Connection[Any]) -> Iterator[None]:
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; " + NO_JIT)
        yield


def places_of(
    db: Database, conn: psycopg.Connection[Any], nodes: Sequence[int]
) -> dict[int, list[tuple[str, int]]]:
    """For each of ``nodes``: the (session name, 1-based position) pairs that reach it."""
    out: dict[int, list[tuple[str, int]]] = {n: [] for n in nodes}
    if not nodes:
        return out
    sql = db.sql(
        CHAINS + "SELECT up.id, s.name, up.depth FROM up JOIN {s}.sessions s ON s.id = up.sid "
        "WHERE up.id = ANY(%s) ORDER BY s.name"
    )
    for node, name, depth in conn.execute(sql, (list(nodes),)):
        out[node].append((name, depth))
    return out


# -- vacuum -----------------------------------------------------------------------------

_SIZE = (
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'"
)


def size(db: Database) -> int:
    """Bytes of srt's tables with their TOAST data and indexes."""
    rows = db.run(
        "measuring the store", lambda c: c.execute(_SIZE, (db.schema,)).fetchall(), retry_reads=True
    )
    return int(rows[0][0])


def vacuum(db: Database) -> VacuumReport:
    """``VACUUM FULL`` srt's tables: rewritten without the space of deleted rows."""
    before = size(db)

    def run(conn: psycopg.Connection[Any]) -> None:
        for table in _TABLES:
            conn.execute(db.sql(f"VACUUM (FULL, ANALYZE) {{s}}.{table}"))

    db.run("vacuuming the database", run)
    return VacuumReport(before, size(db), False)


# -- verify ---------------------------------------------------------------------------


def verify(db: Database) -> VerifyReport:
    """Check every hash, chain and reference (see the module docstring)."""

    def run(conn: psycopg.Connection[Any]) -> VerifyReport:
        faults = FaultList()
        with snapshot(conn):
            counts = _verify(db, conn, faults)
            kinds = (list(owners.session_kinds()),)  # (not a fault: garbage gc frees)
            row = conn.execute(db.sql("SELECT count(*) " + ORPHANS), kinds).fetchone()
        messages, nodes, sessions, calls = counts
        found = tuple(faults.items)
        return VerifyReport(
            messages, nodes, sessions, calls, found, faults.more, row[0] if row else 0
        )

    return db.run("verifying the database", run, retry_reads=True)


def index_state(db: Database, conn: psycopg.Connection[Any]) -> bool | None:
    """Whether the search index is there and usable: ``None`` if there is none, ``False``
    while a build runs (``CREATE INDEX CONCURRENTLY``) or if one was cut short."""
    row = conn.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (db.schema, sch.SEARCH_INDEX),
    ).fetchone()
    return None if row is None else bool(row[0])


#: A ``CREATE INDEX CONCURRENTLY`` (or ``REINDEX CONCURRENTLY``) on srt's messages now:
#: one this role may see names its table (``relid``); another role's shows without it
#: (NULL, as every column but its backend's pid), and is told by its backend's session
#: lock on the table (``ShareUpdateExclusiveLock``, held from the build's start to its
#: end), which ``pg_locks`` shows every role.
_BUILDING = """
SELECT EXISTS (
    SELECT 1 FROM pg_stat_progress_create_index p, (SELECT to_regclass(%s) AS oid) m
    WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND (
        p.relid = m.oid AND p.command IN ('CREATE INDEX CONCURRENTLY', 'REINDEX CONCURRENTLY')
        OR p.relid IS NULL AND EXISTS (
            SELECT 1 FROM pg_locks l WHERE l.pid = p.pid AND l.locktype = 'relation'
            AND l.database = p.datid AND l.relation = m.oid
            AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted
        )
    )
)
"""


def index_building(db: Database, conn: psycopg.Connection[Any]) -> bool:
    """Whether a ``CREATE INDEX CONCURRENTLY`` on srt's messages runs now, on any
    connection of any role (the search index's build: its index is invalid only until it
    ends, no fault; another index's build on the table, which srt's would queue behind).
    PostgreSQL's progress view, server-wide, so it is seen behind a pooler too; a build
    on another table of the database, whoever's, does not count (``_BUILDING``)."""
    row = conn.execute(_BUILDING, (f'"{db.schema}".messages',)).fetchone()
    return bool(row and row[0])


def _stream(conn: psycopg.Connection[Any], sql: str, args: Sequence[Any] = ()) -> Iterator[Any]:
    """Rows of ``sql`` through a server-side cursor (binary), a batch at a time."""
    with conn.cursor(name="srt_verify", binary=True) as cur:
        cur.itersize = 2000
        cur.execute(sql, args)
        yield from cur


def _verify(
    db: Database, conn: psycopg.Connection[Any], faults: FaultList
) -> tuple[int, int, int, int]:
    messages = nodes = 0
    bad: list[Fault] = []
    for mid, mhash, body in _stream(
        conn, db.sql("SELECT id, hash, body FROM {s}.messages ORDER BY id")
    ):
        messages += 1
        if _core.digest(bytes(body)) != bytes(mhash):
            bad.append(
                Fault(
                    "message",
                    "messages",
                    mid,
                    f"the stored body does not hash to its hash {bytes(mhash).hex()}",
                )
            )
    if bad:
        ids = [f.row for f in bad if f.row is not None]
        users = conn.execute(
            db.sql("SELECT id, message FROM {s}.nodes WHERE message = ANY(%s)"), (ids,)
        ).fetchall()
        reach = places_of(db, conn, [n for n, _ in users])
        for f in bad:
            places = sorted(p for n, m in users if m == f.row for p in reach[n])
            faults.add(Fault(f.kind, f.table, f.row, f.detail, tuple(places)))

    # As on SQLite: a parent's id is below its children's, so one pass in id order sees
    # every parent first; only the derived values of damaged nodes are remembered.
    derived: dict[int, tuple[int, bytes]] = {}
    bad = []
    sql = db.sql(
        "SELECT n.id, n.parent, n.depth, n.prefix, n.meta, m.id, m.hash, p.id, p.depth, "
        "p.prefix FROM {s}.nodes n LEFT JOIN {s}.messages m ON m.id = n.message "
        "LEFT JOIN {s}.nodes p ON p.id = n.parent ORDER BY n.id"
    )
    for nid, parent, depth, prefix, meta, mid, mhash, pid, pdepth, pprefix in _stream(conn, sql):
        nodes += 1
        if meta is not None and not metadata_ok(bytes(meta)):  # (what entries() reads)
            bad.append(Fault("node", "nodes", nid, "its metadata is not a JSON object"))
        detail = None
        if pid is not None and pid in derived:
            pdepth, pprefix = derived[pid]
        if mid is None:
            detail = "its message row is missing"
        elif parent is not None and pid is None:
            detail = f"its parent node {parent} is missing"
        else:
            want_depth = (pdepth or 0) + 1
            want = _core.chain(bytes(pprefix) if pid is not None else _core.ROOT, bytes(mhash))
            if depth != want_depth:
                detail = f"depth {depth} should be {want_depth}"
            elif bytes(prefix) != want:
                detail = "its prefix hash does not chain from its parent and message"
            if detail is not None:
                derived[nid] = (want_depth, want)
        if detail is not None:
            bad.append(Fault("node", "nodes", nid, detail))
    if bad:
        reach = places_of(db, conn, [f.row for f in bad if f.row is not None])
        for f in bad:
            assert f.row is not None
            faults.add(Fault(f.kind, f.table, f.row, f.detail, tuple(reach[f.row])))

    sessions = 0
    for sid, name, head, found in conn.execute(
        db.sql(
            "SELECT s.id, s.name, s.head, n.id FROM {s}.sessions s "
            "LEFT JOIN {s}.nodes n ON n.id = s.head ORDER BY s.id"
        )
    ):
        sessions += 1
        if head is not None and found is None:
            faults.add(
                Fault("session", "sessions", sid, f"session {name!r}: head {head} is missing")
            )
    for cid, node in conn.execute(
        db.sql(
            "SELECT c.id, c.node FROM {s}.calls c LEFT JOIN {s}.nodes n ON n.id = c.node "
            "WHERE c.node IS NOT NULL AND n.id IS NULL ORDER BY c.id"
        )
    ):
        faults.add(Fault("ledger", "calls", cid, f"its node {node} is missing"))
    row = conn.execute(db.sql("SELECT count(*) FROM {s}.calls")).fetchone()
    calls = int(row[0]) if row else 0
    for oid, kind, node in conn.execute(
        db.sql(
            "SELECT o.id, o.kind, o.node FROM {s}.objects o LEFT JOIN {s}.nodes n ON n.id = o.node "
            "WHERE o.node IS NOT NULL AND n.id IS NULL ORDER BY o.id"
        )
    ):
        faults.add(Fault("object", "objects", oid, f"{kind} object: its node {node} is missing"))
    if index_state(db, conn) is False and not index_building(db, conn):
        faults.add(
            Fault(
                "search_index",
                sch.SEARCH_INDEX,
                None,
                "the index is marked invalid (a build cut short); the next search builds it again",
            )
        )
    return messages, nodes, sessions, calls
