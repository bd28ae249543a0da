"""PostgreSQL's ``message_text`` parses a message's JSON once (schema v10): v3's to v9's
read it in a subquery the planner pulled up, so the JSON was parsed once per reference
to it, twice a message. The text, the search index's text and its tsvector stay the same
to the byte across the migration, and an index built before is kept, not rebuilt."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import srt
from pg_support import server_url
from srt.store.postgres import schema as pg_schema

CAP = 128_000

#: Messages of every shape the text functions read.
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief. Ünïcödé façade naïve café"},
    {"role": "user", "content": "emoji 🎉🚀 and CJK 漢字テキスト, needle one"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look at needle two"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "text", "text": "second part 😀 ﬁ ligature"},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q": "needle three"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"result": "needle four"}'},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": "a NUL \x00 inside, needle five"},
    {"role": "user", "content": "needle six " + "longword " * 20_000 + "tailneedle"},
    {"role": "assistant", "content": [{"type": "text", "text": "x" * 10 + " needle seven"}]},
]

QUERIES = [("needle", False), ("needle*", False), ("café", False), ("🎉🚀", False),
           ('"needle two"', True), ("tailneedle", False), ("longword", False)]  # fmt: skip


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def _texts(schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        return conn.execute(
            f'SELECT id, "{schema}".message_role(body), "{schema}".message_text(body), '
            f'"{schema}".search_text(body), '
            f"to_tsvector('simple', \"{schema}\".search_text(body))::text "
            f'FROM "{schema}".messages ORDER BY id'
        ).fetchall()


def _found(rt: srt.Runtime) -> list[list[tuple[str, tuple[tuple[str, int], ...]]]]:
    return [
        [(h.text, h.places) for h in rt.store.search(q, syntax=fts, limit=50)] for q, fts in QUERIES
    ]


def _index(schema: str) -> tuple[Any, ...] | None:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        return conn.execute(
            "SELECT c.oid, c.relfilenode, i.indisvalid FROM pg_class c "
            "JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema, pg_schema.SEARCH_INDEX),
        ).fetchone()


def _json_calls(schema: str) -> tuple[int, int]:
    """The calls of ``message_json`` that reading every message's text makes, and the
    messages read."""
    with psycopg.connect(server_url()) as conn, conn.transaction():
        conn.execute("SET LOCAL track_functions = 'all'")
        read = conn.execute(f'SELECT "{schema}".message_text(body) FROM "{schema}".messages')
        n = len(read.fetchall())
        row = conn.execute(
            "SELECT pg_stat_get_xact_function_calls(%s::regprocedure)",
            (f'"{schema}".message_json(bytea)',),
        ).fetchone()
    assert row is not None
    return int(row[0]), n


def test_message_text_parses_each_body_once(pg_url: str) -> None:
    with srt.Runtime(pg_url) as rt:
        s = rt.session("a")
        for m in MESSAGES:
            s.append(m)
    calls, read = _json_calls(_schema(pg_url))
    assert read == len(MESSAGES)
    assert calls == read  # (v9: twice as many)


def test_text_and_search_are_the_same_after_the_v10_migration(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = _schema(pg_url)
    with monkeypatch.context() as m:  # this srt as it was at v9
        m.setattr(pg_schema, "MIGRATIONS", pg_schema.MIGRATIONS[:9])
        m.setattr(pg_schema, "SCHEMA_VERSION", 9)
        with srt.Runtime(pg_url) as rt:
            s = rt.session("a")
            for msg in MESSAGES:
                s.append(msg)
            before = _found(rt)  # builds the index at v9
        texts = _texts(schema)
        index = _index(schema)
    # v9's function, as released: two parses a message, one for the content: null one
    assert _json_calls(schema)[0] == 2 * len(MESSAGES) - 1
    assert index is not None and index[2]
    assert len(texts) == len(MESSAGES)
    assert len(texts[8][3]) == CAP < len(texts[8][2])  # the long one, capped
    assert [len(hits) for hits in before] == [6, 6, 1, 1, 1, 0, 1]  # (tailneedle: past the cap)
    with srt.Runtime(pg_url) as rt:  # migrates to v10
        after = _found(rt)
        assert rt.store.verify().ok
    assert _texts(schema) == texts
    assert after == before
    assert _index(schema) == index  # kept: the same index, not rebuilt
    assert _json_calls(schema)[0] == len(MESSAGES)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        rows = conn.execute(f'SELECT version FROM "{schema}".srt_schema').fetchall()
    assert rows == [(pg_schema.SCHEMA_VERSION,)] == [(10,)]
