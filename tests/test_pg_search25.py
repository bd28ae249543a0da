"""PostgreSQL search over a message too big for a tsvector (docs/cli.md, "srt search"):
PostgreSQL refuses a tsvector over 1 MB, which the words of about 2 MB of varied text
make, so the index reads the first ``SEARCH_TEXT_CAP`` characters of each message's
text. A huge message must neither break the first search (building the index) nor its
own append once the index is there, and a store whose index was built before the cap
gets it dropped when it opens and rebuilt by its next search. And ``verify`` names a
node whose metadata is not a JSON object, as on SQLite (tests/test_feat_verify.py)."""

from __future__ import annotations

import random
import string

import psycopg
import pytest

import srt
from pg_support import server_url
from srt.store.postgres import schema as pg_schema
from srt.store.postgres import search as pg_search

#: The cap as documented (docs/cli.md): the first 128,000 characters are searched.
CAP = 128_000

#: The search index as schema v8 (and every srt before the cap) built it.
_V8_INDEX = (
    'CREATE INDEX messages_fts ON "{s}".messages '
    "USING gin (to_tsvector('simple', \"{s}\".message_text(body)))"
)


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


def _huge(seed: int = 1) -> str:
    """About 3 MB of distinct random words (a tsvector of about 3 MB), with
    ``firstneedle`` first, ``midneedle`` within the cap and ``lastneedle`` last."""
    rnd = random.Random(seed)
    words = ["firstneedle"]
    size = len(words[0])
    while size < 3_000_000:
        word = "".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(6, 14)))
        words.append(word)
        size += len(word) + 1
        if len(words) == 5000:
            words.append("midneedle")
    words.append("lastneedle")
    text = " ".join(words)
    assert text.index("midneedle") < CAP < text.index("lastneedle")
    return text


def _places(rt: srt.Runtime, text: str, **kw: object) -> list[tuple[tuple[str, int], ...]]:
    return [h.places for h in rt.store.search(text, **kw)]  # type: ignore[arg-type]


def test_a_huge_message_appends_with_the_index_present(pg_url: str) -> None:
    huge = _huge()
    with srt.Runtime(pg_url) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "hello world"})
        assert _places(rt, "hello") == [(("a", 1),)]  # builds the index
        assert rt.store.has_search_index()
        s.append({"role": "user", "content": huge})  # (refused before the cap)
        s.append({"role": "assistant", "content": "after the huge one, hello"})
        assert s.messages()[1]["content"] == huge  # stored whole
        assert _places(rt, "firstneedle") == [(("a", 2),)]
        assert _places(rt, "midneedle") == [(("a", 2),)]
        assert _places(rt, "midneed*") == [(("a", 2),)]
        assert _places(rt, '"firstneedle"', syntax=True) == [(("a", 2),)]
        assert _places(rt, "lastneedle") == []  # past the cap: not indexed, as documented
        assert sorted(_places(rt, "hello")) == [(("a", 1),), (("a", 3),)]
        [hit] = rt.store.search("firstneedle")
        assert hit.text == huge  # the hit's text is the whole message's
        assert rt.store.verify().ok


def test_a_huge_message_stored_before_the_first_search(pg_url: str) -> None:
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": _huge(2)})
        rt.session("b").append({"role": "user", "content": "a small one"})
        assert not rt.store.has_search_index()
        assert _places(rt, "firstneedle") == [(("a", 1),)]  # (its build failed for good)
        assert _places(rt, "small") == [(("b", 1),)]
        assert rt.store.has_search_index()


