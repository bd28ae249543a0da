"""Saved KV states of the ``local`` provider on disk: their names, their folders, and
finding a store's states (for ``Runtime.gc``).

A state is named ``<store id>-<prefix hash>.bin``: the session's store and the store's
own prefix hash of the prompt it holds. It decodes back to the conversation, so it is
kept as privately as the store: files 0600 in directories 0700. ``slots.Router`` plans
the saves and restores; this module only names and finds the files.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence

import platformdirs

from ..errors import ConfigError

__all__ = [
    "SUFFIX",
    "check_store",
    "default_state_dir",
    "default_state_dirs",
    "private_dir",
    "saved_states",
    "state_file",
]

SUFFIX = ".bin"
#: A store id as stores make them (``Store.store_id``: random hex), the first part of a
#: state's file name.
_STORE_ID = re.compile(r"[0-9a-fA-F]{1,64}")


def default_state_dir() -> str:
    """Where the local provider saves KV states unless told otherwise (one directory per
    model inside): ``llama-slots`` in srt's user cache directory."""
    return os.path.join(platformdirs.user_cache_dir("srt", appauthor=False), "llama-slots")


def check_store(store: str | None) -> str | None:
    """``store`` if it can name a state file: hex (``Store.store_id``), or ``None``/``""``
    for none; ``ConfigError`` otherwise (a ``/``, ``..`` or any other character would make
    the name a path elsewhere, or one ``saved_states`` never finds)."""
    if store is None or store == "":
        return store
    if not isinstance(store, str) or _STORE_ID.fullmatch(store) is None:
        shown = repr(store[:80]) if isinstance(store, str) else type(store).__name__
        raise ConfigError(
            f"store_id must be hex (1 to 64 of 0-9, a-f), as srt's stores make it: it names "
            f"the saved KV state's file; got {shown}"
        )
    return store


def state_file(store: str | None, prefix: bytes) -> str:
    """The file name of the KV state of the prompt whose last prefix hash is ``prefix``
    (``store``: the session's store id, hex: ``check_store``)."""
    check_store(store)
    return f"{store}-{prefix.hex()}{SUFFIX}" if store else prefix.hex() + SUFFIX


def private_dir(path: str) -> None:
    """Create ``path`` (and missing parents) 0700; make ``path`` itself 0700 and every
    saved state in it 0600 (states written by an older srt were 0644). ``ConfigError``
    if that cannot be done (a file in the way, no permission)."""
    try:
        _private_dir(path)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot use {path!r} as the folder of saved slot states ({why}); "
            "pass another state_dir=, or save_slots=False"
        ) from None


def _private_dir(path: str) -> None:
    missing = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, 0o700)
    os.chmod(path, 0o700)
    for entry in os.scandir(path):
        if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.chmod(entry.path, 0o600)


def saved_states(dirs: Sequence[str], store: str) -> dict[bytes, list[tuple[str, int]]]:
    """The saved states of store ``store`` in ``dirs`` (each a state directory, or a
    base holding one per model), by prefix hash: their paths and sizes."""
    found: dict[bytes, list[tuple[str, int]]] = {}
    if not store:
        return found
    head = f"{store}-"
    for base in dirs:
        for d in [base, *_subdirs(base)]:
            with contextlib.suppress(OSError):
                for entry in os.scandir(d):
                    name = entry.name
                    if not (name.startswith(head) and name.endswith(SUFFIX)):
                        continue
                    hexed = name[len(head) : -len(SUFFIX)]
                    if len(hexed) != 32 or not entry.is_file(follow_symlinks=False):
                        continue
                    try:
                        prefix = bytes.fromhex(hexed)
                    except ValueError:
                        continue
                    found.setdefault(prefix, []).append((entry.path, entry.stat().st_size))
    return found


def default_state_dirs() -> list[str]:
    """Where ``Runtime.gc`` looks for saved states by default: the provider's default."""
    return [default_state_dir()]


def _subdirs(base: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(base) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
