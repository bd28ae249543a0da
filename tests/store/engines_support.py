"""The store conformance suite's engines: ``EngineUnderTest`` and one factory per engine in
``ENGINES`` (``tests/store/conftest.py``'s ``engine`` fixture runs every test in ``tests/store/``
once per entry).

An engine factory is a context manager ``factory(tmp_path) -> EngineUnderTest`` that
sets up an empty database for one test (a file; a fresh PostgreSQL database) and
tears it down afterwards. ``EngineUnderTest.open()`` opens a new ``Store`` on that
database (a second handle, as another process would have); ``tamper_body`` replaces a
stored message's bytes and ``tamper_prefix`` a node's prefix hash behind the engine's
back, the engine-specific acts the suite needs (to prove that ``chain`` and ``verify``
catch damage).

A new engine joins the suite with one entry in ``ENGINES``; the tests stay unchanged.

This is a module of its own, not ``conftest.py``, so that tests import it by a name no
other directory has: ``from conftest import ...`` took whichever ``conftest`` pytest had
imported last, and ``pytest tests/store tests/testing_server`` failed to collect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import apsw

import support
from srt.store import Store
from srt.store.sqlite import SQLiteStore


@dataclass
class EngineUnderTest:
    name: str
    open: Callable[[], Store]
    tamper_body: Callable[[bytes, bytes], None]
    tamper_prefix: Callable[[bytes, bytes], None]
    opened: list[Store] = field(default_factory=list)


@contextlib.contextmanager
def sqlite_engine(tmp_path: Path) -> Iterator[EngineUnderTest]:
    path = str(tmp_path / "conformance.db")

    def tamper_body(message_hash: bytes, body: bytes) -> None:
        conn = apsw.Connection(path)
        try:
            support.tamper_body(conn, message_hash, body)
        finally:
            conn.close()

    def tamper_prefix(prefix: bytes, new: bytes) -> None:
        conn = apsw.Connection(path)
        try:
            conn.execute("UPDATE nodes SET prefix = ? WHERE prefix = ?", (new, prefix))
        finally:
            conn.close()

    yield EngineUnderTest("sqlite", lambda: SQLiteStore(path), tamper_body, tamper_prefix)


@contextlib.contextmanager
def postgres_engine(tmp_path: Path, *, bouncer: bool = False) -> Iterator[EngineUnderTest]:
    """A schema of its own on the tests' PostgreSQL server (``tests/pg_support.py``);
    with ``bouncer``, reached through PgBouncer in transaction mode."""
    import psycopg

    from pg_support import fresh_bouncer_url, fresh_url, server_url
    from srt.store.postgres import PostgresStore

    with (fresh_bouncer_url if bouncer else fresh_url)() as url:
        schema = url.rsplit("schema=", 1)[1]

        def tamper(table: str, column: str, key: str, value: bytes, old: bytes) -> None:
            with psycopg.connect(server_url(), autocommit=True) as conn:
                conn.execute(
                    f'UPDATE "{schema}".{table} SET {column} = %s WHERE {key} = %s',  # ours
                    (value, old),
                )

        def tamper_body(message_hash: bytes, body: bytes) -> None:
            tamper("messages", "body", "hash", body, message_hash)

        def tamper_prefix(prefix: bytes, new: bytes) -> None:
            tamper("nodes", "prefix", "prefix", new, prefix)

        name = "pgbouncer" if bouncer else "postgres"
        yield EngineUnderTest(name, lambda: PostgresStore(url), tamper_body, tamper_prefix)


def pgbouncer_engine(tmp_path: Path) -> contextlib.AbstractContextManager[EngineUnderTest]:
    """The same through PgBouncer in transaction mode, its pools 2 server connections."""
    return postgres_engine(tmp_path, bouncer=True)


#: Engine name -> factory.
ENGINES: dict[str, Callable[[Path], contextlib.AbstractContextManager[EngineUnderTest]]] = {
    "sqlite": sqlite_engine,
    "postgres": postgres_engine,
    "pgbouncer": pgbouncer_engine,
}
