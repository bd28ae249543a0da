"""What is particular to the PostgreSQL engine: URL options, a caller's pool, the schema's
identity and migrations, error translation, and faults (a restarted server, killed
connections, killed clients) on a real server. The engine-neutral promises are in
``tests/store/`` and in the session, CLI and provider tests, which run on both engines.

The fault tests start servers of their own, since they restart them. The short forms
of ``bench/pg_scale.py`` and ``bench/pg_faults.py`` run here; ``SRT_SOAK=1`` runs their
full forms (8 x 8 for 60 s, 200 kills, three restarts and three cuts).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import psycopg_pool
import pytest

import srt
from pg_support import fresh_url, server_url, with_schema
from rel_support.waits import joined
from srt import _core
from srt.message import canonicalize
from srt.store import NewNode, ObjectPut
from srt.store.postgres import PostgresStore
from srt.store.postgres import schema as pg_schema
from srt.testing.pgserver import PgServer

SOAK = os.environ.get("SRT_SOAK") == "1"
BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def server() -> Iterator[PgServer]:
    """A server of this test's own (it gets restarted)."""
    with PgServer(fast=True) as pg:
        yield pg


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


# -- options, pools, identity --------------------------------------------------------------


def test_url_options_and_a_password_that_never_shows(pg_url: str) -> None:
    url = pg_url + "&prepare_threshold=none&pool_min=0&pool_max=2&pool_timeout=3"
    with srt.Runtime(url) as rt:
        s = rt.session("a")
        for i in range(8):  # past psycopg's default threshold: nothing is prepared
            s.append({"role": "user", "content": f"m{i}"})
        assert len(rt.session("a").messages()) == 8
    secret = "hunter2-canary"
    bad = f"postgresql://srt:{secret}@127.0.0.1:1/nope?schema=x&pool_timeout=0.5"
    with pytest.raises(srt.StoreUnavailableError) as err:
        srt.Runtime(bad)
    assert secret not in str(err.value) and secret not in repr(err.value)
    from srt.store.postgres.pool import redact_url

    assert secret not in redact_url(bad) and "***" in redact_url(bad)
    for option in ("pool_max=0", "pool_timeout=-1", "prepare_threshold=lots", "schema=No-Good"):
        with pytest.raises(srt.ConfigError):
            PostgresStore(pg_url + "&" + option)


def test_a_callers_pool_is_used_and_left_open(pg_url: str) -> None:
    schema = _schema(pg_url)
    pool = psycopg_pool.ConnectionPool(server_url(), min_size=1, max_size=2, open=True)
    try:
        store = PostgresStore(pool=pool, schema=schema)
        with srt.Runtime(store=store) as rt:
            rt.session("a").append({"role": "user", "content": "on a caller's pool"})
        assert not pool.closed
        with pool.connection() as conn:  # not left in autocommit, nor in a transaction
            assert conn.autocommit is False
            row = conn.execute(f'SELECT count(*) FROM "{schema}".messages').fetchone()
            assert row == (1,)
        with pytest.raises(srt.ConfigError):
            PostgresStore(pg_url, pool=pool)
    finally:
        pool.close()


def test_the_first_connection_is_made_in_the_callers_thread_and_the_pool_on_need(
    pg_url: str,
) -> None:
    """A one-thread user never starts the pool (nor its threads); a second connection
    wanted at once comes from the pool, and ``pool_max=1`` makes a second user wait for
    the only connection, then fail with a typed error: the store is busy."""
    before = {t.name for t in threading.enumerate()}
    with srt.Runtime(pg_url) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "one"})
        srt.Runtime(store=rt.store).session("a").request("openai.chat", model="m")
        assert {t.name for t in threading.enumerate()} == before
        with rt.store.db.connection() as first, rt.store.db.connection() as second:
            assert first is not second
            assert rt.store.db.pool().name.startswith("srt:")
            pid = first.execute("SELECT pg_backend_pid()").fetchone()
            assert pid != second.execute("SELECT pg_backend_pid()").fetchone()
        with rt.store.db.connection() as again:  # the first one, kept
            assert again is first
        assert [m["content"] for m in s.messages()] == ["one"]
    assert first.closed
    with srt.Runtime(pg_url + "&pool_max=1&pool_timeout=0.3") as rt:
        with rt.store.db.connection(), pytest.raises(srt.StoreBusyError) as err:
            rt.session("a").messages()
        assert "pool_max" in str(err.value)
        assert [m["content"] for m in rt.session("a").messages()] == ["one"]


