"""Reading a session's chain from the SQLite file: its node rows (one range scan and a
walk up the parents in C, the recursive query for what the walk leaves), their bodies
from the heap, and the checks every engine's ``chain`` ends with (``check_chain``'s:
each body hashes to its hash, each prefix chains from the previous one, the last row is
the head), here in one C pass with the cutting of the bodies (``_core.chain_rows``).
"""

from __future__ import annotations

import operator
from typing import Any

import apsw

from ... import _core
from ..._hashing import Hashing
from ...errors import CorruptionError
from ..base import ChainRow
from . import heap
from .db import MMAP_SIZE, translate
from .statements import CHAIN_ABOVE_SQL, CHAIN_SQL, RANGE_SQL, READ_COLUMNS

__all__ = ["extension", "read"]

#: Chains of this many messages or more are read through a memory map.
MAP_FROM = 128
_MISSING = "the session's stored messages are missing from the file (it is damaged); run srt verify"
_FAILED = (
    "the session's stored messages fail their hash check (the file is damaged); run srt verify"
)


def read(conn: apsw.Connection, head: int | None, hashing: Hashing) -> list[ChainRow]:
    """The chain from the root to ``head``, checked (``CorruptionError`` if damaged)."""
    # (The walk up the parents stops at a depth that does not decrease, so a damaged
    # parent link cannot loop.)
    if head is None:
        return []
    with translate("loading a session"):
        # A long chain is read through a memory map (no read() per page), dropped
        # afterwards; mapping and unmapping cost more than a short chain's reads.
        depth = conn.execute("SELECT depth FROM nodes WHERE id = ?", (head,)).fetchone()
        mapped = depth is not None and type(depth[0]) is int and depth[0] >= MAP_FROM
        if mapped:
            conn.execute(f"PRAGMA mmap_size={MMAP_SIZE:d}").fetchall()
        conn.execute("BEGIN")  # one snapshot for the chain and its bodies
        try:
            found = nodes(conn, head)
            try:
                spans = _core.heap_spans(found, 4, 5, heap.GAP)
            except (ValueError, TypeError):
                spans = []  # a damaged place: chain_rows reports it
            ids, data = heap.span_buffers(conn, spans)
        finally:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            if mapped:
                conn.execute("PRAGMA mmap_size=0").fetchall()
    # Cut the bodies and check them as ``check_chain`` does, in one pass.
    rows, fault = _core.chain_rows(
        found, ids, data, head, hashing.digest, hashing.chain_many, _core.ROOT
    )
    if fault is not None:
        raise CorruptionError(_MISSING if fault == "missing" else _FAILED)
    return rows


def extension(
    conn: apsw.Connection, head: int, above: int, prefix: bytes, hashing: Hashing
) -> list[ChainRow] | None:
    """The chain's rows deeper than ``above`` up to ``head``, if they continue the chain
    whose prefix at ``above`` is ``prefix`` (``None`` otherwise)."""
    with translate("loading a session"):
        conn.execute("BEGIN")  # one snapshot for the nodes and their bodies
        try:
            found: list[Any] = conn.execute(CHAIN_ABOVE_SQL, (head, above)).fetchall()
            found.sort(key=operator.itemgetter(2))  # by depth
            rows = _with_bodies(conn, found)
        finally:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
    if not rows or rows[0][6] != above + 1 or rows[-1][0] != head:
        return None
    digest = hashing.digest
    if [digest(r[2]) for r in rows] != [r[1] for r in rows]:
        raise CorruptionError(_FAILED)
    if hashing.chain_many(prefix, [r[1] for r in rows]) != [r[3] for r in rows]:
        return None
    return rows


def _with_bodies(conn: apsw.Connection, found: list[Any]) -> list[ChainRow]:
    """Node rows (``NODE_COLUMNS``) with their messages' bodies read from the heap, as
    ``ChainRow``s (inside the caller's read transaction)."""
    try:
        bodies = heap.read(conn, [r[5] for r in found], [r[6] for r in found])
    except (ValueError, TypeError):
        raise CorruptionError(_MISSING) from None
    return [(r[0], r[3], b, r[4], r[7], r[8], r[2]) for r, b in zip(found, bodies, strict=True)]


def nodes(conn: apsw.Connection, head: int) -> list[Any]:
    """The node rows (``READ_COLUMNS``) from the root to ``head``, root first (``[]`` if
    damaged)."""
    top: list[Any] = conn.execute(
        f"SELECT {READ_COLUMNS} FROM nodes WHERE id = ?", (head,)
    ).fetchall()
    if not top or type(top[0][2]) is not int:
        return []  # no such node, or a damaged one: chain_rows reports it
    window = conn.execute(RANGE_SQL, (max(0, head - top[0][2] - 8), head)).fetchall()
    try:
        found, missing = _core.walk_chain(window, head)
        if missing is not None:
            # Rows come deepest first (the recursion's order).
            rest: list[Any] = conn.execute(CHAIN_SQL, (missing,)).fetchall()
            rest.reverse()
            found = rest + found
    except (ValueError, TypeError):
        return []  # a damaged parent link or depth: chain_rows reports it
    return found
