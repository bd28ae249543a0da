"""A session listing from a damaged file: a value of the wrong kind in a session's row or
its head node (a flipped bit turns a blob into an integer) is a ``CorruptionError``, never
a bare ``AttributeError`` (``test_rel_properties_files`` found one: its head's prefix
hash read as an int, ``'int' object has no attribute 'hex'``)."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

import srt


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("nodes", "prefix", 7),
        ("nodes", "prefix", b"short"),
        ("nodes", "depth", "deep"),
        ("sessions", "created", b"\x00"),
        ("sessions", "updated", "later"),
    ],
)
def test_a_damaged_row_in_a_listing_is_a_corruption_error(
    tmp_path: Path, table: str, column: str, value: object
) -> None:
    path = _damaged(tmp_path, table, column, value)
    with srt.Runtime(path) as rt, pytest.raises(srt.CorruptionError, match="damaged"):
        rt.sessions()


@pytest.mark.parametrize("value", ["x", b"\x01", 1.5])
def test_a_damaged_message_place_in_srt_ls_is_a_corruption_error(
    tmp_path: Path, value: object
) -> None:
    """``srt ls``'s overview walks each chain's heap offsets (``nodes.at``)."""
    path = _damaged(tmp_path, "nodes", "at", value)
    with srt.Runtime(path) as rt, pytest.raises(srt.CorruptionError, match="damaged"):
        rt.store.overview()


def _damaged(tmp_path: Path, table: str, column: str, value: object) -> str:
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path) as rt:
        rt.session("s").append({"role": "user", "content": "hi"})
        assert [i.name for i in rt.sessions()] == ["s"]
    conn = apsw.Connection(path)
    conn.execute("PRAGMA ignore_check_constraints = 1")
    conn.execute(f"UPDATE {table} SET {column} = ?", (value,))
    conn.close()
    return path
