"""Encryption keys as srt handles them before any engine sees them: ``Key`` (a passphrase
or raw bytes that is never shown) and the key files of ``srt --key-file``.

A key file must be readable by its owner only, and must not sit in the database's own
directory: a key kept beside the file it opens protects nothing. Keying a connection
is the SQLite engine's (``srt.store.sqlite.keys``).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ..errors import ConfigError

__all__ = ["MAX_KEY_FILE_BYTES", "Key", "read_key_file"]

#: Largest key file read (a passphrase or raw key, not a document).
MAX_KEY_FILE_BYTES = 4096


class Key:
    """An encryption key: a passphrase (``str``) or raw bytes. Never shown."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        if isinstance(value, Key):
            value = value.value
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
        return isinstance(other, Key) and other.value == self._value

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
    try:
        with open(key_file, "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:  # mode 0400 of another user, 0000, removed meanwhile, ...
        raise ConfigError(f"cannot read the key file: {exc.strerror}") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise ConfigError("the key file is empty (a key file holds the key)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Key(data).value
    return Key(text).value
