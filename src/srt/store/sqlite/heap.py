"""The message heap: every distinct message body, once, in one stream of bytes.

The stream is stored in the ``heap`` table: a row's ``id`` is the offset of its first
byte in the stream and its ``data`` holds the stream from there. Bodies are appended
at the end of the stream, across row boundaries as needed. A node names its message by
``(hash, at, len)``: ``at`` is where its body starts in the stream, so it is the
message's id too.

Rows are sized to fill whole pages exactly (``row_bytes``): SQLite keeps at most the
page's usable size less 35 bytes of a row in its leaf page and the rest in overflow
pages of the usable size less 4 bytes, so a row of one leaf page's worth plus whole
overflow pages leaves nothing unused. A row is created at full size (but see below),
its unused end zero bytes, and bodies are written into it in place with incremental
blob I/O: an append writes only the pages its bytes fall in. Canonical bodies are JSON,
which never holds a zero byte, so the first zero byte of the last row is where the
stream ends. (``gc`` overwrites the bodies it removes with spaces, never with zeros.)

At rest the last row holds no whole page of zeros: a store that appended cuts it, as it
closes, to the smallest row of whole pages that holds its bytes (``trim``, ``fit``; one
short write transaction, skipped if the file is busy or cannot be written), and the
pages cut go to the freelist, for the next rows. The row keeps its zeros up to that
page's end, so the first zero byte still ends the stream. An append fills them in
place; a cut row with too little room is written again, grown, before any new row
starts, so every row but the last is a full one however often stores close. A store's
first append since it opened preallocates nothing (the rows it writes take only the
pages their bytes need): a store that appends once and closes, as the CLI does, would
otherwise write a row's zeros only to cut them again.

Why: a row per message leaves, on average, half a message unused at the end of every
leaf page (a page holds only whole cells), which is what made 16 KiB pages necessary
for the file to stay near the size of the text; and 16 KiB pages made every append
write at least 16 KiB to the WAL for every page it touched. Packed rows fill their
pages whatever their size, so the file can use small pages, and a small page is what an
append writes. Rows of several pages keep a chain's bodies in a few rows to read.

``body_sql`` reads a body back in SQL (the maintenance jobs, the search index's
trigger and the ``messages`` view use it); ``read`` reads many at once for a chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import apsw

from ... import _core
from ...errors import CorruptionError

__all__ = [
    "HEAP_SQL",
    "ROWS_SQL",
    "End",
    "append",
    "body_sql",
    "end",
    "fit",
    "read",
    "row_bytes",
    "rows",
    "span_buffers",
    "span_rows",
    "trim",
    "write",
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


def row_bytes(page_size: int, reserved: int = 0, target: int = 16 * 1024) -> int:
    """The bytes of stream a heap row holds: the record's payload is one leaf page's
    worth plus whole overflow pages, about ``target`` bytes in all, less its header.

    A table leaf keeps a payload of ``P`` bytes whole in the page if ``P <= usable - 35``;
    a longer one keeps ``min + (P - min) % (usable - 4)`` bytes there (``min`` is
    ``(usable - 12) * 32 // 255 - 23``), or ``min`` if that is more than ``usable - 35``,
    and the rest in overflow pages of ``usable - 4`` bytes. ``P = (usable - 35) + k *
    (usable - 4)`` fills the leaf page and ``k`` overflow pages exactly.
    """
    usable = page_size - reserved
    k = max(0, round((target - (usable - 35)) / (usable - 4)))
    return _exact(usable, k)


def fit(page_size: int, reserved: int, fill: int) -> int:
    """The smallest row size of ``row_bytes``' kind (one leaf page plus whole overflow
    pages, filled exactly) that holds ``fill`` bytes."""
    usable = page_size - reserved
    k = max(0, -(-(fill - (usable - 35)) // (usable - 4)))
    while _exact(usable, k) < fill:  # (the record's header: a few bytes, at most once)
        k += 1
    return _exact(usable, k)


def _exact(usable: int, k: int) -> int:
    """The data of a heap record whose payload fills a leaf page and ``k`` overflow
    pages of a page with ``usable`` bytes exactly."""
    payload = (usable - 35) + k * (usable - 4)
    # The record: header size (1 byte), the id's type (NULL: 1 byte), data's type varint.
    for header in (4, 5, 6):
        data = payload - header
        serial = 2 * data + 12
        if (serial < 1 << 14 and header == 4) or (1 << 14 <= serial < 1 << 21 and header == 5):
            return data
    return payload - 6


class End(NamedTuple):
    """The heap's last row: its id (the offset of its first byte), its size, and how many
    of its bytes the stream fills."""

    id: int
    size: int
    fill: int


def end(conn: apsw.Connection) -> End | None:
    """Where the stream ends (``None``: the heap is empty), found by SQLite: the last row's
    size and its first zero byte; the row's bytes never come into Python."""
    last = conn.execute(
        "SELECT id, length(data), instr(data, x'00') FROM heap ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is None:
        return None
    size, zero = int(last[1]), int(last[2])
    return End(int(last[0]), size, size if zero == 0 else zero - 1)


def write(
    conn: apsw.Connection,
    body: bytes,
    row: int,
    last: End | None,
    small: tuple[int, int] | None = None,
) -> tuple[int, End]:
    """Append ``body`` to the stream (inside a write transaction) after ``last``, the
    stream's end as ``end`` or the previous ``write`` of this transaction returned;
    return its offset and the stream's new end.

    Rows grow to ``row`` bytes: bytes go into the last row's free end in place; a row
    cut short (``trim``) with too little room left is written again with them, so the
    stream keeps few rows however often a store closes; the rest go to new rows. With
    ``small`` (the page size and reserved bytes) a new or rewritten row takes only the
    whole pages its bytes need (``fit``) instead of ``row`` bytes: nothing preallocated.
    """
    start, pos = 0, 0
    if last is not None:
        start = last.id + last.fill
        if last.size - last.fill < len(body) and last.size < row:
            pos = min(row - last.fill, len(body))
            size = row if small is None else fit(small[0], small[1], last.fill + pos)
            last = _rewrite(conn, last, body[:pos], size)
        else:
            pos = min(last.size - last.fill, len(body))
            if pos:
                blob = conn.blob_open("main", "heap", "data", last.id, True)
                try:
                    blob.seek(last.fill)
                    blob.write(body[:pos])
                finally:
                    blob.close()
                # (tuple.__new__: a NamedTuple's own constructor is a Python call, and
                # this is an append's common case)
                last = tuple.__new__(End, (last.id, last.size, last.fill + pos))
    while pos < len(body):
        piece = body[pos : pos + row]
        size = row if small is None else fit(small[0], small[1], len(piece))
        conn.execute(
            "INSERT INTO heap(id, data) VALUES (?, ?)",
            (start + pos, piece + bytes(size - len(piece))),
        )
        last = End(start + pos, size, len(piece))
        pos += len(piece)
    if last is None:  # an empty body in an empty heap: the stream is still empty
        return start, End(0, 0, 0)
    return start, last


def _rewrite(conn: apsw.Connection, last: End, more: bytes, size: int) -> End:
    """Write the last row again (inside a write transaction) as its bytes, then ``more``,
    then zeros up to ``size`` bytes. Deleted and inserted: an update would take the
    new row's pages before it frees the old ones, growing the file."""
    found = conn.execute("SELECT data FROM heap WHERE id = ?", (last.id,)).fetchone()
    data = found[0] if found is not None else None
    if (
        type(data) is not bytes
        or len(data) != last.size
        or data[last.fill :] != bytes(last.size - last.fill)
    ):
        raise CorruptionError(
            f"the heap's last row ({last.id}) is not as found: its free end is not all "
            "zeros (the file is damaged?); nothing was written"
        )
    kept = data[: last.fill] + more
    conn.execute("DELETE FROM heap WHERE id = ?", (last.id,))
    conn.execute(
        "INSERT INTO heap(id, data) VALUES (?, ?)", (last.id, kept + bytes(size - len(kept)))
    )
    return End(last.id, size, len(kept))


def append(conn: apsw.Connection, body: bytes, row: int) -> int:
    """Append ``body`` to the stream (inside a write transaction); return its offset."""
    return write(conn, body, row, end(conn))[0]


def trim(conn: apsw.Connection, page_size: int, reserved: int = 0) -> int:
    """Inside a write transaction: cut the last row to the smallest size of whole pages
    that holds its bytes (``fit``), so the pages of its unused end go to the freelist;
    return how many bytes were cut. The zeros before the next page boundary stay: the
    first zero byte still ends the stream. Only zeros are cut: a row whose free end is
    not all zeros is a ``CorruptionError``, and nothing is cut (``_rewrite``).
    """
    last = end(conn)
    if last is None:
        return 0
    size = fit(page_size, reserved, last.fill)
    if size >= last.size:
        return 0
    _rewrite(conn, last, b"", size)
    return last.size - size


#: Ranges closer than this many bytes are read with one query (and the rows between).
GAP = 16 * 1024

#: The heap rows over ``[?1, ?2)``: from the one holding its first byte, in order.
_SPAN = (
    "FROM heap WHERE id >= coalesce((SELECT max(id) FROM heap WHERE id <= ?1), 0) "
    "AND id < ?2 ORDER BY id"
)
#: The heap rows holding any byte of ``[?1, ?2)``, in order.
ROWS_SQL = f"SELECT id, data {_SPAN}"


def rows(conn: apsw.Connection, ats: list[int], lens: list[int]) -> tuple[list[int], list[bytes]]:
    """The heap rows holding the bodies at ``(ats[i], lens[i])``: their ids and data, in
    order (each row once)."""
    places = list(zip(ats, lens, strict=True))  # (ValueError if their lengths differ)
    return span_rows(conn, _core.heap_spans(places, 0, 1, GAP))


def span_rows(conn: apsw.Connection, spans: list[tuple[int, int]]) -> tuple[list[int], list[bytes]]:
    """The heap rows holding any byte of the ranges ``spans`` (``[lo, hi)``, ascending, as
    ``_core.heap_spans`` gives them): their ids and data, in order (each row once)."""
    ids: list[int] = []
    data: list[bytes] = []
    for lo, hi in spans:
        for rid, blob in conn.execute(ROWS_SQL, (lo, hi)):
            if ids and rid <= ids[-1]:
                continue  # the row that ended the previous span
            ids.append(rid)
            data.append(blob)
    return ids, data


#: The heap rows over ``[?1, ?2)`` as ``ROWS_SQL`` finds them, without their data: id,
#: size, and whether the data is a BLOB (SQLite reads neither the data nor its overflow
#: pages for ``length`` or ``typeof``).
SIZES_SQL = f"SELECT id, length(data), typeof(data) = 'blob' {_SPAN}"


def span_buffers(
    conn: apsw.Connection, spans: list[tuple[int, int]]
) -> tuple[list[int], list[bytes | bytearray]]:
    """``span_rows``' stream, with each span's rows read into one buffer by incremental
    blob I/O when they are adjacent blobs (the common case): one copy out of the file's
    pages where a SELECT makes two, and one object where it makes one a row. A span
    that is not (a damaged or odd file) is read by ``span_rows``, as are any rows whose
    blob read fails; so the rows read are always ``span_rows``' rows."""
    ids: list[int] = []
    data: list[bytes | bytearray] = []
    last = -1  # the last row taken: a span's first row may be the one that ended the last
    blob: apsw.Blob | None = None
    try:
        for lo, hi in spans:
            sizes = [r for r in conn.execute(SIZES_SQL, (lo, hi)) if r[0] > last]
            first = sizes[0][0] if sizes else -1
            total, adjacent = 0, bool(sizes)
            for rid, size, is_blob in sizes:
                if is_blob != 1 or type(size) is not int or size <= 0 or rid != first + total:
                    adjacent = False
                    break
                total += size
            buf = bytearray(total) if adjacent else None
            if buf is not None:
                try:
                    if blob is None:
                        blob = conn.blob_open("main", "heap", "data", first, False)
                    for rid, size, _ in sizes:
                        blob.reopen(rid)
                        blob.read_into(buf, rid - first, size)
                except (apsw.SQLError, apsw.CorruptError, ValueError):
                    buf = None  # span_rows reads them, and meets what is wrong the same way
            if buf is not None:
                ids.append(first)
                data.append(buf)
                last = sizes[-1][0]
                continue
            for rid, row in zip(*span_rows(conn, [(lo, hi)]), strict=True):
                if rid > last:
                    ids.append(rid)
                    data.append(row)
                    last = rid
    finally:
        if blob is not None:
            blob.close()
    return ids, data


def read(conn: apsw.Connection, ats: Sequence[int], lens: Sequence[int]) -> list[bytes]:
    """The bodies at ``(ats[i], lens[i])``, in that order (``ValueError`` if the heap
    does not hold one of them)."""
    ats, lens = list(ats), list(lens)
    ids, data = rows(conn, ats, lens)
    return _core.cut(ids, data, ats, lens)
