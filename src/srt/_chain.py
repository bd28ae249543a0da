"""A session's history in memory, and its compare-and-swap commit to the store.

``Chain`` holds, per message: its node id (in an ``array``), its 16-byte hash (packed
in a ``_core.HashSeq``), its canonical body (one shared object for bodies of 1 KiB and
more), a pinned flag and, for partial replies only, a status. It is loaded from the
store on first use and kept in step with every commit. A commit appends below the
first ``keep`` messages as one compare-and-swap on the session head; the store
refuses it with ``ConflictError`` if another writer moved the head first.

Whoever derives state from the history (the request builder) listens: ``reset`` on
a (re)load, ``truncate(n)`` when messages from ``n`` on are dropped.
"""

from __future__ import annotations

import weakref
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from . import _core
from ._shared import INTERN_MIN_BYTES, Shared, check_name
from ._types import Message
from .errors import ConflictError, HistoryIndexError, SessionError
from .message import canonical_text, canonicalize, redact_strings
from .store import CallRecord, NewNode, ObjectPut
from .wire.convert import to_canonical

__all__ = ["REBASE_ATTEMPTS", "Chain", "ChainListener", "Prepared"]

REBASE_ATTEMPTS = 64


class Prepared(NamedTuple):
    """A message ready to store: its hash, canonical body and metadata JSON."""

    hash: bytes
    body: bytes
    meta: bytes | None


class ChainListener(Protocol):
    def reset(self) -> None: ...

    def truncate(self, n: int) -> None: ...


def _own(bodies: list[bytes]) -> int:
    """Bytes of the bodies a session holds alone (shorter ones are not interned)."""
    return sum(len(b) + 33 for b in bodies if len(b) < INTERN_MIN_BYTES)


def _pinned(meta: Any) -> bool:
    return isinstance(meta, bytes) and b'"pinned":true' in meta


