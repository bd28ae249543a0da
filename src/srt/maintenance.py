"""Keeping an srt database tidy and honest: gc, verify, vacuum, search, and the views
behind ``srt ls`` and ``srt show --tree``.

Each job runs on a connection of its own (closed afterwards), so its pragmas never
leak into the connections the runtime lends to sessions. Writers take the store's
in-process writer lock, then ``BEGIN IMMEDIATE``; other processes wait on SQLite's
busy timeout. Readers run in one read transaction, so they see one snapshot.

**Garbage collection** (``gc``) is mark and sweep. The live nodes are every node on
the chain of some session head (a recursive walk up the parents). Every other node
is swept, then every message that no remaining node uses. The usage ledger is never
deleted: a ledger row whose node was swept keeps all its figures and its session
name, and its ``node`` becomes NULL. Forks share nodes with their origin, so deleting
a session never harms its forks: what they reach is live. The sweep runs in one
transaction with ``PRAGMA secure_delete=ON`` (by default), so freed cells and pages
are zeroed, then merges the search index if the file has one (``optimize``: a deleted
row's terms leave the index only when its segments are rewritten) and checkpoints the
WAL with TRUNCATE, so the text of swept messages is left neither in the file nor in
``-wal``.

**Verify** re-derives every message hash from its body, every node's depth and
prefix hash from its parent and message, checks that session heads and ledger nodes
exist, that the search index (if the file has one) holds exactly the stored messages
and still has its triggers, and runs ``PRAGMA integrity_check`` and
``PRAGMA foreign_key_check``. A fault names the table, the row and the sessions (and
positions) that reach it.

**Search** runs on a full-text index that no migration creates: a file that has
never been searched carries none, so appends do not pay for it. The first search
builds it (``build_search_index``: the FTS5 table and its triggers, filled from every
stored message, in one ``BEGIN IMMEDIATE`` transaction under the writer lock); from
then on the triggers keep it in step with every append and every gc, whoever writes.
``drop_search_index`` removes it again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apsw

from . import _core, _db
from ._hashing import Hashing
from .errors import ConfigError, CorruptionError, SessionNotFoundError, StoreError
from .providers._llama_slots import collect_saved_states, default_state_dir
from .runtime import Runtime
from .store import Store

__all__ = [
    "Fault",
    "GcReport",
    "Hit",
    "SessionOverview",
    "TreeNode",
    "VacuumReport",
    "VerifyReport",
    "build_search_index",
    "drop_search_index",
    "fts_query",
    "gc",
    "has_search_index",
    "overview",
    "search",
    "tree",
    "vacuum",
    "verify",
]

#: Faults listed by ``verify`` at most (the count of the rest is still given).
MAX_FAULTS = 100
_USER_PREFIX = b'{"role":"user"'  # canonical bytes begin with the role (message.py)
_TEXT = _db.message_text_sql("m.body")
_ROLE = "json_extract(CAST(m.body AS TEXT), '$.role')"

# Every session's chain, walked up from its head: (session id, node, parent, message,
# depth). ``n.depth < up.depth`` makes the walk end even on a damaged parent cycle.
_CHAINS = """
WITH RECURSIVE up(sid, id, parent, message, depth) AS (
    SELECT s.id, n.id, n.parent, n.message, n.depth
    FROM sessions s JOIN nodes n ON n.id = s.head
    UNION ALL
    SELECT up.sid, n.id, n.parent, n.message, n.depth
    FROM up JOIN nodes n ON n.id = up.parent AND n.depth < up.depth
)
"""


def _store(db: Runtime | Store) -> Store:
    return db._store if isinstance(db, Runtime) else db


@contextlib.contextmanager
def _connection(
    db: Runtime | Store, action: str, pragmas: Sequence[str] = ()
) -> Iterator[tuple[apsw.Connection, threading.Lock]]:
    """A connection of this job's own to the store's file, and the store's writer lock."""
    store = _store(db)
    if store.path == ":memory:":
        raise ConfigError(f"{action} needs a database file, not :memory:")
    conn = store.open_connection()
    try:
        with _db.translate(action):
            for pragma in pragmas:
                conn.execute(pragma).fetchall()
        yield conn, store.lock
    finally:
        with contextlib.suppress(apsw.Error):
            conn.close()