def test_a_connection_left_in_a_transaction_is_rolled_back_and_kept(pg_url: str) -> None:
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "one"})
        with rt.store.db.connection() as conn:
            conn.execute("BEGIN")
            conn.execute(f'DELETE FROM "{_schema(pg_url)}".calls')
        with rt.store.db.connection() as again:
            assert (
                again is conn and again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            )
        with rt.store.db.connection() as conn:
            conn.execute("BEGIN")
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")
        assert [m["content"] for m in rt.session("a").messages()] == ["one"]


def test_chains_that_are_not_one_run_of_ids_are_read_whole(pg_url: str) -> None:
    """A chain is read from a window of node ids below its head, walked in memory; what
    the window lacks (other writers' nodes in between, a fork's shared part) comes from
    the recursive walk, and a damaged link is still a ``CorruptionError``."""
    with srt.Runtime(pg_url) as rt:
        a, b = rt.session("a"), rt.session("b")
        for i in range(30):  # interleaved: each chain's ids are every other one
            a.append({"role": "user", "content": f"a{i}"})
            b.append({"role": "user", "content": f"b{i}"})
        a.fork("f", at=3)
        f = rt.session("f")
        for i in range(40):
            f.append({"role": "user", "content": f"f{i}"})
        fresh = srt.Runtime(store=rt.store)
        for name, want in (
            ("a", [f"a{i}" for i in range(30)]),
            ("b", [f"b{i}" for i in range(30)]),
            ("f", ["a0", "a1", "a2"] + [f"f{i}" for i in range(40)]),
        ):
            assert [m["content"] for m in fresh.session(name).messages()] == want
        a_ids, b_ids = ([r[0] for r in rt.store.chain(s.head)] for s in (a, b))
        with rt.store.db.connection() as conn:  # a's 20th node now claims b's 19th as parent
            conn.execute(
                f'UPDATE "{_schema(pg_url)}".nodes SET parent = %s WHERE id = %s',
                (b_ids[18], a_ids[19]),
            )
        with pytest.raises(srt.CorruptionError):
            srt.Runtime(store=rt.store).session("a").messages()
        assert [m["content"] for m in srt.Runtime(store=rt.store).session("b").messages()] == [
            f"b{i}" for i in range(30)
        ]


def test_a_chain_whose_rows_lie_out_of_id_order_is_read_whole(pg_url: str) -> None:
    """The window comes unsorted (a scan gives the heap's order): node rows rewritten
    newest first lie in the heap in reverse id order, and the chain reads the same."""
    with srt.Runtime(pg_url) as rt:
        s = rt.session("s")
        for i in range(50):
            s.append({"role": "user", "content": f"m{i}"})
        before = rt.store.chain(s.head)
        with rt.store.db.connection() as conn:
            for row in reversed(before):
                conn.execute(
                    f'UPDATE "{_schema(pg_url)}".nodes SET status = status WHERE id = %s', (row[0],)
                )
            heap = conn.execute(
                f'SELECT id FROM "{_schema(pg_url)}".nodes ORDER BY ctid'
            ).fetchall()
        assert [r[0] for r in heap] == [r[0] for r in reversed(before)]
        assert rt.store.chain(s.head) == before
        fresh = srt.Runtime(store=rt.store).session("s")
        assert [m["content"] for m in fresh.messages()] == [f"m{i}" for i in range(50)]


def test_a_schema_srt_did_not_make_is_refused_and_untouched(pg_url: str) -> None:
    schema = _schema(pg_url)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".messages(x int)')
    with pytest.raises(srt.NotAnSrtDatabaseError):
        srt.Runtime(pg_url)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    assert tables == [("messages",)]


def test_a_newer_schema_version_is_refused(pg_url: str) -> None:
    srt.Runtime(pg_url).close()
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'UPDATE "{_schema(pg_url)}".srt_schema SET version = version + 1')
    with pytest.raises(srt.SchemaVersionError):
        srt.Runtime(pg_url)