class Chain:
    """A session's history: what the store holds from the root to the head."""

    __slots__ = (
        "_listener",
        "bodies",
        "hashes",
        "head",
        "head_prefix",
        "id",
        "ids",
        "loaded",
        "name",
        "own",
        "pinned",
        "shared",
        "status",
        "store",
    )

    def __init__(self, shared: Shared, sid: int, name: str, head: int | None) -> None:
        self.shared = shared
        self.store = shared.store
        self.id = sid
        self.name = name
        #: Node id of the last message, ``None`` for an empty session.
        self.head = head
        self.loaded = False
        self.ids: array[int] = array("q")  # node ids, 8 bytes each
        self.hashes = _core.HashSeq()  # 16 bytes a message, packed
        self.bodies: list[bytes] = []
        self.status: dict[int, str] = {}  # index -> status, for partial replies only
        self.pinned = bytearray()  # 1 where the metadata says {"pinned": true}
        self.head_prefix = _core.ROOT
        # Held weakly: the listener (the session's builder) holds this chain, and a cycle
        # would keep both alive after the handle is dropped, until the next collection.
        self._listener: weakref.ref[ChainListener] | None = None
        self.own = 0  # bytes of the bodies not shared with other sessions (see footprint)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def listener(self) -> ChainListener | None:
        """Who derives state from this history (``reset``, ``truncate``), if alive."""
        return self._listener() if self._listener is not None else None

    @listener.setter
    def listener(self, value: ChainListener | None) -> None:
        self._listener = weakref.ref(value) if value is not None else None

    def footprint(self) -> int:
        """Bytes the loaded history holds (an estimate): per message its id, hash, list
        slot and flags, and the bodies it does not share with other sessions."""
        if not self.loaded:
            return 0
        return self.own + 40 * len(self.ids) + 48 * len(self.status) + 400

    def unload(self) -> None:
        """Drop the history from memory (the memory budget); the next use reads it again."""
        self.loaded = False
        self.ids = array("q")
        self.hashes = _core.HashSeq()
        self.bodies = []
        self.status = {}
        self.pinned = bytearray()
        self.own = 0
        listener = self.listener
        if listener is not None:
            listener.reset()

    # -- loading -----------------------------------------------------------------

    def load(self) -> None:
        """Read the chain from the store, unless it is loaded."""
        if self.loaded:
            return
        rows = self.store.chain(self.head)
        ids, hashes, self.bodies, self.status, self.pinned = _core.split_chain(
            rows, self.shared.intern, INTERN_MIN_BYTES
        )
        self.ids = array("q", ids)
        self.hashes = _core.HashSeq(hashes)
        self.own = _own(self.bodies)
        self.head_prefix = rows[-1][3] if rows else _core.ROOT
        listener = self.listener
        if listener is not None:
            listener.reset()
        self.loaded = True

    def refresh(self) -> None:
        """Re-read the head from the store (after a ``ConflictError``)."""
        row = self.store.get_session(self.name)
        if row is None or row.id != self.id:
            raise SessionError(f"session {self.name!r} was deleted or replaced")
        if row.head != self.head or not self.loaded:
            self.head = row.head
            self.loaded = False
            self.load()

    def prefix(self, keep: int | None = None) -> bytes:
        """Prefix hash of the first ``keep`` messages (all by default)."""
        n = len(self.ids)
        keep = n if keep is None else keep
        if keep == 0:
            return _core.ROOT
        if keep == n:
            return self.head_prefix
        return self.store.node_prefix(self.ids[keep - 1])

    def believed_prefix(self, keep: int) -> bytes | None:
        """The prefix hash of the first ``keep`` messages as this handle derives it (not
        read back: a node id it saw may have been collected and reused elsewhere)."""
        if keep == 0:
            return None
        if keep == len(self.ids):
            return self.head_prefix
        return _core.chain_many(_core.ROOT, self.hashes[:keep])[-1]

    def index(self, at: int | None) -> int:
        """How many messages ``at`` keeps (slice rules; ``None``: all)."""
        n = len(self.ids)
        if at is None:
            return n
        if not isinstance(at, int) or isinstance(at, bool):
            raise HistoryIndexError(f"at must be an int, got {type(at).__name__}")
        keep = at + n if at < 0 else at
        if not 0 <= keep <= n:
            raise HistoryIndexError(f"at={at} is outside a session of {n} messages")
        return keep

    def truncate(self, n: int) -> None:
        """Drop the messages from ``n`` on, in memory only."""
        if n < len(self.hashes):
            # A new sequence: a recorded request (cache.Record) keeps the old one's prefix.
            self.hashes = self.hashes.head(n)
        if n < len(self.bodies):
            self.own -= _own(self.bodies[n:])
        del self.ids[n:], self.bodies[n:]
        for i in [i for i in self.status if i >= n]:
            del self.status[i]
        del self.pinned[n:]
        listener = self.listener
        if listener is not None:
            listener.truncate(n)

    def adopt(self, parent: Chain, keep: int) -> None:
        """Start as the first ``keep`` messages of ``parent`` (a fork: nothing is read)."""
        self.ids = parent.ids[:keep]
        self.hashes = parent.hashes.head(keep)
        self.bodies = parent.bodies[:keep]
        self.own = _own(self.bodies)
        self.status = {i: v for i, v in parent.status.items() if i < keep}
        self.pinned = parent.pinned[:keep]
        self.head_prefix = parent.prefix(keep)
        self.loaded = True

    # -- writing -----------------------------------------------------------------

    def prepare(self, messages: Iterable[Any], model: str | None = None) -> list[Prepared]:
        """Validate, convert and canonicalize ``messages``; nothing is written."""
        limit = self.shared.max_message_bytes
        hook = self.shared.redact
        out: list[Prepared] = []
        for given in messages:
            if hook is not None:
                given = redact_strings(given, hook)
            text = canonical_text(given, limit)  # {"role": ..., "content": "..."}: most turns
            if text is not None:
                out.append(Prepared(_core.digest(text), text, None))
                continue
            converted = to_canonical(given, model) if not isinstance(given, Message) else [given]
            for msg in converted:
                body, meta = canonicalize(msg, limit)
                out.append(Prepared(_core.digest(body), body, meta))
        self.shared.count_serialized(len(out))
        return out

    def commit(
        self,
        keep: int,
        prepared: Sequence[Prepared],
        status: str | None = None,
        call: CallRecord | None = None,
        objects: Sequence[ObjectPut] = (),
    ) -> None:
        """Write ``prepared`` after the first ``keep`` messages (CAS on the head).

        ``status`` marks the messages as a partial reply; ``call`` (a ledger row) and
        ``objects`` are written in the same transaction.
        """
        self.load()  # (the memory budget may have dropped it since the caller looked)
        parent = self.ids[keep - 1] if keep else None
        prefixes = _core.chain_many(self.prefix(keep), [p[0] for p in prepared])
        items = [
            NewNode(h, body, prefix, meta, status)
            for (h, body, meta), prefix in zip(prepared, prefixes, strict=True)
        ]
        ids = self.store.append(self.id, self.head, parent, keep, items, call=call, objects=objects)
        self.truncate(keep)
        intern = self.shared.intern
        for node_id, (h, body, meta) in zip(ids, prepared, strict=True):
            self.ids.append(node_id)
            self.hashes.append(h)
            self.bodies.append(intern(h, body))
            if len(body) < INTERN_MIN_BYTES:
                self.own += len(body) + 33
            if status is not None:
                self.status[len(self.bodies) - 1] = status
            self.pinned.append(_pinned(meta))
        self.head = self.ids[-1] if self.ids else None
        self.head_prefix = prefixes[-1] if prefixes else self.prefix()

    def append(self, prepared: Sequence[Prepared], *, rebase: bool) -> int | None:
        """Commit ``prepared`` at the head; with ``rebase``, on top of whatever head
        another writer left (re-reading it after each conflict)."""
        self.load()
        for _ in range(REBASE_ATTEMPTS):
            try:
                self.commit(len(self.ids), prepared)
                return self.head
            except ConflictError:
                if not rebase:
                    raise
                self.refresh()
        raise ConflictError(f"could not rebase after {REBASE_ATTEMPTS} attempts")

    def rewind(self, n: int) -> None:
        """Move the head back ``n`` messages (CAS; they stay stored for forks)."""
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= len(self.ids):
            raise HistoryIndexError(f"cannot rewind {n} of {len(self.ids)} messages")
        keep = len(self.ids) - n
        new = self.ids[keep - 1] if keep else None
        prefix = self.prefix(keep)
        self.store.move_head(self.id, self.head, new)
        self.truncate(keep)
        self.head = new
        self.head_prefix = prefix

    def fork(self, name: str, keep: int) -> Chain:
        """A new session named ``name`` at this chain's first ``keep`` messages."""
        head = self.ids[keep - 1] if keep else None
        row = self.store.create_session(
            check_name(name), head, exist_ok=False, head_prefix=self.believed_prefix(keep)
        )
        child = Chain(self.shared, row.id, name, row.head)
        child.adopt(self, keep)
        return child
