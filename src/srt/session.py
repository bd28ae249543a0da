"""A session: a named head in the prefix tree, with its chain and fragments in memory.

Appends are compare-and-swap on the head; fork, rewind and edit move or add
heads and copy no message and no node. ``request()`` assembles the next request
from frozen per-message fragments in one allocation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import _core
from ._types import BuildStats
from .errors import ConflictError, HistoryIndexError, SessionError, UnsupportedFeatureError
from .message import canonicalize
from .store import NewNode
from .wire import get_format
from .wire.base import Frag, Target, WireFormat, check_model

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Session"]

_REBASE_ATTEMPTS = 64


class Session:
    """A conversation held in the runtime's store. Get one from ``Runtime.session()``.

    A ``Session`` handle remembers the head it last saw. If another handle or
    process appends first, the next append raises ``ConflictError`` (nothing is
    written) unless ``rebase=True`` is passed. A handle may be shared between
    threads; its methods are serialised by a lock.
    """

    def __init__(self, runtime: Runtime, sid: int, name: str, head: int | None) -> None:
        self._rt = runtime
        self._id = sid
        self._name = name
        self._head = head
        self._lock = threading.RLock()
        self._loaded = False
        self._ids: list[int] = []
        self._hashes: list[bytes] = []
        self._bodies: list[bytes] = []
        self._asm: dict[tuple[str, str], _Assembly] = {}
        self._head_prefix = _core.ROOT
        self.last_build: BuildStats | None = None

    # -- identity ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def head(self) -> int | None:
        """Node id of the last message, or ``None`` for an empty session."""
        return self._head

    @property
    def prefix_hash(self) -> str | None:
        """Hex prefix hash of the whole history: equal hashes mean equal histories."""
        with self._lock:
            self._load()
            return self._prefix().hex() if self._ids else None

    def __len__(self) -> int:
        with self._lock:
            self._load()
            return len(self._ids)

    def __repr__(self) -> str:
        return f"<srt.Session name={self._name!r} head={self._head}>"

    # -- loading -----------------------------------------------------------------

    def _prefix(self, keep: int | None = None) -> bytes:
        """Prefix hash of the first ``keep`` messages (all by default)."""
        n = len(self._ids)
        keep = n if keep is None else keep
        if keep == 0:
            return _core.ROOT
        if keep == n:
            return self._head_prefix
        return self._rt._store.node_prefix(self._ids[keep - 1])

    def _load(self) -> None:
        if self._loaded:
            return
        rows = self._rt._store.chain(self._head)
        intern = self._rt._intern
        self._ids = [r[0] for r in rows]
        self._hashes = [r[1] for r in rows]
        self._bodies = [intern(r[1], r[2]) for r in rows]
        self._head_prefix = rows[-1][3] if rows else _core.ROOT
        self._asm = {}
        self._loaded = True

    def refresh(self) -> None:
        """Re-read the head from the store (after a ``ConflictError``)."""
        with self._lock:
            row = self._rt._store.get_session(self._name)
            if row is None or row[0] != self._id:
                raise SessionError(f"session {self._name!r} was deleted or replaced")
            if row[1] != self._head or not self._loaded:
                self._head = row[1]
                self._loaded = False
                self._load()

    def _truncate(self, n: int) -> None:
        del self._ids[n:], self._hashes[n:], self._bodies[n:]

    # -- writing -----------------------------------------------------------------

    def _prepare(self, messages: Iterable[Any]) -> list[tuple[bytes, bytes, bytes | None]]:
        limit = self._rt.max_message_bytes
        out = []
        for msg in messages:
            body, meta = canonicalize(msg, limit)
            out.append((_core.digest(body), body, meta))
        self._rt._count_serialized(len(out))
        return out

    def _commit(self, keep: int, prepared: list[tuple[bytes, bytes, bytes | None]]) -> None:
        """Write ``prepared`` after the first ``keep`` messages of the chain (CAS on head)."""
        parent = self._ids[keep - 1] if keep else None
        prefixes = _core.chain_many(self._prefix(keep), [p[0] for p in prepared])
        items: list[NewNode] = [
            (h, body, prefix, meta)
            for (h, body, meta), prefix in zip(prepared, prefixes, strict=True)
        ]
        ids = self._rt._store.append(self._id, self._head, parent, keep, items)
        self._truncate(keep)
        intern = self._rt._intern
        for node_id, (h, body, _meta) in zip(ids, prepared, strict=True):
            self._ids.append(node_id)
            self._hashes.append(h)
            self._bodies.append(intern(h, body))
        self._head = self._ids[-1] if self._ids else None
        self._head_prefix = prefixes[-1] if prefixes else self._prefix()

    def append(self, *messages: Any, rebase: bool = False) -> int | None:
        """Append messages atomically; return the new head node id.

        Every message is validated first; an invalid one raises
        ``InvalidMessageError`` and nothing is written. If the head moved since this
        handle last saw it, raises ``ConflictError`` (nothing written), or with
        ``rebase=True`` re-reads the head and appends on top of it.
        """
        with self._lock:
            prepared = self._prepare(messages)
            if not prepared:
                return self._head
            self._load()
            for _ in range(_REBASE_ATTEMPTS):
                try:
                    self._commit(len(self._ids), prepared)
                    return self._head
                except ConflictError:
                    if not rebase:
                        raise
                    self.refresh()
            raise ConflictError(f"could not rebase after {_REBASE_ATTEMPTS} attempts")

    def _index(self, at: int | None) -> int:
        n = len(self._ids)
        if at is None:
            return n
        if not isinstance(at, int) or isinstance(at, bool):
            raise HistoryIndexError(f"at must be an int, got {type(at).__name__}")
        keep = at + n if at < 0 else at
        if not 0 <= keep <= n:
            raise HistoryIndexError(f"at={at} is outside a session of {n} messages")
        return keep

    def rewind(self, n: int = 1) -> None:
        """Drop the last ``n`` messages from this session (they stay stored for forks)."""
        with self._lock:
            self._load()
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= len(self._ids):
                raise HistoryIndexError(f"cannot rewind {n} of {len(self._ids)} messages")
            keep = len(self._ids) - n
            new = self._ids[keep - 1] if keep else None
            prefix = self._prefix(keep)
            self._rt._store.move_head(self._id, self._head, new)
            self._truncate(keep)
            self._head = new
            self._head_prefix = prefix

    def edit(self, index: int, message: Any) -> int | None:
        """Replace message ``index`` and drop everything after it; return the new head.

        The old branch stays stored (fork first to keep a name on it).
        """
        with self._lock:
            self._load()
            n = len(self._ids)
            if not isinstance(index, int) or isinstance(index, bool):
                raise HistoryIndexError(f"index must be an int, got {type(index).__name__}")
            keep = index + n if index < 0 else index
            if not 0 <= keep < n:
                raise HistoryIndexError(f"index {index} is outside a session of {n} messages")
            prepared = self._prepare([message])
            self._commit(keep, prepared)
            return self._head

    def fork(self, name: str, at: int | None = None) -> Session:
        """A new session sharing this one's first ``at`` messages (all by default).

        ``at`` follows slice rules: ``at=-1`` keeps all but the last message. No
        message or node is copied; the fork is one new head row.
        """
        with self._lock:
            self._load()
            keep = self._index(at)
            head = self._ids[keep - 1] if keep else None
            child = self._rt._create(name, head)
            child._ids = self._ids[:keep]
            child._hashes = self._hashes[:keep]
            child._bodies = self._bodies[:keep]
            child._head_prefix = self._prefix(keep)
            child._loaded = True
            return child

    # -- reading -----------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        """The messages of this session as Chat Completions dicts, oldest first."""
        with self._lock:
            self._load()
            return [json.loads(b) for b in self._bodies]

    @property
    def cache_key(self) -> str | None:
        """The prompt-cache key of this history: derived from its root message, so every
        fork of one conversation shares it (``None`` for an empty session)."""
        with self._lock:
            self._load()
            if not self._hashes:
                return None
            return "srt-" + _core.chain(_core.ROOT, self._hashes[0]).hex()

    def _assembly(self, fmt: WireFormat, target: Target) -> _Assembly:
        """This session's glued fragments for ``fmt`` and ``target``, brought up to date."""
        key = (fmt.name, target.model)
        asm = self._asm.get(key)
        if asm is None:
            asm = self._asm[key] = _Assembly()
        n = len(self._hashes)
        if asm.n > n:
            asm.truncate(n)
        if asm.n < n:
            if fmt.identity:
                asm.extend_identity(fmt, target, self._bodies[asm.n : n])
                asm.serialized = 0
            else:
                cache = self._rt._fragments
                serialized = 0
                frags = []
                for i in range(asm.n, n):
                    ckey = (self._hashes[i], fmt.name, target.model)
                    frag = cache.get(ckey)
                    if frag is None:
                        frag = fmt.render(self._bodies[i], target)
                        serialized += 1
                        cache.put(ckey, frag, len(frag.data) + 100)
                    frags.append(frag)
                asm.extend(fmt, frags)
                asm.serialized = serialized
        else:
            asm.serialized = 0
        return asm

    def messages_bytes(self) -> list[bytes]:
        """The canonical bytes of each message, oldest first (shared, frozen objects)."""
        with self._lock:
            self._load()
            return list(self._bodies)

    def request(
        self,
        format: str = "openai.chat",
        /,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool = True,
        **params: Any,
    ) -> bytes:
        """The exact bytes of the next request body in ``format`` for ``model``.

        Fragments already built are reused as frozen bytes; only messages new since
        the last build are serialized. ``tools`` are tool definitions (OpenAI
        function shape, or Anthropic's); ``params`` go into the body as given.
        With ``cache=True`` the cache planner adds the format's cache hints: Anthropic
        ``cache_control`` and Bedrock ``cachePoint`` breakpoints, or OpenAI's
        ``prompt_cache_key``. ``last_build`` tells what this call did.
        """
        fmt = get_format(format)
        check_model(model)
        target = Target(fmt.provider, model)
        with self._lock:
            self._load()
            asm = self._assembly(fmt, target)
            tool_frags = self._rt._tool_fragments(fmt, tools or ())
            if cache and fmt.provider == "openai" and self._hashes:
                params.setdefault("prompt_cache_key", self.cache_key)
            head, tail = fmt.envelope(model, params, asm.system, tool_frags)
            body = _core.assemble(head, asm.pieces, b"", fmt.close(asm.last_role()) + tail)
            n = len(self._hashes)
            self._rt._count_serialized(asm.serialized)
            self.last_build = BuildStats(
                format, n, asm.serialized, n - asm.serialized, len(body), asm.notes()
            )
            return body


