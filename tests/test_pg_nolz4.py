"""A server built without lz4: a new store falls back to the server's default compression.

Before: v1 created ``messages.body`` with ``COMPRESSION lz4``, which such a server refuses
(SQLSTATE 0A000, "compression method lz4 not supported"), so creating a store failed with
a generic ``StoreError``. This server has lz4, so the test makes it refuse lz4 the way a
server without it does: an event trigger (on this test's schema only) raises that very
SQLSTATE and message for any DDL that leaves a column of the schema set to lz4. The store's
own statements run on the real server; nothing of srt is replaced.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import psycopg
import pytest

import srt
from pg_support import drop_schema, server_url, with_schema

_NO_LZ4 = """
CREATE FUNCTION public.{name}() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_event_trigger_ddl_commands() c
        JOIN pg_attribute a ON a.attrelid = c.objid
        WHERE c.classid = 'pg_class'::regclass AND c.schema_name = '{schema}'
          AND a.attcompression = 'l'
    ) THEN
        RAISE EXCEPTION 'compression method lz4 not supported' USING
            ERRCODE = 'feature_not_supported',
            DETAIL = 'This functionality requires the server to be built with lz4 support.';
    END IF;
END $fn$;
CREATE EVENT TRIGGER {name} ON ddl_command_end EXECUTE FUNCTION public.{name}();
"""


def _body_compression(schema: str) -> str:
    with psycopg.connect(server_url()) as conn:
        row = conn.execute(
            "SELECT attcompression FROM pg_attribute "
            "WHERE attrelid = format('%%I.messages', %s::text)::regclass AND attname = 'body'",
            (schema,),
        ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def schema() -> Iterator[str]:
    name = "t_" + secrets.token_hex(6)
    try:
        yield name
    finally:
        drop_schema(name)


@pytest.fixture
def without_lz4(schema: str) -> Iterator[None]:
    """The server refuses lz4 in ``schema`` as one built without it does."""
    name = f"no_lz4_{schema}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(_NO_LZ4.format(name=name, schema=schema))
        try:
            yield
        finally:
            conn.execute(f"DROP EVENT TRIGGER {name}")
            conn.execute(f"DROP FUNCTION public.{name}()")


def test_a_server_without_lz4_gets_a_store_with_its_default_compression(
    schema: str, without_lz4: None, caplog: pytest.LogCaptureFixture
) -> None:
    body = "x" * 50_000 + "a long body, TOASTed and compressed"
    with (
        caplog.at_level(logging.WARNING, logger="srt.store.postgres"),
        srt.Runtime(with_schema(server_url(), schema)) as rt,
    ):
        rt.session("a").append({"role": "user", "content": body})
    notes = [r.getMessage() for r in caplog.records if r.name == "srt.store.postgres"]
    assert len(notes) == 1 and "no lz4" in notes[0] and "default_toast_compression" in notes[0]
    assert _body_compression(schema) == ""  # the server's default, whatever it is
    with srt.Runtime(with_schema(server_url(), schema)) as rt:  # and it opens again, quietly
        assert rt.session("a").messages() == [{"role": "user", "content": body}]
        assert rt.store.verify().ok
    assert len([r for r in caplog.records if r.name == "srt.store.postgres"]) == 1


def test_a_server_with_lz4_compresses_bodies_with_it(
    schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="srt.store.postgres"),
        srt.Runtime(with_schema(server_url(), schema)) as rt,
    ):
        rt.session("a").append({"role": "user", "content": "hi"})
    assert _body_compression(schema) == "l"
    assert not [r for r in caplog.records if r.name == "srt.store.postgres"]
