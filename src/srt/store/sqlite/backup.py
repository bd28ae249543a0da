"""Online backup of a store with SQLite's backup API (``Runtime.backup``, ``srt backup``).

The pages are copied in one step, inside one read transaction on the source: the copy
is the store exactly as it was when the backup began (every turn committed by then, and
none after), while writers in this and other processes go on appending to the WAL.
Copying the file with ``cp`` instead could catch a transaction half-written, or miss
what is still in the ``-wal``.

The copy is written to a private temporary file beside the destination (0600, in a
directory srt creates 0700), checked with ``PRAGMA integrity_check`` and opened as an
srt store, and only then linked into place: the destination never holds a partial or
damaged copy, and an existing file there is never overwritten. An encrypted store's
copy is encrypted with the same key (the destination is keyed before the first page is
written); a plain store's copy is plain.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time

import apsw

from ...errors import ConfigError, CorruptionError, StoreError
from ..base import BackupReport
from . import keys as _keys
from .database import Database
from .db import translate
from .files import create_private_file

__all__ = ["backup"]


def _remove(path: str) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def _missing_dirs(folder: str) -> list[str]:
    """The folders on the way to ``folder`` that do not exist yet, deepest first."""
    out = []
    while folder and not os.path.exists(folder):
        out.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return out


def _remove_dirs(folders: list[str]) -> None:
    """Remove the folders a failed backup created (if they are still empty)."""
    for folder in folders:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def backup(store: Database, dest: str) -> BackupReport:
    """Copy ``store`` to ``dest`` (a new file) while it stays in use; see the module."""
    if store.path == ":memory:":
        raise ConfigError("an in-memory store cannot be backed up to a file")
    if not isinstance(dest, str) or not dest or "\x00" in dest:
        raise ConfigError("the backup destination must be a file path")
    dest = os.path.abspath(dest)
    if os.path.realpath(dest) == os.path.realpath(store.path):
        raise ConfigError("the backup destination is the store itself")
    if os.path.lexists(dest):
        raise ConfigError(f"{dest} exists; a backup never overwrites a file")
    tmp = f"{dest}.partial-{secrets.token_hex(4)}"
    made = _missing_dirs(os.path.dirname(dest))
    try:
        create_private_file(tmp)
    except BaseException:
        _remove_dirs(made)
        raise
    t0 = time.monotonic()
    action = "backing up the database"
    try:
        src = store.open()
        try:
            with translate(action):
                out = apsw.Connection(tmp)
                try:
                    _keys.apply(out, store.key)
                    # An encrypted copy is encrypted page by page as it is written, so
                    # its page size (and the cipher's reserved bytes) must be the source's
                    # before the first page arrives.
                    out.execute(f"PRAGMA page_size={int(src.execute('PRAGMA page_size').get)}")
                    with out.backup("main", src, "main") as step:
                        step.step(-1)  # every page, in one read transaction: one snapshot
                        pages = step.page_count
                    problems = [str(r[0]) for r in out.execute("PRAGMA integrity_check(5)")]
                    page_size = int(out.execute("PRAGMA page_size").get)
                finally:
                    out.close()
        finally:
            src.close()
        if problems != ["ok"]:
            raise CorruptionError(f"the backup copy fails integrity_check: {problems[0]}")
        # It opens as an srt store with the same key and hashing (and nothing to migrate).
        Database(tmp, key=store.key, hashing=store.hashing).close()
        try:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except OSError as exc:
            raise StoreError(f"{action}: cannot write the copy: {exc.strerror}") from None
        try:
            os.link(tmp, dest)  # never over an existing file, even one made meanwhile
        except FileExistsError:
            raise ConfigError(f"{dest} exists; a backup never overwrites a file") from None
        except OSError as exc:
            raise StoreError(f"{action}: cannot create {dest}: {exc.strerror}") from None
        try:
            dir_fd = os.open(os.path.dirname(dest), os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the new name survives a power loss too
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(f"{action}: cannot sync {dest}'s folder: {exc.strerror}") from None
    except BaseException:
        _remove(tmp)
        _remove_dirs(made)  # a failed backup leaves nothing behind, folders included
        raise
    _remove(tmp)
    return BackupReport(
        path=dest,
        pages=pages,
        page_size=page_size,
        bytes=os.path.getsize(dest),
        seconds=round(time.monotonic() - t0, 3),
        encrypted=store.key is not None,
    )