class _Assembly:
    """One session's fragments glued for one (format, model), extendable and truncatable."""

    __slots__ = ("_ends", "_notes", "_roles", "_sys", "pieces", "serialized", "system")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.system: list[bytes] = []
        self._ends: list[int] = []  # len(pieces) after message i
        self._sys: list[int] = []  # len(system) after message i
        self._roles: list[str | None] = []  # last wire role after message i
        self._notes: list[str | None] = []
        self.serialized = 0

    @property
    def n(self) -> int:
        return len(self._ends)

    def last_role(self) -> str | None:
        return self._roles[-1] if self._roles else None

    def notes(self) -> tuple[str, ...]:
        return tuple(n for n in self._notes if n)

    def truncate(self, k: int) -> None:
        del self.pieces[self._ends[k - 1] if k else 0 :]
        del self.system[self._sys[k - 1] if k else 0 :]
        del self._ends[k:], self._sys[k:], self._roles[k:], self._notes[k:]

    def extend_identity(self, fmt: WireFormat, target: Target, bodies: list[bytes]) -> None:
        """Fast path for formats whose fragment is normally the canonical body itself."""
        pieces, ends, sys, roles, notes = (
            self.pieces,
            self._ends,
            self._sys,
            self._roles,
            self._notes,
        )
        nsys = len(self.system)
        plain = fmt.plain
        for body in bodies:
            if not plain(body):
                self.extend(fmt, [fmt.render(body, target)])
                continue
            pieces.append(fmt.glue(roles[-1] if roles else None, ""))
            pieces.append(body)
            ends.append(len(pieces))
            sys.append(nsys)
            roles.append("")
            notes.append(None)

    def extend(self, fmt: WireFormat, frags: list[Frag]) -> None:
        last = self.last_role()
        pieces, system = self.pieces, self.system
        for f in frags:
            if f.kind == "system" and last is None:
                system.append(f.data)
            elif f.kind == "system":
                raise UnsupportedFeatureError(
                    fmt.name, "a system or developer message after the conversation has started"
                )
            else:
                pieces.append(fmt.glue(last, f.role))
                pieces.append(f.data)
                last = f.role
            self._ends.append(len(pieces))
            self._sys.append(len(system))
            self._roles.append(last)
            self._notes.append(f.note)
