"""PgBouncer and a ``prepare_threshold`` the user gave. When PgBouncer refused the
``options`` startup parameter srt pins the search path with, srt reconnected without the
pin and turned psycopg's prepared statements off, even when the URL had asked for them.
Now only the default (``auto``: psycopg's 5) is turned off there; a number given in the
URL or as the keyword is kept (PgBouncer 1.21+ with ``max_prepared_statements`` keeps
protocol-level prepared statements apart per client in transaction mode, and its session
mode never shares a server connection), and so is ``none``.

Through a real PgBouncer in session mode (the installed one may predate 1.21: session
mode is where any version keeps a prepared statement on the client's server connection),
the statements really are prepared on the server (``pg_prepared_statements``)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

import srt
from pg_support import drop_schema, fresh_url, server_url, with_schema
from srt.store.postgres import PostgresStore
from srt.testing.pgbouncer import PgBouncer


@pytest.fixture(scope="module")
def session_bouncer() -> Iterator[PgBouncer]:
    with PgBouncer(server_url(), pool_mode="session", pool_size=2) as found:
        yield found


@pytest.fixture
def bounced(session_bouncer: PgBouncer) -> Iterator[str]:
    schema = "t_" + secrets.token_hex(6)
    try:
        yield with_schema(session_bouncer.url, schema)
    finally:
        drop_schema(schema)


def _prepared(store: PostgresStore) -> tuple[int | None, int]:
    """The threshold of the store's connection, and how many of psycopg's statements its
    server connection holds prepared, after a few appends and reads."""
    with srt.Runtime(store=store) as rt:
        for i in range(8):
            rt.session("s").append({"role": "user", "content": f"turn {i}"})
            assert len(rt.session("s").messages()) == i + 1
        with store.db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_pg3\\_%'"
            ).fetchone()
            return conn.prepare_threshold, int(row[0]) if row else 0


def test_a_threshold_the_url_gives_is_kept_behind_pgbouncer(bounced: str) -> None:
    threshold, prepared = _prepared(PostgresStore(bounced + "&prepare_threshold=1"))
    assert threshold == 1  # (it was None: turned off for the user)
    assert prepared > 0


def test_a_threshold_given_as_the_keyword_is_kept_behind_pgbouncer(bounced: str) -> None:
    threshold, prepared = _prepared(PostgresStore(bounced, prepare_threshold=2))
    assert threshold == 2
    assert prepared > 0


@pytest.mark.parametrize("given", ["", "&prepare_threshold=auto", "&prepare_threshold=AUTO"])
def test_the_default_is_still_turned_off_behind_pgbouncer(bounced: str, given: str) -> None:
    assert _prepared(PostgresStore(bounced + given)) == (None, 0)


def test_none_stays_none_behind_pgbouncer(bounced: str) -> None:
    assert _prepared(PostgresStore(bounced + "&prepare_threshold=none")) == (None, 0)


@pytest.mark.parametrize("given", ["", "&prepare_threshold=auto"])
def test_the_default_on_a_plain_server_is_psycopgs(given: str) -> None:
    with fresh_url() as url:
        threshold, prepared = _prepared(PostgresStore(url + given))
        assert threshold == 5 and prepared > 0


def test_a_threshold_that_is_no_number_is_still_refused() -> None:
    with fresh_url() as url, pytest.raises(srt.ConfigError, match="not a number"):
        PostgresStore(url + "&prepare_threshold=automatic")


@pytest.mark.parametrize("given", ["0", "-1"])
def test_a_threshold_below_one_is_refused_before_connecting(given: str) -> None:
    """0 prepared every statement at its first run, and PostgreSQL refuses to prepare
    several statements in one string: the store failed to open with a bare
    ``StoreError`` ("cannot insert multiple commands into a prepared statement")."""
    url = "postgresql://nobody@/nowhere?host=/nonexistent&prepare_threshold=" + given
    with pytest.raises(srt.ConfigError, match="prepare_threshold must be 1 or more"):
        PostgresStore(url)
    with fresh_url() as url, pytest.raises(srt.ConfigError, match="got 0"):
        PostgresStore(url, prepare_threshold=0)
