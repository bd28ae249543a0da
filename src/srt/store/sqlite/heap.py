"""The message heap: every distinct message body, once, in one stream of bytes.

The stream is stored in the ``heap`` table, one row per slice: a row's ``id`` is the
offset of its first byte in the stream, and its ``data`` is sized to fill one page of
the file (a row of a table b-tree leaf holds at most the page's usable size less 35
bytes, and ours spends 4 of those on its record header). Bodies are appended at the
end of the stream, across row boundaries as needed: the last row grows until its page
is full, then a new row starts. A node names its message by ``(hash, at, len)``:
``at`` is where its body starts in the stream, so ``at`` is the message's id too.

Why: a row per message leaves, on average, half a message unused at the end of every
leaf page (a page holds only whole cells), which is what made 16 KiB pages necessary
for the file to stay near the size of the text; and 16 KiB pages made every append
write at least 16 KiB to the WAL per page it touched. Packed rows fill their pages,
so the file can use small pages, and a small page is what an append writes.

``body_sql`` reads a body back in SQL (the maintenance jobs, the search index's
trigger and the ``messages`` view use it); ``read`` reads many at once for a chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import apsw

from ... import _core

__all__ = [
    "HEAP_SQL",
    "ROWS_SQL",
    "append",
    "body_sql",
    "read",
    "row_bytes",
]

#: The heap table and the view that shows each stored message as a row.
HEAP_SQL = """
CREATE TABLE heap(
    id   INTEGER PRIMARY KEY,  -- the offset of data's first byte in the body stream
    data BLOB NOT NULL
);
"""


def body_sql(at: str, length: str) -> str:
    """A SQL expression: the ``length`` bytes of the body stream from offset ``at``
    (both SQL expressions), as a BLOB; NULL if the heap does not hold them."""
    return (
        f"(SELECT CAST(group_concat(substr(h.data, max(1, ({at}) - h.id + 1), "
        f"min(length(h.data), ({at}) + ({length}) - h.id) - max(0, ({at}) - h.id)), '' "
        f"ORDER BY h.id) AS BLOB) FROM heap h WHERE h.id < ({at}) + ({length}) "
        f"AND h.id >= (SELECT max(id) FROM heap WHERE id <= ({at})))"
    )


def row_bytes(page_size: int, reserved: int = 0) -> int:
    """The most body bytes a heap row holds without spilling to an overflow page.

    A table leaf cell keeps at most ``usable - 35`` bytes of record in the page; the
    record header of ``(id, data)`` is 4 bytes (5 once ``data`` is 8,186 bytes or more).
    """
    usable = page_size - reserved
    room = usable - 35 - 4
    return room if room < 8186 else room - 1


def append(conn: apsw.Connection, body: bytes, row: int) -> int:
    """Append ``body`` to the stream (inside a write transaction); return its offset."""
    last = conn.execute("SELECT id, data FROM heap ORDER BY id DESC LIMIT 1").fetchone()
    if last is None:
        start, tail_id, tail = 0, None, b""
    else:
        tail_id, tail = last
        start = tail_id + len(tail)
    pos = 0
    room = row - len(tail)
    if tail_id is not None and room > 0 and body:
        pos = min(room, len(body))
        conn.execute("UPDATE heap SET data = ? WHERE id = ?", (tail + body[:pos], tail_id))
    while pos < len(body):
        piece = body[pos : pos + row]
        conn.execute("INSERT INTO heap(id, data) VALUES (?, ?)", (start + pos, piece))
        pos += len(piece)
    return int(start)


#: Ranges closer than this many bytes are read with one query (and the rows between).
_GAP = 16 * 1024

#: The heap rows holding any byte of ``[?1, ?2)``, in order.
ROWS_SQL = (
    "SELECT id, data FROM heap WHERE id >= coalesce((SELECT max(id) FROM heap WHERE id <= ?1), 0) "
    "AND id < ?2 ORDER BY id"
)


def read(conn: apsw.Connection, ats: Sequence[int], lens: Sequence[int]) -> list[bytes]:
    """The bodies at ``(ats[i], lens[i])``, in that order (``ValueError`` if the heap
    does not hold one of them)."""
    spans: list[list[int]] = []
    for at, n in sorted(zip(ats, lens, strict=True)):
        if spans and at <= spans[-1][1] + _GAP:
            spans[-1][1] = max(spans[-1][1], at + n)
        else:
            spans.append([at, at + n])
    ids: list[int] = []
    rows: list[bytes] = []
    for lo, hi in spans:
        for rid, data in conn.execute(ROWS_SQL, (lo, hi)):
            if ids and rid <= ids[-1]:
                continue  # the row that ended the previous span
            ids.append(rid)
            rows.append(data)
    return _core.cut(ids, rows, list(ats), list(lens))
