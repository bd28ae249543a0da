"""What every session of one runtime shares: the store, the caches and the settings.

``Runtime`` makes one ``Shared`` and hands it to each ``Session`` it opens; the
session's chain, builder and exchange read it. It holds no session of its own, so
nothing below the runtime needs the runtime.
"""

from __future__ import annotations

import contextlib
import json
import threading
import unicodedata
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

from . import _core
from .cache import DEFAULT_POLICY, CachePolicy, Record
from .errors import InvalidMessageError, InvalidSessionNameError
from .history import check_retention, get_retention
from .message import canonical_tool
from .store import Store
from .tokens import TokenCache
from .wire.base import WireFormat

__all__ = [
    "INTERN_MIN_BYTES",
    "KEEP_BYTES",
    "KEEP_SESSIONS",
    "MAX_NAME_CHARS",
    "Budgeted",
    "Kept",
    "Lru",
    "Shared",
    "check_name",
]

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


K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

#: Records of previous requests (the cache explain) kept at most, least recent dropped.
MAX_RECORDS = 4096


class Lru(OrderedDict[K, V]):
    """A dict of at most ``limit`` items: setting one makes it the most recent, and the
    least recent are dropped past the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class Budgeted(Protocol):
    """What the memory budget asks of a session handle."""

    def footprint(self) -> int:
        """Bytes its loaded state holds (an estimate; 0 when nothing is loaded)."""
        ...

    def evict(self) -> bool:
        """Drop its loaded state (to be read again on its next use); False if busy."""
        ...

    def remains(self) -> Any:
        """What may outlive it once it is collected (``Shared.keep`` decides), or None."""
        ...


#: Session state dropped (handles collected, or evicted) before memory is handed back
#: to the operating system (``_release``).
RELEASE_BYTES = 4 * 1024 * 1024


def _release() -> None:
    """Hand freed heap memory back to the operating system: glibc keeps freed blocks for
    reuse, so a process's resident size stays at its peak after sessions are dropped;
    ``malloc_trim`` releases them (elsewhere this does nothing)."""
    global _TRIM
    if _TRIM is None:
        _TRIM = False
        with contextlib.suppress(Exception):
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
            if trim is not None:
                _TRIM = trim
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


class _Charged(weakref.ref[Budgeted]):
    """A weak reference to a session with what it was charged (one object per live
    session: no closure, no tuple)."""

    __slots__ = ("key", "remains", "size")
    key: int
    size: int
    remains: Any  # held strongly: what the owner leaves behind (``Budgeted.remains``)

    def __new__(
        cls, owner: Budgeted, callback: Callable[[_Charged], None], key: int, size: int
    ) -> _Charged:
        self = super().__new__(cls, owner, callback)
        self.key, self.size, self.remains = key, size, owner.remains()
        return self

    def __init__(
        self, owner: Budgeted, callback: Callable[[_Charged], None], key: int, size: int
    ) -> None:
        # weakref.ref's own __init__ takes (owner, callback) only (typeshed declares none).
        super().__init__(owner, callback)  # type: ignore[call-arg]


class _Budget:
    """The live state of a runtime's sessions, least recently used first, with what each
    was charged. Past ``limit`` bytes (if any) the least recently used are evicted; once
    dropped state (handles collected, sessions evicted) adds up to ``RELEASE_BYTES``,
    freed memory is handed back to the operating system (a ``malloc_trim`` costs about a
    millisecond: not for every handle dropped)."""

    def __init__(
        self, limit: int | None, on_collected: Callable[[Any, int], bool] | None = None
    ) -> None:
        self.limit = limit
        self.used = 0
        self.evictions = 0
        self._dropped = 0
        #: Told what a collected owner left (``Budgeted.remains``) and its size: True if
        #: it keeps it (then nothing was freed). Held weakly: its owner holds this budget,
        #: and a cycle would keep a closed runtime's caches until the next collection.
        self._on_collected = None if on_collected is None else weakref.WeakMethod(on_collected)
        # Re-entrant: a weak reference's callback (a handle collected) may run while
        # this thread is inside ``charge``.
        self._lock = threading.RLock()
        self._live: OrderedDict[int, _Charged] = OrderedDict()
        self._callback = self._forget  # one bound method for every reference

    def charge(self, owner: Budgeted, size: int | None = None) -> None:
        """Count ``owner`` (``size`` bytes: its ``footprint()`` unless given) as the most
        recently used, and evict the least recently used owners past the limit."""
        key = id(owner)
        if size is None:
            size = owner.footprint()
        victims: list[_Charged] = []
        with self._lock:
            live = self._live
            ref = live.get(key)
            if ref is not None:
                self.used += size - ref.size
                ref.size = size
                live.move_to_end(key)  # the most recent
            else:
                live[key] = _Charged(owner, self._callback, key, size)
                self.used += size
            while self.limit is not None and self.used > self.limit and len(self._live) > 1:
                _, victim = self._live.popitem(last=False)
                self.used -= victim.size
                victims.append(victim)
        for victim in victims:
            held = victim()
            if held is None:
                continue  # (collected meanwhile: its count went with it)
            if held.evict():
                self.evictions += 1
                self._drop(victim.size)
            else:
                self._busy(victim)
            del held

    def _busy(self, victim: _Charged) -> None:
        """``victim`` could not be evicted (in use: a call in flight on it): count it
        again, as the most recently used (it is in use), unless its owner counted itself
        again meanwhile. Left out, its state would stay in memory uncounted, and never
        evicted, until its next use."""
        with self._lock:
            if victim.key not in self._live and victim() is not None:
                self._live[victim.key] = victim
                self.used += victim.size

    def _forget(self, ref: _Charged) -> None:
        """A session handle was collected: what it held is gone, unless ``on_collected``
        keeps what it left."""
        remains, ref.remains = ref.remains, None
        with self._lock:
            if self._live.get(ref.key) is not ref:
                return  # evicted before (or its id already reused by a newer session)
            del self._live[ref.key]
            self.used -= ref.size
        hook = None if self._on_collected is None else self._on_collected()
        if remains is not None and hook is not None:
            try:
                if hook(remains, ref.size):
                    return
            except Exception:  # (a collection's callback must not raise: then not kept)
                pass
        self._drop(ref.size)

    def discharge(self, owner: Budgeted) -> None:
        """Stop counting ``owner`` (its state lives on elsewhere, counted there): not
        evicted, and not freed."""
        with self._lock:
            ref = self._live.get(id(owner))
            if ref is None or ref() is not owner:
                return
            del self._live[ref.key]
            self.used -= ref.size

    def _drop(self, size: int) -> None:
        self._dropped += size
        if self._dropped >= RELEASE_BYTES:
            self._dropped = 0
            _release()


#: The state of dropped handles kept for the next handle of the same session (``keep``):
#: at most this many sessions, and this many bytes (a quarter of a memory budget if
#: that is less; ``Shared.keep_sessions`` and ``keep_bytes``). Short sessions too: a
#: new handle of a 41-message session builds in 29 µs from a kept state, 108 µs from the
#: store.
KEEP_SESSIONS = 64
KEEP_BYTES = 64 * 1024 * 1024


class Kept:
    """What a collected session handle left (its chain, builder and lock), kept for the
    next handle of the session (``Shared.revive``). Charged to the memory budget like a
    handle: evicting it lets it go."""

    __slots__ = ("__weakref__", "builder", "chain", "lock", "shared", "size")

    def __init__(self, shared: Shared, chain: Any, builder: Any, lock: Any, size: int) -> None:
        self.shared = weakref.ref(shared)  # (the runtime's Shared holds this one)
        self.chain = chain
        self.builder = builder
        self.lock = lock
        self.size = size

    def footprint(self) -> int:
        return self.size

    def evict(self) -> bool:
        shared = self.shared()
        if shared is not None:
            shared.unkeep(self)
        return True

    def remains(self) -> None:
        return None


class Shared:
    """The store, the caches and the settings a runtime's sessions share."""

    def __init__(
        self,
        store: Store,
        *,
        max_message_bytes: int,
        fragment_cache_bytes: int,
        redact: Callable[[str], str] | None,
        memory_budget: int | None = None,
        history_retention: float | None = None,
        max_sessions: int | None = None,
        cache_policy: CachePolicy = DEFAULT_POLICY,
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
        self.records: Lru[tuple[str, str, str | None], Record] = Lru(MAX_RECORDS)
        self.last_model: Lru[tuple[str, str | None], str] = Lru(MAX_RECORDS)
        #: Per (session id, root hash), its ``CachePolicy(key="session")`` key.
        self.session_keys: Lru[tuple[int, bytes], str] = Lru(MAX_RECORDS)
        #: What ``cache=True`` means for this runtime's requests (``Runtime(cache=...)``).
        self.cache_policy = cache_policy
        #: The sessions' live state, bounded by ``Runtime(memory_budget=...)`` if given.
        self.budget = _Budget(memory_budget, self.keep)
        #: Per session id, the state the session's last collected handle left (``keep``),
        #: least recently left first; ``kept_bytes`` what they hold.
        self.kept: OrderedDict[int, Kept] = OrderedDict()
        self.kept_bytes = 0
        self.keep_sessions = KEEP_SESSIONS  # (0 once the runtime closed)
        self.keep_bytes = KEEP_BYTES
        if memory_budget is not None:
            self.keep_bytes = min(KEEP_BYTES, memory_budget // 4)
        # Re-entrant: a handle collected by a collection that an allocation under it set
        # off calls ``keep`` on the same thread.
        self._kept_lock = threading.RLock()
        #: Per session id (at most ``MAX_RECORDS``, the most recently loaded), a loaded
        #: chain of a handle: a new handle of the session copies its state instead of
        #: reading the store (``Chain.load``). Held weakly, and an entry goes with its
        #: chain, so this registry keeps nothing alive (``kept`` does, within its bounds).
        #: Typed loosely: the chain module imports this one.
        self.chains: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._same: Lru[Any, Any] = Lru(MAX_RECORDS)
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

    def same(self, value: T) -> T:
        """One object for equal small tuples that many sessions keep (a cache key with its
        root, a bare envelope, an assembly's key): each session holds a reference, not a
        copy (the most recent ``MAX_RECORDS`` kept)."""
        got = self._same.get(value)
        if got is None:
            self._same[value] = got = value
        return cast(T, got)

    def loaded(self, chain: Any) -> None:
        """Keep ``chain`` (just loaded) as its session's in ``chains``, the oldest entries
        dropped past ``MAX_RECORDS``."""
        chains = self.chains
        data: dict[int, Any] = chains.data  # type: ignore[attr-defined]  # (oldest first)
        data.pop(chain.id, None)  # (a key set again keeps its old place: put it last)
        chains[chain.id] = chain
        while len(data) > MAX_RECORDS:
            data.pop(next(iter(data)), None)

    def charge(self, owner: Budgeted) -> None:
        """``owner`` (a session) was just used: count its state, most recent, and evict
        the least recently used sessions past the memory budget (if there is one)."""
        self.budget.charge(owner)

    # -- the state of dropped handles ---------------------------------------------------

    def keep(self, remains: tuple[Any, Any, Any], size: int) -> bool:
        """A session handle was collected, leaving ``remains`` (its chain, builder and
        lock; ``size`` bytes as last charged): keep them for the session's next handle
        (``revive``) if its history is loaded and not empty, within ``KEEP_SESSIONS`` and
        ``KEEP_BYTES`` (the least recently left let go first). False: not kept."""
        chain, builder, lock = remains
        limit = self.keep_bytes
        if (
            self.keep_sessions <= 0
            or not chain.loaded
            or chain.staged is not None
            or not chain.ids
            or size > limit
        ):
            return False
        kept = Kept(self, chain, builder, lock, size)
        gone: list[Kept] = []
        with self._kept_lock:
            old = self.kept.pop(chain.id, None)  # (an older handle's: the newer state wins)
            if old is not None:
                self.kept_bytes -= old.size
                gone.append(old)
            self.kept[chain.id] = kept
            self.kept_bytes += size
            while len(self.kept) > self.keep_sessions or self.kept_bytes > limit:
                _, first = self.kept.popitem(last=False)
                self.kept_bytes -= first.size
                gone.append(first)
        # (let go outside the lock: each one's budget entry goes with it)
        del gone
        if self.kept.get(kept.chain.id) is kept:
            self.budget.charge(kept)
        return True

    def unkeep(self, kept: Kept) -> None:
        """Let ``kept`` go (the memory budget evicted it)."""
        with self._kept_lock:
            if self.kept.get(kept.chain.id) is kept:
                del self.kept[kept.chain.id]
                self.kept_bytes -= kept.size

    def revive(self, sid: int) -> Kept | None:
        """Take the state the last collected handle of session ``sid`` left, if kept: the
        caller checks it against the store and owns it (``Runtime.session``)."""
        with self._kept_lock:
            kept = self.kept.pop(sid, None)
            if kept is None:
                return None
            self.kept_bytes -= kept.size
        self.budget.discharge(kept)
        return kept

    def let_go(self, *, closing: bool = True) -> None:
        """Let every kept state go; ``closing`` (the runtime closes): keep none from now."""
        with self._kept_lock:
            if closing:
                self.keep_sessions = 0
            gone = list(self.kept.values())
            self.kept.clear()
            self.kept_bytes = 0
        del gone

    @property
    def interned(self) -> _core.FragmentCache:
        """The shared bodies by hash, which ``intern`` fills (``_core.split_chain``
        interns a loaded chain's bodies with it directly)."""
        return self._bodies

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
        if not tools and (type(tools) is tuple or type(tools) is list):
            return [], ()
        if not isinstance(tools, Sequence) or isinstance(tools, (str, bytes, bytearray)):
            raise InvalidMessageError(
                f"tools must be a list of tool definitions, got {type(tools).__name__}"
            )
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
