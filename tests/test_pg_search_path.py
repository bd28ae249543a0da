"""srt's server-side functions on a hostile ``search_path``, on a real server.

The functions srt creates in its schema (the append, ``put_object``, the text functions
of search and tree) call built-ins (``array_length``, ``convert_from``, ``jsonb_typeof``,
operators). Before schema v4 those names were looked up on the caller's
``search_path``, so a schema someone else can write (named first in a URL's
``options=-csearch_path=...`` or a role's default path) could stand in for them, and
``convert_from(bytea, text)`` wins over the built-in ``convert_from(bytea, name)`` for a
``'UTF8'`` literal even behind ``pg_catalog``. Since v4 the PL/pgSQL functions run with
``search_path = pg_catalog, pg_temp`` and the SQL ones have bodies bound when they are
created (``BEGIN ATOMIC``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import psycopg_pool
import pytest

import srt
from pg_support import server_url
from srt.store.postgres import PostgresStore
from srt.store.postgres import schema as pg_schema

# Stand-ins for the built-ins srt's functions call: each returns a wrong answer.
_HOSTILE = r"""
CREATE SCHEMA {e};
CREATE FUNCTION {e}.array_length(anyarray, integer) RETURNS integer
    LANGUAGE sql AS $$ SELECT 0 $$;
CREATE FUNCTION {e}.convert_from(bytea, text) RETURNS text
    LANGUAGE sql AS $$ SELECT '{{"role":"evil","content":"evil words"}}'::text $$;
CREATE FUNCTION {e}.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'null' $$;
CREATE FUNCTION {e}.encode(bytea, text) RETURNS text LANGUAGE sql AS $$ SELECT 'evil' $$;
CREATE SCHEMA {e}_op;
CREATE FUNCTION {e}_op.evil_eq(bigint, bigint) RETURNS boolean
    LANGUAGE sql AS $$ SELECT false $$;
CREATE OPERATOR {e}_op.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = {e}_op.evil_eq);
"""


@pytest.fixture
def hostile() -> Iterator[str]:
    """A schema of stand-ins for built-ins (dropped afterwards)."""
    name = "evil_" + secrets.token_hex(4)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(_HOSTILE.replace("{e}", name))
    try:
        yield name
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name}, {name}_op CASCADE")


def _on_path(url: str, schema: str) -> str:
    """``url`` with ``schema``'s stand-ins (functions and an ``=``) before pg_catalog."""
    return url + f"&options=-csearch_path%3D{schema}_op,{schema},pg_catalog,public"


def _use(rt: srt.Runtime, name: str = "a") -> None:
    """Append (with an object at the head), search, draw the tree and verify."""
    s = rt.session(name)
    s.append({"role": "system", "content": "be brief"})
    s.append({"role": "user", "content": [{"type": "text", "text": "hello there"}]})
    store = rt.store
    row = store.get_session(name)
    assert row is not None and row.head is not None
    store.put_object("k", "s", "key", b"value", node=row.head)
    s.append({"role": "assistant", "content": "general kenobi"})
    assert [m["content"] for m in rt.session(name).messages()] == [
        "be brief",
        [{"type": "text", "text": "hello there"}],
        "general kenobi",
    ]
    obj = store.get_object("k", "s", "key")
    assert obj is not None and obj.value == b"value"
    assert store.build_search_index() is not None or store.has_search_index()
    assert [(h.role, h.text) for h in store.search("hello")] == [("user", "hello there")]
    assert [h.text for h in store.search("kenobi")] == ["general kenobi"]
    assert store.search("evil") == []
    tree = store.tree(name)
    drawn = []
    while tree is not None:
        drawn.append((tree.role, tree.text))
        tree = tree.children[0] if tree.children else None
    assert drawn == [
        ("system", "be brief"),
        ("user", "hello there"),
        ("assistant", "general kenobi"),
    ]
    assert store.verify().ok


