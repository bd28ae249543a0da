"""Re-encrypting a store's file (``Runtime.rekey``, ``srt rekey``) so that a rekey killed at
any moment leaves the file under its old key or under its new one, whole, never between.

SQLite3 Multiple Ciphers' own ``PRAGMA rekey`` rewrites every page in place inside one
transaction. Killed midway, the file holds some pages under each key and its
``-journal`` the old pages: no key opens it (the key check reads page 1, already
re-encrypted, while SQLite would roll back only once a connection with the old key
reads). So the rekey runs on a copy instead:

1. the store's file leaves WAL mode (which needs the only connection to it, and writes
   back and removes its ``-wal``), and a read transaction holds other writers off;
2. its pages are copied with SQLite's backup API, under the old key, to ``PATH-rekey``
   (0600, beside the file), where ``PRAGMA rekey`` re-encrypts them, and a connection
   with the new key checks the copy (``integrity_check``) and puts it in WAL mode;
3. the copy is synced and renamed over the file (``os.replace``, atomic), and the folder
   is synced, so the new name survives a power loss too. Nothing is written after it.

Killed before the rename, the file is the old one, untouched, and ``PATH-rekey`` (with
perhaps its ``-journal``) is an unfinished copy that the next rekey removes; killed
after it, the file is the new one, complete. A rekey that fails with an error removes
the copy itself. The copy needs as much free space as the file.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import apsw

from ...errors import ConfigError, CorruptionError, StoreBusyError, StoreError
from . import keys as _keys
from .db import translate
from .files import create_private_file

if TYPE_CHECKING:
    from .database import Database

__all__ = ["COPY_SUFFIX", "rekey"]

#: The unfinished re-encrypted copy is ``PATH`` + this, beside the file.
COPY_SUFFIX = "-rekey"

_ACTION = "re-encrypting the database"


def _remove(path: str) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _inode(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _fsync(path: str, what: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"{_ACTION}: cannot sync {what}: {exc.strerror}") from None


def rekey(db: Database, new_key: _keys.Key | None) -> None:
    """Re-encrypt ``db``'s file under ``new_key`` (``None``: decrypt it); see the module.

    Every connection ``db`` opened is closed first (threads reopen theirs on their
    next use); no other process may have the file open meanwhile.
    """
    _keys.require()
    if db.path == ":memory:":
        raise ConfigError("an in-memory store cannot be encrypted")
    if db.key is None and new_key is None:
        return  # plain already
    real = os.path.realpath(db.path)  # a symbolic link stays one: its target is replaced
    copy = real + COPY_SUFFIX
    with db.lock:
        db.close()
        db.wal = False  # the file leaves WAL mode (until the rename puts the copy there)
        before = _inode(real)
        conn = db.open()
        try:
            with translate(_ACTION):
                # Leaving WAL needs the only connection to the file, and writes what its
                # -wal holds back into it: nothing of the file is left outside it.
                if conn.pragma("journal_mode", "delete") != "delete":
                    raise StoreBusyError(f"{_ACTION}: another connection has it open")
                # A read transaction (the backup API refuses a source that is writing):
                # its lock keeps any other writer from committing until the rename.
                conn.execute("BEGIN; SELECT count(*) FROM sqlite_schema").fetchall()
            if _inode(real) != before:
                raise StoreBusyError(f"{_ACTION}: another process replaced the file meanwhile")
            _remove(copy)  # what an earlier rekey left when it was killed
            try:
                _write_copy(db, conn, copy, new_key)
                _fsync(copy, "the re-encrypted copy")
                try:
                    os.replace(copy, real)
                except OSError as exc:
                    raise StoreError(f"{_ACTION}: cannot rename the copy: {exc.strerror}") from None
            except BaseException:
                _remove(copy)
                raise
            _fsync(os.path.dirname(real), "the database's folder")
        finally:
            with contextlib.suppress(apsw.Error):
                conn.close()  # (its transaction wrote nothing: there is nothing to roll back)
        db.key, db.wal = new_key, True  # the file is the new one now, in WAL mode
        db.open().close()  # it opens as an srt store under the new key (writing nothing)


def _write_copy(db: Database, src: apsw.Connection, copy: str, new_key: _keys.Key | None) -> None:
    """Copy ``src``'s pages to ``copy`` under the old key, re-encrypt them there, and check
    the copy under ``new_key``."""
    create_private_file(copy)
    with translate(_ACTION):
        out = apsw.Connection(copy, vfs=db.vfs)
        try:
            _keys.apply(out, db.key)
            # Keyed, the copy is encrypted page by page as it is written: its page size
            # (and the cipher's reserved bytes) must be the file's before the first page.
            out.execute(f"PRAGMA page_size={int(src.execute('PRAGMA page_size').get)}")
            with out.backup("main", src, "main") as step:
                step.step(-1)
            # The copy is in rollback-journal mode (page 1 says so, as the file's does
            # now), where SQLite3 Multiple Ciphers can change the pages' reserved bytes.
            _keys.apply(out, new_key, rekey=True)
        finally:
            out.close()
        # A connection of its own checks the copy under the new key, and puts it in WAL
        # mode (as srt keeps every file), so nothing is written to it once renamed.
        check = apsw.Connection(copy, vfs=db.vfs)
        try:
            _keys.apply(check, new_key)
            problems = [str(r[0]) for r in check.execute("PRAGMA integrity_check(5)")]
            if problems == ["ok"] and check.pragma("journal_mode", "wal") != "wal":
                problems = ["it cannot go into WAL mode"]
        finally:
            check.close()  # (the last connection to it: its -wal goes, written back)
    if problems != ["ok"]:
        raise CorruptionError(f"{_ACTION}: the copy fails integrity_check: {problems[0]}")
