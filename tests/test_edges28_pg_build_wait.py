"""PostgreSQL: a search's wait for another connection's build of the search index.

``build_search_index`` waits while a ``CREATE INDEX CONCURRENTLY`` on srt's messages runs
on the database (``maintenance.index_building``: PostgreSQL's progress view). That wait had
no bound: a search went on waiting for as long as the other build did (one that waits for
an old transaction, for as long as that stays open). Now it ends after the store's
``busy_timeout`` with ``StoreBusyError`` naming the build; a build on another table is not
waited for at all. Each test holds a real build open on a real server: a transaction holding
``ROW EXCLUSIVE`` on the table, which ``CREATE INDEX CONCURRENTLY`` waits for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

import srt
from pg_support import fresh_bouncer_url, fresh_url, server_url
from srt.errors import StoreBusyError
from srt.store.postgres import PostgresStore
from srt.store.postgres import schema as sch
from srt.store.postgres.maintenance import index_building


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


@contextlib.contextmanager
def _held_build(table: str, index_sql: str) -> Iterator[None]:
    """``index_sql`` (a ``CREATE INDEX CONCURRENTLY`` on ``table``) running in a thread
    while the block runs: it waits for a transaction that holds ``ROW EXCLUSIVE`` on the
    table, ended when the block exits (at the latest after 60 s, so the old code's wait
    ends too). The block starts once the build shows in the progress view."""
    holder = psycopg.connect(server_url())
    holder.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
    release = threading.Timer(60, holder.rollback)
    release.start()
    errors: list[BaseException] = []

    def build() -> None:
        try:
            with psycopg.connect(server_url(), autocommit=True) as conn:
                conn.execute(index_sql)
        except BaseException as exc:  # reported below
            errors.append(exc)

    builder = threading.Thread(target=build)
    builder.start()
    try:
        with psycopg.connect(server_url(), autocommit=True) as look:
            for _ in range(600):  # (until the build is seen; 60 s at most)
                row = look.execute(
                    "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = %s::regclass",
                    (table,),
                ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the held build never showed in the progress view")
        yield
    finally:
        release.cancel()
        holder.rollback()
        holder.close()
        builder.join(60)
    assert errors == []


def _store(url: str, wait: float) -> PostgresStore:
    store = PostgresStore(url)
    store.busy_timeout = wait
    return store


@pytest.mark.parametrize("through", ["postgres", "pgbouncer"])
def test_a_search_stops_waiting_for_another_build_at_the_busy_timeout(through: str) -> None:
    """Another connection's build of srt's own search index waits for an old transaction;
    a first search meanwhile used to wait until that build ended (here: until the holding
    transaction is rolled back after 60 s, and then found the index and answered); now it
    gives up after ``busy_timeout`` with a retryable ``StoreBusyError`` naming the build,
    leaving the build to go on. Once the build has ended, the search works."""
    with (fresh_bouncer_url if through == "pgbouncer" else fresh_url)() as url:
        schema = _schema(url)
        with srt.Runtime(url) as rt:
            rt.session("hay").append(*({"role": "user", "content": f"straw{i}"} for i in range(50)))
        index_sql = sch.render(sch.SEARCH_INDEX_SQL, schema)  # (srt's own index)
        waiter = _store(url, 0.5)
        try:
            with _held_build(f'"{schema}".messages', index_sql):
                with pytest.raises(StoreBusyError) as caught:
                    waiter.search("straw7")
                text = str(caught.value)
                assert "search index" in text and "CREATE INDEX CONCURRENTLY" in text
                assert f"{schema}.messages" in text and "busy_timeout" in text
                with pytest.raises(StoreBusyError, match="search index"):
                    waiter.build_search_index()
            assert waiter.has_search_index()
            assert [h.text for h in waiter.search("straw7")] == ["straw7"]
        finally:
            waiter.close()


def test_a_build_on_another_table_is_not_waited_for() -> None:
    """``index_building`` counts a concurrent build on srt's messages (and one whose table
    another role's row hides), never one on another table of the database: a first search
    while one runs there builds srt's index and answers, without waiting."""
    with fresh_url() as url:
        schema = _schema(url)
        with srt.Runtime(url) as rt:
            rt.session("hay").append(*({"role": "user", "content": f"straw{i}"} for i in range(50)))
        store = _store(url, 0.5)
        try:
            with psycopg.connect(server_url(), autocommit=True) as conn:
                conn.execute(f'CREATE TABLE "{schema}".other (v text)')
            on_messages = f'CREATE INDEX CONCURRENTLY by_id ON "{schema}".messages (id)'
            with _held_build(f'"{schema}".messages', on_messages):
                assert store.db.run("looking", lambda c: index_building(store.db, c)) is True
            other = f'CREATE INDEX CONCURRENTLY other_v ON "{schema}".other (v)'
            with _held_build(f'"{schema}".other', other):
                assert store.db.run("looking", lambda c: index_building(store.db, c)) is False
                assert [h.text for h in store.search("straw7")] == ["straw7"]
                assert store.has_search_index()
        finally:
            store.close()
