"""srt behind a real PgBouncer in transaction mode (``srt.testing.pgbouncer``, pools of 2
server connections, so the server connections really are shared between srt's client
connections): the conformance suite runs there too (``tests/store``, engine
``pgbouncer``); these are the paths it does not cover. PgBouncer refuses the ``options``
startup parameter that srt's own connections pinned their search path with, so before
``Database._unpin`` no store opened behind it at all.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections.abc import Iterator

import psycopg
import pytest

import srt
from pg_support import bouncer, fresh_bouncer_url, server_url, with_schema
from rel_support.waits import joined
from srt.store import ObjectPut
from srt.store.copy import copy_store
from srt.store.postgres import PostgresStore
from srt.store.sqlite import SQLiteStore
from srt.testing.pgbouncer import PgBouncer


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _build_locks(schema: str) -> int:
    """Advisory locks held on the server under the key the search index's build took
    before (a session lock, which behind PgBouncer could be left held)."""
    # (the key as the old build made it: migrate.lock_key's scheme, purpose "search-index")
    digest = hashlib.blake2b(f"srt-search-index:{schema}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big")
    with psycopg.connect(server_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid",
            (key >> 32, key & 0xFFFF_FFFF),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def bounced() -> Iterator[str]:
    with fresh_bouncer_url() as url:
        yield url + "&pool_max=4"


def test_the_starter_is_private_and_pools_in_transaction_mode() -> None:
    import os
    import stat

    found = bouncer()
    for path, mode in ((found.root, 0o700), (found.config, 0o600)):
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
    with open(found.config, encoding="utf-8") as f:
        text = f.read()
    assert "pool_mode = transaction" in text and "default_pool_size = 2" in text
    assert "listen_addr = 127.0.0.1" in text


def test_a_store_opens_behind_pgbouncer_and_is_told_options_are_refused(bounced: str) -> None:
    with srt.Runtime(bounced) as rt:
        rt.session("a").append(user("one"), user("two"))
        assert [m["content"] for m in rt.session("a").messages()] == ["one", "two"]
        with rt.store.db.connection() as conn:  # the pin left off: the server's default
            assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)
            assert conn.prepare_threshold is None
    # options the URL gives itself are refused at once, with PgBouncer's reason
    with pytest.raises(srt.StoreUnavailableError, match="unsupported startup parameter") as err:
        srt.Runtime(bounced + "&options=-cwork_mem%3D8MB&pool_timeout=30")
    assert err.value.retryable is False


def test_threads_append_to_one_session_through_shared_server_connections(bounced: str) -> None:
    """8 threads on 4 client connections and 2 server connections: every turn kept once,
    a stale writer gets ConflictError and rebase puts it on top."""
    with srt.Runtime(bounced) as rt:
        rt.session("s").append(user("root"))
        errors: list[BaseException] = []

        def writer(k: int) -> None:
            try:
                s = rt.session("s")
                for i in range(15):
                    s.append(user(f"{k}-{i}"), rebase=True, timeout=60)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        joined(*threads)
        assert errors == []
        texts = [m["content"] for m in rt.session("s").messages()]
        assert texts[0] == "root" and sorted(texts[1:]) == sorted(
            f"{k}-{i}" for k in range(8) for i in range(15)
        )
        for k in range(8):  # each writer's turns in its order
            mine = [t for t in texts if t.startswith(f"{k}-")]
            assert mine == [f"{k}-{i}" for i in range(15)]
        a, b = rt.session("s"), rt.session("s")
        a.append(user("a"))
        with pytest.raises(srt.ConflictError):
            b.append(user("b"))
        b.append(user("b"), rebase=True)
        assert [m["content"] for m in rt.session("s").messages()][-2:] == ["a", "b"]
        assert rt.store.verify().ok


def _process_writer(url: str, k: int) -> None:
    with srt.Runtime(url) as rt:
        s = rt.session("s")
        for i in range(20):
            s.append(user(f"p{k}-{i}"), rebase=True, timeout=60)


def test_two_processes_append_to_one_session(bounced: str) -> None:
    with srt.Runtime(bounced) as rt:
        rt.session("s").append(user("root"))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(bounced, k)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with srt.Runtime(bounced) as rt:
        texts = [m["content"] for m in rt.session("s").messages()]
        assert sorted(texts[1:]) == sorted(f"p{k}-{i}" for k in range(2) for i in range(20))
        assert rt.store.verify().ok


def test_gc_search_and_copy_behind_pgbouncer(bounced: str, tmp_path: object) -> None:
    """gc's temporary tables and transactions, the search index's build, verify's
    server-side cursor and ``srt copy`` both ways, while another thread appends."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    with srt.Runtime(bounced) as rt:
        for n in range(5):
            rt.session(f"s{n}").append(user(f"hello world {n}"), user("bye"))
        rt.session("gone").append(user("garbage only"))
        rt.delete("gone")
        stop = threading.Event()

        def busy() -> None:
            s = rt.session("busy")
            while not stop.is_set():
                s.append(user("busy"), rebase=True, timeout=60)

        t = threading.Thread(target=busy)
        t.start()
        try:
            report = rt.gc()
            assert rt.store.build_search_index() is not None
            hits = rt.store.search("world")
            assert rt.store.verify().ok
        finally:
            stop.set()
            joined(t)
        assert report.nodes >= 1 and report.messages >= 1
        assert sorted(h.text for h in hits) == [f"hello world {n}" for n in range(5)]
        assert rt.store.has_search_index()
        assert _build_locks(rt.store.db.schema) == 0  # nothing leaked
        copied = SQLiteStore(str(tmp_path / "copy.db"))
        try:
            copy_store(rt.store, copied)
            with fresh_bouncer_url() as back_url:
                back = PostgresStore(back_url)
                try:
                    copy_store(copied, back)
                    assert back.verify().ok
                    names = {i.name for i in back.list_sessions()}
                    assert names >= {f"s{n}" for n in range(5)}
                finally:
                    back.close()
        finally:
            copied.close()


