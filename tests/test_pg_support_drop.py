"""The tests' own PostgreSQL teardown (``pg_support.drop_schema``): a connection a test
left in a transaction on its schema ends in an error naming it, never a drop that waits
for good (which held a worker, and at the next exclusive test the whole run)."""

from __future__ import annotations

import secrets

import psycopg
import pytest

import pg_support


def test_a_schema_still_locked_is_named_ended_and_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pg_support, "DROP_WAIT_S", 1)
    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(pg_support.server_url(), autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        admin.execute(f'CREATE TABLE "{schema}".x (a int)')
        with psycopg.connect(pg_support.server_url()) as leaked:
            leaked.execute(f'SELECT * FROM "{schema}".x')  # its transaction stays open
            with pytest.raises(AssertionError, match="idle in transaction") as caught:
                pg_support.drop_schema(schema)
            assert f'SELECT * FROM "{schema}".x' in str(caught.value)
            with pytest.raises(psycopg.OperationalError):  # its backend was ended
                leaked.execute("SELECT 1")
        gone = admin.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
        assert gone.fetchone() == (0,)
