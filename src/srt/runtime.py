"""The runtime: a storage engine, the shared caches and the sessions."""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import platformdirs

from . import _core
from ._types import SessionInfo, UsageSummary
from .cache import Record
from .errors import ConfigError, InvalidSessionNameError, SessionNotFoundError
from .history import check_retention, forget_history, get_retention, set_retention
from .ledger import LedgerReport, verify_ledger
from .message import DEFAULT_MAX_MESSAGE_BYTES, canonical_tool
from .pricing import Pricing
from .savings import Savings, savings
from .session import Session
from .store import Store, open_store
from .tokens import TokenCache
from .wire.base import WireFormat

__all__ = ["MAX_NAME_CHARS", "Runtime", "default_path"]

# Cc controls (C0, DEL, C1), Cf format characters (bidi overrides, zero-width),
# Zl/Zp line and paragraph separators, Cs surrogates, Cn unassigned.
#: Message bodies at least this long are held once in memory however many sessions
#: load them (a shared system prompt); shorter ones are held per session.
INTERN_MIN_BYTES = 1024
_FORBIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
#: Longest session name accepted, in characters.
MAX_NAME_CHARS = 256


def default_path() -> str:
    """Where ``Runtime()`` keeps its database when no path is given.

    ``$SRT_DB`` if set; otherwise ``srt.db`` in the platform's user data directory
    (``~/.local/share/srt`` on Linux, ``~/Library/Application Support/srt`` on
    macOS, ``%LOCALAPPDATA%\\srt`` on Windows).
    """
    env = os.environ.get("SRT_DB")
    if env:
        return env
    return os.path.join(platformdirs.user_data_dir("srt", appauthor=False), "srt.db")


def check_name(name: Any) -> str:
    """Validate an untrusted session name; ``InvalidSessionNameError`` if unusable."""
    if not isinstance(name, str):
        raise InvalidSessionNameError(f"a session name must be a str, got {type(name).__name__}")
    if not name:
        raise InvalidSessionNameError("a session name must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidSessionNameError(
            f"a session name may have at most {MAX_NAME_CHARS} characters, got {len(name)}"
        )
    if any(unicodedata.category(c) in _FORBIDDEN for c in name):
        raise InvalidSessionNameError(
            "a session name must not contain control, format (e.g. bidi override), "
            "separator-line or unassigned characters"
        )
    return name


