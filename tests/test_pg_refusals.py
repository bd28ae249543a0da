"""Connections the pool makes after the store's first one, refused by a real server.

The first connection already failed at once on a refusal (``test_pg_edges``). The pool's
later ones are made by ``psycopg_pool``'s threads, which keep trying; a caller waiting
for one waited out ``pool_timeout`` and got a generic message. Now the pool tells the
store how each attempt went, and a caller waiting on a refused one fails in a tenth of a
second with the server's reason, typed and without the password.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import srt
from pg_support import scram_server
from rel_support.waits import joined
from srt.store.postgres import PostgresStore
from srt.store.postgres.pool import Database
from srt.testing.pgserver import PgServer

SECRET = "Canary-pgpath16-Secret"


@pytest.fixture
def scram() -> Iterator[PgServer]:
    """A server that wants a password over TCP (scram-sha-256)."""
    with scram_server(SECRET) as pg:
        yield pg


def _rotate(pg: PgServer) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:  # over the socket: trusted
        conn.execute("ALTER ROLE srt PASSWORD 'rotated-elsewhere'")


def test_a_rotated_password_fails_later_connections_at_once(scram: PgServer) -> None:
    url = f"postgresql://srt:{SECRET}@127.0.0.1:{scram.port}/postgres?pool_max=3&pool_timeout=20"
    with srt.Runtime(url) as rt:
        store = rt.store
        assert isinstance(store, PostgresStore)
        for i in range(6):
            rt.session(f"t{i}").append({"role": "user", "content": "before"})
        _rotate(scram)
        errors: list[BaseException] = []
        done: list[int] = []

        def append(i: int) -> None:
            try:
                rt.session(f"t{i}").append({"role": "user", "content": "after"})
                done.append(i)
            except BaseException as exc:  # recorded, checked below
                errors.append(exc)

        # The first connection is held here, so all six threads (more than the pool's
        # two other connections) need one the pool must make, and the server refuses.
        with store.db.connection() as held:
            threads = [threading.Thread(target=append, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            joined(*threads)
            held.execute("SELECT 1")
        assert done == [] and len(errors) == 6
        for exc in errors:
            assert isinstance(exc, srt.StoreUnavailableError), repr(exc)
            assert "password authentication failed" in str(exc)
            # The refusal's own error, not the retryable one a wait that ran out of
            # pool_timeout ends with ("no connection in time (20 s, pool_timeout)"):
            # a refused caller never waits the pool's timeout out.
            assert not exc.retryable and "in time" not in str(exc), exc
            assert exc.__cause__ is None and exc.__context__ is None
            assert SECRET not in f"{exc!s} {exc!r}"
        # Nothing half-written, and the connection made before the change still works.
        for i in range(6):
            assert [m["content"] for m in rt.session(f"t{i}").messages()] == ["before"]
        rt.session("t0").append({"role": "user", "content": "on the first connection"})
        assert store.verify().ok


def test_a_server_down_is_unavailable_not_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the server down, every connection the pool held is broken and its attempts
    to make new ones fail: callers waiting for one get the retryable
    ``StoreUnavailableError`` after ``pool_timeout``, not ``StoreBusyError`` (which says
    to raise ``pool_max``), and the store works again once the server is back. (Seen in
    CI: a restart under load made the fault bench's threads stop on "busy".)"""
    with PgServer(fast=True) as pg:
        rt = srt.Runtime(pg.url + "&pool_max=3&pool_timeout=1")
        try:
            rt.session("s").append({"role": "user", "content": "x"})

            def use() -> None:
                for _ in range(20):
                    rt.store.list_sessions()

            workers = [threading.Thread(target=use) for _ in range(3)]
            for w in workers:
                w.start()
            joined(*workers)
            pg.stop("immediate", remove=False)
            # Each wait for a connection that ran out (pool_timeout), by caller thread.
            waits: dict[int, int] = {}
            connection = Database.connection

            @contextlib.contextmanager
            def counted(self: Database) -> Iterator[Any]:
                with contextlib.ExitStack() as stack:
                    try:
                        conn = stack.enter_context(connection(self))
                    except BaseException:  # no connection came: its wait ran out
                        key = threading.get_ident()
                        waits[key] = waits.get(key, 0) + 1
                        raise
                    yield conn

            monkeypatch.setattr(Database, "connection", counted)
            got: list[tuple[str, int]] = []

            def call() -> None:
                try:
                    rt.store.list_sessions()
                    got.append(("answered", 0))
                except srt.SrtError as exc:
                    got.append((type(exc).__name__, waits.get(threading.get_ident(), 0)))

            callers = [threading.Thread(target=call) for _ in range(4)]
            for c in callers:
                c.start()
            joined(*callers)
            assert sorted(name for name, _ in got) == ["StoreUnavailableError"] * 4, got
            # Each caller waited out pool_timeout once, not twice (a read retried on a
            # broken connection must not wait for a new one a second time).
            assert [n for _, n in got] == [1] * 4, got
            monkeypatch.undo()
            pg.start()
            pg.wait_ready()
            assert [i.name for i in rt.store.list_sessions()] == ["s"]
        finally:
            rt.close()
