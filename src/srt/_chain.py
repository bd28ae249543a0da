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

import random
import threading
import time
import weakref
from array import array
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from . import _core
from ._shared import INTERN_MIN_BYTES, Shared, check_name
from ._types import Message
from .errors import ConflictError, HistoryIndexError, SessionError, SrtError
from .history import head_record
from .message import TEXT_HEADS, canonical_text, canonicalize, redact_strings
from .store import CallRecord, ChainRow, NewNode, ObjectPut
from .wire.convert import to_canonical

__all__ = ["REBASE_MAX_WAIT", "Chain", "ChainListener", "Prepared"]

#: The longest wait between two rebase attempts, in seconds.
REBASE_MAX_WAIT = 0.05
#: Chains at least this long are offered to other handles of their session
#: (``Chain._register``): reading a shorter one again costs little more than copying it
#: (a new handle's first build: 0.12 against 0.05 ms at 41 messages, 0.24 against 0.05
#: ms at 129), and each offer costs the runtime about 125 bytes while the chain lives.
SHARE_MIN_MESSAGES = 64
STAGED = "a call in flight on this handle holds staged messages: wait for it, or use another handle"


def _backoff(attempt: int, deadline: float) -> None:
    """Wait a random while, longer after each lost race (up to ``REBASE_MAX_WAIT``, and
    never past ``deadline``), so that writers racing on one session take turns instead of
    the last winner winning again: without it, one thread of a process that keeps
    appending starved the others on PostgreSQL (bench/pg_faults.py restart)."""
    if attempt:
        wait = random.uniform(0, min(REBASE_MAX_WAIT, 0.001 * 2**attempt))
        time.sleep(max(0.0, min(wait, deadline - time.monotonic())))


class Prepared(NamedTuple):
    """A message ready to store: its hash, canonical body and metadata JSON."""

    hash: bytes
    body: bytes
    meta: bytes | None


class ChainListener(Protocol):
    def reset(self) -> None: ...

    def copy_from(self, other: Any, n: int) -> None: ...

    def truncate(self, n: int) -> None: ...


def _own(bodies: list[bytes]) -> int:
    """Bytes of the bodies a session holds alone (shorter ones are not interned)."""
    return _core.short_bytes(bodies, INTERN_MIN_BYTES, 33)


def _packed(ids: list[int]) -> array[int]:
    """Node ids packed: 4 bytes each while every id fits in 32 bits (a file holds fewer
    than 2**31 nodes), else 8."""
    try:
        return array("i", ids)
    except OverflowError:
        return array("q", ids)


def _pinned(meta: Any) -> bool:
    return isinstance(meta, bytes) and b'"pinned":true' in meta and _core.meta_pinned(meta)


