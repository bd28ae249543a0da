"""Encryption at rest: keys, key files, and keying a connection (SQLite3 Multiple Ciphers).

srt encrypts a store when it is opened with ``key=`` (``srt --key-file``). It needs the
``apsw`` module of ``apsw-sqlite3mc`` (``pip install 'stateful-runtime[encryption]'``),
which is APSW built on SQLite3 Multiple Ciphers: every page is encrypted (ChaCha20 with
a Poly1305 MAC by default), the ``-wal`` too. Plain stores work with it unchanged.

* A key is a passphrase (``str``) or raw bytes; ``Key`` never shows it (``repr``, errors).
* ``PRAGMA key`` answers ``ok`` even for a wrong key, so the key is checked by reading
  the file: a wrong key (or a key for a plain file) is ``EncryptionKeyError``, and
  nothing is written.
* A key file must be readable by its owner only, and must not sit in the database's
  own directory: a key kept beside the file it opens protects nothing.
"""

from __future__ import annotations

import apsw

from ...errors import ConfigError, EncryptionKeyError
from ..keyfile import MAX_KEY_FILE_BYTES, Key, read_key_file

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "Key",
    "apply",
    "available",
    "is_plain",
    "looks_encrypted",
    "read_key_file",
    "require",
    "wrong_key",
]

_MAGIC = b"SQLite format 3\x00"


def available() -> bool:
    """Whether the ``apsw`` in use is the SQLite3 Multiple Ciphers build."""
    return hasattr(apsw, "mc_version")


def require() -> None:
    """``ConfigError`` unless the ``apsw`` in use can encrypt."""
    if not available():
        raise ConfigError(
            "encryption needs the apsw module of apsw-sqlite3mc, but this apsw is the plain "
            "build. pip installs both into the same apsw folder, so install the extra as a "
            "second step: pip install stateful-runtime, then pip install "
            "'stateful-runtime[encryption]' (or: pip install --force-reinstall --no-deps "
            "apsw-sqlite3mc)"
        )


def apply(conn: apsw.Connection, key: Key | None, *, rekey: bool = False) -> None:
    """Key ``conn`` (before its first read), or with ``rekey`` re-encrypt its file under
    ``key`` (``None``: decrypt it)."""
    if key is None:
        if rekey:
            conn.pragma("rekey", "")
        return
    name, value = key.pragma(rekey)
    if conn.pragma(name, value) != "ok":
        raise ConfigError(f"SQLite3 Multiple Ciphers did not accept the {name} pragma")


def looks_encrypted(header: bytes) -> bool:
    """Whether a file's first 100 bytes look like a database SQLite3 Multiple Ciphers
    encrypted: no SQLite magic, but bytes 16-23 (kept in the clear) hold a valid page
    size, format versions 1 or 2, reserved bytes for the cipher's MAC and the fixed
    payload fractions 64, 32, 32."""
    if len(header) < 24 or header.startswith(_MAGIC):
        return False
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    return (
        512 <= page <= 65536
        and page & (page - 1) == 0
        and header[18] in (1, 2)
        and header[19] in (1, 2)
        and header[20] > 0
        and header[21:24] == b"\x40\x20\x20"
    )


def is_plain(header: bytes) -> bool:
    """Whether a file's header is an unencrypted SQLite header."""
    return header.startswith(_MAGIC)


def wrong_key() -> EncryptionKeyError:
    """The error for a file the key does not open."""
    return EncryptionKeyError(
        "the key does not open this database: it is wrong, or the file is not encrypted "
        "with it; nothing was written"
    )
