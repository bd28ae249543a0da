"""What every session of one runtime shares: the store, the caches and the settings.

``Runtime`` makes one ``Shared`` and hands it to each ``Session`` it opens; the
session's chain, builder and exchange read it. It holds no session of its own, so
nothing below the runtime needs the runtime.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from . import _core
from .cache import Record
from .errors import InvalidSessionNameError
from .history import check_retention, get_retention
from .message import canonical_tool
from .store import Store
from .tokens import TokenCache
from .wire.base import WireFormat

__all__ = ["INTERN_MIN_BYTES", "MAX_NAME_CHARS", "Shared", "check_name"]

#: Message bodies at least this long are held once in memory however many sessions
#: load them (a shared system prompt); shorter ones are held per session.
INTERN_MIN_BYTES = 1024
# Cc controls (C0, DEL, C1), Cf format characters (bidi overrides, zero-width),
# Zl/Zp line and paragraph separators, Cs surrogates, Cn unassigned.
_FORBIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})
#: Longest session name accepted, in characters.
MAX_NAME_CHARS = 256


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


class Shared:
    """The store, the caches and the settings a runtime's sessions share."""

    def __init__(
        self,
        store: Store,
        *,
        max_message_bytes: int,
        fragment_cache_bytes: int,
        redact: Callable[[str], str] | None,
        history_retention: float | None = None,
        max_sessions: int | None = None,
    ) -> None:
        self.store = store
        #: The most sessions the store may hold (``None``: no limit): creating one more
        #: (a new name, a fork) raises ``SessionLimitError``.
        self.max_sessions = max_sessions
        self.max_message_bytes = max_message_bytes
        #: Applied to every string of every message before it is validated or stored.
        self.redact = redact
        #: Per-format message fragments, keyed (message hash, format name, model).
        self.fragments = _core.FragmentCache(fragment_cache_bytes)
        self.tokens = TokenCache()
        #: The last request built per (format, model, cache key), for the cache explain,
        #: and the last model per (format, cache key).
        self.records: dict[tuple[str, str, str | None], Record] = {}
        self.last_model: dict[tuple[str, str | None], str] = {}
        self.serialized = 0
        self._bodies = _core.FragmentCache(fragment_cache_bytes)
        self._counter_lock = threading.Lock()
        self._retention = None if history_retention is None else check_retention(history_retention)

    def history_retention(self) -> float:
        """Seconds an earlier head stays reachable after the head leaves it
        (``srt.history``): the runtime's ``history_retention``, else the database's."""
        if self._retention is None:
            self._retention = get_retention(self.store)
        return self._retention

    def set_history_retention(self, seconds: float) -> None:
        self._retention = check_retention(seconds)

    def intern(self, h: bytes, body: bytes) -> bytes:
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

    def tool_fragments(
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
            frag: bytes | None = self.fragments.get(key)
            if frag is None:
                frag = fmt.tool_fragment(json.loads(body))
                self.fragments.put(key, frag)
            out.append(frag)
        return out, tuple(hashes)

    def count_serialized(self, n: int) -> None:
        """Add ``n`` message serializations to the runtime's counter."""
        if n:
            with self._counter_lock:
                self.serialized += n
