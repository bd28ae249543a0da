"""An object a SQLite store deletes leaves no byte of its value in the file, ``-wal`` or
``-shm`` once checkpointed: ``delete_object``, ``delete_session`` (the objects filed under
the session) and an overwrite zero what SQLite frees, and an object's writes zero the
copies a page split leaves, so a value written first (in the root page) and many objects
after it still leaves nothing once deleted."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from srt.store.heads import KIND as HEAD
from srt.store.sqlite import SQLiteStore
from support import NOTHING, found_in_files


@pytest.fixture
def canary() -> bytes:
    return f"CANARY-{secrets.token_hex(8)}".encode()


@pytest.mark.parametrize("size", [1, 400], ids=["in-page", "overflowing"])
def test_a_deleted_object_leaves_no_bytes(tmp_path: Path, canary: bytes, size: int) -> None:
    path = tmp_path / "srt.db"
    store = SQLiteStore(path)
    try:
        secret = canary * size
        store.put_object("t.secret", "tenant", "first", secret)  # in the root page
        store.put_object("t.secret", "tenant", "again", b"old " + secret)
        store.put_object("t.secret", "tenant", "again", b"shorter")  # an overwrite
        for i in range(200):  # the root splits: its cells are copied to new pages
            store.put_object("t.filler", "tenant", f"k{i}", b"x" * 100)
        assert store.checkpoint()
        assert found_in_files(path, canary)[""] > 0  # (what the test looks for is there)
        assert store.delete_object("t.secret", "tenant", "first")
        assert store.checkpoint()
        assert found_in_files(path, canary) == NOTHING
        row = store.get_object("t.filler", "tenant", "k7")
        assert row is not None and bytes(row.value) == b"x" * 100
    finally:
        store.close()


def test_a_deleted_session_leaves_no_bytes_of_its_objects(tmp_path: Path, canary: bytes) -> None:
    path = tmp_path / "srt.db"
    store = SQLiteStore(path)
    try:
        session = store.create_session("s", None, exist_ok=False)
        assert store.put_object(HEAD, str(session.id), "h", canary * 300)
        assert store.put_object(HEAD, f"{session.id}:x", "h", b"also " + canary)
        for i in range(100):
            store.put_object("t.filler", "tenant", f"k{i}", b"x" * 100)
        assert store.checkpoint()
        assert found_in_files(path, canary)[""] > 0
        store.delete_session("s")
        assert store.checkpoint()
        assert found_in_files(path, canary) == NOTHING
        assert store.get_object(HEAD, str(session.id), "h") is None
    finally:
        store.close()


def test_zeroing_is_only_for_the_statement_it_wraps(tmp_path: Path) -> None:
    """The connections the store lends keep their own setting after an object's write
    or deletion (appends do not pay for the zeroing)."""
    store = SQLiteStore(tmp_path / "srt.db")
    try:
        conn = store.db.connection()
        before = conn.execute("PRAGMA secure_delete").get
        store.put_object("t.k", "s", "a", b"v")
        assert store.delete_object("t.k", "s", "a")
        store.create_session("s", None, exist_ok=False)
        store.delete_session("s")
        assert conn.execute("PRAGMA secure_delete").get == before
    finally:
        store.close()
