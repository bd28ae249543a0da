"""A SQLite file whose path holds ``=`` stays a SQLite file; a libpq keyword/value string
is PostgreSQL.

Before: any string starting with ``host=``/``port=``/... or holding two ``key=`` words
was taken for a keyword/value string, so ``srt.Runtime("host=x.db")`` or
``srt.Runtime("lr=0.1 bs=32.db")`` tried to reach a PostgreSQL server instead of making
the file. Now the whole string must parse as a connection string (libpq's keywords), and a
single word ending like a SQLite file is one; several words naming where to connect (or a
password) still go to PostgreSQL when a keyword is misspelt, so no file is made under a
name that may hold a password.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import srt
from srt.store import scheme_of
from srt.store.sqlite import SQLiteStore

#: Paths holding "=", each a SQLite file (relative to a working directory of the test's).
FILES = [
    "host=x.db",
    "port=5432.sqlite",
    "user=me.sqlite3",
    "lr=0.1 bs=32.db",
    "lr=0.1.db",
    "lr=0.1",
    "./runs/lr=0.1.db",
    "runs/a=b/chat.db",
    "dbname=chats.db",
]

#: Keyword/value strings (no server is reached: only the detection is asked).
CONNINFOS = [
    "host=db.internal dbname=chats user=app",
    "host=/var/run/postgresql",
    "port=5432",
    "dbname=chats.db user=app",
    "application_name='a new user' host=db",
    "  host = db  dbname = chats ",
    # not valid, but meant for PostgreSQL: the engine says what is wrong
    "host=db dbname=chats pasword=Canary",
    "hots=db password=Canary",
    "host=db password='Canary-unterminated",
]


@pytest.mark.parametrize("name", FILES)
def test_a_path_holding_an_equals_sign_is_a_sqlite_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert scheme_of(name) == "sqlite"
    os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
    with srt.Runtime(name) as rt:
        assert isinstance(rt.store, SQLiteStore)
        rt.session("a").append({"role": "user", "content": "hi"})
    assert (tmp_path / name).is_file()
    with srt.Runtime(str(tmp_path / name)) as rt:  # the same file, by its absolute path
        assert rt.session("a").messages() == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("text", CONNINFOS)
def test_a_keyword_value_string_is_postgresql(text: str) -> None:
    assert scheme_of(text) == "postgresql"


def test_a_misspelt_keyword_is_a_config_error_and_makes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(srt.ConfigError) as err:
        srt.Runtime("hots=db dbname=chats password=Canary-detect25")
    assert "not valid" in str(err.value) and "Canary-detect25" not in str(err.value)
    assert os.listdir(tmp_path) == []
