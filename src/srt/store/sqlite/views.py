"""The views behind ``srt ls`` (``overview``) and ``srt show --tree`` (``tree``)."""

from __future__ import annotations

from typing import Any

from ...errors import SessionNotFoundError
from ..base import SessionOverview, TreeNode
from . import queries as q
from .db import Database
from .queries import CHAINS, ROLE, TEXT, USER_PREFIX

__all__ = ["overview", "tree"]


def overview(db: Database) -> list[SessionOverview]:
    """Every session with its message, turn and estimated token counts, sorted by name."""
    sql = (
        CHAINS + "SELECT up.sid, count(*), "
        "sum(substr(m.body, 1, ?) = ?), sum((length(m.body) + 3) / 4), "
        "max(CASE WHEN up.parent IS NULL THEN up.id END) "
        "FROM up JOIN messages m ON m.id = up.message GROUP BY up.sid"
    )
    action = "listing sessions"
    with db.job(action) as conn, q.snapshot(conn, action):
        stats = {
            sid: (int(n), int(turns or 0), int(tokens or 0), root)
            for sid, n, turns, tokens, root in conn.execute(sql, (len(USER_PREFIX), USER_PREFIX))
        }
        rows = q.rows(
            conn,
            "SELECT s.id, s.name, s.created, s.updated, n.prefix "
            "FROM sessions s LEFT JOIN nodes n ON n.id = s.head ORDER BY s.name",
        ).fetchall()
    per_root: dict[Any, int] = {}
    for _n, _turns, _tokens, root in stats.values():
        if root is not None:
            per_root[root] = per_root.get(root, 0) + 1
    out = []
    for sid, name, created, updated, prefix in rows:
        n, turns, tokens, root = stats.get(sid, (0, 0, 0, None))
        out.append(
            SessionOverview(
                name=name,
                messages=n,
                turns=turns,
                tokens=tokens,
                branches=per_root.get(root, 0) if root is not None else 1,
                created=created,
                updated=updated,
                head_prefix=bytes(prefix).hex() if prefix is not None else None,
            )
        )
    return out


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
            f"SELECT n.id, n.parent, n.depth, n.status, {ROLE}, substr({TEXT}, 1, ?) "
            "FROM live JOIN nodes n ON n.id = live.id JOIN messages m ON m.id = n.message "
            "ORDER BY n.depth, n.id"
        )
        rows = q.rows(conn, sql, [*members, width]).fetchall()
    nodes: dict[int, TreeNode] = {}
    top: TreeNode | None = None
    for nid, parent, depth, status, role, text in rows:
        node = TreeNode(nid, depth, str(role), str(text), status)
        nodes[nid] = node
        if parent is None:
            top = node
        elif parent in nodes:
            nodes[parent].children.append(node)
    for head, session in heads:
        if head in nodes:
            nodes[head].heads.append(session)
    return top
