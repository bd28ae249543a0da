"""srt's SQLite schema: the migrations that make and update a file's tables (``MIGRATIONS``;
a file's ``PRAGMA user_version`` is how many it has run), and the tables no migration makes,
created on first use: the full-text index of ``srt search`` and the objects table.
``db`` runs the migrations when a file opens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import apsw

from . import heap

__all__ = [
    "MESSAGES_VIEW_SQL",
    "MIGRATIONS",
    "NODES_V6_SQL",
    "OBJECTS_SQL",
    "OBJECTS_TABLE",
    "OWNER",
    "SCHEMA_VERSION",
    "SEARCH_DROP_SQL",
    "SEARCH_FILL_SQL",
    "SEARCH_INDEX_SQL",
    "SEARCH_TABLE",
    "SEARCH_TRIGGERS",
    "SESSIONS_V9_SQL",
    "has_search_index",
    "has_table",
    "message_text_sql",
    "sessions_v9",
]


def message_text_sql(body: str) -> str:
    """SQL for the searchable text of the canonical message body in column ``body``: the
    content string, or its text parts joined by newlines, else ''. The body is cast to
    TEXT because SQLite reads a BLOB given to its JSON functions as JSONB."""
    b = f"CAST({body} AS TEXT)"
    return f"""coalesce(CASE json_type({b}, '$.content')
        WHEN 'text' THEN json_extract({b}, '$.content')
        WHEN 'array' THEN (
            SELECT group_concat(json_extract(p.value, '$.text'), char(10))
            FROM json_each({b}, '$.content') AS p
            WHERE json_extract(p.value, '$.type') = 'text')
        END, '')"""


#: Schema v9's step (``sessions_v9``): rebuilds ``sessions`` with ids AUTOINCREMENT gives.
SESSIONS_V9_SQL = """
CREATE TABLE sessions_v9(
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    head        INTEGER REFERENCES nodes(id),
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    meta        TEXT,
    head_prefix BLOB
);
INSERT INTO sessions_v9(id, name, head, created, updated, meta, head_prefix)
    SELECT id, name, head, created, updated, meta, head_prefix FROM sessions ORDER BY id;
DROP TABLE sessions;
ALTER TABLE sessions_v9 RENAME TO sessions;
INSERT INTO sqlite_sequence(name, seq) SELECT 'sessions', 0
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'sessions');
UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(session), 0) FROM calls))
    WHERE name = 'sessions';
