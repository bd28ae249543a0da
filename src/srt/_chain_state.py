"""A session's history in memory: what a ``_chain.Chain`` holds, and how it is read.

``ChainState`` holds, per message: its node id (in an ``array``), its 16-byte hash
(packed in a ``_core.HashSeq``), its canonical body (one shared object for bodies of
1 KiB and more), a pinned flag and, for partial replies only, a status. It is read from
the store on first use, or copied from another handle of the session in this runtime
that holds it loaded (a sibling); ``refresh`` and ``resume`` read only the messages
other writers appended above the head it holds, and ``unload`` drops it (the memory
budget). ``Chain`` (``_chain``) is this class with the writes added: the per-turn calls
find every method on the chain itself, with no call level more.

Whoever derives state from the history (the request builder) listens: ``reset`` on
a (re)load, ``copy_from`` when it is copied from a sibling, ``truncate(n)`` when
messages from ``n`` on are dropped.
"""

from __future__ import annotations

import threading
import weakref
from array import array
from typing import Any, Protocol

from . import _core
from ._shared import INTERN_MIN_BYTES, Shared
from .errors import SessionNotFoundError, SrtError
from .store import ChainRow

__all__ = [
    "SHARE_MIN_MESSAGES",
    "ChainListener",
    "ChainState",
    "is_pinned",
    "own_bytes",
    "packed_ids",
]

#: Chains at least this long are offered to other handles of their session
#: (``Chain._register``): reading a shorter one again costs little more than copying it
#: (a new handle's first build: 0.12 against 0.05 ms at 41 messages, 0.24 against 0.05
#: ms at 129), and each offer costs the runtime about 125 bytes while the chain lives.
SHARE_MIN_MESSAGES = 64


class ChainListener(Protocol):
    def reset(self) -> None: ...

    def copy_from(self, other: Any, n: int) -> None: ...

    def truncate(self, n: int) -> None: ...


def own_bytes(bodies: list[bytes]) -> int:
    """Bytes of the bodies a session holds alone (shorter ones are not interned)."""
    return _core.short_bytes(bodies, INTERN_MIN_BYTES, 33)


def packed_ids(ids: list[int]) -> array[int]:
    """Node ids packed: 4 bytes each while every id fits in 32 bits (a file holds fewer
    than 2**31 nodes), else 8."""
    try:
        return array("i", ids)
    except OverflowError:
        return array("q", ids)


def is_pinned(meta: Any) -> bool:
    """Whether metadata JSON says ``{"pinned": true}``."""
    return isinstance(meta, bytes) and b'"pinned":true' in meta and _core.meta_pinned(meta)


