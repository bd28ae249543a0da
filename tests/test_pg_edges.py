"""The PostgreSQL engine at its edges, on a real server: input PostgreSQL's ``text``
cannot hold (U+0000), names over its index limits, secrets in the URL and in the
environment, connections the server refuses, a pool with every connection busy, a
server-side statement timeout, and schemas kept apart. Each case either matches
SQLite (``store_url`` runs both engines) or is a typed error with nothing written.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import psycopg
import psycopg_pool
import pytest

import srt
from pg_support import scram_server, server_url, with_schema
from rel_support.waits import WAIT_S, joined
from srt.store.base import CallRecord
from srt.store.postgres import PostgresStore
from srt.store.postgres import schema as pg_schema
from srt.testing.pgserver import PgServer

SECRET = "Canary-pg16-Secret"


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


# -- U+0000 in text ------------------------------------------------------------------


def test_a_message_holding_nul_is_stored_searched_and_drawn_as_on_sqlite(store_url: str) -> None:
    """JSON carries U+0000 as ``\\u0000``, which PostgreSQL's ``jsonb`` refuses: the
    search index's expression failed on such a body, so once a store had been searched
    no message holding NUL could be appended, and search and tree failed on one."""
    with srt.Runtime(store_url) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "plain words"})
        assert rt.store.build_search_index() is not None or rt.store.has_search_index()
        s.append({"role": "user", "content": "x\x00y"})
        s.append({"role": "user", "content": [{"type": "text", "text": "p\x00q"}]})
        s.append({"role": "user", "content": "lit \\u0000 z"})  # a backslash, not a NUL
        assert [m["content"] for m in s.messages()][1::2] == ["x\x00y", "lit \\u0000 z"]
        assert [h.text for h in rt.store.search("x")] == ["x\x00y"]
        assert [h.text for h in rt.store.search("lit")] == ["lit \\u0000 z"]
        tree = rt.store.tree("a")
        texts = []
        while tree is not None:
            texts.append(tree.text)
            tree = tree.children[0] if tree.children else None
        assert texts == ["plain words", "x\x00y", "p\x00q", "lit \\u0000 z"]
        cut, texts = rt.store.tree("a", width=2), []
        while cut is not None:
            texts.append(cut.text)
            cut = cut.children[0] if cut.children else None
        assert texts == ["pl", "x\x00", "p\x00", "li"]
        assert rt.store.verify().ok


def test_a_v2_store_gets_text_functions_that_read_nul(pg_url: str) -> None:
    """Schema v3 replaces v2's text functions; a v2 store migrates on open."""
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "x\x00y"})
    schema = _schema(pg_url)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        v2 = pg_schema.render(pg_schema.MIGRATIONS[0], schema)
        v2 = v2[v2.index("CREATE FUNCTION " + f'"{schema}".message_text') :]
        conn.execute(v2.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
        conn.execute(f'DROP FUNCTION "{schema}".message_json(bytea)')
        conn.execute(f'UPDATE "{schema}".srt_schema SET version = 2')
        with pytest.raises(psycopg.errors.UntranslatableCharacter):
            conn.execute(f'SELECT "{schema}".message_text(body) FROM "{schema}".messages')
    with srt.Runtime(pg_url) as rt:
        assert [h.text for h in rt.store.search("x")] == ["x\x00y"]
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".srt_schema').fetchall()
    assert rows == [(pg_schema.SCHEMA_VERSION,)] == [(10,)]


def _call(session: int, **fields: object) -> CallRecord:
    base: dict[str, object] = {
        "at": 1.0,
        "session": session,
        "session_name": "a",
        "node": None,
        "provider": "p",
        "model": "m",
        "format": "openai.chat",
        "body_hash": b"\x01" * 16,
        "body_bytes": 1,
        "messages": 1,
    }
    return CallRecord(**{**base, **fields})  # type: ignore[arg-type]


def test_ledger_text_holding_nul_never_costs_the_reply(store_url: str) -> None:
    """A provider's error text (or model, or response id) with U+0000 failed the whole
    append on PostgreSQL, reply and all; SQLite keeps it as it is, PostgreSQL as U+FFFD."""
    with srt.Runtime(store_url) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "q"})
        row = rt.store.get_session("a")
        assert row is not None and row.head is not None
        body = b'{"role":"assistant","content":"r"}'
        h = rt.store.hashing.digest(body)
        prefix = rt.store.node_prefix(row.head)
        item = srt.store.NewNode(h, body, rt.store.hashing.chain(prefix, h))
        fields = {"error": "bad\x00thing", "model": "m\x00", "explain": "e\x00"}
        rt.store.append(row.id, row.head, row.head, 1, [item], call=_call(row.id, **fields))
        rt.store.record_call(_call(row.id, response_id="r\x00"))
        got = [(c.error, c.model, c.explain, c.response_id) for c in rt.store.calls(session=row.id)]
        nul = "\x00" if not store_url.startswith("postgresql") else "\ufffd"
        assert got == [
            (f"bad{nul}thing", f"m{nul}", f"e{nul}", None),
            (None, "m", None, f"r{nul}"),
        ]
        assert [m["content"] for m in rt.session("a").messages()] == ["q", "r"]


