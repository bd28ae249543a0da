"""SQL pieces and helpers shared by the maintenance jobs, ``verify`` and the views."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import apsw

from . import db, heap
from .schema import message_text_sql

__all__ = [
    "CHAINS",
    "ROLE",
    "TEXT",
    "body",
    "marks",
    "places",
    "rows",
    "snapshot",
]

#: The searchable text and the role of a message whose canonical body is ``b.body``
#: (a subquery's column: compute the body once, with ``body``, then use these).
TEXT = message_text_sql("b.body")
ROLE = "json_extract(CAST(b.body AS TEXT), '$.role')"


def body(node: str, limit: str | None = None) -> str:
    """SQL for the canonical body of the message of node row ``node`` (its first
    ``limit`` bytes, if given), read from the heap."""
    length = f"{node}.len" if limit is None else f"min({node}.len, {limit})"
    return heap.body_sql(f"{node}.at", length)


#: Every session's chain, walked up from its head: (session id, node, parent, message id,
#: message length, depth). ``n.depth < up.depth`` makes the walk end even on a damaged
#: parent cycle.
CHAINS = """
WITH RECURSIVE up(sid, id, parent, at, len, depth) AS (
    SELECT s.id, n.id, n.parent, n.at, n.len, n.depth
    FROM sessions s JOIN nodes n ON n.id = s.head
    UNION ALL
    SELECT up.sid, n.id, n.parent, n.at, n.len, n.depth
    FROM up JOIN nodes n ON n.id = up.parent AND n.depth < up.depth
)
"""


@contextlib.contextmanager
def snapshot(conn: apsw.Connection, action: str) -> Iterator[None]:
    """One read transaction: every query in the block sees the same snapshot."""
    with db.translate(action):
        conn.execute("BEGIN")
        try:
            yield
        finally:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")


def rows(conn: apsw.Connection, sql: str, args: Sequence[Any] = ()) -> Any:
    """The cursor of ``sql`` (rows typed ``Any``: their types follow the schema)."""
    return conn.execute(sql, args)


def marks(n: int) -> str:
    return ",".join("?" * n)


def places(conn: apsw.Connection, nodes: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
    """For each of ``nodes``: the (session name, 1-based position) pairs that reach it."""
    out: dict[int, list[tuple[str, int]]] = {n: [] for n in nodes}
    if not nodes:
        return out
    sql = (
        CHAINS + "SELECT up.id, s.name, up.depth FROM up JOIN sessions s ON s.id = up.sid "
        f"WHERE up.id IN ({marks(len(nodes))}) ORDER BY s.name"
    )
    for node, name, depth in conn.execute(sql, list(nodes)):
        out[node].append((name, depth))
    return out
