"""A new user pointing srt at their own PostgreSQL server, getting it wrong: a password
with URL characters, psycopg's other spellings (``postgres://``, a keyword/value string),
wrong credentials, a missing database, a server that is down or has no TLS, the extra not
installed, a role without the privileges to create or use srt's schema, a server too old.
Each is a typed srt error that says what to do, at once, with nothing written, and the
password shows nowhere: not in the message, ``repr``, a traceback, the logs or ``srt``'s
output (one line, a non-zero exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest

import srt
from pg_support import scram_server, server_url
from rel_support.waits import joined
from srt.store.postgres import PostgresStore
from srt.store.postgres import schema as pg_schema
from srt.testing.pgserver import PgServer
from support import run_cli

#: Every character a URL gives a meaning to, between words that must never show.
SECRET = "CanaryOne@CanaryTwo:CanaryThree/CanaryFour%CanaryFive?CanarySix#CanarySeven"
CANARY = "Canary"


@pytest.fixture(scope="module")
def scram() -> Iterator[PgServer]:
    """A server whose role ``srt`` needs ``SECRET`` over TCP (scram-sha-256)."""
    with scram_server(SECRET) as pg:
        yield pg


@pytest.fixture(autouse=True)
def _logs_hold_no_secret(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.DEBUG):
        yield
    assert CANARY not in caplog.text


def _text(exc: BaseException) -> str:
    """Everything a user may see of ``exc``: its chain's messages, reprs and traceback."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def _refused(url: str, kind: type[srt.SrtError] = srt.SrtError) -> srt.SrtError:
    """The typed error opening ``url`` raises, at once, without the password, and with
    nothing made in the working directory (a test runs in a directory of its own)."""
    with pytest.raises(kind) as err:
        srt.Runtime(url)
    # At once: not the error a wait that ran out of pool_timeout ends with.
    assert "no connection in time" not in str(err.value), err.value
    assert CANARY not in _text(err.value)
    assert os.listdir(".") == []
    return err.value


