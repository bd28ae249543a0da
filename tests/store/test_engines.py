"""Picking an engine: paths and URLs, the registry, ``Runtime(store=...)``, and the
SQLite engine's own schema step for objects (engine-specific, so not in the
conformance files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import body, conversation, new_session

import srt
from rel_support.common import make_old_db
from rel_support.waits import joined
from srt.store import ENGINES, Store, engine_for, open_store, scheme_of
from srt.store.sqlite import SQLiteStore, sqlite_path
from srt.store.sqlite import db as sqlite_db
from support import connect


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("chats.db", "chats.db"),
        ("/abs/chats.db", "/abs/chats.db"),
        ("sqlite:chats.db", "chats.db"),
        ("sqlite:///chats.db", "chats.db"),
        ("sqlite:////abs/chats.db", "/abs/chats.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
    ],
)
def test_sqlite_paths_and_urls(given: str, path: str) -> None:
    assert scheme_of(given) == "sqlite"
    assert sqlite_path(given) == path


def test_url_schemes() -> None:
    assert scheme_of("postgresql://u@h/db") == "postgresql"
    assert scheme_of("PostgreSQL+psycopg://u@h/db") == "postgresql"
    assert scheme_of("./relative/dir/chats.db") == "sqlite"


def test_an_unknown_scheme_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(srt.ConfigError, match="no storage engine"):
        srt.Runtime("nosuchdb://host/x")
    with pytest.raises(srt.ConfigError):
        sqlite_path("sqlite:")


def open_test_engine(url: str, **options: Any) -> Store:
    """A third engine for the registry test: SQLite under another scheme."""
    return SQLiteStore(url.removeprefix("testdb://"), **options)


def test_an_engine_plugs_in_with_one_registry_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ENGINES, "testdb", f"{__name__}:open_test_engine")
    assert engine_for("testdb") is open_test_engine
    url = f"testdb://{tmp_path / 'plugged.db'}"
    with srt.Runtime(url) as rt:
        assert isinstance(rt.store, SQLiteStore)
        rt.session("s").append({"role": "user", "content": "through the plug-in"})
    with srt.Runtime(str(tmp_path / "plugged.db")) as rt:
        assert rt.session("s").messages() == [{"role": "user", "content": "through the plug-in"}]


def test_a_broken_engine_module_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, "brokendb", "srt_no_such_module:factory")
    with pytest.raises(srt.ConfigError, match="cannot be loaded"):
        open_store("brokendb://x")


def test_runtime_takes_a_path_a_url_or_a_store(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    with srt.Runtime(f"sqlite:///{path}") as rt:
        assert rt.path == path and isinstance(rt.store, SQLiteStore)
        rt.session("s").append({"role": "user", "content": "hi"})
    store = SQLiteStore(path)
    with srt.Runtime(store=store) as rt:
        assert rt.store is store and rt.path == path
        assert len(rt.session("s")) == 1
    with pytest.raises(srt.ConfigError):
        srt.Runtime(path, store=SQLiteStore(path))
    with pytest.raises(srt.ConfigError):
        srt.Runtime(store="not a store")  # type: ignore[arg-type]


def test_a_v3_file_migrates_to_v4_and_keeps_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    expected = make_old_db(path, 3)
    store = SQLiteStore(path)
    try:
        for name, messages in expected.items():
            row = store.get_session(name)
            assert row is not None
            assert [r[2] for r in store.chain(row.head)] == [
                body(m["role"], m["content"]) for m in messages
            ]
        store.put_object("k", "s", "key", b"value")
        assert store.verify().ok
    finally:
        store.close()
    with connect(path) as conn:
        assert conn.execute("PRAGMA user_version").get == sqlite_db.SCHEMA_VERSION
        columns = {r[1] for r in conn.execute("PRAGMA table_info(calls)")}
        assert "params" in columns


def test_verify_names_an_object_whose_node_is_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "objects.db")
    store = SQLiteStore(path)
    try:
        _sid, ids = new_session(store, "a", conversation(2))
        store.put_object("checkpoint", "t", "c", b"x", node=ids[0])
    finally:
        store.close()
    with connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("UPDATE objects SET node = 4242")
    store = SQLiteStore(path)
    try:
        faults = [f for f in store.verify().faults if f.kind == "object"]
        assert [str(f) for f in faults] == [
            "objects row 1: checkpoint object: its node 4242 is missing"
        ]
    finally:
        store.close()


def _tables(path: str) -> set[str]:
    with connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}


def test_the_first_object_creates_the_objects_table(tmp_path: Path) -> None:
    path = str(tmp_path / "lazy.db")
    store = SQLiteStore(path)
    try:
        new_session(store, "a", conversation(2))
        assert store.get_object("k", "s", "x") is None and store.list_objects("k", "s") == []
        assert store.delete_object("k", "s", "x") is False
        assert store.gc().objects == 0 and store.verify().ok
        assert "objects" not in _tables(path)  # never written: no table, no pages
        with pytest.raises(srt.ConflictError):  # a failed first write leaves none either
            store.put_object("k", "s", "x", b"v", node=4242)
        assert "objects" not in _tables(path)
        other = SQLiteStore(path)  # another handle sees the table its peer creates
        assert other.get_object("k", "s", "x") is None
        store.put_object("k", "s", "x", b"v")
        assert "objects" in _tables(path)
        got = other.get_object("k", "s", "x")
        assert got is not None and got.value == b"v"
        other.close()
    finally:
        store.close()


def test_stores_opening_one_new_file_at_once_all_open(tmp_path: Path) -> None:
    # SQLite refuses a journal-mode change at once (no busy handler) while another
    # connection holds the file; srt retries it, so racing first opens never fail.
    import threading

    for round_ in range(30):
        path = tmp_path / f"race{round_}.db"
        errors: list[BaseException] = []

        def open_and_create(t: int, path: Path = path, errors: list[Any] = errors) -> None:
            try:
                SQLiteStore(path).create_session(f"s{t}", None, exist_ok=False)
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_create, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        joined(*threads)
        assert errors == []
        assert len(SQLiteStore(path).list_sessions()) == 8


@pytest.mark.parametrize("bad", [3, b"x.db", ""])
def test_a_sqlite_store_path_of_the_wrong_type_is_a_config_error(bad: Any) -> None:
    with pytest.raises(srt.ConfigError, match=r"path must be a str or os\.PathLike"):
        SQLiteStore(bad)
