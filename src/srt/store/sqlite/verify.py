"""``verify``: re-derive every hash and chain of an srt file and check its references.

It re-derives every message hash from its body (read from the heap, whose rows must
not overlap), every node's depth and prefix hash from its parent and message, checks
that session heads, ledger nodes and object nodes exist, that each session records its
head's prefix hash (opening the session checks it), that each node's metadata is a
JSON object, that the search index (if the file has one) holds exactly the stored
messages and still has its triggers, and runs ``PRAGMA integrity_check`` and
``PRAGMA foreign_key_check``. A fault names the table, the row and the sessions (and
positions) that reach it. It reads in one transaction, so it sees one snapshot.
"""

from __future__ import annotations

from typing import Any

import apsw

from ... import _core
from ..._hashing import Hashing
from ...errors import StoreError
from .. import owners
from ..base import Fault, FaultList, VerifyReport
from ..checks import metadata_ok
from . import heap
from . import queries as q
from . import schema as db_module
from .database import Database
from .db import translate
from .statements import orphan_ids

__all__ = ["verify"]

#: Messages read from the heap at a time.
_BATCH = 512


def verify(db: Database) -> VerifyReport:
    """Check every hash, chain and reference in the file (see the module docstring)."""
    action = "verifying the database"
    faults = FaultList()
    counts = [0, 0, 0, 0, 0]
    with db.job(action) as conn, q.snapshot(conn, action):
        try:
            _verify(conn, faults, counts, db.hashing)
        except StoreError as exc:  # a page too damaged to read ends the walk
            faults.add(Fault("integrity", "database", None, str(exc)))
    messages, nodes, sessions, calls, orphans = counts
    found = tuple(faults.items)
    return VerifyReport(messages, nodes, sessions, calls, found, faults.more, orphans)


def _verify(conn: apsw.Connection, faults: FaultList, counts: list[int], hashing: Hashing) -> None:
    for (line,) in conn.execute("PRAGMA integrity_check(20)"):
        if line != "ok":
            faults.add(Fault("integrity", "database", None, f"integrity_check: {line}"))

    bad_messages: list[Fault] = []
    with translate("verifying messages"):
        end = None
        for rid, size in conn.execute("SELECT id, length(data) FROM heap ORDER BY id"):
            if end is not None and rid < end:
                faults.add(Fault("message", "heap", rid, "the row overlaps the row before it"))
            end = rid + size
        places: list[Any] = q.rows(
            conn, "SELECT at, len, hash FROM nodes GROUP BY at, len, hash ORDER BY at"
        ).fetchall()
        seen: set[int] = set()
        for k in range(0, len(places), _BATCH):
            batch = places[k : k + _BATCH]
            bodies: list[bytes | None]
            try:
                bodies = list(heap.read(conn, [p[0] for p in batch], [p[1] for p in batch]))
            except (ValueError, TypeError):
                bodies = []
                for at, n, _h in batch:
                    try:
                        bodies.append(heap.read(conn, [at], [n])[0])
                    except (ValueError, TypeError):
                        bodies.append(None)
            for (at, _n, mhash), body in zip(batch, bodies, strict=True):
                if at not in seen:
                    counts[0] += 1
                    seen.add(at)
                detail: str | None
                if body is None:
                    detail = "the heap does not hold its body"
                elif hashing.digest(body) != mhash:
                    detail = f"the stored body does not hash to its hash {bytes(mhash).hex()}"
                else:
                    continue
                bad_messages.append(Fault("message", "messages", at, detail))
    if bad_messages:
        ids = sorted({f.row for f in bad_messages if f.row is not None})
        users = q.rows(
            conn, f"SELECT id, at FROM nodes WHERE at IN ({q.marks(len(ids))})", ids
        ).fetchall()
        reach = q.places(conn, [n for n, _ in users])
        for f in bad_messages:
            places_ = sorted(p for n, m in users if m == f.row for p in reach[n])
            faults.add(Fault(f.kind, f.table, f.row, f.detail, tuple(places_)))

    bad_nodes: list[Fault] = []
    # A node's depth and prefix are re-derived from its parent's *derived* values, so a
    # damaged node is reported once and its intact descendants are not. A parent's id
    # is always below its children's (it was inserted first), so one pass in id order
    # sees every parent first; only the values of damaged nodes need remembering.
    derived: dict[int, tuple[int, bytes]] = {}
    sql = (
        "SELECT n.id, n.parent, n.depth, n.prefix, n.hash, p.id, p.depth, p.prefix "
        "FROM nodes n LEFT JOIN nodes p ON p.id = n.parent ORDER BY n.id"
    )
    for nid, parent, depth, prefix, mhash, pid, pdepth, pprefix in q.rows(conn, sql):
        counts[1] += 1
        detail = None
        if pid is not None and pid in derived:
            pdepth, pprefix = derived[pid]
        if parent is not None and pid is None:
            detail = f"its parent node {parent} is missing"
        else:
            want_depth = (pdepth or 0) + 1
            want = hashing.chain(pprefix if pid is not None else _core.ROOT, mhash)
            if depth != want_depth:
                detail = f"depth {depth} should be {want_depth}"
            elif prefix != want:
                detail = "its prefix hash does not chain from its parent and message"
            if detail is not None:
                derived[nid] = (want_depth, want)
        if detail is not None:
            bad_nodes.append(Fault("node", "nodes", nid, detail))
    _add_node_faults(conn, faults, bad_nodes)

    for sid, name, head, found, recorded, prefix in q.rows(
        conn,
        "SELECT s.id, s.name, s.head, n.id, s.head_prefix, n.prefix "
        "FROM sessions s LEFT JOIN nodes n ON n.id = s.head ORDER BY s.id",
    ):
        counts[2] += 1
        if head is not None and found is None:
            faults.add(
                Fault("session", "sessions", sid, f"session {name!r}: head {head} is missing")
            )
        elif recorded != prefix:  # (what opening the session checks: GET_SESSION_SQL)
            faults.add(Fault("session", "sessions", sid, _head_prefix_fault(name, head)))
    _verify_node_fields(conn, faults)

    for cid, node in q.rows(
        conn,
        "SELECT c.id, c.node FROM calls c LEFT JOIN nodes n ON n.id = c.node "
        "WHERE c.node IS NOT NULL AND n.id IS NULL ORDER BY c.id",
    ):
        faults.add(Fault("ledger", "calls", cid, f"its node {node} is missing"))
    counts[3] = int(conn.execute("SELECT count(*) FROM calls").get or 0)

    if db_module.has_table(conn, db_module.OBJECTS_TABLE):
        for oid, kind, node in q.rows(
            conn,
            "SELECT o.id, o.kind, o.node FROM objects o LEFT JOIN nodes n ON n.id = o.node "
            "WHERE o.node IS NOT NULL AND n.id IS NULL ORDER BY o.id",
        ):
            faults.add(
                Fault("object", "objects", oid, f"{kind} object: its node {node} is missing")
            )
        kinds = owners.session_kinds()
        if kinds:  # (not a fault: garbage gc frees)
            sql = f"SELECT count(*) FROM ({orphan_ids(len(kinds))})"
            counts[4] = int(conn.execute(sql, kinds).get or 0)

    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        if table in ("nodes", "sessions", "calls", "objects"):
            continue  # reported above, with more detail
        faults.add(Fault("foreign_key", table, rowid, f"refers to a missing {parent} row"))

    if db_module.has_search_index(conn):
        _verify_search_index(conn, faults)


