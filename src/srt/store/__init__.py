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
    "SECRET_PARAMS",
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
    "is_conninfo",
    "open_store",
    "redact_url",
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
#: psycopg.connect takes): a word and ``=``. A path holding ``/`` or ``.`` before its
#: first ``=`` (``./runs/lr=0.1.db``, ``/data/a=b/chat.db``) is a file's.
_KEYWORD = re.compile(r"^\s*[A-Za-z_]+\s*=")
#: The keywords that say where to connect, and the password: several words, one of them
#: one of these, are meant for PostgreSQL even if libpq cannot parse them (a misspelt
#: keyword): the engine then says what is wrong, instead of a file made under a name
#: that may hold a password.
_WHERE = re.compile(r"(^|\s)(host|hostaddr|port|dbname|user|service|password)\s*=")
#: A single word with one of these endings names a SQLite file (``host=x.db``).
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")


def is_conninfo(text: str) -> bool:
    """Whether ``text`` is a libpq keyword/value connection string: it parses as one
    (``psycopg.conninfo.conninfo_to_dict``, which knows libpq's keywords) into at least
    one keyword, and is not a single word ending like a SQLite file (``SQLITE_SUFFIXES``);
    or it is several words, one saying where to connect or the password (``_WHERE``).
    A path is a file's even if it holds ``=``."""
    if _KEYWORD.match(text) is None:
        return False
    if len(text.split()) == 1 and text.strip().lower().endswith(SQLITE_SUFFIXES):
        return False
    meant = len(text.split()) > 1 and _WHERE.search(text) is not None
    try:
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # the engine says which extra to install
        return meant or _WHERE.match(text) is not None
    try:
        return bool(conninfo_to_dict(text))
    except Error:
        return meant


def scheme_of(path_or_url: str) -> str:
    """The engine scheme of ``path_or_url``: a URL's scheme (``postgresql+psycopg`` is
    ``postgresql``), ``postgresql`` for a libpq keyword/value string (``is_conninfo``:
    ``host=... dbname=...``), ``sqlite`` for ``sqlite:...`` and for any other plain path
    (``./runs/lr=0.1.db`` too)."""
    m = _SCHEME.match(path_or_url)
    if m is None:
        return "postgresql" if is_conninfo(path_or_url) else "sqlite"
    return m.group(1).lower().split("+", 1)[0]


#: Query parameters of a (libpq) URL that hold a secret.
SECRET_PARAMS = ("password", "sslpassword")
#: A keyword/value string's secret: ``password=`` or ``sslpassword=``, its value quoted
#: (to the end of the string if its quote is never closed) or not.
_SECRET_WORD = re.compile(r"((?:^|\s)(?:ssl)?password\s*=\s*)('(?:\\.|[^'\\])*(?:'|\\?$)|\S*)")


def redact_url(path_or_url: str) -> str:
    """``path_or_url`` as srt shows it (``repr``, ``location``, messages, the CLI): a URL
    without the password of its user part or any ``password=``/``sslpassword=`` query
    parameter (``***`` instead), a keyword/value string without its ``password=`` and
    ``sslpassword=`` values, a file's path as it is. A URL whose password's ``/ ? #``
    ended the user part early (which ``PostgresStore`` refuses) is hidden up to its last
    ``@``."""
    m = _SCHEME.match(path_or_url)
    if m is None:
        if not is_conninfo(path_or_url):
            return path_or_url
        return _SECRET_WORD.sub(r"\1***", path_or_url)
    from urllib.parse import parse_qsl, urlencode, urlsplit  # (a few ms of ``import srt``)

    scheme, rest = m.group(1), path_or_url[m.end() :]
    try:
        parts = urlsplit(path_or_url)
    except ValueError:  # an unclosed "[": shown up to its user part only
        parts = None
    pairs = parse_qsl(parts.query, keep_blank_values=True) if parts else []
    if parts is None or (
        parts.password is None
        and (parts.fragment or "@" in parts.path or any("@" in k for k, _ in pairs))
    ):
        user, colon, _ = rest.rpartition("@")[0].partition(":")
        return f"{scheme}://{user}:***@{rest.rpartition('@')[2]}" if colon else path_or_url
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        netloc = f"{netloc.rpartition('@')[0].partition(':')[0]}:***@{netloc.rpartition('@')[2]}"
    if any(k in SECRET_PARAMS for k, _ in pairs):
        query = urlencode([(k, "***" if k in SECRET_PARAMS else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return path_or_url
    # keeping ``//`` before an empty host (``postgresql://?host=...``), which
    # ``urlunsplit`` drops
    return f"{parts.scheme}://{netloc}{parts.path}{'?' + query if query else ''}"


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