class Runtime:
    """srt on one store: a SQLite file by default.

    >>> rt = srt.Runtime("chats.db")          # doctest: +SKIP
    >>> s = rt.session("support-42")          # doctest: +SKIP

    ``path_or_url`` is a file path or a ``sqlite:`` URL (the SQLite engine, the
    default), or the URL of another registered engine (``srt.store.ENGINES``, e.g.
    ``postgresql://...``); it defaults to ``default_path()``. ``store`` is an engine
    instance built elsewhere, instead of a path (``rt.close()`` closes its
    connections). ``history_retention`` is how long, in seconds, an earlier head stays
    reachable after a rewind or edit leaves it (default: the database's setting, 7 days
    unless ``set_history_retention`` changed it). ``redact`` is a redaction hook: a
    function applied to every string of every message before it is stored, e.g. to
    scrub API keys a user pastes into a chat. ``max_message_bytes`` bounds one
    message's canonical size; ``fragment_cache_bytes`` bounds the in-memory cache of
    per-format fragments shared by all sessions of this runtime.
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike[str] | None = None,
        *,
        store: Store | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        fragment_cache_bytes: int = 256 * 1024 * 1024,
        redact: Callable[[str], str] | None = None,
        history_retention: float | None = None,
    ) -> None:
        if max_message_bytes <= 0:
            raise ConfigError("max_message_bytes must be positive")
        if fragment_cache_bytes < 0:
            raise ConfigError("fragment_cache_bytes must be >= 0")
        if store is None:
            where = os.fspath(path_or_url) if path_or_url is not None else default_path()
            store = open_store(where)
        elif path_or_url is not None:
            raise ConfigError("give Runtime a path or URL, or a store, not both")
        elif not isinstance(store, Store):
            raise ConfigError(f"store must be an srt.store.Store, got {type(store).__name__}")
        #: The storage engine (``srt.store.base.Store``): sessions, ledger, objects, gc.
        self.store = store
        #: Where the data lives: the file path, or the engine's URL without password.
        self.path = store.location
        self.max_message_bytes = max_message_bytes
        #: The redaction hook: applied to every string of every message (appended
        #: or received) before it is validated, hashed or stored.
        self.redact = redact
        self._fragments = _core.FragmentCache(fragment_cache_bytes)
        self._bodies = _core.FragmentCache(fragment_cache_bytes)
        self._serialized = 0
        self._counter_lock = threading.Lock()
        # The last request built per (format, model, cache key), for the cache explain.
        self._token_cache = TokenCache()
        self._records: dict[tuple[str, str, str | None], Record] = {}
        self._last_model: dict[tuple[str, str | None], str] = {}
        self._retention = None if history_retention is None else check_retention(history_retention)

    @property
    def history_retention(self) -> float:
        """Seconds an earlier head stays reachable after the head leaves it
        (``srt.history``): this runtime's ``history_retention``, else the database's."""
        if self._retention is None:
            self._retention = get_retention(self.store)
        return self._retention

    def set_history_retention(self, seconds: float) -> int:
        """Store the database's retention of earlier heads and re-date the records of
        every session; a record now past it is freed by the next ``gc``. Returns how
        many records were re-dated."""
        ids = [row.id for info in self.sessions() if (row := self.store.get_session(info.name))]
        n = set_retention(self.store, seconds, ids)
        self._retention = check_retention(seconds)
        return n

    def __repr__(self) -> str:
        return f"<srt.Runtime path={self.path!r}>"

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this runtime opened."""
        self.store.close()

    # -- internals used by Session ---------------------------------------------

    def _intern(self, h: bytes, body: bytes) -> bytes:
        """One shared bytes object per message body across all sessions.

        Bodies under ``INTERN_MIN_BYTES`` are not shared: holding a second copy of
        one costs less than the table entry that would find the first (and most
        short messages belong to one session anyway)."""
        if len(body) < INTERN_MIN_BYTES:
            return body
        cached: bytes | None = self._bodies.get(h)
        if cached is not None:
            return cached
        self._bodies.put(h, body)
        return body

    def _tool_fragments(
        self, fmt: WireFormat, tools: Sequence[Any]
    ) -> tuple[list[bytes], tuple[bytes, ...]]:
        """Each tool definition in ``fmt`` (rendered once) and the tools' content hashes."""
        out = []
        hashes = []
        for tool in tools:
            body = canonical_tool(tool)
            h = _core.digest(body)
            hashes.append(h)
            key = (h, fmt.name, "tool")
            frag: bytes | None = self._fragments.get(key)
            if frag is None:
                frag = fmt.tool_fragment(json.loads(body))
                self._fragments.put(key, frag)
            out.append(frag)
        return out, tuple(hashes)

    def _count_serialized(self, n: int) -> None:
        if n:
            with self._counter_lock:
                self._serialized += n

    def _create(self, name: str, head: int | None, head_prefix: bytes | None = None) -> Session:
        row = self.store.create_session(
            check_name(name), head, exist_ok=False, head_prefix=head_prefix
        )
        return Session(self, row.id, name, row.head)

    # -- public API --------------------------------------------------------------

    @property
    def serialized(self) -> int:
        """Messages serialized by this runtime so far (appends plus fragment misses)."""
        return self._serialized

    def usage(self) -> UsageSummary:
        """Totals of every request in this store's usage ledger."""
        return UsageSummary.of(self.calls())

    def calls(self, session_name: str | None = None) -> list[dict[str, Any]]:
        """Every row of the usage ledger, oldest first; with ``session_name``, the rows
        recorded under that name (a deleted session's too)."""
        return [c.as_dict() for c in self.store.calls(session_name=session_name)]

    def savings(
        self,
        pricing: Pricing | None = None,
        rows: Iterable[Mapping[str, Any]] | None = None,
    ) -> Savings:
        """Billed input over ``rows`` (default: every request in this store's ledger),
        against a careful stateless client under the same caching rules and a client
        with no caching (``srt.savings``; the careful client's prefixes follow this
        store's history)."""
        rows = self.calls() if rows is None else rows
        return savings(rows, pricing, history=self.store.tail)

    def verify_ledger(self) -> LedgerReport:
        """Rebuild every ledger row's body from the stored history and its recorded
        parameters, and check it against the recorded hash and size (``srt.ledger``)."""
        return verify_ledger(self)

    def session(self, name: str, *, create: bool = True) -> Session:
        """Open the session called ``name``, creating it empty unless ``create=False``."""
        check_name(name)
        row = self.store.get_session(name)
        if row is None:
            if not create:
                raise SessionNotFoundError(f"no session named {name!r}")
            row = self.store.create_session(name, None, exist_ok=True)
        return Session(self, row.id, name, row.head)

    def sessions(self) -> list[SessionInfo]:
        """Every session, sorted by name."""
        return self.store.list_sessions()

    def delete(self, name: str) -> None:
        """Delete a session's head and its earlier heads (``srt.history``). Its messages
        stay for any fork that shares them; ``gc`` frees the rest."""
        row = self.store.get_session(check_name(name))
        self.store.delete_session(name)
        if row is not None:
            forget_history(self.store, row.id)

    def rename(self, old: str, new: str) -> None:
        """Rename a session."""
        self.store.rename_session(check_name(old), check_name(new))