def test_without_prepare_threshold_none_prepared_statements_are_off(bounced: str) -> None:
    """PgBouncer found (it refused the pin): psycopg prepares nothing, so threads whose
    statements run on each other's server connections never miss one (before, with the
    default prepare_threshold: "prepared statement "_pg3_0" does not exist")."""
    url = bounced.replace("&prepare_threshold=none", "")
    assert "prepare_threshold" not in url
    with srt.Runtime(url) as rt:
        rt.session("s").append(user("root"))
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            try:
                s = rt.session("s")
                for i in range(12):
                    s.append(user(f"{k}-{i}"), rebase=True, timeout=60)
                    s.messages()
                    rt.sessions()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        joined(*threads)
        assert errors == []
        assert len(rt.session("s").messages()) == 1 + 6 * 12


def test_a_pgbouncer_that_drops_options_gets_a_config_error_naming_it() -> None:
    """A PgBouncer told to ignore ``options`` (so srt cannot tell it is there) and one
    server connection: two stores' psycopg prepare statements under the same name on it,
    and the second is told to set prepare_threshold=none (a ConfigError), not a bare
    DuplicatePreparedStatement."""
    settings = {"ignore_startup_parameters": "extra_float_digits,options"}
    with (
        fresh_bouncer_url() as given,
        PgBouncer(server_url(), pool_size=1, settings=settings) as quiet,
    ):
        url = with_schema(quiet.url, given.rsplit("schema=", 1)[1])
        assert "schema=" in url and "prepare_threshold" not in url
        with srt.Runtime(url + "&pool_max=1") as a, srt.Runtime(url + "&pool_max=1") as b:
            for _ in range(8):
                a.sessions()
            with pytest.raises(srt.ConfigError) as err:
                for _ in range(8):
                    b.sessions()
    text = str(err.value)
    assert "PgBouncer in transaction mode" in text and "prepare_threshold=none" in text
    assert "42P05" in text


@pytest.mark.parametrize("through", ["postgres", "pgbouncer"])
def test_first_searches_at_once_build_the_index_once(through: str) -> None:
    """Three first searches at once: one builds the index, the others wait for it and
    find it built, and no lock is left. Before, under a session advisory lock: on a plain
    server a waiter blocked on the lock held a snapshot that the build waited for, a
    deadlock (StoreBusyError after 19 s); behind PgBouncer the lock was taken on one
    server connection and released on another (left held, and two builds ran)."""
    from pg_support import fresh_url

    with (fresh_bouncer_url if through == "pgbouncer" else fresh_url)() as url:
        with srt.Runtime(url) as rt:
            rt.session("hay").append(*(user(f"straw{i} " + "hay " * 100) for i in range(1500)))
        meet = threading.Barrier(3, timeout=60)
        results: list[object] = []

        def first_search() -> None:
            with srt.Runtime(url) as mine:
                meet.wait()
                try:
                    results.append(mine.store.build_search_index())
                except BaseException as exc:  # reported below
                    results.append(exc)

        threads = [threading.Thread(target=first_search) for _ in range(3)]
        for t in threads:
            t.start()
        joined(*threads)
        assert sorted(results, key=repr) == [1500, None, None]
        with srt.Runtime(url) as rt:
            assert rt.store.has_search_index() and rt.store.verify().ok
            assert [h.text for h in rt.store.search("straw7")] == ["straw7 " + "hay " * 100]
        assert _build_locks(url.rsplit("schema=", 1)[1]) == 0


def test_pipelined_appends_race_to_the_exact_count(bounced: str) -> None:
    """An append filing two conditional objects sends its statements in a pipeline inside
    one transaction (``appends.py``), the mode that broke LangGraph behind PgBouncer
    (langgraph#5675): 6 threads on 4 client and 2 server connections each add 1 to a
    counter 10 times (read, then an append that swaps it and claims a key of its own,
    again on ConflictError): no increment lost, no claim written by a refused append."""
    store = PostgresStore(bounced)
    try:
        store.put_object("count", "s", "k", b"0")
        sid = store.create_session("counter", None, exist_ok=True).id
        errors: list[BaseException] = []

        def work(i: int) -> None:
            attempt = 0
            try:
                for _ in range(10):
                    while True:
                        attempt += 1
                        got = store.get_object("count", "s", "k")
                        assert got is not None
                        swap = ObjectPut(
                            "count", "s", "k", b"%d" % (int(got.value) + 1), expect=got.value
                        )
                        claim = ObjectPut("claim", "s", f"{i}-{attempt}", b"1", if_absent=True)
                        try:
                            store.append(sid, None, None, 0, [], objects=[swap, claim])
                        except srt.ConflictError:
                            continue
                        break
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        joined(*threads)
        assert errors == []
        final = store.get_object("count", "s", "k")
        assert final is not None and final.value == b"60"
        assert len(store.list_objects("claim", "s")) == 60
    finally:
        store.close()
