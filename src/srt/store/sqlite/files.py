"""srt's SQLite file on disk, before and outside any srt connection: creating it private,
and the header check that refuses a file that is not SQLite, is encrypted (or not) against
the key given, or is shorter than its header says while its ``-wal`` cannot complete it.
"""

from __future__ import annotations

import os
import stat
import struct

import apsw

from ...errors import CorruptionError, EncryptionKeyError, StoreBusyError, StoreError
from . import keys as _keys

__all__ = [
    "BUSY_TIMEOUT_MS",
    "check_header",
    "create_private_file",
    "describe",
    "recoverable_by_wal",
]

#: Busy timeout for every connection, in milliseconds (APSW's default is 100 ms).
BUSY_TIMEOUT_MS = 10_000


def describe(exc: BaseException) -> str:
    """An apsw error as a message names it: its type and its text."""
    return f"{type(exc).__name__}: {exc}"


def create_private_file(path: str) -> None:
    """Create ``path`` (and any missing parent directories) readable by its owner only.

    Directories srt creates are 0700 and the file is 0600, whatever the umask.
    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode. A symbolic
    link to a file not there yet is followed (SQLite opens its target): the target is
    created, private (``O_EXCL`` does not follow the link, and SQLite would otherwise
    create it with the umask's mode).
    """
    if os.path.islink(path):
        path = os.path.realpath(path)
    parent = os.path.dirname(os.path.abspath(path))
    missing: list[str] = []
    p = parent
    while not os.path.exists(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:  # read-only, no permission, a file in the way, ...
            raise StoreError(f"cannot create the database directory: {exc.strerror}") from exc
        else:
            os.chmod(d, 0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the database file: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


#: How many times a file that looked truncated is looked at again while it keeps changing.
_SETTLE_LOOKS = 5


def check_header(
    path: str, *, vfs: str | None = None, key: _keys.Key | None = None
) -> bytes | None:
    """Refuse a file that is not SQLite, or that is shorter than its own header says
    while its ``-wal`` cannot supply the missing pages (``recoverable_by_wal``); with
    ``key``, a file that is not encrypted, and without, one that is.

    Returns the header of a plain (not encrypted) SQLite file that passed, its first 100
    bytes; ``None`` for a file that does not exist yet, is empty or is encrypted. Reads
    the file only; it is never modified.

    Another connection's checkpoint writes the header (with the new page count) before
    the pages, and the last connection to close deletes the ``-wal`` once they are all
    written: a look that falls in between sees a short file whose ``-wal`` is gone. So a
    file refused as truncated is looked at again; if it changed meanwhile it was being
    written, and the check starts over. A damaged file stays as it was.
    """
    looks = 1
    while True:
        seen: list[tuple[int, int, bytes]] = []
        try:
            return _check_header(path, vfs, key, seen)
        except CorruptionError:
            # What the check saw against what is there now: a damaged file stays as it was.
            if looks == _SETTLE_LOOKS or _looks(path) == (seen[0] if seen else None):
                raise
        looks += 1


def _looks(path: str) -> tuple[int, int, bytes] | None:
    """What a concurrent writer changes: the file's size and mtime and its header's
    change counter and page count."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            f.seek(24)
            return st.st_size, st.st_mtime_ns, f.read(8)
    except OSError:
        return None


def _check_header(
    path: str, vfs: str | None, key: _keys.Key | None, seen: list[tuple[int, int, bytes]]
) -> bytes | None:
    """``check_header``'s one look; what it saw (``_looks``' figures) goes into ``seen``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:  # a file where a directory should be, a name too long, ...
        raise StoreError(f"cannot use the database path: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise StoreError("the database path is not a regular file")
    if st.st_size == 0:
        return None
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read the database file: {exc.strerror}") from exc
    seen.append((st.st_size, st.st_mtime_ns, header[24:32]))
    if key is not None or _keys.looks_encrypted(header):
        _check_encrypted_header(header, key)
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise CorruptionError("the file is not a SQLite database (bad or short header)")
    if header[18] not in (1, 2) or header[19] not in (1, 2):
        # SQLite writes 1 (rollback journal) or 2 (WAL) there and accepts other values;
        # switching such a file to WAL would rewrite a header that is already damaged.
        raise CorruptionError(
            "the file header's format version bytes are invalid "
            f"(write {header[18]}, read {header[19]}); the file is damaged"
        )
    (page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if page_size == 1 else page_size
    change_counter, npages = struct.unpack(">II", header[24:32])
    (valid_for,) = struct.unpack(">I", header[92:96])
    if npages and change_counter == valid_for and st.st_size < npages * page_size:
        short = (
            f"its header says {npages} pages of {page_size} bytes but the file holds "
            f"{st.st_size} bytes"
        )
        recoverable_by_wal(path, page_size, short, vfs)
    return header


def _check_encrypted_header(header: bytes, key: _keys.Key | None) -> None:
    if key is None:
        raise EncryptionKeyError(
            "the file is encrypted (SQLite3 Multiple Ciphers); open it with its key "
            "(key=..., srt --key-file)"
        )
    if _keys.is_plain(header):
        raise EncryptionKeyError(
            "the file is not encrypted; open it without a key, or encrypt it with "
            "Runtime.rekey (srt rekey)"
        )
    if not _keys.looks_encrypted(header):
        raise CorruptionError("the file is not a SQLite database (bad or short header)")


def recoverable_by_wal(path: str, page_size: int, short: str, vfs: str | None = None) -> None:
    """Return if SQLite completes a file shorter than its header says from its ``-wal``;
    else raise ``CorruptionError``.

    A checkpoint copies the WAL's pages into the file in page order, page 1 (the
    header, with the new page count) first; a process killed inside it, or a
    checkpoint cut short by a full disk, leaves a file shorter than its header
    says. The missing pages are still in the ``-wal``, from which SQLite reads
    them and which its next checkpoint copies again. So a short file is damaged
    only if SQLite's own view of it fails: ``PRAGMA quick_check`` reads every page
    through the WAL on a connection that writes neither the database nor its
    ``-wal`` (``query_only``, and no checkpoint when it closes; SQLite may rebuild
    the ``-shm`` index).
    """
    truncated = f"the database file is truncated: {short}"
    wal = path + "-wal"
    try:
        with open(wal, "rb") as f:
            wal_header = f.read(32)
    except FileNotFoundError:
        raise CorruptionError(
            f"{truncated}, and there is no -wal file to complete it (if the file was "
            "copied, copy its -wal with it)"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot read the database's -wal file: {exc.strerror}") from exc
    magic, _version, wal_page_size = struct.unpack(">III", wal_header[:12].ljust(12, b"\0"))
    if magic not in (0x377F0682, 0x377F0683) or wal_page_size != page_size:
        raise CorruptionError(f"{truncated}, and its -wal is not a WAL of this database")
    problem: str | None = None
    try:
        conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE, vfs=vfs)
        try:
            conn.config(apsw.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            conn.execute("PRAGMA query_only=1")
            lines = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
        if lines != ["ok"]:
            problem = "; ".join(lines)
    except apsw.BusyError as exc:
        raise StoreBusyError(f"opening the database: it stayed locked ({describe(exc)})") from exc
    except apsw.Error as exc:
        problem = describe(exc)
    if problem is not None:
        raise CorruptionError(
            f"{truncated}, and its -wal does not hold the missing pages ({problem})"
        )