def _worst(chars: int) -> str:
    """The text that makes the most tsvector bytes per character: hyphenated words of
    distinct 4-byte letters, two parts of 255 letters each (``a-b`` is indexed as
    ``a-b``, ``a`` and ``b``: each letter twice, 4 bytes each, and the whole word stays
    under the 2,047 bytes of the longest lexeme), about 7.996 bytes per character."""

    def part(j: int) -> str:  # 255 letters of CJK Extension B, no two parts alike
        start = 0x20000 + (j * 257) % 42_000
        return "".join(chr(start + i) for i in range(255))

    words = [part(2 * w) + "-" + part(2 * w + 1) + " " for w in range(chars // 512 + 1)]
    return "".join(words)[:chars]


def test_the_worst_text_for_a_tsvector_stays_under_its_limit(pg_url: str) -> None:
    worst = _worst(CAP + 20_000)
    refused = pytest.raises(psycopg.errors.ProgramLimitExceeded, match="too long for tsvector")
    with psycopg.connect(server_url()) as conn, refused:  # uncapped, PostgreSQL refuses it
        conn.execute("SELECT to_tsvector('simple', %s)", (worst,))
    with srt.Runtime(pg_url) as rt:
        s = rt.session("w")
        s.append({"role": "user", "content": "first"})
        rt.store.search("first")  # builds the index
        s.append({"role": "user", "content": worst})
        assert _places(rt, worst[:255]) == [(("w", 2),)]
        with rt.store.db.connection() as conn:
            row = conn.execute(
                rt.store.db.sql(
                    f"SELECT length({{s}}.search_text(body)), "
                    f"pg_column_size({pg_schema.SEARCH_VECTOR}) FROM {{s}}.messages "
                    "WHERE length(body) > 100000"
                )
            ).fetchone()
    assert row is not None
    assert row[0] == CAP == pg_schema.SEARCH_TEXT_CAP
    assert 1_000_000 < row[1] < 2**20  # near the limit, under it


def test_the_search_uses_the_index(pg_url: str) -> None:
    """The query's expression is the index's, so the planner can use it."""
    with srt.Runtime(pg_url) as rt:
        rt.session("a").append({"role": "user", "content": "hello world"})
        rt.store.search("hello")
        db = rt.store.db
        for query, args in (pg_search.query("hello wor*", False), pg_search.query("hello", True)):
            with db.connection() as conn, conn.transaction():
                conn.execute("SET LOCAL enable_seqscan = off")
                plan = conn.execute(
                    "EXPLAIN " + pg_search.search_sql(db, query), [*args, 50, 0]
                ).fetchall()
            assert any(pg_schema.SEARCH_INDEX in r[0] for r in plan), plan


def test_a_v8_store_gets_its_index_rebuilt_under_the_cap(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made and indexed by v8's srt, then opened by this one: migrated, its old
    index dropped (the next search builds one over the capped text, outside the open:
    tests/test_pg_text_upgrade.py), so a huge message appends and is found."""
    schema = _schema(pg_url)
    with monkeypatch.context() as m:  # this srt as it was at v8
        m.setattr(pg_schema, "MIGRATIONS", pg_schema.MIGRATIONS[:8])
        m.setattr(pg_schema, "SCHEMA_VERSION", 8)
        with srt.Runtime(pg_url) as rt:
            rt.session("a").append({"role": "user", "content": "hello world"})
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(_V8_INDEX.replace("{s}", schema))
        old = conn.execute(f'SELECT version FROM "{schema}".srt_schema').fetchall()
    assert old == [(8,)]
    with srt.Runtime(pg_url) as rt:  # opens, so migrates
        rt.session("a").append({"role": "user", "content": _huge(3)})
        assert _places(rt, "firstneedle") == [(("a", 2),)]
        assert _places(rt, "hello") == [(("a", 1),)]
        assert rt.store.verify().ok
    with psycopg.connect(server_url(), autocommit=True) as conn:
        version = conn.execute(f'SELECT version FROM "{schema}".srt_schema').fetchall()
        [(index,)] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            (schema, pg_schema.SEARCH_INDEX),
        ).fetchall()
    assert version == [(pg_schema.SCHEMA_VERSION,)] == [(10,)]
    assert "search_text(body)" in index and "message_text" not in index


def test_a_v8_store_without_an_index_gets_none(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(pg_schema, "MIGRATIONS", pg_schema.MIGRATIONS[:8])
        m.setattr(pg_schema, "SCHEMA_VERSION", 8)
        with srt.Runtime(pg_url) as rt:
            rt.session("a").append({"role": "user", "content": "hello world"})
    with srt.Runtime(pg_url) as rt:
        assert not rt.store.has_search_index()  # the migration builds none
        assert _places(rt, "hello") == [(("a", 1),)]


# -- verify: node metadata ------------------------------------------------------------


@pytest.mark.parametrize("damage", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_verify_names_a_node_whose_metadata_is_not_a_json_object(
    pg_url: str, damage: bytes
) -> None:
    with srt.Runtime(pg_url) as rt:
        s = rt.session("victim")
        s.append({"role": "user", "content": "hello"})
        s.append({"role": "assistant", "content": "hi", "metadata": {"tag": "x"}})
        s.fork("kid").append({"role": "user", "content": "more", "metadata": {"ok": 1}})
        assert rt.store.verify().ok
    schema = _schema(pg_url)
    with psycopg.connect(server_url(), autocommit=True) as conn:
        [(nid,)] = conn.execute(
            f'UPDATE "{schema}".nodes SET meta = %s WHERE depth = 2 RETURNING id', (damage,)
        ).fetchall()
    with srt.Runtime(pg_url) as rt:
        report = rt.store.verify()
    assert not report.ok
    [fault] = report.faults
    assert (fault.kind, fault.table, fault.row) == ("node", "nodes", nid)
    assert fault.detail == "its metadata is not a JSON object"
    assert sorted(fault.places) == [("kid", 2), ("victim", 2)]