def test_object_names_postgresql_cannot_hold_are_typed(pg_url: str) -> None:
    with srt.Runtime(pg_url) as rt:
        store = rt.store
        store.put_object("k", "s", "fine", b"v\x00alue")  # bytea values hold NUL
        assert store.get_object("k", "s", "fine").value == b"v\x00alue"  # type: ignore[union-attr]
        with pytest.raises(srt.ConfigError, match="U\\+0000"):
            store.put_object("k", "s\x00", "key", b"v")
        assert store.get_object("k", "s", "fi\x00ne") is None
        assert store.list_objects("k", "s\x00") == []
        assert store.list_objects("k", "s", after="x\x00") == []
        assert store.delete_object("k", "s", "fine\x00") is False
        wide = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(10_000))
        with pytest.raises(srt.ConfigError, match="too large"):
            store.put_object("k", "s", wide, b"v")
        for limit in (2**63, 10**20):
            assert [o.key for o in store.list_objects("k", "s", limit=limit)] == ["fine"]
        assert [o.key for o in store.list_objects("k", "s")] == ["fine"]


# -- secrets ---------------------------------------------------------------------------


def test_a_password_in_the_query_never_shows(pg_url: str) -> None:
    url = pg_url + f"&password={SECRET}&sslpassword={SECRET}2"
    with srt.Runtime(url) as rt:
        for text in (repr(rt), repr(rt.store), rt.store.location):
            assert SECRET not in text and "password=***" in text
    bad = f"postgresql://srt:{SECRET}%zz@127.0.0.1:1/x"
    with pytest.raises(srt.ConfigError) as err:
        srt.Runtime(bad)
    seen = err.value
    chain: list[BaseException] = []
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    assert all(SECRET not in f"{e!s} {e!r}" for e in chain), chain
    assert "percent-encoded" in str(err.value)


@pytest.fixture(scope="module")
def scram() -> Iterator[PgServer]:
    """A server that wants a password over TCP (scram-sha-256)."""
    with scram_server(SECRET) as pg:
        yield pg


def _refused(url: str) -> srt.StoreUnavailableError:
    with pytest.raises(srt.StoreUnavailableError) as err:
        srt.Runtime(url + ("&" if "?" in url else "?") + "pool_timeout=20")
    exc = err.value
    # The refusal's own error, not the one a wait that ran out of pool_timeout ends with
    # ("no connection in time (20 s, pool_timeout)", retryable): refused, it never waited.
    assert "connecting to the database: " in str(exc) and "in time" not in str(exc), exc
    assert exc.__cause__ is None and exc.__context__ is None  # psycopg's keeps the password
    assert SECRET not in f"{exc!s} {exc!r}" and not exc.retryable
    return exc


