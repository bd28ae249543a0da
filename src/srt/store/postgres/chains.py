"""The PostgreSQL engine's chain reads: a session's chain from a window of node rows
walked in memory (the one-statement recursive walk when that finds a damaged link or a
row gone), and the messages appended above a known depth."""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable
from typing import Any

import psycopg

from ... import _core
from ...errors import CorruptionError
from ..base import ChainRow, check_chain
from .pool import Database
from .statements import BODIES, BODIES_RANGE, CHAIN, CHAIN_NODES, CHAIN_SINCE, CHAIN_WINDOW

_depth = operator.itemgetter(6)
_id = operator.itemgetter(0)
_message = operator.itemgetter(3)


def chain(db: Database, head: int | None) -> list[ChainRow]:
    """``Store.chain`` on ``db``."""
    if head is None:
        return []
    rows = db.run("loading a session", _walk(db, head), retry_reads=True)
    if rows is not None:
        with contextlib.suppress(CorruptionError):
            return check_chain(rows, head)
    # The walk in memory found a damaged link, or a body or node went missing between
    # its statements (gc of a chain that stopped being a head's): the one-statement
    # walk reads one snapshot, and its check says whether the store is damaged.
    sql = db.sql(CHAIN)

    def load(conn: psycopg.Connection[Any]) -> list[Any]:
        with conn.cursor(binary=True) as cur:
            return cur.execute(sql, (head,)).fetchall()

    rows = db.run("loading a session", load, retry_reads=True)
    rows.reverse()
    rows.sort(key=_depth)
    return check_chain(rows, head)


def _walk(db: Database, head: int) -> Callable[[psycopg.Connection[Any]], list[ChainRow] | None]:
    """The chain's rows, root first, from a window of node rows walked in memory
    (``CHAIN_WINDOW``), the rest of the walk in the server if the window ends before
    the root, then the bodies (``BODIES_RANGE`` when their ids fill a range, else
    ``BODIES``); ``None`` if a link or body was not found."""
    window, nodes, bodies, by_range = (
        db.sql(q) for q in (CHAIN_WINDOW, CHAIN_NODES, BODIES, BODIES_RANGE)
    )

    def load(conn: psycopg.Connection[Any]) -> list[ChainRow] | None:
        with conn.cursor(binary=True) as cur:
            found = cur.execute(window, {"head": head}).fetchall()
            found.sort(key=_id)
            try:
                walked, missing = _core.walk_chain(found, head)
                if missing is not None:
                    rest = cur.execute(nodes, (missing,)).fetchall()
                    rest.reverse()
                    walked = rest + walked
            except (ValueError, TypeError):
                return None
            ids = list(map(_message, walked))
            span = (min(ids), max(ids)) if ids else None
            if span is not None and span[1] - span[0] < len(ids):
                # The message ids fill a range (a session one writer appended, its
                # repeats stored once): read the range, never more rows than the chain
                # has messages; a message of another chain inside it is left out by the
                # join below.
                got = cur.execute(by_range, span).fetchall()
            else:
                # The ids as an array literal: psycopg dumps a list element by element
                # in Python (1.2 ms for 2,000 ids; this takes 0.1 ms).
                got = cur.execute(bodies, (_core.id_array(walked, 3),)).fetchall()
        return _core.join_bodies(walked, got)

    return load


def extension(db: Database, head: int, above: int, prefix: bytes) -> list[ChainRow] | None:
    """``Store.chain_extension`` on ``db`` for ``above >= 1``."""
    sql = db.sql(CHAIN_SINCE)

    def load(conn: psycopg.Connection[Any]) -> list[Any]:
        with conn.cursor(binary=True) as cur:
            return cur.execute(sql, {"head": head, "depth": above}).fetchall()

    rows: list[ChainRow] = db.run("reading new messages", load, retry_reads=True)
    rows.reverse()
    rows.sort(key=_depth)
    if len(rows) < 2 or rows[0][6] != above or rows[0][3] != prefix:
        return None
    return check_chain(rows[1:], head, start=prefix)