"""

MIGRATIONS: tuple[str | Callable[[apsw.Connection], None], ...] = (
    # v1: content-addressed messages, a prefix-chained node tree, named heads.
    """
    CREATE TABLE messages(
        id   INTEGER PRIMARY KEY,
        hash BLOB NOT NULL CHECK (length(hash) = 16),
        body BLOB NOT NULL
    );
    CREATE UNIQUE INDEX messages_hash ON messages(hash);
    CREATE TABLE nodes(
        id      INTEGER PRIMARY KEY,
        parent  INTEGER REFERENCES nodes(id),
        message INTEGER NOT NULL REFERENCES messages(id),
        depth   INTEGER NOT NULL CHECK (depth >= 1),
        prefix  BLOB NOT NULL CHECK (length(prefix) = 16),
        meta    TEXT
    );
    CREATE UNIQUE INDEX nodes_prefix ON nodes(prefix);
    CREATE TABLE sessions(
        id      INTEGER PRIMARY KEY,
        name    TEXT NOT NULL UNIQUE,
        head    INTEGER REFERENCES nodes(id),
        created REAL NOT NULL,
        updated REAL NOT NULL,
        meta    TEXT
    );
    """,
    # v2: reply status (partial replies), and the usage ledger: one row per request.
    """
    ALTER TABLE nodes ADD COLUMN status TEXT;
    CREATE TABLE calls(
        id              INTEGER PRIMARY KEY,
        at              REAL NOT NULL,
        session         INTEGER,
        session_name    TEXT,
        node            INTEGER REFERENCES nodes(id),
        provider        TEXT NOT NULL,
        model           TEXT NOT NULL,
        format          TEXT NOT NULL,
        body_hash       BLOB NOT NULL,
        body_bytes      INTEGER NOT NULL,
        messages        INTEGER NOT NULL,
        input_tokens    INTEGER,
        cache_read_tokens  INTEGER,
        cache_write_tokens INTEGER,
        output_tokens   INTEGER,
        predicted_cached_tokens INTEGER,
        explain         TEXT,
        latency_ms      REAL,
        ttft_ms         REAL,
        retries         INTEGER NOT NULL DEFAULT 0,
        status          TEXT NOT NULL,
        error           TEXT,
        response_id     TEXT,
        previous_response_id TEXT,
        stored          INTEGER,
        fallback        TEXT
    );
    CREATE INDEX calls_node ON calls(node);
    CREATE INDEX calls_session ON calls(session);
    """,
    # v3 (now empty): this step used to create the full-text index of ``srt search``
    # (SEARCH_INDEX_SQL below, then a backfill) in every file. The index and its
    # triggers made a file about 25% larger and every append write about twice as many
    # pages, for a command many files never run, so the first search creates it instead
    # (``maintenance.build_search_index``). The step was emptied rather than undone by a
    # v4, since the project was unreleased: a v4 dropping the index would take it from
    # the files that have it, and new files would create it only to drop it, leaving
    # free pages behind. A file that reached v3 with the older step keeps its index and
    # triggers, which are exactly what a first search creates, so it opens, searches,
    # verifies and collects garbage like any file whose index was built on demand.
    "",
    # v4: the request parameters that shaped a ledger row's body (JSON text). The
    # objects table is not part of any migration: the first object written creates it
    # (OBJECTS_SQL), so a file that never holds one pays nothing for it.
    """
    ALTER TABLE calls ADD COLUMN params TEXT;
    """,
    # v5: what the file says about itself. ``hashing``: how its message hashes and
    # prefix chain are computed, for its whole life (``_hashing``; a keyed store adds
    # ``hash_key_check``, the keyed digest of a fixed text). ``store_id``: a random id
    # naming files derived from this store elsewhere (the local provider's KV states).
    """
    CREATE TABLE srt_meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
    INSERT INTO srt_meta(key, value) VALUES ('hashing', 'xxh3-128'), ('store_id', randomblob(16));
    """,
    # v6: message bodies packed in the heap (heap.py); each node carries its message's
    # hash and place, and ``messages`` becomes a view. See ``_v6``.
    lambda conn: _v6(conn),
    # v7: a ledger row's cache writes with a 1-hour TTL (of ``cache_write_tokens``, priced
    # higher than 5-minute writes) and its reasoning tokens (of ``output_tokens``). Rows
    # written before hold NULL: not reported.
    """
    ALTER TABLE calls ADD COLUMN cache_write_1h_tokens INTEGER;
    ALTER TABLE calls ADD COLUMN reasoning_tokens INTEGER;
    """,
    # v8: the model a ledger row's reply named when it is not the one asked for (an Azure
    # deployment's real model: what prices the row). Rows written before hold NULL.
    """
    ALTER TABLE calls ADD COLUMN reply_model TEXT;
    """,
    # v9: a session id is never given again (AUTOINCREMENT), as PostgreSQL's identity
    # never gives one again: objects scoped by a session's id (a task's started tool
    # calls, records of earlier heads) that outlive a deleted session are then nobody's,
    # never those of the next session created. Rebuilt as SQLite does it (new table,
    # copy, drop, rename); ids and rows stay as they were. The next id is also above
    # every session id the ledger names (of sessions deleted before this step).
    lambda conn: sessions_v9(conn),
)
SCHEMA_VERSION = len(MIGRATIONS)

#: A node names its message by hash and place in the heap; one index finds a message by
#: hash (to store each body once) and a node by (hash, parent) (so equal histories share
#: nodes, as the prefix hash says they must).
NODES_V6_SQL = """
CREATE TABLE nodes_v6(
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
"""

#: The node that first stored a body (the owner of its place in the heap).
OWNER = "NOT EXISTS (SELECT 1 FROM nodes o WHERE o.hash = n.hash AND o.id < n.id)"

#: Every stored message, as the tables of schema v1-v5 held them: its id (its place in
#: the heap), hash and canonical body. For reading (and people with a SQL shell).
MESSAGES_VIEW_SQL = f"""
CREATE VIEW messages(id, hash, body) AS
SELECT n.at, n.hash, {heap.body_sql("n.at", "n.len")} FROM nodes n WHERE {OWNER};
"""


def _v6(conn: apsw.Connection) -> None:
    """Move every message body into the heap, once each, in message id order, and give
    each node its message's hash and place; node ids, heads and the ledger stay, and each
    session row gains its head's prefix hash (``head_prefix``). The file
    keeps its page size (new files get ``PAGE_SIZE``). A search index is rebuilt keyed by
    the messages' new ids (runs with foreign keys off; ``_migrate`` checks them)."""
    had_index = has_search_index(conn)
    conn.execute(heap.HEAP_SQL)
    conn.execute(NODES_V6_SQL)
    if had_index:
        conn.execute(SEARCH_DROP_SQL)
    row = heap.row_bytes(int(conn.execute("PRAGMA page_size").get))
    conn.execute("CREATE TEMP TABLE srt_v6_places(id INTEGER PRIMARY KEY, at INTEGER, len INTEGER)")
    places = []
    old: list[Any] = conn.execute("SELECT id, body FROM messages ORDER BY id").fetchall()
    for mid, body in old:
        places.append((mid, heap.append(conn, bytes(body), row), len(body)))
    conn.executemany("INSERT INTO temp.srt_v6_places VALUES (?, ?, ?)", places)
    conn.execute(
        "INSERT INTO nodes_v6(id, parent, depth, hash, prefix, at, len, meta, status) "
        "SELECT n.id, n.parent, n.depth, m.hash, n.prefix, p.at, p.len, n.meta, n.status "
        "FROM nodes n JOIN messages m ON m.id = n.message "
        "JOIN temp.srt_v6_places p ON p.id = m.id ORDER BY n.id"
    )
    conn.execute("DROP TABLE temp.srt_v6_places")
    conn.execute("DROP TABLE nodes")
    conn.execute("DROP TABLE messages")
    conn.execute("ALTER TABLE nodes_v6 RENAME TO nodes")
    conn.execute("CREATE INDEX nodes_hash ON nodes(hash, parent)")
    conn.execute(MESSAGES_VIEW_SQL)
    # Each session row keeps its head's prefix hash, checked whenever the session is read:
    # a damaged head id that names another stored node is then refused, not followed.
    conn.execute("ALTER TABLE sessions ADD COLUMN head_prefix BLOB")
    conn.execute(
        "UPDATE sessions SET head_prefix = (SELECT prefix FROM nodes WHERE id = sessions.head)"
    )
    if had_index:
        conn.execute(SEARCH_INDEX_SQL)
        conn.execute(SEARCH_FILL_SQL)


def sessions_v9(conn: apsw.Connection) -> None:
    """Rebuild ``sessions`` so that its ids are never given again (``SESSIONS_V9_SQL``),
    unless it already is so: over tables already rebuilt the step changes nothing."""
    sql = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'sessions'"
    ).fetchone()
    if sql is None or "AUTOINCREMENT" not in str(sql[0]).upper():
        conn.execute(SESSIONS_V9_SQL)


