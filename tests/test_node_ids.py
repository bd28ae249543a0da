"""Node ids are never given again, on SQLite as on PostgreSQL (the engine-free promise is
in ``tests/store/test_conformance_node_ids.py``). Here: what a reused id did to a user's
session handle, and a file from before SQLite's schema v10 keeps its ids, its search
index and its view, and gains the promise."""

from __future__ import annotations

import pytest

import srt
from srt.store.sqlite import db as sqlite_db
from srt.store.sqlite.schema import MESSAGES_VIEW_SQL, SEARCH_INDEX_SQL
from support import connect

#: ``nodes`` as schema v6-v9 made it: ids a plain INTEGER PRIMARY KEY gives.
_V9_NODES = f"""
DROP VIEW messages;
CREATE TABLE nodes_v9(
    id      INTEGER PRIMARY KEY,
    parent  INTEGER REFERENCES nodes(id),
    depth   INTEGER NOT NULL CHECK (depth >= 1),
    hash    BLOB NOT NULL CHECK (length(hash) = 16),
    prefix  BLOB NOT NULL CHECK (length(prefix) = 16),
    at      INTEGER NOT NULL,
    len     INTEGER NOT NULL CHECK (len >= 0),
    meta    TEXT,
    status  TEXT
);
INSERT INTO nodes_v9 SELECT id, parent, depth, hash, prefix, at, len, meta, status FROM nodes;
DROP TABLE nodes;
ALTER TABLE nodes_v9 RENAME TO nodes;
CREATE INDEX nodes_hash ON nodes(hash, parent);
{MESSAGES_VIEW_SQL};
{SEARCH_INDEX_SQL}
DELETE FROM sqlite_sequence WHERE name = 'nodes';
PRAGMA user_version=9;
"""


def test_a_stale_handle_cannot_rewind_over_another_writers_reply(db_path: str) -> None:
    """Two handles on one session (two processes): one rewinds off the newest message,
    its earlier head expires and gc collects it, then it appends another reply. The
    other handle still holds the old head's id; its rewind must be refused, not
    succeed because the new reply was given the same id and silently drop it."""
    with srt.Runtime(db_path) as ours, srt.Runtime(db_path, history_retention=0) as theirs:
        mine = ours.session("a")
        mine.append({"role": "user", "content": "one"})
        mine.append({"role": "assistant", "content": "two"})
        old_head = mine.head
        other = theirs.session("a")
        other.rewind(1)
        assert theirs.gc().nodes == 1
        other.append({"role": "assistant", "content": "another two"})
        with pytest.raises(srt.ConflictError):
            mine.rewind(1)
        assert [m["content"] for m in theirs.session("a").messages()] == ["one", "another two"]
        assert other.head != old_head


def test_a_v9_file_keeps_its_ids_and_never_gives_a_collected_one_again(db_path: str) -> None:
    with srt.Runtime(db_path, history_retention=0) as rt:
        s = rt.session("a")
        for text in ("alpha", "bravo", "charlie", "delta"):
            s.append({"role": "user", "content": text})
        rt.store.search("bravo")  # the file has a search index (its triggers name nodes)
        heads = {"a": s.head}
        messages = s.messages()
    with connect(db_path) as conn:  # the file as schema v9 left it
        conn.execute(_V9_NODES)
        ids = [r[0] for r in conn.execute("SELECT id FROM nodes ORDER BY id")]
    with srt.Runtime(db_path, history_retention=0) as rt:
        s = rt.session("a")
        assert s.head == heads["a"] and s.messages() == messages
        with connect(db_path) as conn:
            assert [r[0] for r in conn.execute("SELECT id FROM nodes ORDER BY id")] == ids
        s.rewind(2)
        assert rt.gc().nodes == 2
        s.append({"role": "user", "content": "echo"})
        assert s.head is not None and s.head > ids[-1]
        # the search index's triggers came back with the table
        assert [h.text for h in rt.store.search("echo")] == ["echo"]
        assert rt.store.search("delta") == []
        assert rt.store.verify().ok
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").get == sqlite_db.SCHEMA_VERSION == 10
        assert conn.execute("SELECT count(*) FROM messages").get == 3