def test_a_hostile_search_path_in_the_url_changes_nothing(pg_url: str, hostile: str) -> None:
    """srt's connections start with the path pinned: its own statements (``=`` in a
    join) and its functions both see pg_catalog's names."""
    with srt.Runtime(_on_path(pg_url, hostile)) as rt:
        _use(rt)


def test_functions_on_a_callers_pool_ignore_its_search_path(pg_url: str, hostile: str) -> None:
    """A caller's pool is used as it is, its path too: srt's functions pin their own
    names (``array_length`` in the append, ``convert_from`` and ``jsonb_typeof`` in the
    text of search and tree), so the stand-ins never run."""
    schema = pg_url.rsplit("schema=", 1)[1]
    with psycopg_pool.ConnectionPool(
        server_url(),
        kwargs={"options": f"-csearch_path={hostile},pg_catalog,public"},
        min_size=1,
        max_size=2,
        open=True,
    ) as pool:
        with pool.connection() as conn:
            row = conn.execute("SELECT array_length(ARRAY[1, 2], 1)").fetchone()
            assert row == (0,)  # the stand-in is what the pool's connections call
        with srt.Runtime(store=PostgresStore(pool=pool, schema=schema)) as rt:
            _use(rt)


def _pinned(schema: str) -> list[tuple[str, bool, list[str] | None]]:
    """Each srt function: name, whether its body is bound (``BEGIN ATOMIC``), its SETs."""
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.prosqlbody IS NOT NULL, p.proconfig FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s "
            "ORDER BY p.proname, p.pronargs",
            (schema,),
        ).fetchall()
    return [(str(r[0]), bool(r[1]), r[2]) for r in rows]


def test_a_v3_store_migrates_to_pinned_functions(pg_url: str, hostile: str) -> None:
    schema = pg_url.rsplit("schema=", 1)[1]
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "before"})
        assert rt.store.build_search_index() is not None or rt.store.has_search_index()
    pinned = ["search_path=pg_catalog, pg_temp"]
    assert _pinned(schema) == [
        ("append", False, pinned),
        ("append", False, pinned),
        ("message_json", True, None),
        ("message_role", True, None),
        ("message_text", True, None),
        ("put_object", False, pinned),
        ("search_text", True, None),
    ]
    # Back to v3 as v3 left it: its functions as created then, none of them pinned, no
    # search_text (v9's) and the index over the whole text.
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'DROP INDEX "{schema}".messages_fts')
        conn.execute(f'DROP FUNCTION "{schema}".search_text(bytea)')
        for sig in _PLPGSQL:
            conn.execute(f'ALTER FUNCTION "{schema}".{sig} RESET search_path')
        conn.execute(pg_schema.render(pg_schema.MIGRATIONS[2], schema))
        conn.execute(
            f'CREATE INDEX messages_fts ON "{schema}".messages '
            f"USING gin (to_tsvector('simple', \"{schema}\".message_text(body)))"
        )
        conn.execute(f'UPDATE "{schema}".srt_schema SET version = 3')
    assert all(not bound and config is None for _n, bound, config in _pinned(schema))
    with srt.Runtime(_on_path(pg_url, hostile)) as rt:
        assert [m["content"] for m in rt.session("a").messages()] == ["before"]
        assert [h.text for h in rt.store.search("before")] == ["before"]
        _use(rt, "b")
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".srt_schema').fetchall()
    assert rows == [(pg_schema.SCHEMA_VERSION,)] == [(10,)]
    assert [config for _n, _b, config in _pinned(schema)] == [
        pinned,
        pinned,
        None,
        None,
        None,
        pinned,
        None,
    ]


_ARGS = (
    "bigint, bigint, bigint, integer, bytea[], bytea[], bytea[], bytea[], text[], "
    "double precision, jsonb, text[], text[], text[], bytea[], bigint[], "
    "double precision[], boolean[]"
)
_PLPGSQL = (
    f"append({_ARGS})",
    f"append({_ARGS}, bytea)",
    "put_object(text, text, text, bytea, bigint, double precision, double precision)",
)


