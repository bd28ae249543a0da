"""Audit 27, input: hostile values reaching SQL built by the code added since 2026-12-06.

* PostgreSQL's search (schema v10's ``message_text``, the index built ``CONCURRENTLY``)
  and SQLite's FTS5 search, given tsquery and FTS5 syntax, quotes, backslashes, ``%s``,
  ``{s}``, NUL, lone surrogates, a 200,000-character word and odd limits: each either
  answers or is a ``ConfigError``, and the store is unchanged;
* the ``schema=`` of a PostgreSQL URL naming one of PostgreSQL's own schemas.
  ``information_schema`` was taken: srt created its tables among the system views, where
  ``pg_dump`` never looks (a store a backup silently leaves out); ``pg_toast`` was refused
  with advice to open the store as the database's owner, and ``pg_temp`` with psycopg's
  ``ReservedName``. Each is now a ``ConfigError`` naming the schema, before connecting.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import srt
from pg_support import server_url
from support import is_url, snapshot

HOSTILE = [
    "'*", "\\*", ":*", "&*", "|*", "!*", "a:b*", "(*", "a<->b*", "'a'*", "a'b", "%s",
    "%(x)s", "{s}", "a\\", "*", "**", "'); DROP TABLE messages; --", "-*", "NEAR(a b)",
    "a:*b*", "a' | 'b*", "ab\\'*", "a\\\\*", "''*", "\\'*", "\t*", "a*b*", "x" * 200_000 + "*",
    "a\x00b", "\x00*", "\ud800",
]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "s.db")
    else:
        yield request.getfixturevalue("pg_url")


def test_hostile_search_text_answers_or_is_a_config_error(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        rt.session("one").append({"role": "user", "content": "hello a'b world"})
        rt.store.search("hello")  # (PostgreSQL: the index is built)
        before = snapshot(store_url)
        outcomes = set()
        for syntax in (False, True):
            for text in HOSTILE:
                for limit in (20, 0, -1, 10**12):
                    try:
                        rt.store.search(text, syntax=syntax, limit=limit)
                        outcomes.add("answered")
                    except srt.ConfigError:
                        outcomes.add("refused")
        assert outcomes == {"answered", "refused"}
        assert [h.text for h in rt.store.search("a'b")] == ["hello a'b world"]
    assert snapshot(store_url) == before
    assert is_url(store_url) or Path(store_url).exists()


@contextlib.contextmanager
def _database() -> Iterator[str]:
    """A URL on a new database of the tests' server (its own system schemas), dropped after."""
    base = server_url()
    name = "t27_" + secrets.token_hex(4)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # (a name made here)
    try:
        yield base.replace("/postgres", f"/{name}", 1)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.parametrize("schema", ["information_schema", "pg_toast", "pg_temp", "pg_mine"])
def test_a_system_schema_is_refused_before_anything_is_made(schema: str) -> None:
    with _database() as url:
        with pytest.raises(srt.ConfigError) as refused:
            srt.Runtime(f"{url}&schema={schema}")
        said = str(refused.value)
        assert f"{schema!r}" in said and "PostgreSQL's own" in said and "?schema=" in said
        with psycopg.connect(url) as conn:
            made = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_name IN ('srt_schema', 'nodes', 'messages', 'sessions')"
            ).fetchall()
        assert made == []
        with srt.Runtime(f"{url}&schema=mine") as rt:  # (a schema of its own is fine)
            rt.session("s").append({"role": "user", "content": "hi"})
            assert [s.name for s in rt.sessions()] == ["s"]
