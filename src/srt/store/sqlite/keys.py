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

import os
import stat
from typing import Any

import apsw

from ...errors import ConfigError, EncryptionKeyError

__all__ = [
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
#: Largest key file read (a passphrase or raw key, not a document).
MAX_KEY_FILE_BYTES = 4096


class Key:
    """An encryption key: a passphrase (``str``) or raw bytes. Never shown."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        if isinstance(value, Key):
            value = value._value
        if not isinstance(value, (str, bytes)):
            raise ConfigError(f"key must be a str or bytes, got {type(value).__name__}")
        if not value:
            raise ConfigError("key must not be empty")
        if isinstance(value, str) and "\x00" in value:
            raise ConfigError("a key passphrase must not contain a NUL character")
        self._value: str | bytes = value

    def __repr__(self) -> str:
        return "<srt key ***>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("srt.Key", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("an srt key cannot be pickled")

    @property
    def value(self) -> str | bytes:
        """The key itself (to hand to ``Runtime(key=...)``); never printed by srt."""
        return self._value

    def pragma(self, rekey: bool = False) -> tuple[str, str]:
        """The SQLite3 Multiple Ciphers pragma and its value for this key."""
        prefix = "re" if rekey else ""
        if isinstance(self._value, bytes):
            return f"hex{prefix}key", self._value.hex()
        return f"{prefix}key", self._value


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


def read_key_file(key_file: str, db_path: str) -> str | bytes:
    """The key in ``key_file``: its text (one trailing newline dropped), or its bytes if
    they are not UTF-8. Refused (``ConfigError``) if others may read it, or if it is in
    the database's own directory."""
    try:
        st = os.stat(key_file)
    except OSError as exc:
        raise ConfigError(f"cannot read the key file: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("the key file is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(
            f"the key file is readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
        )
    key_dir = os.path.dirname(os.path.realpath(key_file))
    if db_path != ":memory:" and key_dir == os.path.dirname(os.path.realpath(db_path)):
        raise ConfigError(
            "the key file is in the database's own directory; keep the key elsewhere "
            "(a key beside the file it opens protects nothing)"
        )
    if st.st_size > MAX_KEY_FILE_BYTES:
        raise ConfigError(f"the key file is larger than {MAX_KEY_FILE_BYTES} bytes")
    with open(key_file, "rb") as f:
        data = f.read(MAX_KEY_FILE_BYTES + 1)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Key(data).value
    return Key(text).value


def wrong_key() -> EncryptionKeyError:
    """The error for a file the key does not open."""
    return EncryptionKeyError(
        "the key does not open this database: it is wrong, or the file is not encrypted "
        "with it; nothing was written"
    )