#: The full-text index of ``srt search``: a contentless FTS5 table keyed by the
#: message's id (its place in the heap), kept in step by triggers on ``nodes`` with every
#: append that stores a new message and every gc delete that removes a message's last
#: node, whoever writes (other processes included). The text indexed is the content
#: string, or the text parts joined by newlines; never the JSON around it. It is not part
#: of any migration: ``maintenance.build_search_index`` runs this, then
#: ``SEARCH_FILL_SQL``, in one write transaction on the first search. ``IF NOT EXISTS``
#: makes a second, concurrent first search a no-op.
SEARCH_TABLE = "messages_fts"
SEARCH_TRIGGERS = ("messages_fts_insert", "messages_fts_delete")
_NEW_BODY = heap.body_sql("new.at", "new.len")
SEARCH_INDEX_SQL = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    text, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON nodes
WHEN NOT EXISTS (SELECT 1 FROM nodes o WHERE o.hash = new.hash AND o.id <> new.id) BEGIN
    INSERT INTO messages_fts(rowid, text)
    SELECT new.at, {message_text_sql("b.body")} FROM (SELECT {_NEW_BODY} AS body LIMIT 1) b;
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON nodes
WHEN NOT EXISTS (SELECT 1 FROM nodes o WHERE o.hash = old.hash) BEGIN
    DELETE FROM messages_fts WHERE rowid = old.at;
END;
"""
#: Fills a just-created search index from every stored message.
SEARCH_FILL_SQL = f"""
INSERT INTO messages_fts(rowid, text)
SELECT b.at, {message_text_sql("b.body")} FROM (
    SELECT n.at AS at, {heap.body_sql("n.at", "n.len")} AS body FROM nodes n WHERE {OWNER}
    LIMIT -1
) b
"""
#: Removes the search index and its triggers (``srt search --drop-index``).
SEARCH_DROP_SQL = """
DROP TRIGGER IF EXISTS messages_fts_insert;
DROP TRIGGER IF EXISTS messages_fts_delete;
DROP TABLE IF EXISTS messages_fts;
"""


#: Objects: values the layers above file under (kind, scope, key), in insertion order
#: (the rowid). An object's node keeps that node's chain alive under gc; gc removes
#: objects past ``expires``. Created by the first object written, in that write's
#: transaction (a table and four indexes are five pages, 80 KiB at 16 KiB pages:
#: 2.5% of a 1,000-turn chat's file, for a feature many files never use).
OBJECTS_TABLE = "objects"
OBJECTS_SQL = """
CREATE TABLE IF NOT EXISTS objects(
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL,
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BLOB NOT NULL,
    node    INTEGER REFERENCES nodes(id),
    expires REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_key ON objects(kind, scope, key);
CREATE INDEX IF NOT EXISTS objects_scope ON objects(kind, scope);
CREATE INDEX IF NOT EXISTS objects_node ON objects(node) WHERE node IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_expires ON objects(expires) WHERE expires IS NOT NULL;
"""


def has_table(conn: apsw.Connection, name: str) -> bool:
    """Whether the file has the table ``name`` (one created on first use)."""
    row = conn.execute(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return bool(row and row[0])


def has_search_index(conn: apsw.Connection) -> bool:
    """Whether the file carries the search index (created by a first search)."""
    return has_table(conn, SEARCH_TABLE)
