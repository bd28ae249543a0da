"""The views behind ``srt ls`` (``overview``) and ``srt show --tree`` (``tree``)."""

from __future__ import annotations

from ...errors import SessionNotFoundError
from ..base import USER_PREFIX, SessionOverview, TreeNode, build_tree, session_overviews
from . import queries as q
from .database import Database
from .queries import CHAINS, ROLE, TEXT

__all__ = ["overview", "tree"]


def overview(db: Database) -> list[SessionOverview]:
    """Every session with its message, turn and estimated token counts, sorted by name."""
    sql = (
        CHAINS + f"SELECT up.sid, count(*), sum({q.body('up', str(len(USER_PREFIX)))} = ?), "
        "sum((up.len + 3) / 4), max(CASE WHEN up.parent IS NULL THEN up.id END) "
        "FROM up GROUP BY up.sid"
    )
    action = "listing sessions"
    with db.job(action) as conn, q.snapshot(conn, action):
        stats = conn.execute(sql, (USER_PREFIX,)).fetchall()
        rows = q.rows(
            conn,
            "SELECT s.id, s.name, s.created, s.updated, n.prefix "
            "FROM sessions s LEFT JOIN nodes n ON n.id = s.head ORDER BY s.name",
        ).fetchall()
    return session_overviews(stats, rows)


def tree(db: Database, name: str, *, width: int = 200) -> TreeNode | None:
    """The conversation tree of session ``name``: every message of every session that
    shares its first message, as a tree from that message (``None`` if it is empty)."""
    action = "reading the session tree"
    with db.job(action) as conn, q.snapshot(conn, action):
        row = conn.execute("SELECT id, head FROM sessions WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise SessionNotFoundError(f"no session named {name!r}")
        roots = {
            sid: root
            for sid, root in q.rows(conn, CHAINS + "SELECT sid, id FROM up WHERE parent IS NULL")
        }
        root = roots.get(row[0])
        if root is None:
            return None
        members = [sid for sid, r in roots.items() if r == root]
        heads = q.rows(
            conn,
            f"SELECT head, name FROM sessions WHERE id IN ({q.marks(len(members))}) ORDER BY name",
            members,
        ).fetchall()
        sql = (
            "WITH RECURSIVE live(id) AS ("
            f"SELECT head FROM sessions WHERE id IN ({q.marks(len(members))}) "
            "UNION SELECT n.parent FROM nodes n JOIN live ON n.id = live.id "
            "WHERE n.parent IS NOT NULL) "
            f"SELECT b.id, b.parent, b.depth, b.status, {ROLE}, substr({TEXT}, 1, ?) FROM ("
            f"SELECT n.id, n.parent, n.depth, n.status, {q.body('n')} AS body "
            "FROM live JOIN nodes n ON n.id = live.id LIMIT -1) b "
            "ORDER BY b.depth, b.id"
        )
        rows = q.rows(conn, sql, [*members, width]).fetchall()
    return build_tree(rows, heads)
