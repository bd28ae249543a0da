"""Opening srt's SQLite file: identity checks, per-connection set-up, migrations, and
``Database``, the file's connections (one per thread) and its writer lock.

Only the modules of ``srt.store.sqlite`` touch ``apsw``. Every ``apsw.Error`` is
translated here into the ``StoreError`` tree (see ``translate``); nothing above this
package sees an apsw exception.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import apsw
import apsw.bestpractice

from ... import _hashing
from ..._hashing import Hashing
from ...errors import (
    CorruptionError,
    HashKeyError,
    NotAnSrtDatabaseError,
    SchemaVersionError,
    StoreBusyError,
    StoreError,
)
from . import heap
from . import keys as _keys
from .files import BUSY_TIMEOUT_MS, describe

#: ``PRAGMA application_id`` of an srt database: the ASCII bytes "SRT1".
APPLICATION_ID = 0x53525431
#: Size the ``-wal`` file is cut back to when a checkpoint lets it restart. Without a
#: limit SQLite reuses the file but never shrinks it, so one long-lived reader (which
#: stops checkpoints) leaves a WAL of hundreds of MB on disk for as long as the
#: database stays open. Twice the autocheckpoint size (1,000 pages of 2 KiB).
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024


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


@contextlib.contextmanager
def translate(action: str) -> Iterator[None]:
    """Map any ``apsw.Error`` raised inside the block to the ``StoreError`` tree."""
    try:
        yield
    except apsw.BusyError as exc:
        raise StoreBusyError(f"{action}: the database stayed locked ({describe(exc)})") from exc
    except (apsw.NotADBError, apsw.CorruptError) as exc:
        raise CorruptionError(
            f"{action}: the file is not a valid SQLite database ({describe(exc)})"
        ) from exc
    except UnicodeDecodeError as exc:  # apsw decoding a TEXT value of a damaged file
        raise CorruptionError(
            f"{action}: a text value in the file is not valid UTF-8 (the file is damaged)"
        ) from exc
    except apsw.SQLError as exc:
        if not str(exc).startswith(("no such table", "no such column", "unsupported file")):
            raise StoreError(f"{action}: {describe(exc)}") from exc
        # srt's own SQL names only srt's tables and columns: the file's schema was
        # damaged or altered (a bit flip in sqlite_schema reads as a missing column).
        raise CorruptionError(
            f"{action}: the database schema is not srt's ({describe(exc)}); run srt verify"
        ) from exc
    except apsw.CantOpenError as exc:
        raise StoreError(
            f"{action}: SQLite could not open the file ({describe(exc)}): the file must be "
            "readable and its folder writable, since a database in WAL mode keeps its -wal "
            "and -shm files beside it"
        ) from exc
    except apsw.Error as exc:
        raise StoreError(f"{action}: {describe(exc)}") from exc


def reserved_bytes(path: str) -> int:
    """The bytes reserved at the end of each page of the file at ``path`` (0 if unknown)."""
    try:
        with open(path, "rb") as f:
            header = f.read(21)
    except OSError:
        return 0
    return header[20] if len(header) == 21 and header.startswith(b"SQLite format 3") else 0


def _identity(conn: apsw.Connection) -> tuple[int, int, int]:
    # One statement, so all three come from one snapshot even while another process
    # is creating the file.
    row = conn.execute(
        "SELECT (SELECT application_id FROM pragma_application_id),"
        " (SELECT user_version FROM pragma_user_version),"
        " (SELECT count(*) FROM sqlite_schema)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _check_identity(conn: apsw.Connection) -> int:
    """Return the schema version of an srt file, 0 for a brand-new empty file."""
    app_id, version, objects = _identity(conn)
    if app_id == 0 and version == 0 and objects == 0:
        return 0
    if app_id != APPLICATION_ID:
        raise NotAnSrtDatabaseError(
            "the file is a SQLite database that srt did not create "
            f"(application_id={app_id:#x}); srt will not modify it"
        )
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the file has schema version {version}, newer than this srt's "
            f"{SCHEMA_VERSION}; upgrade stateful-runtime to open it"
        )
    if version < 1:  # srt writes 1..SCHEMA_VERSION with its application_id, never less
        raise CorruptionError(
            f"the file has srt's application_id but schema version {version}, which srt "
            "never writes; srt will not modify it"
        )
    return version


#: Page size of new files. An append writes every page it changes to the WAL, whole;
#: 2 KiB pages keep that near the size of what is appended, and the heap's packed rows
#: fill their pages whatever the page size (docs/bench.md has the measurements).
PAGE_SIZE = 2048


#: Bytes of the file a chain read maps into memory (``SQLiteStore.chain``): a chain is
#: hundreds of pages of 2 KiB, and a read() per page was most of a cold load. The map
#: is dropped when the read ends, so the file's pages do not stay in the process.
MMAP_SIZE = 256 * 1024 * 1024


#: ``Runtime(durability=...)`` -> ``PRAGMA synchronous``. With WAL, ``normal`` syncs the
#: WAL only at checkpoints: a process crash loses nothing committed, a power loss or OS
#: crash may lose the last commits but never corrupts. ``full`` syncs the WAL at every
#: commit, so a commit that returned survives a power loss too.
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}


def _configure(
    conn: apsw.Connection, new: bool, durability: str = "normal", wal: bool = False
) -> None:
    """Per-connection settings. ``wal``: the file is in WAL mode already (its header
    says so), which SQLite keeps for every connection: no switch."""
    if new:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE:d}")
    # apsw.bestpractice's per-connection settings (WAL, foreign keys, no double-quoted
    # strings); never apply(), which would change process-wide hooks in the host
    # application. The pragmas SQLite keeps per connection go in one call.
    if not wal:
        _switch_to_wal(conn)
    apsw.bestpractice.connection_dqs(conn)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute(
        "PRAGMA foreign_keys=ON;"
        f"PRAGMA synchronous={SYNCHRONOUS[durability]};"
        f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT:d}"
    ).fetchall()


def _switch_to_wal(conn: apsw.Connection) -> None:
    """``apsw.bestpractice.connection_wal``, retried while the file is locked.

    SQLite answers a journal-mode change with SQLITE_BUSY at once, without calling the
    busy handler, when another connection holds a lock on the file; two stores opening
    a new file at the same moment hit it (the first is still switching it to WAL). The
    switch is retried, with a growing pause, for as long as the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            apsw.bestpractice.connection_wal(conn)
            return
        except apsw.BusyError:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _migrate(conn: apsw.Connection, lock: threading.Lock, hashing: Hashing) -> None:
    # A step may rebuild a table others refer to (SQLite's way: create the new table, copy,
    # drop the old one, rename the new one), which needs foreign keys off; they are
    # checked before the migration commits, and on again afterwards.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = _check_identity(conn)
                for version in range(current, SCHEMA_VERSION):
                    step = MIGRATIONS[version]
                    try:
                        if isinstance(step, str):
                            conn.execute(step)
                        else:
                            step(conn)
                    except apsw.SQLError as exc:  # e.g. "duplicate column": newer tables
                        raise CorruptionError(
                            f"the file says schema version {current} but its tables do not "
                            f"match it ({describe(exc)}); nothing was changed"
                        ) from exc
                if current < SCHEMA_VERSION:
                    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise CorruptionError(
                            f"migrating the file would leave {len(broken)} references to "
                            f"missing rows (the first in {broken[0][0]}); nothing was changed"
                        )
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID:d}")
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION:d}")
                if current == 0:  # a new file takes the hashing it is opened with
                    conn.execute(
                        "UPDATE srt_meta SET value = ? WHERE key = 'hashing'", (hashing.name,)
                    )
                    if hashing.check is not None:
                        conn.execute(
                            "INSERT INTO srt_meta(key, value) VALUES ('hash_key_check', ?)",
                            (hashing.check,),
                        )
                check_hashing(conn, hashing)  # an older file: before anything is committed
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


