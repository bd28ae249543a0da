"""PostgreSQL: the search index's build that srt starts itself, and whose builds it waits for.

``CREATE INDEX CONCURRENTLY`` waits for every transaction older than it. A search that
found another connection's build under way waited ``busy_timeout`` at most; the search
that started the build itself waited without bound, for as long as an old transaction
stayed open (an idle-in-transaction session: forever). Now the build is watched from a
second connection (``search._Watch``) and, once it has waited ``busy_timeout`` on end,
cancelled, its invalid index dropped if the table's lock can be had, and the caller gets
``StoreBusyError`` naming the transaction it waited for.

``index_building`` counted any other role's index build anywhere in the database as
srt's (the progress view hides another role's table: NULL); now another role's build
counts only if its backend holds the build's lock on srt's messages (``pg_locks``).

Real servers throughout: the old transactions are real sessions held open, the other
role a real role, PgBouncer a real PgBouncer.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.pq import TransactionStatus

import srt
from pg_support import drop_schema, fresh_bouncer_url, fresh_url, server_url, with_schema
from srt.errors import StoreBusyError
from srt.store.postgres import PostgresStore
from srt.store.postgres.maintenance import index_building, index_state

#: How long a held transaction stays open at most, so that the old code's unbounded
#: build ends too (and its test fails instead of hanging).
HOLD = 30.0


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def _filled(url: str) -> PostgresStore:
    with srt.Runtime(url) as rt:
        rt.session("hay").append(*({"role": "user", "content": f"straw{i}"} for i in range(50)))
    store = PostgresStore(url)
    store.busy_timeout = 0.5
    return store


@contextlib.contextmanager
def _old_transaction(sql: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A session that runs ``sql`` in a ``REPEATABLE READ`` transaction (so it keeps its
    snapshot) and stays idle in it (ended after ``HOLD`` s at the latest)."""
    holder = psycopg.connect(server_url())
    holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    holder.execute(sql)
    release = threading.Timer(HOLD, holder.rollback)
    release.start()
    try:
        yield holder
    finally:
        release.cancel()
        holder.rollback()
        holder.close()


@pytest.mark.parametrize(
    ("through", "old"),
    [
        ("postgres", "snapshot"),
        ("postgres", "writer"),
        ("pgbouncer", "snapshot"),
    ],
)
def test_the_build_a_search_starts_stops_at_the_busy_timeout(through: str, old: str) -> None:
    """The first search's own build waits for an idle-in-transaction session: one that
    holds a snapshot (the build's last wait, for older snapshots) or one that wrote to
    the table (its first wait, for writers). It gave up after ``busy_timeout`` with a
    ``StoreBusyError`` naming that session's backend; the build was cancelled. Once the
    session has ended, a search builds the index and answers."""
    with (fresh_bouncer_url if through == "pgbouncer" else fresh_url)() as url:
        store = _filled(url)
        schema = _schema(url)
        sql = (
            "SELECT count(*) FROM pg_class"  # (a snapshot, and no lock on srt's tables)
            if old == "snapshot"
            else f'LOCK TABLE "{schema}".messages IN ROW EXCLUSIVE MODE'
        )
        try:
            with _old_transaction(sql) as holder:
                with pytest.raises(StoreBusyError) as caught:
                    store.search("straw7")
                # Given up while the old transaction was still open (the old code's
                # build ended only once the holder's transaction did, ``HOLD`` s later).
                assert holder.info.transaction_status == TransactionStatus.INTRANS
                text = str(caught.value)
                assert "CREATE INDEX CONCURRENTLY" in text and "busy_timeout" in text
                assert f"backend pid {holder.info.backend_pid} (idle in transaction, open" in text
                assert "the build was cancelled" in text
                # cancelled: no build runs on, and no index is used
                assert store.db.run("look", lambda c: index_building(store.db, c)) is False
                assert store.has_search_index() is False
                found = store.db.run("look", lambda c: index_state(store.db, c))
                # its invalid index dropped, unless the writer's lock on the table held
                # the drop off (then the next build drops it)
                assert found is (None if old == "snapshot" else False)
            assert [h.text for h in store.search("straw7")] == ["straw7"]
            assert store.has_search_index() is True
            assert store.verify().faults == ()
        finally:
            store.close()


