"""The SQLite heap at rest: ``SQLiteStore.close`` cuts the last heap row to the pages its
bytes use (``heap.trim``), and everything that reads or appends to the stream works on
the cut row. Real files throughout; the stream is checked against a model of it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import apsw
import pytest
from helpers import body, nodes
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from rel_support.faultvfs import FaultVFS, Plan
from srt import _core
from srt.store.sqlite import SQLiteStore, heap

#: srt's page size (``db.PAGE_SIZE``): what the sizes below are worked out for.
PAGE = 2048
ROW = heap.row_bytes(PAGE)
#: Stream bytes an overflow page holds.
CHUNK = PAGE - 4


def raw(path: str) -> apsw.Connection:
    return apsw.Connection(path)


def heap_rows(path: str) -> list[tuple[int, bytes]]:
    conn = raw(path)
    try:
        return [
            (int(i), bytes(d)) for i, d in conn.execute("SELECT id, data FROM heap ORDER BY id")
        ]
    finally:
        conn.close()


def stream_of(rows: list[tuple[int, bytes]]) -> bytes:
    """The stream the rows hold, after checking the heap's invariants: rows follow one
    another without gaps, only the last has zero bytes (its free end, all zeros), and
    every row fills whole pages exactly (``fit`` gives its own size) and all but the last
    are full rows (a cut row grows again before a new row starts)."""
    out = bytearray()
    for k, (rid, data) in enumerate(rows):
        assert rid == len(out), "rows must follow one another"
        assert heap.fit(PAGE, 0, len(data)) == len(data), "a row must fill whole pages"
        if k < len(rows) - 1:
            assert 0 not in data, "only the last row has a free end"
            assert len(data) == ROW, "only the last row is shorter than a full row"
            out += data
        else:
            fill = data.find(0)
            fill = len(data) if fill < 0 else fill
            assert data[fill:] == bytes(len(data) - fill), "the free end is zeros"
            out += data[:fill]
    return bytes(out)


def pages(path: str) -> tuple[int, int, int]:
    """(heap pages, the file's pages, free pages), the WAL checkpointed first."""
    conn = raw(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        n = int(conn.execute("SELECT count(*) FROM dbstat WHERE name = 'heap'").get)
        return (
            n,
            int(conn.execute("PRAGMA page_count").get),
            int(conn.execute("PRAGMA freelist_count").get),
        )
    finally:
        conn.close()


def sized(tag: str, n: int) -> bytes:
    """A canonical message body of exactly ``n`` bytes (``n`` at least ``len(sized(tag, 0))``)."""
    base = len(body("user", f"{tag}:"))
    out = body("user", f"{tag}:" + "x" * max(0, n - base))
    assert len(out) == max(n, base)
    return out


class Chain:
    """One session on a store, appended at its head: its bodies in order."""

    def __init__(self, store: SQLiteStore, name: str, log: list[bytes] | None = None) -> None:
        self.sid = store.create_session(name, None, exist_ok=False).id
        self.head: int | None = None
        self.prefix = _core.ROOT
        self.bodies: list[bytes] = []
        #: Every body appended, in order, shared by the chains of one file: the stream.
        self.log = log if log is not None else []

    def append(self, store: SQLiteStore, *bodies: bytes) -> None:
        new = nodes(bodies, self.prefix)
        ids = store.append(self.sid, self.head, self.head, len(self.bodies), new)
        self.head, self.prefix = ids[-1], new[-1].prefix
        self.bodies.extend(bodies)
        self.log.extend(bodies)

    def check(self, store: SQLiteStore) -> None:
        assert [r[2] for r in store.chain(self.head)] == self.bodies


def reads_back(path: str, *chains: Chain) -> None:
    """A new store on ``path`` reads every chain back, and ``verify`` finds nothing."""
    store = SQLiteStore(path)
    try:
        for chain in chains:
            chain.check(store)
        assert store.verify().ok
    finally:
        store.close()


def preallocate(store: SQLiteStore, chain: Chain) -> None:
    """Two appends: the store's first takes only the pages it needs, the second a full
    row, whose unused end the store's close cuts."""
    chain.append(store, sized(f"p{len(chain.bodies)}", 900))
    chain.append(store, sized(f"q{len(chain.bodies)}", ROW // 2))
    last = heap_rows(store.path)[-1][1]
    assert len(last) == ROW and 0 in last


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "heap.db")


def file_bytes(path: str) -> dict[str, str]:
    return {
        suffix: hashlib.sha256(Path(path + suffix).read_bytes()).hexdigest()
        for suffix in ("", "-wal")
        if os.path.exists(path + suffix)
    }


def test_close_cuts_the_last_row_and_appends_go_on(path: str) -> None:
    store = SQLiteStore(path)
    chain = Chain(store, "s")
    chain.append(store, sized("a", 700))  # a store's first append preallocates nothing,
    assert len(heap_rows(path)[-1][1]) == heap.fit(PAGE, 0, len(chain.bodies[0]))
    chain.append(store, *(sized(f"a{i}", 700 + 37 * i) for i in range(9)))  # later ones do
    (rid, data), *_ = heap_rows(path)[-1:]
    assert len(data) == ROW
    fill = data.index(0)
    heap_before, count_before, free_before = pages(path)
    store.close()

    rid2, cut = heap_rows(path)[-1]
    assert rid2 == rid and len(cut) == heap.fit(PAGE, 0, fill) < len(data)
    assert cut == data[: len(cut)]  # the same bytes, less whole pages of zeros
    heap_after, count_after, free_after = pages(path)
    freed = round((len(data) - len(cut)) / CHUNK)  # (the record header: a byte more)
    assert freed >= 1
    assert heap_after == heap_before - freed  # the unused pages are out of the heap,
    assert free_after == free_before + freed  # on the freelist,
    assert count_after == count_before  # and the file did not grow to cut them

    store = SQLiteStore(path)
    chain.check(store)
    # The cut row is written again, grown to a full row with the next body's first
    # bytes; new rows take the rest.
    chain.append(store, sized("b", 3 * ROW // 2), sized("c", 100))
    chain.check(store)
    assert store.verify().ok
    store.close()
    rows = heap_rows(path)
    assert rows[-3][0] == rid and rows[-3][1][:fill] == cut[:fill] and len(rows[-3][1]) == ROW
    assert stream_of(rows) == b"".join(chain.bodies)
    reads_back(path, chain)


def test_a_store_that_only_read_writes_nothing_at_close(path: str) -> None:
    store = SQLiteStore(path)
    chain = Chain(store, "s")
    chain.append(store, *(sized(f"a{i}", 500) for i in range(5)))
    store.close()
    before = file_bytes(path)
    reader = SQLiteStore(path)
    chain.check(reader)
    assert reader.get_session("s") is not None
    reader.close()
    assert file_bytes(path) == before


def test_a_file_at_rest_keeps_its_cut_when_nothing_was_appended(path: str) -> None:
    store = SQLiteStore(path)
    chain = Chain(store, "s")
    preallocate(store, chain)
    store.close()
    cut = heap_rows(path)
    store = SQLiteStore(path)
    store.create_session("t", None, exist_ok=False)  # a write, but no body appended
    store.close()
    assert heap_rows(path) == cut


def test_one_store_cuts_while_another_appends(path: str) -> None:
    a, b = SQLiteStore(path), SQLiteStore(path)
    log: list[bytes] = []
    ca, cb = Chain(a, "a", log), Chain(b, "b", log)
    ca.append(a, sized("a0", 300))
    cb.append(b, sized("b0", 5000))
    cb.append(b, sized("b1", 2000))  # b's last append (a full row now): its tip
    assert len(heap_rows(path)[-1][1]) == ROW
    a.close()  # cuts the row b's tip points into
    assert len(heap_rows(path)[-1][1]) < ROW
    # b's next append must see the cut row (the commit changed the data version): it
    # fills the row's last zeros, then starts a new row at its end.
    cb.append(b, sized("b2", 6000), sized("b3", 40))
    cb.append(b, sized("b4", ROW))
    cb.check(b)
    a = SQLiteStore(path)
    ca.append(a, sized("a1", 200))
    ca.check(a)
    a.close()  # cuts again, under b
    cb.append(b, sized("b5", 2500))
    cb.check(b)
    b.close()
    rows = heap_rows(path)
    assert rows[0][0] == 0
    assert stream_of(rows) == b"".join(log)
    reads_back(path, ca, cb)


def test_close_skips_the_cut_when_the_file_is_busy(path: str) -> None:
    store = SQLiteStore(path)
    chain = Chain(store, "s")
    preallocate(store, chain)
    rows = heap_rows(path)
    other = raw(path)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the file
    try:
        store.close()  # no error, no wait for the busy timeout
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert heap_rows(path) == rows
    store = SQLiteStore(path)
    chain.append(store, sized("b", 100))
    store.close()
    assert len(heap_rows(path)[-1][1]) < ROW  # the next close cuts it
    assert stream_of(heap_rows(path)) == b"".join(chain.bodies)


def test_close_when_the_cut_cannot_be_written(tmp_path: Path) -> None:
    """A disk that refuses every write at close (full, gone read-only): close raises
    nothing, the row stays whole, and the file reads back as before."""
    path = str(tmp_path / "faulty.db")
    vfs = FaultVFS("srt-heap-trim-fault")
    try:
        store = SQLiteStore(path, vfs=vfs.name)
        chain = Chain(store, "s")
        preallocate(store, chain)
        rows = heap_rows(path)
        for error in (apsw.FullError, apsw.ReadOnlyError, apsw.IOError):
            vfs.arm(Plan(op="write", k=1, forever=True, error=error))
            store.close()
            vfs.reset()
            assert heap_rows(path) == rows
            chain.check(store)  # the store opens a connection again after close
            preallocate(store, chain)
            rows = heap_rows(path)
        store.close()
        assert len(heap_rows(path)[-1][1]) < ROW
        reads_back(path, chain)
    finally:
        vfs.unregister()


def test_maintenance_on_a_cut_heap(path: str, tmp_path: Path) -> None:
    """gc (removed bodies at the stream's end: spaces in a shared row, the cut rows of
    their own deleted), backup, vacuum and the messages view."""
    store = SQLiteStore(path)
    keep, drop = Chain(store, "keep"), Chain(store, "drop")
    keep.append(store, *(sized(f"k{i}", 3000) for i in range(4)))
    drop.append(store, sized("d", 2500), sized("d2", 2 * ROW))  # rows of its own, last
    store.close()
    store = SQLiteStore(path)
    store.delete_session("drop")
    assert store.gc().messages == 2
    keep.append(store, sized("k-after-gc", 4000))
    store.close()
    rows = heap_rows(path)
    stream = stream_of(rows)
    assert b"".join(keep.bodies[:4]) in stream and keep.bodies[-1] in stream
    store = SQLiteStore(path)
    keep.check(store)
    conn = raw(path)
    try:
        view = {bytes(b) for (b,) in conn.execute("SELECT body FROM messages")}
    finally:
        conn.close()
    assert view == set(keep.bodies)
    store.backup(str(tmp_path / "copy.db"))
    store.vacuum()
    keep.check(store)
    assert store.verify().ok
    store.close()
    reads_back(str(tmp_path / "copy.db"), keep)


def test_fit_is_the_smallest_whole_page_row() -> None:
    for page in (512, 1024, 2048, 4096, 65536):
        row = heap.row_bytes(page)
        assert heap.fit(page, 0, row) == row
        sizes = sorted({heap.fit(page, 0, n) for n in range(0, row + 1, 7)})
        assert sizes[-1] == row
        for n in range(0, row + 1, 97):
            f = heap.fit(page, 0, n)
            assert f >= n and heap.fit(page, 0, f) == f
            assert not [s for s in sizes if n <= s < f]


#: The sizes of the bodies of one append: any, or one that ends exactly at (or a byte
#: before, or after) the end of the last row's free bytes, or fills a whole row.
SIZES = st.lists(
    st.one_of(
        st.integers(30, 3 * ROW), st.sampled_from(["end", "end-1", "end+1", "row", "end+row"])
    ),
    min_size=1,
    max_size=3,
)


class HeapMachine(RuleBasedStateMachine):
    """Append bodies of every size (ones that fill the last row's free end, or a whole
    row, exactly among them), close and reopen, and let a second store append and close
    (cutting the row under the first store's remembered end); the stream always equals
    the model's, and a closed file's last row is cut to its pages."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="srt-heap-")
        self.path = os.path.join(self.dir, "heap.db")
        self.store = SQLiteStore(self.path)
        self.chain = Chain(self.store, "s")
        self.n = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def bodies(self, sizes: list[int | str]) -> list[bytes]:
        out: list[bytes] = []
        for size in sizes:
            self.n += 1
            if isinstance(size, str):
                free = 0
                for _rid, data in heap_rows(self.path)[-1:]:
                    free = len(data) - (data.find(0) if 0 in data else len(data))
                free = free if not out else 0
                size = {"end": free, "end-1": free - 1, "end+1": free + 1, "row": ROW}.get(
                    size, free + ROW
                )
            out.append(sized(f"m{self.n}", size))
        return out

    @rule(sizes=SIZES)
    def append(self, sizes: list[int | str]) -> None:
        self.chain.append(self.store, *self.bodies(sizes))

    @rule()
    def close_and_reopen(self) -> None:
        self.store.close()
        for _rid, data in heap_rows(self.path)[-1:]:
            fill = data.find(0) if 0 in data else len(data)
            assert len(data) == heap.fit(PAGE, 0, fill)  # cut to its pages
        self.store = SQLiteStore(self.path)
        self.chain.check(self.store)

    @rule(sizes=SIZES)
    def another_store_appends_and_closes(self, sizes: list[int | str]) -> None:
        other = SQLiteStore(self.path)
        try:
            self.chain.append(other, *self.bodies(sizes))
        finally:
            other.close()

    @invariant()
    def the_stream_is_the_model(self) -> None:
        assert stream_of(heap_rows(self.path)) == b"".join(self.chain.bodies)
        self.chain.check(self.store)


HeapMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25)
test_heap_machine = HeapMachine.TestCase