class Chain:
    """A session's history: what the store holds from the root to the head."""

    __slots__ = (
        "__weakref__",
        "_listener",
        "bodies",
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
        self.ids = array("i")
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
        self.ids = _packed(ids)
        self.hashes = _core.HashSeq(hashes)
        self.own = _own(self.bodies)
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

    def refresh(self) -> None:
        """Re-read the head from the store (after a ``ConflictError``)."""
        row = self.store.get_session(self.name)
        if row is None or row.id != self.id:
            raise SessionError(f"session {self.name!r} was deleted or replaced")
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
            self.pinned.append(_pinned(r[5]))
        self.head = rows[-1][0]
        self.head_prefix = rows[-1][3]

    def reload(self, head: int | None) -> None:
        """Take ``head`` as the head and read its chain again (after a restore)."""
        self.head = head
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
        if self.staged is not None and keep == self.staged[0]:
            return self.staged[1]
        return self.store.node_prefix(self.ids[keep - 1])

    def believed_prefix(self, keep: int) -> bytes | None:
        """The prefix hash of the first ``keep`` messages as this handle derives it (not
        read back: a node id it saw may have been collected and reused elsewhere)."""
        if keep == 0:
            return None
        if keep == len(self.ids):
            return self.head_prefix
        return self.store.hashing.chain_many(_core.ROOT, self.hashes[:keep])[-1]

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
        if n >= len(self.ids) and n >= len(self.hashes):
            return  # nothing from n on (a commit on top of the head)
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
        self._register()

    # -- writing -----------------------------------------------------------------

    def prepare(self, messages: Iterable[Any], model: str | None = None) -> list[Prepared]:
        """Validate, convert and canonicalize ``messages``; nothing is written."""
        limit = self.shared.max_message_bytes
        hook = self.shared.redact
        digest = self.store.hashing.digest
        plain = _core.plain_prepared
        out: list[Prepared] = []
        for given in messages:
            if hook is not None:
                given = redact_strings(given, hook)
            # {"role": ..., "content": "..."}, most turns: in C (None: any other message,
            # or one canonical_text refuses, which then says why)
            fast = plain(given, TEXT_HEADS, limit, digest, Prepared)
            if fast is not None:
                out.append(fast)
                continue
            text = canonical_text(given, limit)
            if text is not None:
                out.append(Prepared(digest(text), text, None))
                continue
            converted = to_canonical(given, model) if not isinstance(given, Message) else [given]
            for msg in converted:
                body, meta = canonicalize(msg, limit)
                out.append(Prepared(digest(body), body, meta))
        self.shared.count_serialized(len(out))
        return out

    def left(self, keep: int, action: str) -> list[ObjectPut]:
        """The record of the head a move to ``keep`` messages leaves (none on top)."""
        if keep >= len(self.ids) or (self.staged is not None and keep == self.staged[0]):
            return []  # on top of the head (a send's staged messages are not stored yet)
        put = head_record(
            self.id, self.head, len(self.ids), action, self.shared.history_retention()
        )
        return [put] if put is not None else []

    def commit(
        self,
        keep: int,
        prepared: Sequence[Prepared],
        status: str | list[str | None] | None = None,
        call: CallRecord | None = None,
        action: str = "edit",
        plain: int = 0,
        deadline: float | None = None,
        objects: Sequence[ObjectPut] = (),
    ) -> None:
        """Write ``prepared`` after the first ``keep`` messages (CAS on the head).

        ``status`` marks the messages as a partial reply (all but the first ``plain``,
        which a send staged; a list: each message's own, as a compaction re-appends
        them); ``call`` is a ledger row and ``objects`` are store objects written in
        the same transaction. A head left behind (``keep`` short of the chain) is
        recorded as an earlier head, ``action`` saying why (``srt.history``). Waiting
        for other writers ends at ``deadline``.
        """
        if not self.loaded:  # (the memory budget may have dropped it since the caller looked)
            self.load()
        n = len(self.ids)
        if self.staged is not None and plain != n - keep:  # (only their call commits over them)
            self.writable()
        parent = self.ids[keep - 1] if keep else None
        above = self.head_prefix if keep == n else self.prefix(keep)
        prefixes = self.store.hashing.chain_many(above, _core.first_items(prepared))
        items = _core.new_nodes(prepared, prefixes, plain, status, NewNode)
        ids = self.store.append(
            self.id,
            self.head,
            parent,
            keep,
            items,
            call=call,
            objects=[*self.left(keep, action), *objects] if keep < n else objects,
            deadline=deadline,
            parent_prefix=above,
        )
        staged, self.staged = self.staged, None
        start = 0
        if staged is not None and staged[0] == keep and plain and n == keep + plain:
            # The staged messages are the first ``plain`` written: keep them in memory as
            # they are (their fragments stay assembled), with their node ids filled in.
            for k in range(plain):
                self._add_id(ids[k], keep + k)
            start = plain
        elif keep < n or keep < len(self.hashes):
            self.truncate(keep)
        # (_add_id and intern inlined: this runs after every reply, when calls cost most)
        intern = self.shared.intern
        bodies, hashes, pinned = self.bodies, self.hashes, self.pinned
        for node_id, (h, body, meta) in zip(ids[start:], prepared[start:], strict=True):
            try:
                self.ids.append(node_id)
            except OverflowError:
                self._add_id(node_id)
            hashes.append(h)
            if len(body) < INTERN_MIN_BYTES:
                bodies.append(body)
                self.own += len(body) + 33
            else:
                bodies.append(intern(h, body))
            pinned.append(meta is not None and _pinned(meta))
        if status is not None:  # (a partial reply's, or each re-appended message's own)
            self.status.update({keep + i: it[4] for i, it in enumerate(items) if it[4]})
        self.head = self.ids[-1] if self.ids else None
        self.head_prefix = prefixes[-1] if prefixes else self.prefix()
        if n < SHARE_MIN_MESSAGES <= len(self.ids):
            self._register()  # (long enough now to offer)

    def stage(self, prepared: Sequence[Prepared]) -> None:
        """Hold ``prepared`` after the chain in memory only, for one send that commits
        them with its reply (``send(..., append=...)``); ``unstage`` drops them."""
        n = len(self.ids)
        self.staged = (n, self.head_prefix)
        prefixes = self.store.hashing.chain_many(self.head_prefix, [p[0] for p in prepared])
        for h, body, meta in prepared:
            self.ids.append(-1)  # no node yet
            self.hashes.append(h)
            self.bodies.append(body)
            if len(body) < INTERN_MIN_BYTES:
                self.own += len(body) + 33
            self.pinned.append(_pinned(meta))
        if prefixes:
            self.head_prefix = prefixes[-1]

    def writable(self) -> None:
        """Loaded, for a write; ``ConflictError`` while another call's messages are staged."""
        if self.staged is not None:
            raise ConflictError(STAGED)
        if not self.loaded:  # (inline: an append runs this after every turn)
            self.load()

    def unstage(self) -> None:
        if self.staged is not None:
            n, prefix = self.staged
            self.staged = None
            self.truncate(n)
            self.head_prefix = prefix

    def append(
        self, prepared: Sequence[Prepared], *, rebase: bool, timeout: float | None = None
    ) -> int | None:
        """Commit ``prepared`` at the head; with ``rebase``, on top of whatever head
        another writer left (re-reading it after each conflict, backing off a little
        more each time), giving up after ``timeout`` seconds (default: the store's busy
        timeout), which also bounds the waits for other writers' transactions."""
        wait = self.store.busy_timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + wait
        self.writable()
        attempt = 0
        while True:
            try:
                self.commit(len(self.ids), prepared, deadline=deadline)
                return self.head
            except ConflictError:
                if not rebase:
                    raise
                attempt += 1
                _backoff(attempt, deadline)
                if time.monotonic() < deadline:
                    self.refresh()
                if time.monotonic() >= deadline:  # (no attempt starts after it)
                    raise ConflictError(
                        f"gave up rebasing after {wait:g} s and {attempt} attempts: other "
                        "writers kept moving the session head; nothing was written"
                    ) from None

    def prefix_hashes(self) -> list[bytes]:
        """The prefix hash of every message, root first, as the store computes them."""
        self.load()
        return self.store.hashing.chain_many(_core.ROOT, list(self.hashes))

    def rewind(self, n: int) -> None:
        """Move the head back ``n`` messages (CAS; they stay stored for forks)."""
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= len(self.ids):
            raise HistoryIndexError(f"cannot rewind {n} of {len(self.ids)} messages")
        keep = len(self.ids) - n
        new = self.ids[keep - 1] if keep else None
        prefix = self.prefix(keep)
        left = self.left(keep, "rewind")
        if left:  # the move and the record of the head it leaves, in one write
            self.store.append(self.id, self.head, new, keep, [], objects=left)
        else:
            self.store.move_head(self.id, self.head, new)
        self.truncate(keep)
        self.head = new
        self.head_prefix = prefix

    def fork(self, name: str, keep: int) -> Chain:
        """A new session named ``name`` at this chain's first ``keep`` messages."""
        head = self.ids[keep - 1] if keep else None
        if head == -1:  # (a staged message: not stored yet)
            self.writable()
        row = self.store.create_session(
            check_name(name),
            head,
            exist_ok=False,
            head_prefix=self.believed_prefix(keep),
            limit=self.shared.max_sessions,
        )
        child = Chain(self.shared, row.id, name, row.head)
        child.adopt(self, keep)
        return child