def test_a_version_1_store_migrates_to_the_append_that_checks_the_chain(pg_url: str) -> None:
    """Schema v2 adds the append that compares its parent's stored prefix hash; a store
    written at v1 (v2 without that function) gets it on open and keeps its sessions."""
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "at v1"})
    schema = _schema(pg_url)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(
            f'DROP FUNCTION "{schema}".append(bigint, bigint, bigint, integer, bytea[], '
            "bytea[], bytea[], bytea[], text[], double precision, jsonb, text[], text[], "
            "text[], bytea[], bigint[], double precision[], boolean[], bytea)"
        )
        conn.execute(f'UPDATE "{schema}".srt_schema SET version = 1')
    with srt.Runtime(pg_url) as rt:
        s = rt.session("a")
        s.append({"role": "assistant", "content": "at v2"})
        assert [m["content"] for m in s.messages()] == ["at v1", "at v2"]
        store = rt.store
        row = store.get_session("a")
        assert row is not None and row.head is not None
        stale = store.node_prefix(store.chain(row.head)[0][0])
        b = b'{"role":"user","content":"x"}'
        h = store.hashing.digest(b)
        item = srt.store.NewNode(h, b, store.hashing.chain(stale, h))
        with pytest.raises(srt.CorruptionError):
            store.append(row.id, row.head, row.head, 2, [item], parent_prefix=stale)
        assert store.get_session("a") == row
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(f'SELECT application, version FROM "{schema}".srt_schema')
        rows = rows.fetchall()
    assert rows == [(pg_schema.APPLICATION, pg_schema.SCHEMA_VERSION)] == [("srt", 10)]


def test_many_first_opens_at_once_migrate_once(pg_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            with srt.Runtime(pg_url) as rt:
                rt.session("s")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    joined(*threads)
    assert errors == []
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT application, version FROM "{_schema(pg_url)}".srt_schema'
        ).fetchall()
    assert rows == [(pg_schema.APPLICATION, pg_schema.SCHEMA_VERSION)]


def test_two_schemas_on_one_server_are_two_stores(pg_url: str) -> None:
    other = with_schema(server_url(), _schema(pg_url) + "_b")
    try:
        with srt.Runtime(pg_url) as a, srt.Runtime(other) as b:
            a.session("x").append({"role": "user", "content": "in a"})
            assert b.sessions() == []
    finally:
        from pg_support import drop_schema

        drop_schema(_schema(pg_url) + "_b")


def test_an_append_waits_for_a_locked_session_only_until_its_deadline(pg_url: str) -> None:
    with srt.Runtime(pg_url) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "one"})
        with psycopg.connect(server_url(), autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute(f'SELECT 1 FROM "{_schema(pg_url)}".sessions FOR UPDATE')
            # A wait with no end would hang here; the lock goes after a minute regardless.
            release = threading.Timer(60, holder.close)
            release.start()
            try:
                with pytest.raises(srt.StoreBusyError):
                    s.append({"role": "user", "content": "two"}, timeout=0.2)
            finally:
                release.cancel()
                if not holder.closed:
                    holder.execute("ROLLBACK")
        s.append({"role": "user", "content": "three"}, timeout=0.2)  # the setting ended
        assert [m["content"] for m in rt.session("a").messages()] == ["one", "three"]


def test_an_append_is_one_round_trip(pg_url: str, tmp_path: Path) -> None:
    """The default path (a deadline, as ``Session.append`` passes one): one statement,
    one Sync, no BEGIN/COMMIT; libpq's own protocol trace counts the messages sent. So
    is one writing a record filed under another session (the statement holds its row)."""

    def sent(rt: srt.Runtime, act: Callable[[], object]) -> list[str]:
        trace = tmp_path / "trace"
        with open(trace, "w") as f:
            with rt.store.db.connection() as conn:  # the store's only connection
                conn.pgconn.trace(f.fileno())
                conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            act()
            with rt.store.db.connection() as conn:
                conn.pgconn.untrace()
        lines = [line.split("\t") for line in trace.read_text().splitlines()]
        # (an empty query would be the pool's liveness check, if it ran)
        return [f[2] for f in lines if f[0] == "F" and f[2:] != ["Query", ' ""']]

    one = ["Parse", "Bind", "Describe", "Execute", "Sync"]
    with srt.Runtime(pg_url + "&pool_min=1&pool_max=1") as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "one"})
        user, reply = {"role": "user", "content": "two"}, {"role": "assistant", "content": "3"}
        assert sent(rt, lambda: s.append(user, reply)) == one
        other = rt.session("b")
        other.append({"role": "user", "content": "b"})
        row, b = rt.store.get_session("a"), rt.store.get_session("b")
        assert row is not None and row.head is not None and b is not None
        raw, _meta = canonicalize({"role": "user", "content": "four"})
        digest, above = _core.digest(raw), rt.store.node_prefix(row.head)
        more = [NewNode(digest, raw, _core.chain(above, digest))]
        record = ObjectPut("srt.tool_call", f"{b.id}:x:c1", "start", b"1:0")
        append = functools.partial(
            rt.store.append,
            row.id,
            row.head,
            row.head,
            3,
            more,
            objects=[record],
            parent_prefix=above,
        )
        assert sent(rt, lambda: append(deadline=time.monotonic() + 60)) == one
        assert rt.store.get_object(record.kind, record.scope, record.key) is not None