def test_refused_connections_fail_at_once_with_the_servers_reason(
    scram: PgServer, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """Before: each waited pool_timeout (twice, at open) and then said 'the server is down
    or unreachable, or every pooled connection is busy', whatever the server had said."""
    tcp = f"127.0.0.1:{scram.port}"
    with srt.Runtime(f"postgresql://srt:{SECRET}@{tcp}/postgres?pool_timeout=5") as rt:
        rt.session("a").append({"role": "user", "content": "hi"})
    assert "password authentication failed" in str(
        _refused(f"postgresql://srt:wrong{SECRET}@{tcp}/postgres")
    )
    assert 'database "nowhere" does not exist' in str(
        _refused(f"postgresql://srt:{SECRET}@{tcp}/nowhere")
    )
    assert "statement_timeout" in str(
        _refused(f"postgresql://srt:{SECRET}@{tcp}/postgres?options=-cstatement_timeout%3Dxyz")
    )
    assert "SSL" in str(_refused(f"postgresql://srt:{SECRET}@{tcp}/postgres?sslmode=require"))
    monkeypatch.setenv("PGPASSWORD", "wrong" + SECRET)
    assert "password" in str(_refused(f"postgresql://srt@{tcp}/postgres"))
    monkeypatch.delenv("PGPASSWORD")
    passfile = os.path.join(str(tmp_path), "pgpass")
    with open(passfile, "w", encoding="utf-8") as f:
        f.write(f"127.0.0.1:{scram.port}:*:srt:wrong{SECRET}\n")
    os.chmod(passfile, 0o600)
    monkeypatch.setenv("PGPASSFILE", passfile)
    assert "password" in str(_refused(f"postgresql://srt@{tcp}/postgres"))


def test_a_server_that_does_not_answer_is_still_waited_for_and_named() -> None:
    """A port that takes the connection and never answers (a listening socket nobody
    accepts on) is waited for, up to pool_timeout; one where nothing listens fails at
    once (``test_pg_connect25``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(srt.StoreUnavailableError) as err:
            srt.Runtime(f"postgresql://srt:{SECRET}@127.0.0.1:{port}/postgres?pool_timeout=0.5")
    assert err.value.retryable and "in time" in str(err.value)
    assert "127.0.0.1" in str(err.value) and SECRET not in str(err.value)


# -- a busy pool, a statement timeout ---------------------------------------------------


@contextlib.contextmanager
def _held(store: PostgresStore, n: int) -> Iterator[list[threading.Thread]]:
    """``n`` threads each holding one of the store's connections until the block ends
    (not for a time: a connection is given back only once the test is done with the
    busy pool, so whatever the test saw inside the block, it saw with all ``n`` held).
    A thread that cannot take one (a connection made slower than ``pool_timeout`` on a
    loaded machine) breaks the barrier, and the test fails with its error: it never
    reached the barrier, which (with no timeout) held the test for good."""
    ready = threading.Barrier(n + 1, timeout=WAIT_S)
    release = threading.Event()
    failed: list[BaseException] = []

    def hold() -> None:
        try:
            with store.db.connection() as conn:
                conn.execute("SELECT 1")
                ready.wait()
                if not release.wait(WAIT_S):
                    raise AssertionError(f"the test never released its connection in {WAIT_S} s")
        except BaseException as exc:
            failed.append(exc)
            ready.abort()

    threads = [threading.Thread(target=hold) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        release.set()
        joined(*threads)
        raise AssertionError(f"not every thread held a connection: {failed!r}") from None
    try:
        yield threads
    finally:
        release.set()
        joined(*threads)
    assert not failed, f"a thread holding its connection failed: {failed!r}"


def test_every_connection_busy_is_a_busy_store_and_nothing_is_written(pg_url: str) -> None:
    """With every connection held (and held until the test lets go, so no wait could
    end by one coming free), an append fails with ``StoreBusyError`` out of the pool's
    own timeout (``pool_timeout``, its ``PoolTimeout`` the cause), and writes nothing."""
    with srt.Runtime(pg_url + "&pool_max=3&pool_timeout=0.5") as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "one"})
        assert isinstance(rt.store, PostgresStore)
        with _held(rt.store, 3) as holders:
            with pytest.raises(srt.StoreBusyError, match="pool_max") as err:
                s.append({"role": "user", "content": "two"})
            assert isinstance(err.value.__cause__, psycopg_pool.PoolTimeout), err.value.__cause__
            assert "3 database connections stayed busy for 0.5 s (pool_timeout)" in str(err.value)
            assert all(t.is_alive() for t in holders), "a connection came free before the error"
        assert [m["content"] for m in rt.session("a").messages()] == ["one"]
        s.append({"role": "user", "content": "three"})
        assert [m["content"] for m in rt.session("a").messages()] == ["one", "three"]
        assert rt.store.verify().ok


def test_a_server_statement_timeout_is_a_busy_store_and_nothing_is_written(pg_url: str) -> None:
    with srt.Runtime(pg_url + "&options=-cstatement_timeout%3D300") as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "one"})
        with psycopg.connect(server_url()) as other:
            other.execute(
                f'SELECT 1 FROM "{_schema(pg_url)}".sessions WHERE name = %s FOR UPDATE', ("a",)
            )
            with pytest.raises(srt.StoreBusyError, match="statement timeout"):
                s.append({"role": "user", "content": "two"})
        assert [m["content"] for m in rt.session("a").messages()] == ["one"]


# -- schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema", ['x"; DROP SCHEMA public; --', "Upper", "a b", "x.y", "", "p" * 64, "é"]
)
def test_a_hostile_schema_name_is_refused_before_any_sql(pg_url: str, schema: str) -> None:
    from urllib.parse import quote

    with pytest.raises(srt.ConfigError, match="schema"):
        srt.Runtime(server_url() + "&schema=" + quote(schema))
    with pytest.raises(srt.ConfigError, match="schema"):
        PostgresStore(server_url(), schema=schema or "-")


def test_a_search_path_never_moves_srt_off_its_own_schema(pg_url: str) -> None:
    other = _schema(pg_url) + "_b"
    try:
        with srt.Runtime(with_schema(server_url(), other)) as b:
            b.session("in-b").append({"role": "user", "content": "b's"})
        hostile = "&options=" + "-csearch_path%3D" + f"{other},public"
        with srt.Runtime(pg_url + hostile) as a:
            a.session("in-a").append({"role": "user", "content": "a's"})
            assert [i.name for i in a.store.list_sessions()] == ["in-a"]
            assert [h.text for h in a.store.search("b's")] == []
            assert a.store.gc().nodes == 0
        with srt.Runtime(with_schema(server_url(), other)) as b:
            assert [i.name for i in b.store.list_sessions()] == ["in-b"]
            assert b.store.verify().ok
    finally:
        from pg_support import drop_schema

        drop_schema(other)
