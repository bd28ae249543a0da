"""Opening a store on a server that cannot be reached, on loopback only.

Before: nothing listening on the port, a socket directory that does not exist, or an
address libpq cannot resolve made ``srt.Runtime(url)`` try again and again for the whole
``pool_timeout`` before it failed. Now the first attempt's answer decides it: the open
fails at once with a ``StoreUnavailableError`` naming where it looked. Each test counts
the attempts to connect (``psycopg.Connection.connect``, spied on, never replaced) and
sets ``pool_timeout=600``: on the old code the second attempt fails the test instead of
waiting ten minutes. A server that answers but is full is still waited for, and so is
one that goes away once the store has reached it (a restart).

Name resolution is not tried with a real name: this machine's resolver asks a name server
off the machine (``/etc/resolv.conf``), even for ``.invalid``. A ``hostaddr`` that is no
address fails in the same resolver call without a packet, and takes the same path.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import srt
from pg_support import server_url
from srt.store.postgres import PostgresStore

SECRET = "Canary-pgsmall25-Secret"


class Attempts:
    """Every call of ``psycopg.Connection.connect`` (the store's own first connection's),
    each passed to the real one; ``after_failure`` runs once the first one fails."""

    def __init__(self, limit: int) -> None:
        self.made = 0
        self.failed = 0
        self.limit = limit
        self.after_failure: Callable[[], None] | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = psycopg.Connection.connect

        def connect(cls: type[psycopg.Connection[Any]], *args: Any, **kwargs: Any) -> Any:
            self.made += 1
            if self.made > self.limit:
                raise AssertionError(f"attempt {self.made} to connect: the open was retried")
            try:
                return real(*args, **kwargs)
            except psycopg.Error:
                self.failed += 1
                if self.failed == 1 and self.after_failure is not None:
                    self.after_failure()
                raise

        monkeypatch.setattr(psycopg.Connection, "connect", classmethod(connect))


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> Attempts:
    found = Attempts(limit=1)
    found.install(monkeypatch)
    return found


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound (so no one else takes it) and not listening: refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _unreachable(url: str) -> srt.StoreUnavailableError:
    with pytest.raises(srt.StoreUnavailableError) as err:
        srt.Runtime(url)
    exc = err.value
    text = f"{exc!s} {exc!r}"
    assert "no server could be reached" in text and "check the URL's host and port" in text
    assert SECRET not in text
    assert exc.__cause__ is None and exc.__context__ is None  # psycopg's keeps the password
    return exc


def test_a_closed_port_fails_at_once(attempts: Attempts, closed_port: int) -> None:
    exc = _unreachable(
        f"postgresql://srt:{SECRET}@127.0.0.1:{closed_port}/postgres?pool_timeout=600"
    )
    assert f'"127.0.0.1", port {closed_port}' in str(exc) and "Connection refused" in str(exc)
    assert attempts.made == 1
    assert exc.retryable  # a server may yet start there: a later Runtime() may succeed


def test_a_socket_directory_that_does_not_exist_fails_at_once(
    attempts: Attempts, tmp_path: Path
) -> None:
    where = tmp_path / "no-such-dir"
    exc = _unreachable(
        f"postgresql://srt:{SECRET}@/postgres?host={where}&port=5499&pool_timeout=600"
    )
    assert f'"{where}/.s.PGSQL.5499"' in str(exc) and "No such file or directory" in str(exc)
    assert attempts.made == 1


def test_an_address_that_does_not_resolve_fails_at_once(attempts: Attempts) -> None:
    """A keyword/value string, with the password."""
    exc = _unreachable(f"hostaddr=no-such-address password={SECRET} dbname=postgres")
    assert 'could not parse network address "no-such-address"' in str(exc)
    assert attempts.made == 1


def test_several_hosts_none_reachable_fail_at_once(
    attempts: Attempts, closed_port: int, tmp_path: Path
) -> None:
    exc = _unreachable(
        f"host=127.0.0.1,{tmp_path / 'gone'} port={closed_port} password={SECRET} dbname=postgres"
    )
    assert "Connection refused" in str(exc) and "No such file or directory" in str(exc)
    assert attempts.made == 1


def _socket_of(conn: psycopg.Connection[Any]) -> Path:
    dirs = conn.execute("SHOW unix_socket_directories").fetchone()
    port = conn.execute("SHOW port").fetchone()
    assert dirs is not None and port is not None
    return Path(dirs[0].split(",")[0].strip()) / f".s.PGSQL.{port[0]}"


def test_a_server_that_answers_full_is_waited_for(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'too many connections' is the server's answer: the open tries again (here the
    connection that filled the role's limit closes after the first refusal)."""
    role = "pgsmall25_" + pg_url.rsplit("schema=", 1)[1]
    admin = psycopg.connect(server_url(), autocommit=True)
    try:
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
        admin.execute(f"GRANT CREATE ON DATABASE {admin.info.dbname} TO {role}")
        url = f"postgresql://{role}@/{admin.info.dbname}?host={_socket_of(admin).parent}"
        url += f"&port={admin.info.port}&schema={pg_url.rsplit('schema=', 1)[1]}"
        full = psycopg.connect(url.split("&schema=")[0], autocommit=True)
        tries = Attempts(limit=2)
        tries.after_failure = full.close
        tries.install(monkeypatch)
        with srt.Runtime(url + "&pool_timeout=600") as rt:
            rt.session("a").append({"role": "user", "content": "in"})
        assert (tries.made, tries.failed) == (2, 1)
        assert full.closed
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {pg_url.rsplit('schema=', 1)[1]} CASCADE")
        admin.execute(f"DROP OWNED BY {role}")
        admin.execute(f"DROP ROLE {role}")
        admin.close()


def test_once_reached_a_vanished_socket_is_waited_for(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server restarting under an open store refuses, or has no socket, for a while:
    that is waited for (up to pool_timeout), not refused as at open."""
    with psycopg.connect(server_url(), autocommit=True) as admin:
        real = _socket_of(admin)
        where = tmp_path / "s"
        where.mkdir()
        link = where / real.name
        link.symlink_to(real)
        schema = pg_url.rsplit("schema=", 1)[1]
        port = real.name.rsplit(".", 1)[1]
        url = f"postgresql://{admin.info.user}@/{admin.info.dbname}?host={where}&port={port}"
        with srt.Runtime(f"{url}&schema={schema}&pool_timeout=600") as rt:
            rt.session("a").append({"role": "user", "content": "before"})
            store = rt.store
            assert isinstance(store, PostgresStore)
            with store.db.connection() as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            link.unlink()  # the server's socket is gone, and the store's connection
            admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))
            tries = Attempts(limit=2)
            tries.after_failure = lambda: link.symlink_to(real)  # the server is back
            tries.install(monkeypatch)
            assert [m["content"] for m in rt.session("a").messages()] == ["before"]
            assert (tries.made, tries.failed) == (2, 1)