def test_no_query_is_jit_compiled(pg_url: str) -> None:
    """PostgreSQL's JIT (on by default) priced the whole-store walks of ``srt ls``,
    ``tree``, ``verify``, ``gc`` and ``search`` high enough to compile them: 0.6 s a
    query on a store of one message. ``auto_explain`` reports every plan of srt's
    connections, with its JIT section if there is one, as a notice to the client."""
    plans: list[str] = []

    def configure(conn: psycopg.Connection[object]) -> None:
        conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_analyze = on",
            "SET auto_explain.log_nested_statements = on",
            "SET auto_explain.log_level = notice",
        ):
            conn.execute(setting)
        conn.commit()

    pool = psycopg_pool.ConnectionPool(server_url(), min_size=1, configure=configure, open=True)
    try:
        with srt.Runtime(store=PostgresStore(pool=pool, schema=_schema(pg_url))) as rt:
            s = rt.session("a")
            s.append(
                {"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hi"}
            )
            s.fork("b", at=1)
            srt.Runtime(store=rt.store).session("a").request("openai.chat", model="m")
            rt.store.overview()
            rt.store.tree("a")
            rt.store.search("hello")
            assert rt.store.verify().ok
            rt.store.gc(dry_run=True)
    finally:
        pool.close()
    assert len(plans) > 10 and all("Query Text" in p for p in plans)
    compiled = [p for p in plans if "JIT:" in p]
    assert compiled == []


# -- faults ------------------------------------------------------------------------------------


def test_a_server_restart_is_a_typed_retryable_error_then_the_pool_reconnects(
    server: PgServer,
) -> None:
    url = server.url + "&pool_timeout=2"
    with srt.Runtime(url) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "before"})
        server.stop("immediate", remove=False)
        with pytest.raises(srt.StoreUnavailableError) as err:
            s.append({"role": "user", "content": "while down"})
        assert err.value.retryable
        assert "Traceback" not in str(err.value)
        server.start()
        s.refresh()
        s.append({"role": "user", "content": "after"})
        assert [m["content"] for m in s.messages()] == ["before", "after"]
        assert rt.store.verify().ok


def test_a_call_waits_up_to_pool_timeout_for_the_server_to_come_back(server: PgServer) -> None:
    """The store's own connection is remade as the pool's would be: while the server
    refuses, a call tries again until ``pool_timeout``, then raises a typed error."""
    with srt.Runtime(server.url + "&pool_timeout=60") as rt:
        rt.session("a").append({"role": "user", "content": "one"})
        server.stop("fast", remove=False)
        later = threading.Timer(1.0, server.start)
        later.start()
        try:
            assert [m["content"] for m in srt.Runtime(store=rt.store).session("a").messages()] == [
                "one"
            ]
        finally:
            joined(later)
    server.stop("fast", remove=False)
    with pytest.raises(srt.StoreUnavailableError) as err:  # at open: not waited for
        srt.Runtime(server.url + "&pool_timeout=600")
    assert err.value.retryable and "no server could be reached" in str(err.value)
    server.start()


