"""The fixed statements of ``SQLiteStore``'s reads and its ledger: chain walks, session
rows and lists, calls, live objects."""

from __future__ import annotations

from ..base import CALL_FIELDS
from ..owners import MAX_DIGITS

INSERT_CALL = (
    f"INSERT INTO calls({', '.join(CALL_FIELDS)}) VALUES ({', '.join('?' for _ in CALL_FIELDS)})"
)
SELECT_CALLS = f"SELECT {', '.join(CALL_FIELDS)}, id FROM calls"

#: The ``srt_meta`` key that keeps node ids new: SQLite gives a new row the largest id
#: stored + 1, so a gc that deletes the largest ids would see them given again (a stale
#: handle's head id naming another history, its compare-and-swap succeeding). gc sets it
#: to the largest id it deleted above every id left (``KEEP_NODES_FLOOR``); the next
#: append that stores a node gives it the id after that and removes the key. Nothing is
#: written per append otherwise (``AUTOINCREMENT`` writes its sequence's page each time).
NODES_FLOOR_KEY = "nodes_floor"
#: gc, after a delete of the ids in ``temp.{table}``: record the floor if it is needed.
KEEP_NODES_FLOOR = f"""
INSERT OR REPLACE INTO srt_meta(key, value)
SELECT '{NODES_FLOOR_KEY}', m FROM (SELECT max(id) AS m FROM temp.{{table}})
WHERE m > coalesce((SELECT max(id) FROM nodes), 0)
AND m > coalesce((SELECT value FROM srt_meta WHERE key = '{NODES_FLOOR_KEY}'), 0)
"""

NODE_COLUMNS = "id, parent, depth, hash, prefix, at, len, status, meta"
#: What a whole chain's read takes of each node: no message hash, which the read
#: computes from the body and checks through the prefixes (``_core.chain_rows``).
READ_COLUMNS = "id, parent, depth, prefix, at, len, status, meta"
CHAIN_SQL = f"""
WITH RECURSIVE chain({READ_COLUMNS}) AS (
    SELECT {READ_COLUMNS} FROM nodes WHERE id = ?
    UNION ALL
    SELECT n.id, n.parent, n.depth, n.prefix, n.at, n.len, n.status, n.meta
    FROM nodes n JOIN chain c ON n.id = c.parent AND n.depth < c.depth
)
SELECT {READ_COLUMNS} FROM chain
"""
#: The rows just below a head: a session appended by one writer is a run of ids, so its
#: chain is read in one range scan (``_core.walk_chain`` follows the parents in it); what
#: the walk leaves (a fork's shared part, another writer's interleaved nodes) is read
#: with the recursive query above.
RANGE_SQL = f"SELECT {READ_COLUMNS} FROM nodes WHERE id BETWEEN ? AND ? ORDER BY id"
#: The chain's nodes deeper than a given depth (a rebase reads only what it lacks).
CHAIN_ABOVE_SQL = f"""
WITH RECURSIVE chain({NODE_COLUMNS}) AS (
    SELECT {NODE_COLUMNS} FROM nodes WHERE id = ?1 AND depth > ?2
    UNION ALL
    SELECT n.id, n.parent, n.depth, n.hash, n.prefix, n.at, n.len, n.status, n.meta
    FROM nodes n JOIN chain c ON n.id = c.parent AND n.depth < c.depth AND n.depth > ?2
)
SELECT {NODE_COLUMNS} FROM chain
"""


#: The nodes of a chain below ``node`` down to (not including) depth ``?2``.
TAIL_SQL = """
WITH RECURSIVE up(id, parent, depth, at, len) AS (
    SELECT id, parent, depth, at, len FROM nodes WHERE id = ?1
    UNION ALL
    SELECT n.id, n.parent, n.depth, n.at, n.len
    FROM nodes n JOIN up ON n.id = up.parent AND n.depth < up.depth
    WHERE up.depth > ?2
)
SELECT id, depth, at, len FROM up
"""

#: A session, and whether its row is whole: its head the node it says (a damaged head id
#: that names another node fails: its prefix hash is not the one recorded), its NOT NULL
#: columns set (a damaged record header reads as NULLs), and the name in the table's row
#: the name asked for (the lookup goes through the name index, whose entry may be the
#: damaged one: it would lead to another session's row).
GET_SESSION_SQL = (
    "SELECT s.id, s.head, s.created, s.updated, "
    "s.head_prefix IS (SELECT n.prefix FROM nodes n WHERE n.id = s.head) "
    "AND s.created IS NOT NULL AND s.updated IS NOT NULL "
    "AND (SELECT t.name FROM sessions t NOT INDEXED WHERE t.id = s.id) IS ?1, "
    "s.head_prefix "
    "FROM sessions s WHERE s.name = ?1"
)

#: The sessions as the table's rows hold them (tagged 0), then the names its name index
#: (SQLite's automatic index for the UNIQUE name) holds (tagged 1), in one statement so
#: both come from one snapshot: a damaged page on either side makes them differ.
LIST_SESSIONS_SQL = (
    "SELECT 0, s.name, coalesce(n.depth, 0), s.created, s.updated, n.prefix "
    "FROM sessions s NOT INDEXED LEFT JOIN nodes n ON n.id = s.head "
    "UNION ALL "
    "SELECT 1, name, NULL, NULL, NULL, NULL "
    "FROM sessions INDEXED BY sqlite_autoindex_sessions_1"
)

LIVE_OBJECT = "(expires IS NULL OR expires > ?)"


def orphan_ids(kinds: int) -> str:
    """The ids of the objects filed under a session id no session has (``store.owners``:
    the scope up to its first ``:``, written as ``str(id)`` writes it); arguments: the
    ``kinds`` declared kinds. The ids as text are looked up in one list SQLite builds
    once (a probe of ``sessions`` per object took three times as long: 137 against 44 ms
    to count over 102,000 such objects of 2,000 sessions; no recorded command)."""
    return f"""
    SELECT o.id FROM (
        SELECT id, substr(scope, 1, instr(scope || ':', ':') - 1) AS sid
        FROM objects WHERE kind IN ({", ".join("?" * kinds)})
    ) o
    WHERE o.sid NOT IN (SELECT CAST(id AS TEXT) FROM sessions)
    AND o.sid <> '' AND length(o.sid) <= {MAX_DIGITS} AND o.sid NOT GLOB '*[^0-9]*'
    AND (o.sid = '0' OR o.sid NOT GLOB '0*')
    """