# Tables named like srt's (and like gc's temporary table), in a schema of the caller's:
# each holds a row, so a statement of srt's that found one would read or change it.
_LOOKALIKES = r"""
CREATE SCHEMA {o};
CREATE TABLE {o}.sessions(id bigint PRIMARY KEY, name text, head bigint,
    created double precision, updated double precision, meta text);
INSERT INTO {o}.sessions VALUES (1, 'a', 1, 0, 0, NULL);
CREATE TABLE {o}.nodes(id bigint, parent bigint, message bigint, depth integer,
    prefix bytea, meta bytea, status text);
INSERT INTO {o}.nodes VALUES (1, NULL, 1, 1, '\x00', NULL, NULL);
CREATE TABLE {o}.messages(id bigint, hash bytea, body bytea);
INSERT INTO {o}.messages VALUES (1, '\x00', '{{"role":"user","content":"not srt''s"}}');
CREATE TABLE {o}.objects(id bigint, kind text, scope text, key text, value bytea,
    node bigint, expires double precision, created double precision,
    updated double precision);
INSERT INTO {o}.objects VALUES (1, 'k', 's', 'key', '\x00', NULL, 0, 0, 0);
CREATE TABLE {o}.calls(id bigint, session bigint);
INSERT INTO {o}.calls VALUES (1, 1);
CREATE TABLE {o}.srt_gc_live(id bigint);
INSERT INTO {o}.srt_gc_live VALUES (1);
"""


def _tables_of(schema: str) -> dict[str, object]:
    """Every row of every table in ``schema``, and each table's constraints."""
    out: dict[str, object] = {}
    with psycopg.connect(server_url(), autocommit=True) as conn:
        names = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
        for (name,) in names:
            out[name] = conn.execute(f'SELECT * FROM "{schema}"."{name}" ORDER BY 1').fetchall()
            out[name + " constraints"] = conn.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY 1",
                (f'"{schema}"."{name}"',),
            ).fetchall()
    return out


@pytest.mark.parametrize("path", ["{o}", "{o}, pg_temp, pg_catalog"])
def test_a_callers_pool_on_another_schema_never_meets_its_tables(pg_url: str, path: str) -> None:
    """A caller's pool whose connections look names up in a schema of the caller's,
    holding tables named like srt's (``sessions``, ``nodes``, ...) and like gc's
    temporary table: srt reads and writes only its own (every statement names its
    schema, gc's table ``pg_temp``), whether the path names ``pg_temp`` after the
    caller's schema or not (then it is searched first)."""
    schema = pg_url.rsplit("schema=", 1)[1]
    other = "app_" + secrets.token_hex(4)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(_LOOKALIKES.replace("{o}", other))
    try:
        before = _tables_of(other)
        assert set(before) >= {"sessions", "nodes", "srt_gc_live"}
        on_path = path.replace("{o}", other).replace(" ", "")
        with psycopg_pool.ConnectionPool(
            server_url(),
            kwargs={"options": f"-csearch_path={on_path}"},
            min_size=1,
            max_size=2,
            open=True,
        ) as pool:
            with pool.connection() as conn:
                row = conn.execute("SELECT name FROM sessions").fetchall()
                assert row == [("a",)]  # the pool's connections find the caller's table
            with srt.Runtime(store=PostgresStore(pool=pool, schema=schema)) as rt:
                assert rt.store.get_session("a") is None
                _use(rt)
                rt.session("a").fork("b", at=2)
                rt.session("b").append({"role": "user", "content": "on b"})
                rt.session("b").rewind(1)
                rt.delete("b")
                assert [i.name for i in rt.store.overview()] == ["a"]
                report = rt.store.gc()
                assert report.nodes == 1 and report.messages == 1  # b's own message
                assert [m["content"] for m in rt.session("a").messages()][2] == "general kenobi"
                assert rt.store.verify().ok
                assert rt.store.get_object("k", "s", "key") is not None
        assert _tables_of(other) == before
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {other} CASCADE")