def check_hashing(conn: apsw.Connection, hashing: Hashing) -> None:
    """``HashKeyError`` unless the file hashes the way ``hashing`` does (and, keyed,
    with the same key)."""
    rows: dict[Any, Any] = {}
    sql = "SELECT key, value FROM srt_meta WHERE key IN ('hashing', 'hash_key_check')"
    try:
        rows = {k: v for k, v in conn.execute(sql)}
    except apsw.SQLError as exc:  # a file from before schema v5 has no srt_meta
        if not str(exc).startswith("no such table"):
            raise
    mode = rows.get("hashing", _hashing.XXH3_NAME)
    if mode == hashing.name and rows.get("hash_key_check") == hashing.check:
        return
    if mode == _hashing.XXH3_NAME:
        raise HashKeyError(
            "this store hashes with XXH3-128, so it opens without a hash_key (a store's "
            "hashing is chosen when it is created)"
        )
    if mode != _hashing.BLAKE2B_NAME:
        raise CorruptionError(f"the store records an unknown hashing {str(mode)[:40]!r}")
    if hashing.check is None:
        raise HashKeyError("this store hashes with a keyed BLAKE2b: open it with its hash_key")
    raise HashKeyError("the hash_key is not this store's: its check value differs")


def connect(
    path: str,
    lock: threading.Lock,
    *,
    migrate: bool,
    vfs: str | None = None,
    key: _keys.Key | None = None,
    hashing: Hashing = _hashing.XXH3,
    durability: str = "normal",
    wal: bool = False,
) -> apsw.Connection:
    """Open one connection to ``path``, verified as srt's and fully configured.

    ``vfs`` names a registered SQLite VFS (``None``: the default one); the tests use
    it to inject disk faults. ``key`` decrypts the file (checked by reading it);
    ``hashing`` must be the file's (``HashKeyError`` otherwise); ``durability`` is a
    key of ``SYNCHRONOUS``; ``wal``: the file's header says it is in WAL mode already.
    """
    with translate("opening the database"):
        conn = apsw.Connection(path, vfs=vfs)
        try:
            if key is not None:
                _keys.apply(conn, key)
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            try:
                version = _check_identity(conn)
            except (apsw.NotADBError, apsw.CorruptError) as exc:
                if key is None:
                    raise
                raise _keys.wrong_key() from exc
            _configure(conn, version == 0, durability, wal and version > 0)
            if migrate and version < SCHEMA_VERSION:
                _migrate(conn, lock, hashing)  # which checks the hashing too
            else:
                check_hashing(conn, hashing)
        except BaseException:
            conn.close()
            raise
    return conn
