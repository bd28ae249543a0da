"""Session ids are never given again, on SQLite as on PostgreSQL: objects scoped by a
session's id (a task's started tool calls, records of earlier heads) may outlive it, and
must never become the next session's. (The engine-free promise is in the conformance
suite; here, a file from before SQLite's schema v9 keeps its ids and gains it.)"""

from __future__ import annotations

import srt
from srt.store.sqlite import db as sqlite_db
from support import connect

_V8_SESSIONS = """
CREATE TABLE sessions_v8(
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    head    INTEGER REFERENCES nodes(id),
    created REAL NOT NULL,
    updated REAL NOT NULL,
    meta    TEXT,
    head_prefix BLOB
);
INSERT INTO sessions_v8 SELECT id, name, head, created, updated, meta, head_prefix FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v8 RENAME TO sessions;
PRAGMA user_version=8;
"""


def _ids(rt: srt.Runtime) -> dict[str, int]:
    out = {}
    for info in rt.sessions():
        row = rt.store.get_session(info.name)
        assert row is not None
        out[info.name] = row.id
    return out


def test_a_v8_file_keeps_its_ids_and_never_gives_a_deleted_one_again(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        for name in ("a", "b", "c", "d"):
            rt.session(name).append({"role": "user", "content": f"hello from {name}"})
        before = _ids(rt)
        messages = {name: rt.session(name).messages() for name in before}
    with connect(db_path) as conn:  # the file as schema v8 left it
        conn.execute(_V8_SESSIONS)
        # session d deleted under v8, its ledger row kept; session c, the highest left
        (d,) = conn.execute("SELECT id FROM sessions WHERE name = 'd'").fetchone()
        conn.execute("DELETE FROM sessions WHERE name = 'd'")
        conn.execute(
            "INSERT INTO calls(at, session, session_name, provider, model, format, body_hash, "
            "body_bytes, messages, status) VALUES (0, ?, 'd', 'p', 'm', 'openai.chat', "
            "zeroblob(16), 0, 1, 'ok')",
            (d,),
        )
        conn.execute("DELETE FROM sqlite_sequence")  # (a v8 file had no such table)
    with srt.Runtime(db_path) as rt:
        del before["d"]
        assert _ids(rt) == before  # ids, names and heads as they were
        assert {n: rt.session(n).messages() for n in before} == {n: messages[n] for n in before}
        new = rt.session("new")
        new.append({"role": "user", "content": "hi"})
        assert rt.store.get_session("new").id > d  # not the ledger's deleted session's
        c = before["c"]
        rt.delete("c")
        again = rt.session("again")
        again.append({"role": "user", "content": "hi"})
        assert rt.store.get_session("again").id not in (c, d, *before.values())
        assert rt.store.verify().ok
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").get == sqlite_db.SCHEMA_VERSION == 9
