"""A real PostgreSQL server for the tests, and a schema of its own for each test.

``server_url()`` is ``$SRT_TEST_PG_URL`` when set (``.ci/run`` starts a server and sets
it), else a throwaway server this process starts once from the machine's PostgreSQL
binaries (``srt.testing.pgserver``) and stops at exit, so a plain ``pytest`` works on a
developer machine too. ``fresh_url()`` gives a store URL on a schema no other test uses
(``?schema=t_<random>``), dropped afterwards: tests stay independent without the cost
of a database each.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import threading
from collections.abc import Iterator

import psycopg

from srt.testing.pgbouncer import PgBouncer
from srt.testing.pgserver import PgServer

_lock = threading.RLock()  # (bouncer() holds it and asks server_url())
_server: list[PgServer] = []


def server_url() -> str:
    """The URL of the tests' PostgreSQL server (started on first use)."""
    env = os.environ.get("SRT_TEST_PG_URL")
    if env:
        return env
    with _lock:
        if not _server:
            server = PgServer(fast=True)
            server.start()
            atexit.register(server.stop)
            _server.append(server)
        return _server[0].url


def with_schema(url: str, schema: str) -> str:
    return url + ("&" if "?" in url else "?") + f"schema={schema}"


#: How long a schema's drop waits for the locks other connections hold in it.
DROP_WAIT_S = 60

_HOLDERS = """
SELECT DISTINCT a.pid, a.state, a.xact_start, a.application_name, left(a.query, 200)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.pid <> pg_backend_pid() AND l.granted AND (
    l.relation IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = %(s)s)
    OR (l.classid = 'pg_namespace'::regclass
        AND l.objid = (SELECT oid FROM pg_namespace WHERE nspname = %(s)s)))
"""


def drop_schema(schema: str) -> None:
    """Drop a test's schema. A connection the test left in a transaction there would hold
    the drop (and the worker, and at the next exclusive test the run) for good: after
    ``DROP_WAIT_S`` its backends are named in the error and ended, and the schema dropped."""
    drop = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'  # a name made here
    with psycopg.connect(server_url(), autocommit=True, connect_timeout=30) as conn:
        conn.execute(f"SET lock_timeout = '{DROP_WAIT_S}s'")
        try:
            conn.execute(drop)
            return
        except psycopg.errors.LockNotAvailable:
            holders = conn.execute(_HOLDERS, {"s": schema}).fetchall()
        for row in holders:
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        conn.execute("SET lock_timeout = 0")
        conn.execute(drop)
    raise AssertionError(
        f"schema {schema} was still locked {DROP_WAIT_S} s after its test ended, by "
        f"(pid, state, transaction start, application, query): {holders}"
    )


@contextlib.contextmanager
def fresh_url() -> Iterator[str]:
    """A store URL on a new, empty schema of the tests' server; dropped afterwards."""
    schema = "t_" + secrets.token_hex(6)
    try:
        yield with_schema(server_url(), schema)
    finally:
        drop_schema(schema)


_bouncers: list[PgBouncer] = []


def bouncer() -> PgBouncer:
    """A PgBouncer in transaction mode with pools of 2 server connections in front of the
    tests' server (``srt.testing.pgbouncer``), started on first use and stopped at exit.
    A machine without PgBouncer fails here, saying how to install it: never a skip."""
    with _lock:
        if not _bouncers:
            found = PgBouncer(server_url(), pool_mode="transaction", pool_size=2)
            found.start()
            atexit.register(found.stop)
            _bouncers.append(found)
        return _bouncers[0]


@contextlib.contextmanager
def fresh_bouncer_url() -> Iterator[str]:
    """``fresh_url()`` through PgBouncer: a new schema, ``prepare_threshold=none``."""
    schema = "t_" + secrets.token_hex(6)
    try:
        yield with_schema(bouncer().url + "&prepare_threshold=none", schema)
    finally:
        drop_schema(schema)


@contextlib.contextmanager
def scram_server(password: str) -> Iterator[PgServer]:
    """A throwaway server whose role ``srt`` needs ``password`` over TCP (scram-sha-256),
    its superuser still trusted on its socket."""
    import time

    with PgServer(fast=True) as pg:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE srt PASSWORD '{password}'")
        with open(os.path.join(pg.data, "pg_hba.conf"), "w", encoding="utf-8") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.2)
        yield pg
