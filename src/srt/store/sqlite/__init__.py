"""The SQLite engine (APSW): srt's embedded default store, one file per runtime.

``db`` opens the file (identity checks, per-connection set-up, migrations, the
writer lock), ``store`` implements the Store protocol, ``maintenance``, ``verify``
and ``views`` hold gc, vacuum, search, verify and the ``ls``/``tree`` views.
"""

from __future__ import annotations

from .. import sqlite_path
from .store import SQLiteStore

__all__ = ["SQLiteStore", "sqlite_path"]
