"""An upgrade that does not stall (docs/reliability.md, PostgreSQL): v9's migration drops
a search index built before the cap instead of rebuilding it in the first open's
transaction, and the next search builds it with ``CREATE INDEX CONCURRENTLY``, so
writers go on meanwhile, and the search waits for it and finds every message. A build
cut short leaves an invalid index, which the next build drops and makes again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import srt
from pg_support import server_url
from rel_support.waits import joined
from srt.store.postgres import schema as pg_schema

#: The search index as schema v8 (and every srt before the cap) built it.
_V8_INDEX = (
    'CREATE INDEX messages_fts ON "{s}".messages '
    "USING gin (to_tsvector('simple', \"{s}\".message_text(body)))"
)
#: A writer that waits on a lock fails after this instead of hanging the test.
_WRITER = "&options=-clock_timeout%3D10000"


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def _valid(schema: str) -> bool | None:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relname = %s",
            (schema, pg_schema.SEARCH_INDEX),
        ).fetchone()
    return None if row is None else bool(row[0])


def _v8_store(url: str, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """A store written and indexed by v8's srt: ``n`` sessions of one turn."""
    with monkeypatch.context() as m:
        m.setattr(pg_schema, "MIGRATIONS", pg_schema.MIGRATIONS[:8])
        m.setattr(pg_schema, "SCHEMA_VERSION", 8)
        with srt.Runtime(url) as rt:
            for i in range(n):
                rt.session(f"s{i}").append(
                    {"role": "user", "content": f"hello number{i}"},
                    {"role": "assistant", "content": "hi"},
                )
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(_V8_INDEX.replace("{s}", _schema(url)))
    assert _valid(_schema(url)) is True


def _search_while_a_writer_holds_messages(
    url: str, during: Callable[[], None] | None = None
) -> list[Any]:
    """The first search, started while another transaction holds a writer's lock on
    ``messages`` (so its build waits on it); while it waits, another client appends
    (and ``during`` runs), then the transaction ends. The search's hits."""
    schema = _schema(url)
    hits: list[Any] = []
    failed: list[BaseException] = []
    with (
        psycopg.connect(server_url()) as holder,
        psycopg.connect(server_url(), autocommit=True) as watcher,
        srt.Runtime(url) as rt,
    ):
        holder.execute(f'LOCK TABLE "{schema}".messages IN ROW EXCLUSIVE MODE')
        pid = holder.info.backend_pid

        def search() -> None:
            try:
                hits.extend(rt.store.search("hello", limit=1000))
            except BaseException as exc:
                failed.append(exc)

        searcher = threading.Thread(target=search)
        searcher.start()
        try:
            deadline = time.monotonic() + 60  # (a guard against a hang, not a measure)
            while True:  # the build is waiting on the holder's lock
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid <> %s "
                    "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' "
                    "AND query ILIKE %s",
                    (pid, "%messages%"),
                ).fetchone()
                if (row and row[0]) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            assert row is not None and row[0] == 1, "the build never waited"
            with srt.Runtime(url + _WRITER) as writer:  # not blocked by the build
                writer.session("late").append({"role": "user", "content": "hello late"})
            if during is not None:
                during()
        finally:
            holder.rollback()
            joined(searcher)
    assert not failed, failed
    return hits


def test_a_v8_store_opens_without_rebuilding_and_its_next_search_is_complete(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = _schema(pg_url)
    _v8_store(pg_url, monkeypatch, 30)
    with srt.Runtime(pg_url) as rt:  # migrates: drops the old index, builds none
        assert not rt.store.has_search_index()
        rt.session("s0").append({"role": "user", "content": "hello again " + "y" * 300_000})
    assert _valid(schema) is None
    hits = _search_while_a_writer_holds_messages(pg_url)
    places = sorted(p for h in hits for p in h.places)
    assert places == sorted([(f"s{i}", 1) for i in range(30)] + [("s0", 3), ("late", 1)])
    assert _valid(schema) is True
    with psycopg.connect(server_url(), autocommit=True) as conn:
        [(index,)] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            (schema, pg_schema.SEARCH_INDEX),
        ).fetchall()
    assert "search_text(body)" in index and "message_text" not in index


def test_the_first_search_builds_without_blocking_writers(pg_url: str) -> None:
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "hello first"})
    hits = _search_while_a_writer_holds_messages(pg_url)
    assert sorted(p for h in hits for p in h.places) == [("a", 1), ("late", 1)]
    assert _valid(_schema(pg_url)) is True


def test_an_index_left_invalid_is_built_again(pg_url: str) -> None:
    schema = _schema(pg_url)
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "hello there"})
    with psycopg.connect(server_url()) as holder, psycopg.connect(server_url()) as builder:
        holder.execute(f'LOCK TABLE "{schema}".messages IN ROW EXCLUSIVE MODE')
        builder.autocommit = True
        builder.execute("SET statement_timeout = 300")
        with pytest.raises(psycopg.errors.QueryCanceled):  # cut short: left invalid
            builder.execute(
                f'CREATE INDEX CONCURRENTLY messages_fts ON "{schema}".messages '
                f"USING gin ({pg_schema.render(pg_schema.SEARCH_VECTOR, schema)})"
            )
        holder.rollback()
    assert _valid(schema) is False
    with srt.Runtime(pg_url) as rt:
        assert not rt.store.has_search_index()
        faults = [(f.kind, f.detail) for f in rt.store.verify().faults]
        assert faults == [
            (
                "search_index",
                "the index is marked invalid (a build cut short); the next search builds it again",
            )
        ]
        assert [h.places for h in rt.store.search("hello")] == [(("a", 1),)]
        assert rt.store.has_search_index()
        assert rt.store.verify().ok
    assert _valid(schema) is True


def test_a_build_cut_short_is_made_again_by_the_next_search(pg_url: str) -> None:
    schema = _schema(pg_url)
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "hello there"})
    with psycopg.connect(server_url()) as holder:
        holder.execute(f'LOCK TABLE "{schema}".messages IN ROW EXCLUSIVE MODE')
        timeout = "&options=-cstatement_timeout%3D300"
        with srt.Runtime(pg_url + timeout) as rt, pytest.raises(srt.StoreBusyError):
            rt.store.search("hello")  # the build waited past the timeout
        holder.rollback()
    assert _valid(schema) is False  # (its own drop waited on the holder too)
    with srt.Runtime(pg_url) as rt:
        assert [h.places for h in rt.store.search("hello")] == [(("a", 1),)]
    assert _valid(schema) is True


def test_verify_finds_no_fault_in_an_index_being_built(pg_url: str) -> None:
    """While a search builds the index (``CREATE INDEX CONCURRENTLY`` marks it invalid
    until it ends), ``verify`` is clean: the build's lock says it is under way."""
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "hello first"})
    seen: list[Any] = []

    def check() -> None:
        seen.append(_valid(_schema(pg_url)))
        with srt.Runtime(pg_url) as rt:
            seen.append(rt.store.verify().faults)

    _search_while_a_writer_holds_messages(pg_url, check)
    assert seen == [False, ()]
    assert _valid(_schema(pg_url)) is True
