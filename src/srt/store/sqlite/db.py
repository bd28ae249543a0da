"""Opening srt's SQLite file: identity checks, per-connection set-up, running the migrations
(``schema.MIGRATIONS``), and the file's connections and writer lock.

Only the modules of ``srt.store.sqlite`` touch ``apsw``. Every ``apsw.Error`` is
translated here into the ``StoreError`` tree (see ``translate``); nothing above this
package sees an apsw exception.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import apsw

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
from . import keys as _keys
from .files import BUSY_TIMEOUT_MS, describe
from .schema import MIGRATIONS, SCHEMA_VERSION

#: ``PRAGMA application_id`` of an srt database: the ASCII bytes "SRT1".
APPLICATION_ID = 0x53525431
#: Size the ``-wal`` file is cut back to when a checkpoint lets it restart. Without a
#: limit SQLite reuses the file but never shrinks it, so one long-lived reader (which
#: stops checkpoints) leaves a WAL of hundreds of MB on disk for as long as the
#: database stays open. Twice the autocheckpoint size (1,000 pages of 2 KiB).
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024


def room_error(exc: apsw.Error, conn: apsw.Connection | None, path: str | None) -> str | None:
    """What a write that failed ran into, said with the file and what to do: no space
    left on the device (``SQLITE_FULL``, or an I/O error whose errno is ENOSPC), or the
    process's file size limit (EFBIG: ``ulimit -f``); None for any other fault. SQLite
    says "disk I/O error" for both; ``conn`` (if still open) has the errno."""
    if not isinstance(exc, (apsw.FullError, apsw.IOError)):
        return None
    code = 0
    if conn is not None:
        with contextlib.suppress(apsw.Error):
            code = conn.system_errno
            path = path or conn.filename or None
    where = os.path.abspath(path) if path and path != ":memory:" else "the database"
    if isinstance(exc, apsw.FullError) or code == errno.ENOSPC:
        device = f"the device holding {where}" if path else "the device"
        return f"no space left on {device}: free some space there and try again"
    if code == errno.EFBIG:
        return (
            f"{where} (or its -wal or -shm file) cannot grow past this process's file "
            "size limit (ulimit -f): raise the limit and try again"
        )
    return None


@contextlib.contextmanager
def translate(
    action: str, conn: apsw.Connection | None = None, path: str | None = None
) -> Iterator[None]:
    """Map any ``apsw.Error`` raised inside the block to the ``StoreError`` tree; with
    the connection (or the path) a failed write names its file and cause (``room_error``)."""
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
    except (apsw.FullError, apsw.IOError) as exc:
        # Said plainly: after a failed backup step SQLite's own text is "not an error",
        # and a full disk at open is a "disk I/O error".
        cause = room_error(exc, conn, path)
        if cause is None:
            raise StoreError(f"{action}: {describe(exc)}") from exc
        if isinstance(exc, apsw.FullError):  # (whose text may be "not an error")
            raise StoreError(f"{action}: {cause} (SQLITE_FULL)") from exc
        raise StoreError(f"{action}: {cause} ({describe(exc)})") from exc
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


#: Every connection's ``PRAGMA secure_delete``: what a write frees inside a page is
#: zeroed as the page is written anyway (no more I/O), so a page split or a row's rewrite
#: leaves no copy of a message in a live page for ``srt gc`` to miss; gc zeroes the pages
#: it frees, and ``writes.zeroing`` turns it ON around an object's write or deletion.
SECURE_DELETE = "FAST"


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
    # application. Its connection_wal and connection_dqs are written out here: importing
    # apsw.bestpractice imports apsw.ext, with logging, urllib and ipaddress, several ms
    # of every program that opens a store. The pragmas SQLite keeps per connection go in
    # one call.
    if not wal:
        _switch_to_wal(conn)
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)  # double quotes are for identifiers only
    conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute(
        "PRAGMA foreign_keys=ON;"
        f"PRAGMA secure_delete={SECURE_DELETE};"
        f"PRAGMA synchronous={SYNCHRONOUS[durability]};"
        f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT:d}"
    ).fetchall()


def _switch_to_wal(conn: apsw.Connection) -> None:
    """``apsw.bestpractice.connection_wal`` (WAL unless the file is read-only), retried
    while the file is locked.

    SQLite answers a journal-mode change with SQLITE_BUSY at once, without calling the
    busy handler, when another connection holds a lock on the file; two stores opening
    a new file at the same moment hit it (the first is still switching it to WAL). The
    switch is retried, with a growing pause, for as long as the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            if not conn.readonly("main"):
                conn.pragma("journal_mode", "wal")
            return
        except apsw.ReadOnlyError:
            return  # (as connection_wal: the journal may be read-only too)
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
    with translate("opening the database", path=path):
        conn = apsw.Connection(path, vfs=vfs)
    try:  # (closed after translate, which reads the failed write's errno from it)
        with translate("opening the database", conn, path):
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