def test_an_index_build_ended_by_someone_else_is_not_taken_for_a_timeout() -> None:
    """A build cancelled by another hand (not srt's watch) is the error it was
    (``StoreBusyError`` from PostgreSQL's cancel), not reported as a wait on a
    transaction; the watch of a build that ends in time cancels nothing."""
    with fresh_url() as url:
        store = _filled(url)
        store.busy_timeout = HOLD  # (the watch never fires here)
        try:
            with _old_transaction("SELECT 1"):
                errors: list[BaseException] = []

                def build() -> None:
                    try:
                        store.build_search_index()
                    except BaseException as exc:  # (checked below)
                        errors.append(exc)

                builder = threading.Thread(target=build)
                builder.start()
                with psycopg.connect(server_url(), autocommit=True) as look:
                    for _ in range(300):
                        row = look.execute(
                            "SELECT pg_cancel_backend(pid) FROM pg_stat_progress_create_index "
                            "WHERE relid = %s::regclass",
                            (f'"{_schema(url)}".messages',),
                        ).fetchone()
                        if row:
                            break
                        time.sleep(0.1)
                builder.join(HOLD)
            assert len(errors) == 1 and isinstance(errors[0], StoreBusyError)
            assert "canceling statement due to user request" in str(errors[0])
            assert "busy_timeout" not in str(errors[0])
            assert store.build_search_index() == 50
        finally:
            store.close()


# -- another role's build -------------------------------------------------------------


@contextlib.contextmanager
def _role() -> Iterator[str]:
    """A new login role, not a superuser (sees no other role's progress), that may
    create a schema in the database; dropped with what it owns afterwards."""
    name = "r_" + secrets.token_hex(5)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN")
        conn.execute(f"GRANT CREATE ON DATABASE {conn.info.dbname} TO {name}")
    try:
        yield name
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name} CASCADE")
            conn.execute(f"DROP ROLE {name}")


def _as(role: str, url: str) -> str:
    assert url.startswith("postgresql://srt@")
    return url.replace("postgresql://srt@", f"postgresql://{role}@", 1)


@contextlib.contextmanager
def _held_build(table: str, index_sql: str, conninfo: str) -> Iterator[None]:
    """``index_sql`` (a ``CREATE INDEX CONCURRENTLY`` on ``table``) run as ``conninfo``'s
    role in a thread, waiting for a superuser's transaction that wrote to the table, while
    the block runs (the block starts once the build shows in the progress view)."""
    errors: list[BaseException] = []
    with _old_transaction(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE"):

        def build() -> None:
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(index_sql)
            except BaseException as exc:  # reported below
                errors.append(exc)

        builder = threading.Thread(target=build)
        builder.start()
        with psycopg.connect(server_url(), autocommit=True) as look:
            for _ in range(300):
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
    builder.join(HOLD)
    assert errors == []


def test_another_roles_build_on_another_table_is_not_waited_for() -> None:
    """srt's role cannot see which table another role's build is on; that build, on a
    table of its own, made ``index_building`` true, so a first search waited for it and
    gave up after ``busy_timeout``. Now it builds srt's index and answers."""
    with _role() as mine, _role() as theirs:
        schema = "t_" + secrets.token_hex(6)
        url = with_schema(_as(mine, server_url()), schema)
        store = _filled(url)
        try:
            with psycopg.connect(server_url(), autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {theirs} AUTHORIZATION {theirs}")
                conn.execute(f"CREATE TABLE {theirs}.other (v text)")
                conn.execute(f"ALTER TABLE {theirs}.other OWNER TO {theirs}")
            other = f"CREATE INDEX CONCURRENTLY other_v ON {theirs}.other (v)"
            with _held_build(f"{theirs}.other", other, _as(theirs, server_url())):
                hidden = store.db.run(
                    "look",
                    lambda c: c.execute(
                        "SELECT relid FROM pg_stat_progress_create_index"
                    ).fetchall(),
                )
                assert (None,) in hidden  # (the build is there, its table hidden)
                assert store.db.run("look", lambda c: index_building(store.db, c)) is False
                assert [h.text for h in store.search("straw7")] == ["straw7"]
                assert store.has_search_index()
        finally:
            store.close()
            drop_schema(schema)


def test_another_roles_build_on_srts_messages_still_counts() -> None:
    """A build on srt's own messages by a role srt's cannot see (a superuser's, an
    administrator adding an index) still counts: its backend holds the build's lock on
    the table, which every role sees."""
    with _role() as mine:
        schema = "t_" + secrets.token_hex(6)
        url = with_schema(_as(mine, server_url()), schema)
        store = _filled(url)
        try:
            messages = f'"{schema}".messages'
            by_id = f"CREATE INDEX CONCURRENTLY by_id ON {messages} (id)"
            with _held_build(messages, by_id, server_url()):
                assert store.db.run("look", lambda c: index_building(store.db, c)) is True
                with pytest.raises(StoreBusyError, match="another connection's build"):
                    store.search("straw7")
            assert store.db.run("look", lambda c: index_building(store.db, c)) is False
            assert [h.text for h in store.search("straw7")] == ["straw7"]
        finally:
            store.close()
            drop_schema(schema)
