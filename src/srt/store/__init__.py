"""Storage engines behind one protocol (``base.Store``), and the lookup from a path or
URL to an engine.

``open_store("chats.db")`` or ``open_store("sqlite:///chats.db")`` opens the SQLite
engine; a URL whose scheme is registered opens that engine. An engine registers
itself with one line in ``ENGINES`` below, or from another package through the
``srt.stores`` entry-point group (name: the URL scheme; value: ``module:factory``,
a callable ``(url, **options) -> Store``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .base import (
    BackupReport,
    CallRecord,
    ChainRow,
    Fault,
    GcReport,
    Hit,
    NewNode,
    ObjectPut,
    ObjectRow,
    SessionOverview,
    SessionRow,
    Store,
    StoredResponse,
    TreeNode,
    VacuumReport,
    VerifyReport,
)

__all__ = [
    "ENGINES",
    "BackupReport",
    "CallRecord",
    "ChainRow",
    "Fault",
    "GcReport",
    "Hit",
    "NewNode",
    "ObjectPut",
    "ObjectRow",
    "SessionOverview",
    "SessionRow",
    "Store",
    "StoredResponse",
    "TreeNode",
    "VacuumReport",
    "VerifyReport",
    "engine_for",
    "open_store",
    "scheme_of",
    "sqlite_path",
]

#: URL scheme -> ``"module:factory"``; the factory takes ``(url, **options)``.
#: Imported on first use, so a runtime on SQLite never imports another engine's driver.
ENGINES: dict[str, str] = {
    "sqlite": "srt.store.sqlite:SQLiteStore.from_url",
    "postgresql": "srt.store.postgres:PostgresStore.from_url",
    "postgres": "srt.store.postgres:PostgresStore.from_url",
}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: How a libpq keyword/value connection string starts ("host=db dbname=chats", what
#: psycopg.connect takes): one of the keywords that say where to connect, or any two
#: ``key=`` words. PostgreSQL's, never a SQLite file's name.
_CONNINFO = re.compile(
    r"^\s*((host|hostaddr|port|dbname|user|password|passfile|service|sslmode)\s*="
    r"|\w+\s*=\s*('[^']*'|\S+)\s+\w+\s*=)",
    re.IGNORECASE,
)


def scheme_of(path_or_url: str) -> str:
    """The engine scheme of ``path_or_url``: a URL's scheme (``postgresql+psycopg`` is
    ``postgresql``), ``postgresql`` for a libpq keyword/value string (``host=...
    dbname=...``), ``sqlite`` for ``sqlite:...`` and for any other plain path."""
    m = _SCHEME.match(path_or_url)
    if m is None:
        return "postgresql" if _CONNINFO.match(path_or_url) else "sqlite"
    return m.group(1).lower().split("+", 1)[0]


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points  # (here: about 20 ms of ``import srt``)

    return {ep.name.lower(): ep.value for ep in entry_points(group="srt.stores")}


def engine_for(scheme: str) -> Callable[..., Store]:
    """The factory of the engine registered for ``scheme``; ``ConfigError`` if none.

    ``ENGINES`` is looked at first; the entry points (a scan of every installed
    distribution, a few ms) only for a scheme it does not know.
    """
    target = ENGINES.get(scheme)
    if target is None:
        plugins = _plugins()
        target = plugins.get(scheme)
        if target is None:
            known = sorted({*ENGINES, *plugins})
            raise ConfigError(f"no storage engine for URLs of scheme {scheme!r}; known: {known}")
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the {scheme!r} storage engine cannot be loaded ({exc}); is its extra installed?"
        ) from exc
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def open_store(path_or_url: str, **options: Any) -> Store:
    """Open the engine ``path_or_url`` names (a plain path: SQLite) with ``options``."""
    return engine_for(scheme_of(path_or_url))(path_or_url, **options)


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:`` URL (SQLAlchemy's spelling, ``sqlite:///rel.db``
    and ``sqlite:////abs.db``, or plain ``sqlite:PATH``); any other string is a path.
    ``sqlite://`` alone is ``:memory:``."""
    if not url.startswith("sqlite:"):
        return url
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest:
            return ":memory:"
        if rest.startswith("/"):
            rest = rest[1:]
    if not rest:
        raise ConfigError(f"the URL {url!r} names no database file")
    return rest