class ChainState:
    """What a ``Chain`` holds, and how it is read (``Chain`` adds the writes)."""

    __slots__ = (
        "__weakref__",
        "_listener",
        "bodies",
        "call_ids",
        "hashes",
        "head",
        "head_prefix",
        "id",
        "ids",
        "loaded",
        "lock",
        "name",
        "own",
        "pinned",
        "row_prefix",
        "shared",
        "staged",
        "status",
        "store",
    )

    def __init__(
        self,
        shared: Shared,
        sid: int,
        name: str,
        head: int | None,
        row_prefix: bytes | None = None,
    ) -> None:
        self.shared = shared
        self.store = shared.store
        self.id = sid
        self.name = name
        #: Node id of the last message, ``None`` for an empty session.
        self.head = head
        self.loaded = False
        self.ids: array[int] = array("i")  # node ids, 4 bytes each (8 past 2**31: _add_id)
        self.hashes = _core.HashSeq()  # 16 bytes a message, packed
        self.bodies: list[bytes] = []
        self.status: dict[int, str] = {}  # index -> status, for partial replies only
        self.pinned = bytearray()  # 1 where the metadata says {"pinned": true}
        self.head_prefix = _core.ROOT
        #: (head, its prefix hash) as the store read them with the session row (``None``:
        #: not read), which ``_from_sibling`` checks instead of reading the prefix again.
        self.row_prefix = (head, row_prefix) if row_prefix is not None else None
        # Held weakly: the listener (the builder) holds this chain (no cycle to collect).
        self._listener: weakref.ref[ChainListener] | None = None
        self.own = 0  # bytes of the bodies not shared with other sessions (see footprint)
        #: (length before, head prefix before) while messages are staged for a send.
        self.staged: tuple[int, bytes] | None = None
        #: The lock of the handle that owns this chain (``Session`` sets it): another
        #: handle of the session copies this chain's state only while holding it.
        self.lock: threading.RLock | None = None
        #: The tool-call ids of the messages held (``_tool_pairs.CallIds``, counted on
        #: a reply's persist): ``None`` whenever messages it counted may have changed.
        self.call_ids: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    def footprint(self) -> int:
        """Bytes the loaded history holds (an estimate): per message its id, hash, list
        slot and flags, and the bodies it does not share with other sessions."""
        if not self.loaded:
            return 0
        return self.own + 40 * len(self.ids) + 48 * len(self.status) + 400

    @property
    def listener(self) -> ChainListener | None:
        """Who derives state from this history (``reset``, ``truncate``), if alive."""
        return self._listener() if self._listener is not None else None

    @listener.setter
    def listener(self, value: ChainListener | None) -> None:
        self._listener = weakref.ref(value) if value is not None else None

    def unload(self) -> None:
        """Drop the history from memory (the memory budget); the next use reads it again."""
        self.loaded = False
        self.ids = array("i")
        self.hashes = _core.HashSeq()
        self.bodies = []
        self.status = {}
        self.pinned = bytearray()
        self.own = 0
        self.call_ids = None
        listener = self.listener
        if listener is not None:
            listener.reset()

    def load(self) -> None:
        """Read the chain from the store, unless it is loaded (or another handle of the
        session in this runtime holds it loaded at the same head: then copied from it)."""
        if self.loaded:
            return
        if self._from_sibling():
            return
        rows = self.store.chain(self.head)
        ids, hashes, self.bodies, self.status, self.pinned = _core.split_chain(
            rows, self.shared.interned, INTERN_MIN_BYTES
        )
        self.ids = packed_ids(ids)
        self.hashes = _core.HashSeq(hashes)
        self.call_ids = None
        self.own = own_bytes(self.bodies)
        self.head_prefix = rows[-1][3] if rows else _core.ROOT
        listener = self.listener
        if listener is not None:
            listener.reset()
        self.loaded = True
        self._register()

    def _register(self) -> None:
        """Be the chain a new handle of this session copies (``_from_sibling``), unless
        the one there holds the same head loaded (it may well outlive this one)."""
        if len(self.ids) < SHARE_MIN_MESSAGES:
            return
        there = self.shared.chains.get(self.id)
        if there is None or not there.loaded or there.head != self.head:
            self.shared.loaded(self)

    def _from_sibling(self) -> bool:
        """Take the history from another handle of this session in this runtime (the one
        ``_register`` keeps), if it holds it loaded at this chain's head and is not in use:
        its lists and its builder's assembly are copied (bodies and fragments shared, as
        they are immutable), and only the head's stored prefix hash is checked (the one
        read with the session row, else read now), so a head id that gc freed and the
        store gave to another node is not mistaken for the one the other handle holds.
        False: read the store."""
        head = self.head
        if head is None:
            return False  # (an empty session: nothing to read)
        other = self.shared.chains.get(self.id)
        if other is None or other is self or other.head != head or other.lock is None:
            return False
        if not other.lock.acquire(blocking=False):
            return False  # in use (a send, a load): its lists may be changing
        try:
            if not other.loaded or other.staged is not None or other.head != head:
                return False
            n = len(other.ids)
            prefix = other.head_prefix
            ids, hashes, bodies = other.ids[:n], other.hashes.head(n), other.bodies[:n]
            status, pinned, own = dict(other.status), other.pinned[:n], other.own
            mine, theirs = self.listener, other.listener
            if mine is not None:
                mine.reset()
                if theirs is not None:
                    mine.copy_from(theirs, n)
        finally:
            other.lock.release()
        if not n or ids[-1] != head or len(hashes) != n or len(bodies) != n:
            return False
        row, self.row_prefix = self.row_prefix, None
        try:
            stored = row[1] if row is not None and row[0] == head else None
            if (stored if stored is not None else self.store.node_prefix(head)) != prefix:
                return False
        except SrtError:
            return False  # (the store's own read reports what is wrong)
        self.ids, self.hashes, self.bodies = ids, hashes, bodies
        self.status, self.pinned, self.own = status, pinned, own
        self.call_ids = None
        self.head_prefix = prefix
        self.loaded = True
        self._register()
        return True

    def resume(self, name: str, head: int | None, head_prefix: bytes | None = None) -> bool:
        """Go on as the chain of a new handle of this session (this one was left by a
        collected handle, and the caller holds its lock), the store saying the session
        is called ``name`` and its head is ``head`` (whose prefix hash is ``head_prefix``,
        if the store read it with the session): True if this chain holds that head's
        history (the stored prefix hash compared, read if not given), or does after
        reading only the messages other writers appended above its own head. False: read
        the store."""
        if not self.loaded or self.staged is not None or self.head is None or head is None:
            return False
        try:
            if head == self.head:
                stored = self.store.node_prefix(head) if head_prefix is None else head_prefix
                if stored != self.head_prefix:
                    return False
            else:
                rows = self.store.chain_extension(head, len(self.ids), self.head_prefix)
                if not rows:
                    return False  # (rewound, edited or replaced meanwhile)
                self._extend(rows)
        except SrtError:
            return False  # (the store's own read reports what is wrong)
        self.name = name
        self._register()
        return True

    def _add_id(self, node_id: int, at: int | None = None) -> None:
        """Append ``node_id`` (or set item ``at``), widening ``ids`` to 8 bytes an id if
        it does not fit in 4."""
        for _ in range(2):
            try:
                if at is None:
                    self.ids.append(node_id)
                else:
                    self.ids[at] = node_id
                return
            except OverflowError:
                if self.ids.typecode == "q":
                    raise
                self.ids = array("q", self.ids)

    def gone(self) -> SessionNotFoundError:
        """What a write to this session, deleted since its handle was opened, raises: the
        store's refusal names no session; this says which, and what to do."""
        return SessionNotFoundError(
            f"session {self.name!r} was deleted (by another handle or process); nothing was "
            f"written: open or create it again with rt.session({self.name!r})"
        )

    def refresh(self) -> None:
        """Re-read the head from the store (after a ``ConflictError``)."""
        row = self.store.get_session(self.name)
        if row is None or row.id != self.id:  # (deleted, or deleted and created again)
            raise self.gone()
        if row.head == self.head and self.loaded:
            return
        rows = None
        if self.loaded and self.head is not None and row.head is not None:
            # Usually other writers appended on top of our head: read only that.
            rows = self.store.chain_extension(row.head, len(self.ids), self.head_prefix)
        if not rows:
            self.head = row.head
            self.loaded = False
            self.load()
            return
        self._extend(rows)

    def _extend(self, rows: list[ChainRow]) -> None:
        intern = self.shared.intern
        for r in rows:
            if r[4] is not None:
                self.status[len(self.bodies)] = r[4]
            self._add_id(r[0])
            self.hashes.append(r[1])
            self.bodies.append(intern(r[1], r[2]))
            if len(r[2]) < INTERN_MIN_BYTES:
                self.own += len(r[2]) + 33
            self.pinned.append(is_pinned(r[5]))
        self.head = rows[-1][0]
        self.head_prefix = rows[-1][3]

    def reload(self, head: int | None) -> None:
        """Take ``head`` as the head and read its chain again (after a restore)."""
        self.head = head
        self.loaded = False
        self.load()
