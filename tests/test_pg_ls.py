"""``srt ls`` on PostgreSQL reads no message body (schema v8's ``user_turn`` and ``size``
columns say what its first bytes and its length would), and a store made at v7 gets
them on open, filled from the bodies already there, with the same listing."""

from __future__ import annotations

import dataclasses
import json
import random
import secrets
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

import srt
from pg_support import server_url
from srt.store.base import USER_PREFIX
from srt.store.postgres import maintenance
from srt.store.postgres import schema as pg_schema
from srt.store.reports import session_overviews
from support import run_cli

#: ``views.overview``'s statistics at schema v7: the role from each body's first bytes,
#: the tokens from its length.
_V7_STATS = (
    "SELECT up.sid, count(*), sum((substring(m.body from 1 for %s) = %s)::int), "
    "sum((length(m.body) + 3) / 4), max(CASE WHEN up.parent IS NULL THEN up.id END) "
    "FROM up JOIN {s}.messages m ON m.id = up.message GROUP BY up.sid"
)
_V7_ROWS = (
    "SELECT s.id, s.name, s.created, s.updated, n.prefix "
    "FROM {s}.sessions s LEFT JOIN {s}.nodes n ON n.id = s.head ORDER BY s.name"
)


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def _fill(rt: srt.Runtime) -> None:
    """Sessions of every kind of message, a fork, a TOASTed body and an empty session."""
    rng = random.Random(8)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(400)]
    big = " ".join(rng.choices(words, k=40_000))  # 240 kB, lz4 to about a third
    a = rt.session("a")
    a.append({"role": "system", "content": "be brief"})
    a.append({"role": "user", "content": "hi"})
    a.append({"role": "assistant", "content": 'I said {"role":"user" once'})
    a.append({"role": "user", "content": [{"type": "text", "text": "parts"}]})
    a.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    )
    a.append({"role": "tool", "tool_call_id": "c1", "content": "42"})
    a.append({"role": "user", "content": big})
    a.append({"role": "assistant", "content": "ünïcödé " * 50})
    a.fork("b", at=3).append({"role": "user", "content": "another way"})
    rt.session("c").append({"role": "user", "content": "hi"})  # the same message, stored once
    rt.session("empty")


