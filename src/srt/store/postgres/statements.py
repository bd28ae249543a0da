"""The fixed statements of ``PostgresStore``: the append, the chain walks, calls, objects.

``{s}`` is srt's schema name, rendered once by the store.
"""

from __future__ import annotations

from typing import Any

from ..base import CALL_FIELDS, CallRecord

#: The append, its parameters in binary (``%b``): bodies go as they are, not in hex. The
#: 19th, the parent's prefix hash as the client chained from it, picks the function that
#: compares it with the stored one (schema v2).
APPEND = "SELECT {s}.append(" + ", ".join(["%b"] * 19) + ")"
#: ``APPEND`` with a deadline: waiting for other writers' row locks ends after the
#: ``lock_timeout`` set first, for this statement's transaction only. Still one
#: statement (one round trip, no BEGIN/COMMIT): ``OFFSET 0`` keeps the subquery from
#: being flattened away, so ``set_config`` runs before the append.
APPEND_BY = APPEND + " FROM (SELECT set_config('lock_timeout', %s, true) OFFSET 0) AS deadline"
#: Whether every session given (distinct ids, then their count) exists, each row then
#: held under ``FOR KEY SHARE`` to the commit, as ``put_object`` holds the session of an
#: object filed under it (``store.owners``): a deletion of one waits for the append, and
#: then deletes its records too, or the append waits for the deletion and is refused.
HELD = (
    "(SELECT count(*) FROM (SELECT 1 FROM {s}.sessions WHERE id = ANY(%b::bigint[]) "
    "FOR KEY SHARE) AS held) = %b::bigint"
)


def guarded(append: str) -> str:
    """``append`` (``APPEND`` or ``APPEND_BY``) made to run only if ``HELD`` holds (its
    arguments first), still one statement: else it returns NULL, and nothing is written.
    (The guard is an InitPlan, evaluated when the row is projected: after the deadline's
    ``set_config``, before the call.)"""
    call = APPEND.removeprefix("SELECT ")
    return f"SELECT CASE WHEN {HELD} THEN {call} END" + append.removeprefix(APPEND)


CHAIN = """
WITH RECURSIVE chain(id, parent, message, depth, prefix, status, meta) AS (
    SELECT id, parent, message, depth, prefix, status, meta FROM {s}.nodes WHERE id = %s
    UNION ALL
    SELECT n.id, n.parent, n.message, n.depth, n.prefix, n.status, n.meta
    FROM chain c CROSS JOIN LATERAL (
        SELECT * FROM {s}.nodes p WHERE p.id = c.parent AND p.depth < c.depth LIMIT 1
    ) n
)
SELECT chain.id, m.hash, m.body, chain.prefix, chain.status, chain.meta, chain.depth
FROM chain JOIN {s}.messages m ON m.id = chain.message
"""
#: The node rows just below a head, by id (``NODE_COLUMNS``): a session appended by one
#: writer is a run of ids, so ``_core.walk_chain`` follows its parents here, in memory
#: (one range scan instead of a step of the recursive walk per message); what the window
#: lacks (a fork's shared part, other writers' nodes in between) comes from ``CHAIN_NODES``.
NODE_COLUMNS = "id, parent, depth, message, prefix, status, meta"
CHAIN_WINDOW = f"""
SELECT {NODE_COLUMNS} FROM {{s}}.nodes
WHERE id BETWEEN (SELECT %(head)s - depth - 8 FROM {{s}}.nodes WHERE id = %(head)s) AND %(head)s
"""
# No ORDER BY: the rows come in id order from an index scan, and in the heap's order,
# almost always the same, from a bitmap scan; the server's sort of them cost 0.3 ms,
# the client's (a pass over rows in order) 0.02 ms.
#: ``CHAIN``'s walk from a node down to the root, without the bodies (deepest first).
CHAIN_NODES = f"""
WITH RECURSIVE chain({NODE_COLUMNS}) AS (
    SELECT {NODE_COLUMNS} FROM {{s}}.nodes WHERE id = %s
    UNION ALL
    SELECT n.id, n.parent, n.depth, n.message, n.prefix, n.status, n.meta
    FROM chain c CROSS JOIN LATERAL (
        SELECT * FROM {{s}}.nodes p WHERE p.id = c.parent AND p.depth < c.depth LIMIT 1
    ) n
)
SELECT {NODE_COLUMNS} FROM chain
"""
#: The hash and body of each message id given (in any order). ``= ANY`` is one index
#: scan, or a hashed filter of a small table's scan: 0.5 ms less for 2,000 ids than a
#: join with ``unnest`` (a hash join over the table, or a nested loop of index scans).
BODIES = "SELECT id, hash, body FROM {s}.messages WHERE id = ANY(%s::bigint[])"
#: The hash and body of every message whose id lies in a range: ``BODIES`` when the ids
#: wanted fill the range (a session one writer appended). A range plans in 0.2 ms on a
#: new backend where ``= ANY`` of 2,001 ids takes 0.65 ms (the planner estimates each
#: element), and the scan compares two bounds instead of building a hashed filter.
BODIES_RANGE = "SELECT id, hash, body FROM {s}.messages WHERE id BETWEEN %s::bigint AND %s::bigint"
# Each step of the walk is a LATERAL subquery with LIMIT 1, which the planner cannot
# flatten, so it is one primary-key lookup. A plain join lets the planner hash-join the
# whole nodes table at every step (it guesses 10 rows per step): 1.3 s instead of 4 ms
# for a chain of 2,000 messages.
#: ``CHAIN`` from ``head`` down to the node at depth ``depth`` (included), no further.
CHAIN_SINCE = """
WITH RECURSIVE chain(id, parent, message, depth, prefix, status, meta) AS (
    SELECT id, parent, message, depth, prefix, status, meta FROM {s}.nodes
    WHERE id = %(head)s AND depth >= %(depth)s
    UNION ALL
    SELECT n.id, n.parent, n.message, n.depth, n.prefix, n.status, n.meta
    FROM chain c CROSS JOIN LATERAL (
        SELECT * FROM {s}.nodes p
        WHERE p.id = c.parent AND p.depth < c.depth AND p.depth >= %(depth)s LIMIT 1
    ) n
)
SELECT chain.id, m.hash, m.body, chain.prefix, chain.status, chain.meta, chain.depth
FROM chain JOIN {s}.messages m ON m.id = chain.message
"""
# No ORDER BY: the server would sort every body; rows come deepest first from the walk
# (or in any order from a hash join), and ``chain`` sorts them by depth, one pass over
# rows that are almost always in order already.
INSERT_CALL = (
    f"INSERT INTO {{s}}.calls({', '.join(CALL_FIELDS)}) "
    f"VALUES ({', '.join('%s' for _ in CALL_FIELDS)}) RETURNING id"
)
SELECT_CALLS = f"SELECT {', '.join(CALL_FIELDS)}, id FROM {{s}}.calls"
OBJECT_COLUMNS = "kind, scope, key, value, node, expires, created, updated"


def no_nul(value: Any) -> Any:
    """A ledger text with U+0000 (which PostgreSQL's ``text`` cannot hold) replaced by
    U+FFFD, so a reply whose error text carries one is still stored."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def call_json(call: CallRecord) -> dict[str, Any]:
    out = {name: no_nul(getattr(call, name)) for name in CALL_FIELDS}
    out["body_hash"] = "\\x" + call.body_hash.hex()
    return out
