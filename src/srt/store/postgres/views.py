"""The views behind ``srt ls`` (``overview``) and ``srt show --tree`` (``tree``) on
PostgreSQL: each reads in one ``REPEATABLE READ, READ ONLY`` snapshot
(``maintenance.snapshot``) and walks every session's chain in SQL (``CHAINS``)."""

from __future__ import annotations

from typing import Any

import psycopg

from ...errors import SessionNotFoundError
from ..base import SessionOverview, TreeNode, build_tree, session_overviews
from .maintenance import CHAINS, NUL_ESCAPE, snapshot, text_of
from .pool import Database

__all__ = ["overview", "tree"]


def overview(db: Database) -> list[SessionOverview]:
    """Every session with its message, turn and estimated token counts, sorted by name."""
    # No body is read: each message's ``user_turn`` and ``size`` columns (schema v8) say
    # what its first bytes and its length would.
    stats_sql = db.sql(
        CHAINS + "SELECT up.sid, count(*), sum(m.user_turn::int), sum((m.size + 3) / 4), "
        "max(CASE WHEN up.parent IS NULL THEN up.id END) "
        "FROM up JOIN {s}.messages m ON m.id = up.message GROUP BY up.sid"
    )
    rows_sql = db.sql(
        "SELECT s.id, s.name, s.created, s.updated, n.prefix "
        "FROM {s}.sessions s LEFT JOIN {s}.nodes n ON n.id = s.head ORDER BY s.name"
    )

    def read(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]]:
        with snapshot(conn):
            stats = conn.execute(stats_sql).fetchall()
            return stats, conn.execute(rows_sql).fetchall()

    stat_rows, rows = db.run("listing sessions", read, retry_reads=True)
    return session_overviews(stat_rows, rows)


def tree(db: Database, name: str, *, width: int = 200) -> TreeNode | None:
    """The conversation tree of session ``name`` (see ``Store.tree``)."""

    def read(conn: psycopg.Connection[Any]) -> tuple[list[Any], list[Any]] | None:
        with snapshot(conn):
            row = conn.execute(
                db.sql("SELECT id, head FROM {s}.sessions WHERE name = %s"), (name,)
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(f"no session named {name!r}")
            roots = dict(
                conn.execute(db.sql(CHAINS + "SELECT sid, id FROM up WHERE parent IS NULL"))
            )
            root = roots.get(row[0])
            if root is None:
                return None
            members = [sid for sid, r in roots.items() if r == root]
            heads = conn.execute(
                db.sql("SELECT head, name FROM {s}.sessions WHERE id = ANY(%s) ORDER BY name"),
                (members,),
            ).fetchall()
            sql = db.sql(
                "WITH RECURSIVE live(id) AS ("
                "SELECT head FROM {s}.sessions WHERE id = ANY(%s) "
                "UNION SELECT n.parent FROM live CROSS JOIN LATERAL ("
                "SELECT parent FROM {s}.nodes p WHERE p.id = live.id LIMIT 1) n "
                "WHERE n.parent IS NOT NULL) "
                "SELECT n.id, n.parent, n.depth, n.status, {s}.message_role(m.body), "
                "left({s}.message_text(m.body), %s), "
                f"CASE WHEN position({NUL_ESCAPE} IN m.body) > 0 THEN m.body END "
                "FROM live JOIN {s}.nodes n ON n.id = live.id "
                "JOIN {s}.messages m ON m.id = n.message ORDER BY n.depth, n.id"
            )
            return heads, conn.execute(sql, (members, width)).fetchall()

    found = db.run("reading the session tree", read, retry_reads=True)
    if found is None:
        return None
    heads, rows = found
    return build_tree([(*r[:5], text_of(r[6], r[5], width)) for r in rows], heads)