def test_killed_connections_are_replaced(server: PgServer) -> None:
    with srt.Runtime(server.url) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "one"})
        with psycopg.connect(server.url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        s.append({"role": "user", "content": "two"})  # the dead connection is checked out
        assert [m["content"] for m in rt.session("a").messages()] == ["one", "two"]


def _bench(*args: str, timeout: float) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=BENCH
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout[out.stdout.index("\n{") + 1 :])  # type: ignore[no-any-return]


def test_processes_and_threads_on_shared_sessions_lose_nothing(tmp_path: Path) -> None:
    args = ["--procs", "8", "--threads", "8", "--seconds", "60"]
    if not SOAK:  # the short form, on the tests' server (databases of its own)
        args = ["--procs", "2", "--threads", "4", "--seconds", "2", "--url", server_url()]
    res = _bench("pg_scale.py", "scale", *args, "--json", str(tmp_path / "s.json"), timeout=900)
    got = res["srt"]
    assert isinstance(got, dict)
    assert got["errors"] == 0 and got["check"]["ok"]  # type: ignore[index]
    assert got["turns_acked"] > 0
    bare = res["bare_psycopg"]
    assert isinstance(bare, dict) and bare["errors"] == 0 and bare["commits_per_s"] > 0


def test_the_latency_bench_runs_its_baselines_in_the_same_run(tmp_path: Path) -> None:
    res = _bench(
        "pg_scale.py", "latency", "--turns", "20", "--reps", "2", "--url", server_url(), timeout=600
    )
    assert len(res) > 5
    for engine in ("postgres", "sqlite"):
        got = res[engine]
        assert isinstance(got, dict) and got["append_ms"]["p50"] > 0  # type: ignore[index]
    bare = res["bare_psycopg"]
    assert isinstance(bare, dict) and bare["load_open_connection_ms"]["median"] > 0
    assert float(res["append_p50_pg_vs_bare"]) > 0  # type: ignore[arg-type]


def test_sigkilled_clients_lose_no_acknowledged_turn(tmp_path: Path) -> None:
    args = ["--kills", "200"] if SOAK else ["--kills", "8", "--url", server_url()]
    res = _bench("pg_faults.py", "kill", *args, "--writers", "2", timeout=900)
    assert res["check"]["ok"] and res["kills"] == int(args[1])  # type: ignore[index]


def test_restarts_and_cut_connections_lose_no_acknowledged_turn() -> None:
    args = ["--seconds", "30", "--faults", "3"] if SOAK else ["--seconds", "5", "--faults", "1"]
    res = _bench("pg_faults.py", "restart", "--threads", "4", *args, timeout=600)
    assert res["check"]["ok"] and res["untyped_errors"] == 0  # type: ignore[index]
    assert res["threads_finished"] == 4 and res["turns_acked"]


def test_a_v4_store_gets_an_id_that_stays(pg_url: str) -> None:
    """Schema v5 gives every store an id (SQLite's srt_meta has one): a v4 store gets its
    own on open and keeps it; its session cache keys differ from another store's."""
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "at v4"})
    schema = _schema(pg_url)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{schema}".srt_schema DROP COLUMN store_id')
        conn.execute(f'UPDATE "{schema}".srt_schema SET version = 4')
    with srt.Runtime(pg_url) as rt:
        sid = rt.store.store_id
        assert len(sid) == 32 and int(sid, 16) >= 0
        assert [m["content"] for m in rt.session("a").messages()] == ["at v4"]
    with srt.Runtime(pg_url) as rt:  # migrated: the same id, the row not written again
        assert rt.store.store_id == sid
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(f'SELECT application, version, store_id FROM "{schema}".srt_schema')
        assert rows.fetchall() == [("srt", pg_schema.SCHEMA_VERSION, sid)]
    keys = []
    with fresh_url() as other:  # the same session (id 1, the same root) in another store
        for url in (pg_url, other):
            with srt.Runtime(url, cache=srt.CachePolicy(key="session")) as rt:
                s = rt.session("a")
                if not s.messages():
                    s.append({"role": "user", "content": "at v4"})
                s.request("openai.chat", model="gpt-4o")
                assert s.last_build is not None
                keys.append(s.last_build.cache_key)
    assert keys[0] and keys[1] and keys[0] != keys[1]