def _cli_refuses(*args: str) -> str:
    """``srt ARGS``: one line on stderr, a non-zero exit, no traceback or password."""
    code, out, err = run_cli(*args)
    assert code != 0 and out == ""
    assert err.startswith("srt: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and CANARY not in err
    return err


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# -- URLs --------------------------------------------------------------------------------


def test_a_password_with_url_characters_works_percent_encoded_and_is_refused_raw(
    scram: PgServer, cwd: Path
) -> None:
    """Before: the raw password's pieces past its '@', '/' or '?' became a host, a port or
    a database, and libpq's message quoted them ('invalid percent-encoded token:
    "CanaryFour%..."', 'invalid integer value "CanaryA" for connection option "port"')."""
    tcp = f"127.0.0.1:{scram.port}"
    good = f"postgresql://srt:{quote(SECRET, safe='')}@{tcp}/postgres"
    with srt.Runtime(good) as rt:
        rt.session("a").append({"role": "user", "content": "hi"})
        for text in (repr(rt), str(rt), repr(rt.store), str(rt.store), rt.store.location):
            assert CANARY not in text and "srt:***@" in text
    for raw in (
        SECRET,
        "CanaryA/CanaryB",
        "CanaryA?CanaryB",
        "CanaryA#CanaryB",
        "CanaryA@CanaryB",
    ):
        url = f"postgresql://srt:{raw}@{tcp}/postgres"
        exc = _refused(url, srt.ConfigError)
        assert "percent-encoded" in str(exc) and "quote(password, safe='')" in str(exc)
        _cli_refuses("--db", url, "ls")
    exc = _refused(f"postgresql://srt:{SECRET[:30]}%zz@{tcp}/postgres", srt.ConfigError)
    assert "percent-encoded" in str(exc)


def test_psycopgs_other_spellings_open_postgresql_not_a_file(scram: PgServer, cwd: Path) -> None:
    """Before: a keyword/value string ("host=... password=...") was taken for a SQLite
    file's name: srt made that file (a directory too, for the '/' in the password) in the
    working directory, and showed the password in repr() as its path."""
    tcp = f"127.0.0.1:{scram.port}"
    with srt.Runtime(f"postgres://srt:{quote(SECRET, safe='')}@{tcp}/postgres") as rt:
        assert isinstance(rt.store, PostgresStore)
        rt.session("b").append({"role": "user", "content": "hi"})
    quoted = SECRET.replace("\\", "\\\\").replace("'", "\\'")
    keywords = f"host=127.0.0.1 port={scram.port} dbname=postgres user=srt password='{quoted}'"
    with srt.Runtime(keywords) as rt:
        assert isinstance(rt.store, PostgresStore)
        assert {"a", "b"} <= {s.name for s in rt.sessions()}
        for text in (repr(rt), repr(rt.store), rt.store.location):
            assert CANARY not in text and "password=***" in text
    with srt.Runtime(f"application_name='a new user' {keywords}") as rt:  # any keyword first
        assert isinstance(rt.store, PostgresStore)
    code, out, err = run_cli("--db", keywords, "db", "path")
    assert code == 0 and CANARY not in out + err and "password=***" in out
    assert os.listdir(".") == []
    exc = _refused(keywords.replace("password='", "password='wrong"), srt.StoreUnavailableError)
    assert "password authentication failed" in str(exc) and not exc.retryable
    # a token libpq quotes in its complaint may be a piece of an unquoted password
    for bad in (
        "host=127.0.0.1 password=CanaryA CanaryB dbname=postgres",
        f"host=127.0.0.1 password='{CANARY}-unterminated",
    ):
        assert "not valid" in str(_refused(bad, srt.ConfigError))
        _cli_refuses("--db", bad, "ls")
    ours = _refused(f"host=127.0.0.1 password={CANARY} schema=mine", srt.ConfigError)
    assert "postgresql:// URL's query" in str(ours)


def test_each_connection_fault_is_typed_at_once_in_the_api_and_the_cli(
    scram: PgServer, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tcp = f"127.0.0.1:{scram.port}"
    pw = quote(SECRET, safe="")
    faults = {
        "password authentication failed": f"postgresql://srt:wrong{pw}@{tcp}/postgres",
        'database "nowhere" does not exist': f"postgresql://srt:{pw}@{tcp}/nowhere",
        "SSL": f"postgresql://srt:{pw}@{tcp}/postgres?sslmode=require",
        "no server could be reached": f"postgresql://srt:{pw}@127.0.0.1:1/postgres",
    }
    for said, url in faults.items():
        exc = _refused(url, srt.StoreUnavailableError)
        assert said in str(exc)
        assert said in _cli_refuses("--db", url, "ls")
        assert said in _cli_refuses("copy", url, str(cwd.parent / "copy.db"))
        assert not (cwd.parent / "copy.db").exists()
    # srt serve names its store as it starts (it printed the URL whole, password too)
    down = faults["no server could be reached"]
    served = subprocess.run(
        [sys.executable, "-m", "srt", "--db", down, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode != 0 and CANARY not in served.stdout + served.stderr
    assert "store: postgresql://srt:***@" in served.stderr
    assert served.stderr.splitlines()[-1].startswith("srt: error: connecting")
    assert "Traceback" not in served.stderr
    monkeypatch.setenv("PGPASSWORD", "wrong" + SECRET)
    assert "password" in _cli_refuses("--db", f"postgresql://srt@{tcp}/postgres", "ls")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    with srt.Runtime(f"postgresql://srt@{tcp}/postgres") as rt:  # PGPASSWORD honoured
        assert CANARY not in repr(rt)
        rt.session("from-env").append({"role": "user", "content": "hi"})
    monkeypatch.delenv("PGPASSWORD")
    passfile = cwd.parent / "pgpass"
    passfile.write_text(f"127.0.0.1:{scram.port}:*:srt:{SECRET.replace(':', chr(92) + ':')}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with srt.Runtime(f"postgresql://srt@{tcp}/postgres") as rt:  # and the passfile
        assert rt.session("from-env").messages() == [{"role": "user", "content": "hi"}]


# -- the extra ---------------------------------------------------------------------------


_BLOCKED = textwrap.dedent(
    """
    import sys

    class NoPostgresExtra:  # as after `pip install .` without [postgres]
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("psycopg", "psycopg_pool", "psycopg_c", "psycopg_binary"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPostgresExtra())
    """
)


def test_without_the_postgres_extra_the_error_names_it(tmp_path: Path) -> None:
    """Before: "the 'postgresql' storage engine cannot be loaded (...); is its extra
    installed?", which named no extra."""
    url = f"postgresql://srt:{CANARY}@127.0.0.1:1/postgres"
    api = _BLOCKED + textwrap.dedent(
        f"""
        import srt
        try:
            srt.Runtime({url!r})
        except srt.ConfigError as exc:
            print(exc)
        """
    )
    cli = _BLOCKED + f"from srt.cli import main\nsys.exit(main(['--db', {url!r}, 'ls']))\n"
    for script in (api, cli):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        said = done.stdout + done.stderr
        assert "pip install 'stateful-runtime[postgres]'" in said, said
        assert CANARY not in said and "Traceback" not in said
        assert said.count("\n") == 1
    assert os.listdir(tmp_path) == []


# -- roles and privileges ----------------------------------------------------------------


def _as(role: str, db: str) -> str:
    """The tests' server's URL, as ``role`` on database ``db`` (trusted on its socket)."""
    parts = urlsplit(server_url())
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{role}@{host}", path=f"/{db}").geturl()


@contextlib.contextmanager
def _database() -> Iterator[tuple[str, str]]:
    """A new database owned by the tests' superuser, and a role that may only connect."""
    name = "nu_" + secrets.token_hex(5)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # names made here
        conn.execute(f"CREATE ROLE {name} LOGIN")
    try:
        yield name, name
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE {name}")


def _schemas(db: str) -> list[str]:
    with psycopg.connect(_as("srt", db), autocommit=True) as conn:
        got = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = 'srt'").fetchall()
    return [r[0] for r in got]


def test_a_role_without_create_is_told_who_opens_first_and_then_works(cwd: Path) -> None:
    """Before: "opening the database: InsufficientPrivilege (42501): permission denied for
    database ...", which said neither what to grant nor who must open the store first."""
    with _database() as (db, role):
        exc = _refused(_as(role, db), srt.StoreError)
        assert "may not create" in str(exc) and "owner" in str(exc) and "CREATE" in str(exc)
        assert _schemas(db) == []  # nothing half-made
        assert "may not create" in _cli_refuses("--db", _as(role, db), "ls")

        # The owner's first opens, two at once on the empty database: both succeed.
        opened: list[str] = []

        def first_open() -> None:
            with srt.Runtime(_as("srt", db)) as rt:
                opened.append(rt.store.store_id)

        threads = [threading.Thread(target=first_open) for _ in range(2)]
        for t in threads:
            t.start()
        joined(*threads)
        assert len(opened) == 2 and opened[0] == opened[1] != ""
        with srt.Runtime(_as("srt", db)) as rt:
            rt.session("owned").append({"role": "user", "content": "by the owner"})

        exc = _refused(_as(role, db), srt.StoreError)
        grants = str(exc).partition("grants it: ")[2]
        assert f"GRANT USAGE ON SCHEMA srt TO {role}" in grants, exc
        with psycopg.connect(_as("srt", db), autocommit=True) as conn:
            for grant in grants.split("; "):
                conn.execute(grant)  # what the message says, as it says it
        with srt.Runtime(_as(role, db)) as rt:
            rt.session("owned").append({"role": "assistant", "content": "by the app"})
            rt.session("new").append({"role": "user", "content": "hi"})
            assert [m["content"] for m in rt.session("owned").messages()] == [
                "by the owner",
                "by the app",
            ]


def test_a_server_older_than_srt_needs_is_refused_before_any_statement(
    monkeypatch: pytest.MonkeyPatch, cwd: Path, pg_url: str
) -> None:
    """srt needs PostgreSQL 14 (``COMPRESSION lz4``); the tests' server is 15, so the
    requirement is raised past it. Before: no check, and an old server failed at the
    first CREATE TABLE with a syntax error."""
    monkeypatch.setattr(pg_schema, "MIN_SERVER_VERSION", 990000)
    exc = _refused(pg_url, srt.StoreError)
    assert "srt needs 99.0 or newer" in str(exc) and "PostgreSQL 1" in str(exc)
    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg.connect(server_url(), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchall() == []


def test_a_schema_made_for_the_role_is_used_without_create_on_the_database(cwd: Path) -> None:
    """Before: "permission denied for database": srt ran CREATE SCHEMA IF NOT EXISTS,
    which wants CREATE on the database even when the schema is there, so a role given a
    schema of its own (the least privilege it can have) could never make its tables."""
    with _database() as (db, role):
        exc = _refused(_as(role, db), srt.StoreError)
        made = str(exc).partition("made for this role: ")[2].partition(";")[0]
        assert made == f"CREATE SCHEMA srt AUTHORIZATION {role}", exc
        with psycopg.connect(_as("srt", db), autocommit=True) as conn:
            conn.execute(made)  # as the message says it
        with srt.Runtime(_as(role, db)) as rt:
            rt.session("mine").append({"role": "user", "content": "hi"})
        with psycopg.connect(_as("srt", db), autocommit=True) as conn:
            owners = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'srt'"
            ).fetchall()
        assert owners == [(role,)]
