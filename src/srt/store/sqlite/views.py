"""The views behind ``srt ls`` (``overview``) and ``srt show --tree`` (``tree``)."""

from __future__ import annotations

from typing import Any

import apsw

from ...errors import CorruptionError, SessionNotFoundError
from ..base import USER_PREFIX, SessionOverview, TreeNode, build_tree, session_overviews
from . import queries as q
from .database import Database
from .queries import CHAINS, ROLE, TEXT

__all__ = ["overview", "tree"]

#: A tree node's text cut to its first ``?`` characters. SQLite's ``substr`` counts a
#: text's characters only up to its first U+0000, so a text holding one comes whole
#: (``instr`` on its bytes finds it) and is cut in Python.
_CUT = "CASE WHEN instr(CAST(t.text AS BLOB), x'00') > 0 THEN t.text ELSE substr(t.text, 1, ?) END"


def overview(db: Database) -> list[SessionOverview]:
    """Every session with its message, turn and estimated token counts, sorted by name."""
    action = "listing sessions"
    with db.job(action) as conn, q.snapshot(conn, action):
        stats = _chain_stats(conn)
        rows = q.rows(
            conn,
            "SELECT s.id, s.name, s.created, s.updated, n.prefix "
            "FROM sessions s LEFT JOIN nodes n ON n.id = s.head ORDER BY s.name",
        ).fetchall()
    return session_overviews(stats, rows)


def _chain_stats(conn: apsw.Connection) -> list[tuple[int, int, int, int, int | None]]:
    """Per non-empty session: (id, messages, user turns, estimated tokens, root node).

    Every session's chain is walked in SQL and its rows come out in the order of their
    bodies in the heap, so one pass over the heap's rows, read in order beside them,
    gives each body's first bytes (its role). Reading those bytes in SQL instead
    (``substr`` of the heap row) loads the whole row, pages of it, once per message."""
    k = len(USER_PREFIX)
    walk = conn.cursor().execute(CHAINS + "SELECT sid, id, parent, at, len FROM up ORDER BY at")
    heap = iter(conn.cursor().execute("SELECT id, data FROM heap ORDER BY id"))
    start, buf = 0, b""  # the heap's bytes from offset ``start`` on
    per: dict[int, list[Any]] = {}
    for sid, nid, parent, at, length in walk:
        if type(at) is not int or type(length) is not int:
            raise CorruptionError("a message's place in the file is damaged; run srt verify")
        user = False
        if length >= k:
            while at + k > start + len(buf):
                row = next(heap, None)
                if row is None:
                    break
                rid, data = row
                if at - start > len(buf) or rid != start + len(buf):
                    buf, start = b"", rid  # a gap: go on from this row
                elif at > start:
                    buf, start = buf[at - start :], at  # the walk never goes back
                buf += data
            user = at >= start and buf[at - start : at - start + k] == USER_PREFIX
        s = per.get(sid)
        if s is None:
            s = per[sid] = [0, 0, 0, None]
        s[0] += 1
        s[1] += user
        s[2] += (length + 3) // 4
        if parent is None and (s[3] is None or nid > s[3]):
            s[3] = nid
    return [(sid, n, turns, tokens, root) for sid, (n, turns, tokens, root) in per.items()]


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
            f"SELECT t.id, t.parent, t.depth, t.status, t.role, {_CUT} FROM ("
            f"SELECT b.id, b.parent, b.depth, b.status, {ROLE} AS role, {TEXT} AS text FROM ("
            f"SELECT n.id, n.parent, n.depth, n.status, {q.body('n')} AS body "
            "FROM live JOIN nodes n ON n.id = live.id LIMIT -1) b LIMIT -1) t "
            "ORDER BY t.depth, t.id"
        )
        rows = q.rows(conn, sql, [*members, width]).fetchall()
    return build_tree([(*r[:5], r[5][:width]) for r in rows], heads)