def _head_prefix_fault(name: str, head: int | None) -> str:
    if head is None:
        return f"session {name!r} is empty but records a head prefix hash"
    return (
        f"session {name!r}: the prefix hash it records for its head {head} is not that "
        "node's, so the session cannot be opened"
    )


def _verify_node_fields(conn: apsw.Connection, faults: FaultList) -> None:
    """Each node's metadata is a JSON object: what ``entries()`` reads beside the
    message."""
    bad: list[Fault] = []
    for nid, meta in q.rows(conn, "SELECT id, meta FROM nodes WHERE meta IS NOT NULL ORDER BY id"):
        if not metadata_ok(meta):
            bad.append(Fault("node", "nodes", nid, "its metadata is not a JSON object"))
    _add_node_faults(conn, faults, bad)


def _add_node_faults(conn: apsw.Connection, faults: FaultList, bad: list[Fault]) -> None:
    """``bad`` (faults of nodes) added to ``faults``, each naming the sessions (and
    positions) that reach its node."""
    if bad:
        reach = q.places(conn, [f.row for f in bad if f.row is not None])
        for f in bad:
            assert f.row is not None
            faults.add(Fault(f.kind, f.table, f.row, f.detail, tuple(reach[f.row])))


def _verify_search_index(conn: apsw.Connection, faults: FaultList) -> None:
    """The index holds exactly the stored messages, and its triggers are there."""
    table = db_module.SEARCH_TABLE
    for (mid,) in q.rows(
        conn, f"SELECT at FROM nodes EXCEPT SELECT id FROM {table}_docsize ORDER BY 1"
    ):
        faults.add(Fault("search_index", table, mid, "message is not in the index"))
    for (mid,) in q.rows(
        conn, f"SELECT id FROM {table}_docsize EXCEPT SELECT at FROM nodes ORDER BY 1"
    ):
        faults.add(Fault("search_index", table, mid, "the index holds a message not stored"))
    found = {
        name
        for (name,) in conn.execute(
            f"SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'nodes' "
            f"AND name IN ({q.marks(len(db_module.SEARCH_TRIGGERS))})",
            db_module.SEARCH_TRIGGERS,
        )
    }
    for name in db_module.SEARCH_TRIGGERS:
        if name not in found:
            faults.add(
                Fault(
                    "search_index",
                    table,
                    None,
                    f"its trigger {name} is missing, so the index no longer follows the "
                    "messages (srt search --drop-index, then a search, rebuilds it)",
                )
            )
