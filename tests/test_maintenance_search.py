"""srt.maintenance's search: words found in every session, text parts read, and the full
text index (built at the first search, following appends, rewinds, gc and writers that
opened the file before it existed; old files migrated; dropped; two processes or threads
searching first at once)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import make_old_db
from rel_support.waits import joined
from srt.store.sqlite import db as _db
from srt.store.sqlite import schema as _schema
from support import connect
from test_maintenance import _WRITER, tree_db, user

__all__ = ["tree_db"]  # the fixture, imported for the tests here


def test_search_finds_words_in_every_session(tree_db: srt.Runtime) -> None:
    hits = tree_db.store.search("zebra")
    places = {h.text: h.places for h in hits}
    # Words match whole (zebras is another word), in text only: not in roles or JSON keys.
    assert places == {
        "You are a zebra expert.": (("alt", 1), ("main", 1)),
        "How fast is a zebra?": (("alt", 2), ("main", 2)),
    }
    assert {h.text for h in tree_db.store.search("zebra*")} == {
        *places,
        "What do zebras eat?",
    }
    assert tree_db.store.search("role") == []
    assert tree_db.store.search("content") == []
    assert [h.role for h in tree_db.store.search("QUOKKA")] == ["user"]  # not quokkas
    assert sorted(h.role for h in tree_db.store.search("QUOKKA*")) == ["assistant", "user"]
    # Punctuation and operators are literal unless syntax=True.
    assert [h.text for h in tree_db.store.search('km/h. "65')] == ["About 65 km/h."]
    assert tree_db.store.search("zebra OR quokka") == []
    assert len(tree_db.store.search("zebra OR quokka", syntax=True)) == 3
    assert len(tree_db.store.search("zebra*", limit=1)) == 1
    with pytest.raises(srt.ConfigError):
        tree_db.store.search("  ")
    with pytest.raises(srt.ConfigError, match=r"not a valid FTS5 query: it ends too soon"):
        tree_db.store.search("zebra AND (", syntax=True)


def test_search_reads_text_parts_and_skips_the_rest(rt: srt.Runtime) -> None:
    rt.session("parts").append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first ünïcödé part"},
                {"type": "image_url", "image_url": {"url": "https://example.com/pangolin.png"}},
                {"type": "text", "text": "second part"},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "armadillo", "arguments": "{}"}}],
        },
    )
    (hit,) = rt.store.search("unicode second")  # accents folded
    assert hit.text == "first ünïcödé part\nsecond part"
    assert rt.store.search("pangolin") == rt.store.search("armadillo") == []


def test_the_index_follows_appends_rewinds_and_gc(tree_db: srt.Runtime) -> None:
    main = tree_db.session("main")
    main.append(user("A question about okapis."))
    assert tree_db.store.search("okapis")[0].places == (("main", 6),)
    main.rewind(1)  # the message stays stored, but no session reaches it
    assert tree_db.store.search("okapis") == []
    tree_db.delete("main")
    assert tree_db.store.search("quokka") == []
    report = tree_db.store.gc()
    assert (report.nodes, report.messages) == (3, 3)
    assert tree_db.store.verify().ok  # the index holds exactly the stored messages
    with connect(tree_db.path) as conn:
        indexed = conn.execute("SELECT count(*) FROM messages_fts_docsize").get
        stored = conn.execute("SELECT count(*) FROM messages").get
    assert indexed == stored == 5


# Schema v3 as it was first written: it created the search index in every file, and
# such files exist. (Whitespace aside, the SQL that step ran, message_text_sql expanded.)
_V3_AS_FIRST_WRITTEN = """
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id,
    coalesce(CASE json_type(CAST(new.body AS TEXT), '$.content')
    WHEN 'text' THEN json_extract(CAST(new.body AS TEXT), '$.content')
    WHEN 'array' THEN (
        SELECT group_concat(json_extract(p.value, '$.text'), char(10))
        FROM json_each(CAST(new.body AS TEXT), '$.content') AS p
        WHERE json_extract(p.value, '$.type') = 'text')
    END, ''));
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.id;
END;
INSERT INTO messages_fts(rowid, text) SELECT id,
    coalesce(CASE json_type(CAST(body AS TEXT), '$.content')
    WHEN 'text' THEN json_extract(CAST(body AS TEXT), '$.content')
    WHEN 'array' THEN (
        SELECT group_concat(json_extract(p.value, '$.text'), char(10))
        FROM json_each(CAST(body AS TEXT), '$.content') AS p
        WHERE json_extract(p.value, '$.type') = 'text')
    END, '') FROM messages;