@contextlib.contextmanager
def _snapshot(conn: apsw.Connection, action: str) -> Iterator[None]:
    """One read transaction: every query in the block sees the same snapshot."""
    with _db.translate(action):
        conn.execute("BEGIN")
        try:
            yield
        finally:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")


def _rows(conn: apsw.Connection, sql: str, args: Sequence[Any] = ()) -> Any:
    """The cursor of ``sql`` (rows typed ``Any``: their types follow the schema)."""
    return conn.execute(sql, args)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _places(conn: apsw.Connection, nodes: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
    """For each of ``nodes``: the (session name, 1-based position) pairs that reach it."""
    out: dict[int, list[tuple[str, int]]] = {n: [] for n in nodes}
    if not nodes:
        return out
    sql = (
        _CHAINS + "SELECT up.id, s.name, up.depth FROM up JOIN sessions s ON s.id = up.sid "
        f"WHERE up.id IN ({_marks(len(nodes))}) ORDER BY s.name"
    )
    for node, name, depth in conn.execute(sql, list(nodes)):
        out[node].append((name, depth))
    return out


# -- gc ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GcReport:
    """What one ``gc`` removed, and the state of the file afterwards."""

    nodes: int
    messages: int
    message_bytes: int  # canonical body bytes of the messages removed
    ledger_rows: int  # ledger rows whose node was removed (kept, with node NULL)
    pages_freed: int  # pages this gc returned to the file's free list
    free_pages: int  # free pages in the file afterwards (reused first; vacuum drops them)
    page_size: int
    secure_delete: bool
    checkpointed: bool  # the WAL was checkpointed and truncated afterwards
    dry_run: bool
    #: saved KV states of the local provider whose prefix the store no longer holds,
    #: removed (or, in a dry run, that would be), and their bytes
    state_files: int = 0
    state_bytes: int = 0

    @property
    def bytes_freed(self) -> int:
        return self.pages_freed * self.page_size

    @property
    def free_bytes(self) -> int:
        return self.free_pages * self.page_size


_LIVE = """
INSERT INTO temp.srt_gc_live(id)
WITH RECURSIVE live(id) AS (
    SELECT head FROM sessions WHERE head IS NOT NULL
    UNION
    SELECT n.parent FROM nodes n JOIN live ON n.id = live.id WHERE n.parent IS NOT NULL
)
SELECT id FROM live
"""
_DEAD_NODES = "id NOT IN (SELECT id FROM temp.srt_gc_live)"
_DEAD_MESSAGES = "id NOT IN (SELECT message FROM nodes)"


def _count(conn: apsw.Connection, sql: str) -> int:
    return int(conn.execute(sql).get or 0)


def gc(
    db: Runtime | Store,
    *,
    secure_delete: bool = True,
    dry_run: bool = False,
    state_dirs: Sequence[str] | None = None,
) -> GcReport:
    """Sweep the nodes no session reaches and the messages no node uses (see the module
    docstring). ``dry_run`` counts what would go and writes nothing.

    The local provider's saved KV states of this store (``<store id>-<prefix>.bin``, in
    ``state_dirs``, default its default directory) whose prefix no live node has any
    more are removed too: they decode back to the conversations just collected."""
    pragmas = [
        f"PRAGMA secure_delete={'ON' if secure_delete else 'OFF'}",
        # The sweep keeps the references intact itself (the live set is closed under
        # parents) and proves it with foreign_key_check before it commits; per-row
        # checks would scan nodes once per deleted row (nodes.message has no index).
        "PRAGMA foreign_keys=OFF",
        "PRAGMA temp_store=MEMORY",
    ]
    action = "collecting garbage"
    with _connection(db, action, pragmas) as (conn, lock), _db.translate(action), lock:
        page_size = _count(conn, "PRAGMA page_size")
        conn.execute("BEGIN IMMEDIATE")
        try:
            free_before = _count(conn, "PRAGMA freelist_count")
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS srt_gc_live(id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM temp.srt_gc_live")
            conn.execute(_LIVE)
            nodes = _count(conn, f"SELECT count(*) FROM nodes WHERE {_DEAD_NODES}")
            _rows(
                conn,
                "UPDATE calls SET node = NULL "
                "WHERE node IS NOT NULL AND node NOT IN (SELECT id FROM temp.srt_gc_live)",
            )
            ledger_rows = conn.changes()
            conn.execute(f"DELETE FROM nodes WHERE {_DEAD_NODES}")
            messages, message_bytes = _rows(
                conn,
                f"SELECT count(*), coalesce(sum(length(body)), 0) FROM messages "
                f"WHERE {_DEAD_MESSAGES}",
            ).fetchone() or (0, 0)
            conn.execute(f"DELETE FROM messages WHERE {_DEAD_MESSAGES}")
            if messages and _db.has_search_index(conn):
                conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                table, rowid, parent, _ = broken[0]
                raise CorruptionError(
                    f"gc stopped and changed nothing: {table} row {rowid} refers to a "
                    f"missing {parent} row ({len(broken)} such references); run srt verify"
                )
            free_after = _count(conn, "PRAGMA freelist_count")
            states, state_bytes = collect_saved_states(
                default_state_dirs() if state_dirs is None else list(state_dirs),
                _store(db).store_id,
                functools.partial(_dead_prefixes, conn),
            )
            conn.execute("DROP TABLE temp.srt_gc_live")
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
        conn.execute("ROLLBACK" if dry_run else "COMMIT")
    checkpointed = False
    if not dry_run:
        checkpointed = _checkpoint(db, action)
        for path in states:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    return GcReport(
        nodes=nodes,
        messages=int(messages),
        message_bytes=int(message_bytes),
        ledger_rows=ledger_rows,
        pages_freed=max(0, free_after - free_before),
        free_pages=free_before if dry_run else free_after,
        page_size=page_size,
        secure_delete=secure_delete,
        checkpointed=checkpointed,
        dry_run=dry_run,
        state_files=len(states),
        state_bytes=state_bytes,
    )


def _dead_prefixes(conn: apsw.Connection, prefixes: list[bytes]) -> set[bytes]:
    """Those of ``prefixes`` that name no node of the live set (inside gc's transaction)."""
    execute = conn.execute
    return {
        p
        for p in prefixes
        if execute(
            "SELECT 1 FROM nodes n JOIN temp.srt_gc_live l ON l.id = n.id WHERE n.prefix = ?",
            (p,),
        ).fetchone()
        is None
    }


def default_state_dirs() -> list[str]:
    """Where ``gc`` looks for saved KV states by default: the local provider's default."""
    return [default_state_dir()]


def _checkpoint(db: Runtime | Store, action: str, wait_ms: int = 2000) -> bool:
    """Copy the WAL into the file and truncate it; False if readers kept it busy."""
    with _connection(db, action) as (conn, _lock), _db.translate(action):
        conn.set_busy_timeout(wait_ms)
        busy, _log, _done = _rows(conn, "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not busy


# -- vacuum -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VacuumReport:
    """File sizes (database plus WAL) before and after ``vacuum``."""

    bytes_before: int
    bytes_after: int
    checkpointed: bool


def _file_bytes(path: str) -> int:
    total = 0
    for p in (path, path + "-wal"):
        with contextlib.suppress(FileNotFoundError):
            total += os.path.getsize(p)
    return total


def vacuum(db: Runtime | Store) -> VacuumReport:
    """Rebuild the file without its free pages (``VACUUM``), then truncate the WAL."""
    store = _store(db)
    action = "vacuuming the database"
    before = _file_bytes(store.path)
    with _connection(db, action) as (conn, lock), _db.translate(action), lock:
        conn.execute("VACUUM")
    checkpointed = _checkpoint(db, action)
    return VacuumReport(before, _file_bytes(store.path), checkpointed)


# -- verify -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One inconsistency found by ``verify``."""

    kind: str  # integrity, message, node, session, ledger, foreign_key, search_index
    table: str
    row: int | None
    detail: str
    places: tuple[tuple[str, int], ...] = ()  # (session, 1-based position) reaching it

    def __str__(self) -> str:
        where = f"{self.table} row {self.row}" if self.row is not None else self.table
        text = f"{where}: {self.detail}"
        if self.places:
            shown = ", ".join(f"{name!r} message {pos}" for name, pos in self.places[:8])
            more = len(self.places) - 8
            text += f"; reached by {shown}" + (f" and {more} more" if more > 0 else "")
        elif self.kind in ("message", "node"):
            text += "; reached by no session"
        return text


@dataclass(frozen=True)
class VerifyReport:
    """Counts of what ``verify`` checked, and the faults found (first first)."""

    messages: int
    nodes: int
    sessions: int
    calls: int
    faults: tuple[Fault, ...]
    more_faults: int = 0  # faults found beyond MAX_FAULTS

    @property
    def ok(self) -> bool:
        return not self.faults


class _Faults:
    def __init__(self) -> None:
        self.items: list[Fault] = []
        self.more = 0

    def add(self, fault: Fault) -> None:
        if len(self.items) < MAX_FAULTS:
            self.items.append(fault)
        else:
            self.more += 1


def verify(db: Runtime | Store) -> VerifyReport:
    """Check every hash, chain and reference in the file (see the module docstring)."""
    action = "verifying the database"
    faults = _Faults()
    counts = [0, 0, 0, 0]
    hashing = _store(db).hashing
    with _connection(db, action) as (conn, _lock), _snapshot(conn, action):
        try:
            _verify(conn, faults, counts, hashing)
        except StoreError as exc:  # a page too damaged to read ends the walk
            faults.add(Fault("integrity", "database", None, str(exc)))
    messages, nodes, sessions, calls = counts
    return VerifyReport(messages, nodes, sessions, calls, tuple(faults.items), faults.more)


def _verify(conn: apsw.Connection, faults: _Faults, counts: list[int], hashing: Hashing) -> None:
    for (line,) in conn.execute("PRAGMA integrity_check(20)"):
        if line != "ok":
            faults.add(Fault("integrity", "database", None, f"integrity_check: {line}"))

    bad_messages: list[Fault] = []
    with _db.translate("verifying messages"):
        for mid, mhash, body in conn.execute("SELECT id, hash, body FROM messages ORDER BY id"):
            counts[0] += 1
            if not isinstance(body, bytes) or hashing.digest(body) != mhash:
                kind = "is not a BLOB" if not isinstance(body, bytes) else "does not hash to"
                bad_messages.append(
                    Fault(
                        "message",
                        "messages",
                        mid,
                        f"the stored body {kind} its hash {bytes(mhash).hex()}",
                    )
                )
    if bad_messages:
        ids = [f.row for f in bad_messages if f.row is not None]
        users = _rows(
            conn, f"SELECT id, message FROM nodes WHERE message IN ({_marks(len(ids))})", ids
        ).fetchall()
        reach = _places(conn, [n for n, _ in users])
        for f in bad_messages:
            places = sorted(p for n, m in users if m == f.row for p in reach[n])
            faults.add(Fault(f.kind, f.table, f.row, f.detail, tuple(places)))

    bad_nodes: list[Fault] = []
    # A node's depth and prefix are re-derived from its parent's *derived* values, so a
    # damaged node is reported once and its intact descendants are not. A parent's id
    # is always below its children's (it was inserted first), so one pass in id order
    # sees every parent first; only the values of damaged nodes need remembering.
    derived: dict[int, tuple[int, bytes]] = {}
    sql = (
        "SELECT n.id, n.parent, n.depth, n.prefix, m.id, m.hash, p.id, p.depth, p.prefix "
        "FROM nodes n LEFT JOIN messages m ON m.id = n.message "
        "LEFT JOIN nodes p ON p.id = n.parent ORDER BY n.id"
    )
    for nid, parent, depth, prefix, mid, mhash, pid, pdepth, pprefix in _rows(conn, sql):
        counts[1] += 1
        detail = None
        if pid is not None and pid in derived:
            pdepth, pprefix = derived[pid]
        if mid is None:
            detail = "its message row is missing"
        elif parent is not None and pid is None:
            detail = f"its parent node {parent} is missing"
        else:
            want_depth = (pdepth or 0) + 1
            want = hashing.chain(pprefix if pid is not None else _core.ROOT, mhash)
            if depth != want_depth:
                detail = f"depth {depth} should be {want_depth}"
            elif prefix != want:
                detail = "its prefix hash does not chain from its parent and message"
            if detail is not None:
                derived[nid] = (want_depth, want)
        if detail is not None:
            bad_nodes.append(Fault("node", "nodes", nid, detail))
    if bad_nodes:
        reach = _places(conn, [f.row for f in bad_nodes if f.row is not None])
        for f in bad_nodes:
            assert f.row is not None
            faults.add(Fault(f.kind, f.table, f.row, f.detail, tuple(reach[f.row])))

    for sid, name, head, found in _rows(
        conn,
        "SELECT s.id, s.name, s.head, n.id FROM sessions s LEFT JOIN nodes n ON n.id = s.head "
        "ORDER BY s.id",
    ):
        counts[2] += 1
        if head is not None and found is None:
            faults.add(
                Fault("session", "sessions", sid, f"session {name!r}: head {head} is missing")
            )

    for cid, node in _rows(
        conn,
        "SELECT c.id, c.node FROM calls c LEFT JOIN nodes n ON n.id = c.node "
        "WHERE c.node IS NOT NULL AND n.id IS NULL ORDER BY c.id",
    ):
        faults.add(Fault("ledger", "calls", cid, f"its node {node} is missing"))
    counts[3] = int(conn.execute("SELECT count(*) FROM calls").get or 0)

    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        if table in ("nodes", "sessions", "calls"):
            continue  # reported above, with more detail
        faults.add(Fault("foreign_key", table, rowid, f"refers to a missing {parent} row"))

    if _db.has_search_index(conn):
        _verify_search_index(conn, faults)


def _verify_search_index(conn: apsw.Connection, faults: _Faults) -> None:
    """The index holds exactly the stored messages, and its triggers are there."""
    table = _db.SEARCH_TABLE
    for (mid,) in _rows(
        conn, f"SELECT id FROM messages EXCEPT SELECT id FROM {table}_docsize ORDER BY 1"
    ):
        faults.add(Fault("search_index", table, mid, "message is not in the index"))
    for (mid,) in _rows(
        conn, f"SELECT id FROM {table}_docsize EXCEPT SELECT id FROM messages ORDER BY 1"
    ):
        faults.add(Fault("search_index", table, mid, "the index holds a message not stored"))
    found = {
        name
        for (name,) in conn.execute(
            f"SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'messages' "
            f"AND name IN ({_marks(len(_db.SEARCH_TRIGGERS))})",
            _db.SEARCH_TRIGGERS,
        )
    }
    for name in _db.SEARCH_TRIGGERS:
        if name not in found:
            faults.add(
                Fault(
                    "search_index",
                    table,
                    None,
                    f"its trigger {name} is missing, so the index no longer follows the "
                    "messages (srt search --drop-index, then a search, rebuilds it)",
                )
            )


# -- search -----------------------------------------------------------------------------


def has_search_index(db: Runtime | Store) -> bool:
    """Whether the file carries the search index (built by the first search)."""
    action = "reading the schema"
    with _connection(db, action) as (conn, _lock), _db.translate(action):
        return _db.has_search_index(conn)


def build_search_index(
    db: Runtime | Store, *, announce: Callable[[int], None] | None = None
) -> int | None:
    """Create the search index and fill it from every stored message, unless the file
    has it already; ``search`` does this first. Returns the number of messages indexed,
    or ``None`` if the index was there (another search, maybe in another process,
    built it). ``announce`` is called with that number before the work starts.

    It is one ``BEGIN IMMEDIATE`` transaction under the writer lock, so other writers
    wait for it (up to the busy timeout), a concurrent first search finds the index
    built and does nothing, and a failure (a read-only file, a full disk) leaves the
    file as it was.
    """
    action = "building the search index"
    with _connection(db, action) as (conn, lock):
        return _build_search_index(conn, lock, action, announce)


def _build_search_index(
    conn: apsw.Connection,
    lock: threading.Lock,
    action: str,
    announce: Callable[[int], None] | None,
) -> int | None:
    with _db.translate(action):
        if _db.has_search_index(conn):
            return None
        try:
            with lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if _db.has_search_index(conn):  # built by another connection meanwhile
                        conn.execute("ROLLBACK")
                        return None
                    count = _count(conn, "SELECT count(*) FROM messages")
                    if announce is not None:
                        announce(count)
                    conn.execute(_db.SEARCH_INDEX_SQL)
                    conn.execute(_db.SEARCH_FILL_SQL)
                except BaseException:
                    if not conn.get_autocommit():
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except apsw.ReadOnlyError as exc:
            raise StoreError(
                f"{action}: the database has no search index yet, and it cannot be built "
                f"because the database is read-only ({type(exc).__name__}: {exc})"
            ) from exc
    return count


def drop_search_index(db: Runtime | Store) -> bool:
    """Remove the search index and its triggers; False if the file had none. Its pages
    go to the file's free list (reused by later writes; ``vacuum`` returns them)."""
    action = "dropping the search index"
    with _connection(db, action) as (conn, lock), _db.translate(action), lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            had = _db.has_search_index(conn)
            conn.execute(_db.SEARCH_DROP_SQL)
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return had


@dataclass(frozen=True)
class Hit:
    """A stored message matching a search, and where sessions use it."""

    message: int
    role: str
    text: str
    places: tuple[tuple[str, int], ...]  # (session, 1-based position)


def fts_query(text: str) -> str:
    """``text`` as an FTS5 query matching messages with every word in it.

    Each whitespace-separated word is quoted, so punctuation and FTS5 operators are
    searched for literally; a word ending in ``*`` matches as a prefix.
    """
    terms = []
    for word in text.split():
        star = word.endswith("*") and len(word) > 1
        core = word[:-1] if star else word
        terms.append('"' + core.replace('"', '""') + '"' + ("*" if star else ""))
    if not terms:
        raise ConfigError("the search text is empty")
    return " ".join(terms)


def search(
    db: Runtime | Store,
    text: str,
    *,
    limit: int = 20,
    syntax: bool = False,
    announce: Callable[[int], None] | None = None,
) -> list[Hit]:
    """Messages that some session uses and whose text matches, best match first.

    ``text`` is words to find (see ``fts_query``), or with ``syntax`` an FTS5 query.
    The first search of a file builds the index (``build_search_index``, which calls
    ``announce`` with the number of messages it is about to index).
    """
    if limit < 1:
        raise ConfigError("limit must be at least 1")
    query = text if syntax else fts_query(text)
    if not query.strip():
        raise ConfigError("the search text is empty")
    action = "searching"
    with _connection(db, action) as (conn, lock):
        _build_search_index(conn, lock, "building the search index", announce)
        with _snapshot(conn, action):
            hits = _search(conn, query, limit)
    return hits


def _search(conn: apsw.Connection, query: str, limit: int) -> list[Hit]:
    hits: list[Hit] = []
    batch = max(limit, 50)
    offset = 0
    while len(hits) < limit:
        ids = [
            r[0]
            for r in _rows(
                conn,
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? "
                "ORDER BY rank LIMIT ? OFFSET ?",
                (query, batch, offset),
            )
        ]
        if not ids:
            break
        offset += len(ids)
        marks = _marks(len(ids))
        rows = {
            mid: (role, body_text)
            for mid, role, body_text in _rows(
                conn,
                f"SELECT m.id, {_ROLE}, {_TEXT} FROM messages m WHERE m.id IN ({marks})",
                ids,
            )
        }
        users = _rows(
            conn, f"SELECT id, message FROM nodes WHERE message IN ({marks})", ids
        ).fetchall()
        reach = _places(conn, [n for n, _ in users])
        for mid in ids:
            places = sorted({p for n, m in users if m == mid for p in reach[n]})
            if places and mid in rows:
                role, body_text = rows[mid]
                hits.append(Hit(mid, str(role), str(body_text), tuple(places)))
                if len(hits) == limit:
                    break
    return hits


# -- views for ls and show --tree ---------------------------------------------------------


@dataclass(frozen=True)
class SessionOverview:
    """One session as ``srt ls`` lists it."""

    name: str
    messages: int
    turns: int  # user messages
    tokens: int  # estimated: sum of ceil(canonical bytes / 4) over its messages
    branches: int  # sessions sharing its first message, itself included
    created: float
    updated: float
    head_prefix: str | None


def overview(db: Runtime | Store) -> list[SessionOverview]:
    """Every session with its message, turn and estimated token counts, sorted by name."""
    sql = (
        _CHAINS + "SELECT up.sid, count(*), "
        "sum(substr(m.body, 1, ?) = ?), sum((length(m.body) + 3) / 4), "
        "max(CASE WHEN up.parent IS NULL THEN up.id END) "
        "FROM up JOIN messages m ON m.id = up.message GROUP BY up.sid"
    )
    action = "listing sessions"
    with _connection(db, action) as (conn, _lock), _snapshot(conn, action):
        stats = {
            sid: (int(n), int(turns or 0), int(tokens or 0), root)
            for sid, n, turns, tokens, root in conn.execute(sql, (len(_USER_PREFIX), _USER_PREFIX))
        }
        rows = _rows(
            conn,
            "SELECT s.id, s.name, s.created, s.updated, n.prefix "
            "FROM sessions s LEFT JOIN nodes n ON n.id = s.head ORDER BY s.name",
        ).fetchall()
    per_root: dict[Any, int] = {}
    for _n, _turns, _tokens, root in stats.values():
        if root is not None:
            per_root[root] = per_root.get(root, 0) + 1
    out = []
    for sid, name, created, updated, prefix in rows:
        n, turns, tokens, root = stats.get(sid, (0, 0, 0, None))
        out.append(
            SessionOverview(
                name=name,
                messages=n,
                turns=turns,
                tokens=tokens,
                branches=per_root.get(root, 0) if root is not None else 1,
                created=created,
                updated=updated,
                head_prefix=bytes(prefix).hex() if prefix is not None else None,
            )
        )
    return out


@dataclass
class TreeNode:
    """A node of a conversation tree: one message and the branches that continue it."""

    id: int
    depth: int
    role: str
    text: str  # the message text, at most ``tree(..., width)`` characters
    status: str | None  # a partial reply's status (cancelled, incomplete, error)
    heads: list[str] = field(default_factory=list)  # sessions whose head is this node
    children: list[TreeNode] = field(default_factory=list)


def tree(db: Runtime | Store, name: str, *, width: int = 200) -> TreeNode | None:
    """The conversation tree of session ``name``: every message of every session that
    shares its first message, as a tree from that message (``None`` if it is empty)."""
    action = "reading the session tree"
    with _connection(db, action) as (conn, _lock), _snapshot(conn, action):
        row = conn.execute("SELECT id, head FROM sessions WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise SessionNotFoundError(f"no session named {name!r}")
        roots = {
            sid: root
            for sid, root in _rows(conn, _CHAINS + "SELECT sid, id FROM up WHERE parent IS NULL")
        }
        root = roots.get(row[0])
        if root is None:
            return None
        members = [sid for sid, r in roots.items() if r == root]
        heads = _rows(
            conn,
            f"SELECT head, name FROM sessions WHERE id IN ({_marks(len(members))}) ORDER BY name",
            members,
        ).fetchall()
        sql = (
            "WITH RECURSIVE live(id) AS ("
            f"SELECT head FROM sessions WHERE id IN ({_marks(len(members))}) "
            "UNION SELECT n.parent FROM nodes n JOIN live ON n.id = live.id "
            "WHERE n.parent IS NOT NULL) "
            f"SELECT n.id, n.parent, n.depth, n.status, {_ROLE}, substr({_TEXT}, 1, ?) "
            "FROM live JOIN nodes n ON n.id = live.id JOIN messages m ON m.id = n.message "
            "ORDER BY n.depth, n.id"
        )
        rows = _rows(conn, sql, [*members, width]).fetchall()
    nodes: dict[int, TreeNode] = {}
    top: TreeNode | None = None
    for nid, parent, depth, status, role, text in rows:
        node = TreeNode(nid, depth, str(role), str(text), status)
        nodes[nid] = node
        if parent is None:
            top = node
        elif parent in nodes:
            nodes[parent].children.append(node)
    for head, session in heads:
        if head in nodes:
            nodes[head].heads.append(session)
    return top
