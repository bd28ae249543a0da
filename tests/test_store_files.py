"""The store's file: foreign, damaged or newer files refused and left untouched, an empty
file adopted, private permissions, the default path, corruption caught, and the
connection's settings.

Files are inspected by opening them with ``apsw`` (see ``support.connect``); the stdlib
``sqlite3`` module is never used on an srt file.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import threading
from pathlib import Path

import apsw
import pytest

import srt
from srt.store.sqlite import db as _db
from store_support import HISTORY, user
from support import connect


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- file identity ---------------------------------------------------------------------------


def _expect_refusal(path: str, error: type[srt.StoreError]) -> srt.StoreError:
    digest = sha256(path)
    listing = sorted(os.listdir(os.path.dirname(path)))
    with pytest.raises(srt.StoreError) as info:
        srt.Runtime(path)
    exc = info.value
    assert isinstance(exc, error), repr(exc)
    assert not isinstance(exc, apsw.Error)
    assert str(exc)
    assert sha256(path) == digest
    assert sorted(os.listdir(os.path.dirname(path))) == listing
    return exc


def test_foreign_sqlite_file_is_refused_and_untouched(db_path: str) -> None:
    with connect(db_path) as conn:
        conn.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes(body) VALUES (?)", [(f"note {i}",) for i in range(50)])
    _expect_refusal(db_path, srt.NotAnSrtDatabaseError)
    with connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM notes").get == 50


def test_foreign_sqlite_file_with_only_pragmas_is_refused(db_path: str) -> None:
    with connect(db_path) as conn:
        conn.execute("PRAGMA user_version=1")
    _expect_refusal(db_path, srt.NotAnSrtDatabaseError)


def test_foreign_wal_file_is_refused(db_path: str) -> None:
    with connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA application_id=42")
        conn.execute("CREATE TABLE t(x)")
    _expect_refusal(db_path, srt.NotAnSrtDatabaseError)


@pytest.mark.parametrize("size", [1, 99, 100, 4096, 65536])
def test_random_bytes_are_refused_and_untouched(db_path: str, size: int) -> None:
    Path(db_path).write_bytes(random.Random(size).randbytes(size))
    _expect_refusal(db_path, srt.CorruptionError)


def test_sqlite_magic_followed_by_garbage_is_refused(db_path: str) -> None:
    garbage = random.Random(3).randbytes(8192)
    Path(db_path).write_bytes(b"SQLite format 3\x00" + garbage[16:])
    _expect_refusal(db_path, srt.StoreError)


def test_text_file_is_refused(db_path: str) -> None:
    Path(db_path).write_text("these are my notes, not a database\n" * 20)
    _expect_refusal(db_path, srt.CorruptionError)


def test_newer_schema_is_refused_and_untouched(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(*HISTORY)
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").get == _db.SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").get == _db.APPLICATION_ID
        conn.execute("PRAGMA user_version=99")
    exc = _expect_refusal(db_path, srt.SchemaVersionError)
    assert "99" in str(exc)


def test_truncated_file_is_refused_and_untouched(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        for i in range(300):
            rt.session(f"s{i}").append(user(f"{i} " + "lorem ipsum " * 300))
    with connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not os.path.exists(db_path + "-wal") or os.path.getsize(db_path + "-wal") == 0
    size = os.path.getsize(db_path)
    assert size > 1_000_000
    os.truncate(db_path, size // 2)
    _expect_refusal(db_path, srt.CorruptionError)


@pytest.mark.parametrize(("offset", "value"), [(18, 0), (19, 0), (19, 3), (18, 7)])
def test_invalid_format_version_bytes_are_refused_and_untouched(
    db_path: str, offset: int, value: int
) -> None:
    """SQLite writes 1 or 2 at header bytes 18/19 and opens a file with other values;
    switching it to WAL would rewrite the damaged header, so srt refuses it."""
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(*HISTORY)
    data = bytearray(Path(db_path).read_bytes())
    data[offset] = value
    Path(db_path).write_bytes(bytes(data))
    exc = _expect_refusal(db_path, srt.CorruptionError)
    assert "format version" in str(exc)


def test_rollback_journal_srt_file_still_opens(db_path: str) -> None:
    """A valid srt file another tool switched to a rollback journal (bytes 18/19 = 1)."""
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(*HISTORY)
    with connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    assert Path(db_path).read_bytes()[18:20] == b"\x01\x01"
    with srt.Runtime(db_path) as rt:
        assert len(rt.session("s").messages()) == len(HISTORY)


def test_empty_file_becomes_an_srt_database(db_path: str) -> None:
    Path(db_path).touch()
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(user("x"))
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA application_id").get == _db.APPLICATION_ID


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(srt.StoreError) as info:
        srt.Runtime(str(tmp_path))
    assert not isinstance(info.value, apsw.Error)


# -- permissions -----------------------------------------------------------------------------


def test_new_files_and_directories_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "a" / "b" / "c" / "srt.db"
        with srt.Runtime(str(path)) as rt:
            rt.session("s").append(user("secret"))
            present = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
            assert path in present
            assert len(present) == 3  # WAL mode: all three exist while a connection is open
            for p in present:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        for d in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_default_path_follows_srt_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = str(tmp_path / "env.db")
    monkeypatch.setenv("SRT_DB", target)
    assert srt.default_path() == target
    with srt.Runtime() as runtime:
        assert runtime.path == target
        runtime.session("s").append(user("x"))
    assert os.path.exists(target)


def test_a_damaged_head_that_names_another_node_is_refused(tmp_path: Path) -> None:
    """A session row keeps its head's prefix hash: a head id damaged into the id of another
    stored node (here the first node of another session, a chain that checks out on its
    own) is refused with CorruptionError instead of being read as the session."""
    path = str(tmp_path / "h.db")
    with srt.Runtime(path) as rt:
        for name in ("a", "b"):
            rt.session(name).append(
                {"role": "user", "content": f"q {name}"}, {"role": "assistant", "content": "r"}
            )
    with connect(path) as conn:
        b_root = conn.execute(
            "SELECT id FROM nodes WHERE parent IS NULL ORDER BY id DESC LIMIT 1"
        ).get
        conn.execute("UPDATE sessions SET head = ? WHERE name = 'a'", (b_root,))
    with srt.Runtime(path) as rt:
        with pytest.raises(srt.CorruptionError, match="a head that is not its own"):
            rt.session("a", create=False).messages()
        assert rt.session("b").messages()[0] == {"role": "user", "content": "q b"}


def test_a_sessions_page_that_lost_its_rows_is_refused(tmp_path: Path) -> None:
    """A damaged page header that empties the sessions' name index (its cell count zeroed)
    would list no sessions, as the listing walks that index; the table still holds them,
    so listing raises CorruptionError."""
    path = str(tmp_path / "p.db")
    with srt.Runtime(path) as rt:
        for name in ("a", "b", "c"):
            rt.session(name).append({"role": "user", "content": name})
    with connect(path) as conn:
        page = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'sqlite_autoindex_sessions_1'"
        ).get
        size = conn.execute("PRAGMA page_size").get
    data = bytearray(Path(path).read_bytes())
    header = (page - 1) * size + (100 if page == 1 else 0)
    assert data[header + 3 : header + 5] == b"\x00\x03"  # the b-tree page's cell count
    data[header + 4] = 0
    Path(path).write_bytes(bytes(data))
    with srt.Runtime(path) as rt, pytest.raises(srt.CorruptionError, match="disagree"):
        rt.sessions()


def test_a_connection_has_bestpractice_settings(tmp_path: Path) -> None:
    """WAL, and double-quoted strings refused, as ``apsw.bestpractice``'s connection_wal
    and connection_dqs set them (written out in ``db._configure``)."""
    path = str(tmp_path / "s.db")
    conn = _db.connect(path, threading.Lock(), migrate=True)
    try:
        assert conn.execute("PRAGMA journal_mode").get == "wal"
        with pytest.raises(apsw.SQLError, match="no such column"):
            conn.execute('SELECT "not a string"').get  # noqa: B018 - the query is the test
        assert conn.execute("SELECT 'a string'").get == "a string"
    finally:
        conn.close()
