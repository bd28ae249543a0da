"""``verify`` and the readers on damage a user meets: a session row whose recorded head
prefix hash is not its head's (opening it fails, and ``verify`` must say why), and a
message's metadata that is no longer JSON (``entries()`` must say the store is damaged,
not raise ``json.JSONDecodeError``)."""

from __future__ import annotations

import apsw
import psycopg
import pytest

import srt
from pg_support import server_url


def _history(rt: srt.Runtime) -> None:
    s = rt.session("victim")
    s.append({"role": "user", "content": "hello ✓"})
    s.append({"role": "assistant", "content": "hi 🎉", "metadata": {"tag": "x"}})
    s.fork("kid").append({"role": "user", "content": "more"})
    rt.session("other").append({"role": "user", "content": "unrelated"})


def _sqlite(path: str, sql: str) -> None:
    conn = apsw.Connection(path)
    try:
        conn.execute(sql)
    finally:
        conn.close()


def test_verify_names_a_session_whose_recorded_head_prefix_is_damaged(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        _history(rt)
    _sqlite(db_path, "UPDATE sessions SET head_prefix = zeroblob(16) WHERE name = 'victim'")
    with srt.Runtime(db_path) as rt:
        with pytest.raises(srt.CorruptionError, match="run srt verify"):
            rt.session("victim").messages()
        assert rt.session("kid").messages()[-1]["content"] == "more"  # the rest reads
        report = rt.store.verify()
    assert not report.ok
    [fault] = report.faults
    assert (fault.table, fault.kind) == ("sessions", "session")
    assert "'victim'" in fault.detail and "prefix hash" in fault.detail


def test_verify_names_an_empty_session_that_records_a_head_prefix(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        rt.session("empty")
        _history(rt)
    _sqlite(db_path, "UPDATE sessions SET head_prefix = zeroblob(16) WHERE name = 'empty'")
    with srt.Runtime(db_path) as rt:
        with pytest.raises(srt.CorruptionError):
            rt.session("empty").messages()
        [fault] = rt.store.verify().faults
    assert "'empty' is empty" in fault.detail


@pytest.mark.parametrize("damage", ["{not json", "\xff"])
def test_verify_names_a_message_whose_metadata_is_not_json(db_path: str, damage: str) -> None:
    with srt.Runtime(db_path) as rt:
        _history(rt)
    conn = apsw.Connection(db_path)
    try:
        conn.execute(
            "UPDATE nodes SET meta = ? WHERE meta IS NOT NULL",
            (damage if damage != "\xff" else b"\xff\xfe",),
        )
    finally:
        conn.close()
    with srt.Runtime(db_path) as rt:
        report = rt.store.verify()
    [fault] = report.faults
    assert (fault.table, fault.detail) == ("nodes", "its metadata is not a JSON object")
    assert sorted(fault.places) == [("kid", 2), ("victim", 2)]


def _damage_metadata(url: str) -> None:
    if "://" not in url:
        _sqlite(url, "UPDATE nodes SET meta = '{not json' WHERE meta IS NOT NULL")
        return
    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.nodes SET meta = %s WHERE meta IS NOT NULL", (b"{not",))


def test_damaged_metadata_reads_as_corruption(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        _history(rt)
    _damage_metadata(store_url)
    with srt.Runtime(store_url) as rt:
        s = rt.session("victim")
        assert s.messages()[1]["content"] == "hi 🎉"  # the messages themselves are whole
        with pytest.raises(srt.CorruptionError, match=r"metadata is not JSON.*run srt verify"):
            s.entries()
        with pytest.raises(srt.CorruptionError, match="metadata is not JSON"):
            s.messages(metadata=True)