"""

_SEARCH_OBJECTS = (
    "SELECT type, name FROM sqlite_schema WHERE name LIKE 'messages_fts%' ORDER BY type, name"
)


def _search_objects(path: str) -> list[tuple[str, str]]:
    with connect(path) as conn:
        return [tuple(r) for r in conn.execute(_SEARCH_OBJECTS)]


def test_a_file_never_searched_has_no_search_index(tree_db: srt.Runtime) -> None:
    path = tree_db.path
    assert _search_objects(path) == []
    assert not tree_db.store.has_search_index()
    # verify, gc and vacuum do without it.
    assert tree_db.store.verify().ok
    tree_db.delete("main")
    assert (tree_db.store.gc().messages, tree_db.store.vacuum().checkpointed) == (2, True)
    assert tree_db.store.verify().ok
    assert _search_objects(path) == []


def test_the_first_search_builds_the_index_over_earlier_messages(tree_db: srt.Runtime) -> None:
    built: list[int] = []
    (hit,) = tree_db.store.search("quokka", announce=built.append)
    assert hit.places == (("main", 4),)
    assert built == [7]  # every stored message, reached or not
    assert _search_objects(tree_db.path) == [
        ("table", "messages_fts"),
        ("table", "messages_fts_config"),
        ("table", "messages_fts_data"),
        ("table", "messages_fts_docsize"),
        ("table", "messages_fts_idx"),
        ("trigger", "messages_fts_delete"),
        ("trigger", "messages_fts_insert"),
    ]
    assert tree_db.store.search("zebra*", announce=built.append)
    assert tree_db.store.build_search_index() is None
    assert built == [7]  # built once
    assert tree_db.store.verify().ok


def test_the_index_follows_writers_that_opened_the_file_before_it_existed(
    tree_db: srt.Runtime,
) -> None:
    path = tree_db.path
    main = tree_db.session("main")
    main.append(user("before the index: wombat"))  # this thread's connection is warm
    with srt.Runtime(path) as other:
        assert other.store.build_search_index() == 8
    main.append(user("after the index, same runtime: numbat"))
    subprocess.run(
        [sys.executable, "-c", _WRITER, path, "proc", "1"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert [h.text for h in tree_db.store.search("wombat")] == ["before the index: wombat"]
    assert [h.places for h in tree_db.store.search("numbat")] == [(("main", 7),)]
    assert [h.places for h in tree_db.store.search("proc turn")] == [(("proc", 1),)]
    assert tree_db.store.verify().ok


def test_a_v2_file_migrates_without_an_index(db_path: str) -> None:
    make_old_db(db_path, 2)  # a genuine v2 file, written with v1 and v2's SQL only
    with srt.Runtime(db_path) as rt:
        assert _search_objects(db_path) == []  # no migration creates the index
        hits = rt.store.search("old.0.0")
        assert {h.places for h in hits} == {(("old-0", 1),), (("old-0", 2),)}
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").get == _db.SCHEMA_VERSION == 9


def test_a_v3_file_with_the_index_of_the_first_v3_keeps_it(db_path: str) -> None:
    make_old_db(db_path, 2)  # a genuine v2 file: its messages in a table
    with connect(db_path) as conn:  # as the first v3 step left a v2 file: index and all
        with conn:
            conn.execute("DELETE FROM sessions WHERE name <> 'old-0'")
            conn.execute("UPDATE sessions SET name = 'old'")
            conn.execute(_V3_AS_FIRST_WRITTEN)
            conn.execute("PRAGMA user_version=3")
        before = conn.execute(_SEARCH_OBJECTS).fetchall()
    assert len(before) == 7
    with srt.Runtime(db_path) as rt:  # v5 moves the messages to the heap, index and all
        assert rt.store.has_search_index()
        assert {h.places for h in rt.store.search("old.0.0")} == {(("old", 1),), (("old", 2),)}
        assert rt.store.gc().messages == 6  # the other old session's
        old = rt.session("old")
        old.append(user("written before the migration's index was used"))
        old.append(user("written after, through the new triggers"))
        assert rt.store.build_search_index() is None  # nothing to build
        assert [h.places for h in rt.store.search("written")] in (
            [(("old", 7),), (("old", 8),)],
            [(("old", 8),), (("old", 7),)],
        )
        assert rt.store.verify().ok
        old.fork("gone").append(user("soon garbage"))
        rt.delete("gone")
        assert rt.store.gc().messages == 1
        assert rt.store.search("garbage") == []
        assert rt.store.verify().ok
    assert _search_objects(db_path) == before


def test_drop_search_index(tree_db: srt.Runtime) -> None:
    assert tree_db.store.drop_search_index() is False
    assert tree_db.store.search("quokka")
    assert tree_db.store.drop_search_index() is True
    assert _search_objects(tree_db.path) == []
    tree_db.session("main").append(user("no index now: dugong"))  # no trigger fires
    assert tree_db.store.verify().ok
    (hit,) = tree_db.store.search("dugong")  # built again, over all 8
    assert hit.places == (("main", 6),)


_FIRST_SEARCH = textwrap.dedent(
    """
    import glob, os, sys, time, srt
    from srt.store.sqlite import schema as _schema
    path, meet, me = sys.argv[1:]
    seen = []  # what each look for the index found

    def has(conn):
        seen.append(real(conn))
        if len(seen) == 1 and not seen[0]:  # both must look before either builds
            open(os.path.join(meet, me), "w").close()
            t0 = time.monotonic()
            while len(glob.glob(os.path.join(meet, "*"))) < 2 and time.monotonic() - t0 < 30:
                time.sleep(0.001)
        return seen[-1]

    real, _schema.has_search_index = _schema.has_search_index, has
    with srt.Runtime(path) as rt:
        built = []
        hits = rt.store.search("needle", limit=5, announce=built.append)
    print(len(hits), built, seen)
    """
)


def _haystack(path: str, n: int) -> None:
    with srt.Runtime(path) as rt:
        s = rt.session("hay")
        s.append(*(user(f"straw {i} " + "hay " * 100) for i in range(n)))
        s.append(user("a needle"))


def test_two_processes_search_first_at_once(tmp_path: Path) -> None:
    path, meet = str(tmp_path / "srt.db"), tmp_path / "meet"
    meet.mkdir()
    _haystack(path, 3000)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FIRST_SEARCH, path, str(meet), str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # Both found no index; one built it, the other waited for the write lock, looked
    # again and found it built.
    assert sorted(out for out, _err in outs) == [
        "1 [3001] [False, False]\n",
        "1 [] [False, True]\n",
    ]
    with srt.Runtime(path) as rt:
        assert rt.store.verify().ok


def test_two_threads_search_first_at_once(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _haystack(db_path, 500)
    meet = threading.Barrier(2, timeout=30)
    seen = threading.local()
    real = _schema.has_search_index

    def has(conn: Any) -> bool:
        found = real(conn)
        if not getattr(seen, "looked", False):  # both look before either builds
            seen.looked = True
            assert not found
            meet.wait()
        return found

    monkeypatch.setattr(_schema, "has_search_index", has)
    built: list[int] = []
    results: list[Any] = []

    def first_search() -> None:
        with srt.Runtime(db_path) as rt:
            try:
                results.append(rt.store.search("needle", announce=built.append))
            except BaseException as exc:
                results.append(exc)

    threads = [threading.Thread(target=first_search) for _ in range(2)]
    for t in threads:
        t.start()
    joined(*threads)
    assert [[h.text for h in r] for r in results] == [["a needle"], ["a needle"]]
    assert built == [501]
    monkeypatch.undo()
    with srt.Runtime(db_path) as rt:
        assert rt.store.verify().ok