def test_a_v7_store_gets_the_columns_filled_and_lists_the_same(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made by v7's migrations, listed by v7's query, then opened by this srt:
    migrated to v8 with every row's columns filled, and ``srt ls`` prints what v7 did
    (and what SQLite does for the same sessions)."""
    schema = _schema(pg_url)
    with monkeypatch.context() as m:  # this srt as it was at v7
        m.setattr(pg_schema, "MIGRATIONS", pg_schema.MIGRATIONS[:7])
        m.setattr(pg_schema, "SCHEMA_VERSION", 7)
        with srt.Runtime(pg_url) as rt:
            _fill(rt)
            db = rt.store.db
            with db.connection() as conn:
                columns = [
                    r[0]
                    for r in conn.execute(
                        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                        (f'"{schema}".messages',),
                    )
                ]
                stats = conn.execute(
                    db.sql(maintenance.CHAINS + _V7_STATS), (len(USER_PREFIX), USER_PREFIX)
                ).fetchall()
                rows = conn.execute(db.sql(_V7_ROWS)).fetchall()
                toast = conn.execute(
                    "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = %s::regclass",
                    (f'"{schema}".messages',),
                ).fetchone()
                assert toast is not None
                toasted = conn.execute(
                    db.sql(
                        "SELECT pg_column_compression(body), "
                        f"(SELECT count(DISTINCT chunk_id) FROM {toast[0]}) FROM {{s}}.messages "
                        "WHERE length(body) > 100000"
                    )
                ).fetchall()
    assert columns == ["id", "hash", "body"]  # v7's table, no v8 column yet
    assert toasted == [("lz4", 1)]  # the big body is compressed, out of line
    before = [dataclasses.asdict(o) for o in session_overviews(stats, rows)]
    assert [(o["name"], o["turns"], o["messages"]) for o in before] == [
        ("a", 3, 8),
        ("b", 2, 4),
        ("c", 1, 1),
        ("empty", 0, 0),
    ]

    code, out, err = run_cli("--db", pg_url, "ls", "--json")  # opens, so migrates
    assert (code, err) == (0, "")
    assert json.loads(out) == before
    with psycopg.connect(server_url(), autocommit=True) as conn:
        version = conn.execute(f'SELECT version FROM "{schema}".srt_schema').fetchall()
        filled = conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE user_turn = (substring(body from 1 "
            f"for {len(USER_PREFIX)}) = %s) AND size = length(body)), "
            "count(*) FILTER (WHERE user_turn) "
            f'FROM "{schema}".messages',
            (USER_PREFIX,),
        ).fetchone()
    assert version == [(pg_schema.SCHEMA_VERSION,)] == [(10,)]
    assert filled == (9, 9, 4)  # "hi" is stored once

    def more(rt: srt.Runtime) -> list[tuple[str, int, int, int, int]]:
        listed = [(o.name, o.turns, o.messages, o.tokens, o.branches) for o in rt.store.overview()]
        rt.session("c").append({"role": "assistant", "content": "x" * 9000})
        rt.session("c").append({"role": "user", "content": "y"})
        return listed + [
            (o.name, o.turns, o.messages, o.tokens, o.branches) for o in rt.store.overview()
        ]

    with srt.Runtime(str(tmp_path / "srt.db")) as rt:
        _fill(rt)
        on_sqlite = more(rt)
    with srt.Runtime(pg_url) as rt:  # appends after the migration fill the columns too
        assert more(rt) == on_sqlite
    assert on_sqlite[-2][:3] == ("c", 2, 3)


def test_ls_reads_no_body(pg_url: str) -> None:
    """``overview`` (``srt ls``) runs for a role that may not read ``messages.body``:
    it reads the role and the size from their columns, not from any body."""
    schema = _schema(pg_url)
    with srt.Runtime(pg_url) as rt:
        _fill(rt)
        expected = rt.store.overview()
    role = "ls_" + secrets.token_hex(4)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attnum > 0 AND NOT attisdropped AND attname <> 'body' ORDER BY attnum",
                (f'"{schema}".messages',),
            )
        ]
        assert columns == ["id", "hash", "user_turn", "size"]
        for sql in [
            f"CREATE ROLE {role} LOGIN",
            f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
            f'GRANT SELECT ON "{schema}".srt_schema, "{schema}".sessions, "{schema}".nodes '
            f"TO {role}",
            f'GRANT SELECT ({", ".join(columns)}) ON "{schema}".messages TO {role}',
        ]:
            conn.execute(sql)
    try:
        url = pg_url.replace("://srt@", f"://{role}@", 1)
        assert url != pg_url
        with srt.Runtime(url) as rt:
            with pytest.raises(srt.SrtError):  # the role really cannot read a body
                rt.session("a").messages()
            assert rt.store.overview() == expected
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _bench(*args: str) -> dict[str, Any]:
    """``bench/ARGS`` on the tests' server: the JSON it prints."""
    out = subprocess.run(
        [sys.executable, *args, "--url", server_url()],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1] / "bench",
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(out.stdout[out.stdout.index("{") :])  # type: ignore[no-any-return]


def test_the_ls_bench_times_the_overview_against_v7s_query() -> None:
    res = _bench("pg_ls.py", "--sessions", "3", "--turns", "2", "--size", "3000", "--reps", "1")
    assert res["srt_ls_lines"] == 4 and res["messages"] == 12
    assert set(res["queries"]) == {"as srt ls", "v7: first bytes", "length only", "no message row"}


def test_the_toast_bench_measures_every_variant_on_the_same_workload() -> None:
    res = _bench("pg_toast.py", "--turns", "5", "--reps", "1")["results"]
    sqlite = res.pop("sqlite_cold_open_build_ms")
    assert sqlite > 0 and len(res) == 7
    texts = {r["chat_text_bytes"] for r in res.values()}
    assert len(texts) == 1  # the same chat in every variant
    for r in res.values():
        assert r["chat_db_vs_text"] > 0 and r["dedup_db_vs_text"] > 0
        assert r["cold_open_build_ms"] > 0 and r["overview_ms"] > 0


def test_the_fetch_shape_bench_fetches_the_same_bytes_in_every_shape() -> None:
    res = _bench("pg_fetch_shape.py", "--turns", "5", "--pack", "4", "--reps", "1")
    assert res["bodies"] == 11 and res["rows"] == {"per_message": 11, "packs": 3}
    assert res["bytes"] > 0 and res["server_execution_ms"] >= 0
    assert set(res["ms"]) == {
        "connect",
        *(f"{how}_{t}" for how in ("fetch", "libpq") for t in res["table_bytes"]),
    }
    assert all(ms > 0 for ms in res["ms"].values())


def test_the_ls_bench_times_the_migration_of_a_v7_store() -> None:
    res = _bench("pg_ls.py", "--sessions", "2", "--turns", "1", "--reps", "1", "--at-v7")
    assert res["migrate_v7_to_v8_s"] >= 0 and res["srt_ls_lines"] == 3
