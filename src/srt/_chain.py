"""A session's history in memory, and its compare-and-swap commit to the store.

``Chain`` is ``_chain_state.ChainState`` (what the history holds per message, how it is
read from the store or from another handle of the session, and who listens to it) with
its writes: messages validated and canonicalized (``prepare``), then committed below
the first ``keep`` messages as one compare-and-swap on the session head, which the store
refuses with ``ConflictError`` if another writer moved the head first; messages staged
for a send; rebase, rewind and fork. Memory is kept in step with every commit.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from . import _core
from ._chain_state import SHARE_MIN_MESSAGES, ChainListener, ChainState, is_pinned, own_bytes
from ._shared import INTERN_MIN_BYTES, check_name
from ._types import Message
from .errors import ConflictError, HistoryIndexError, SessionNotFoundError
from .history import head_record
from .message import TEXT_HEADS, canonical_text, canonicalize, redact_strings
from .store import CallRecord, NewNode, ObjectPut
from .wire.convert import to_canonical

__all__ = [
    "REBASE_MAX_WAIT",
    "SHARE_MIN_MESSAGES",
    "Chain",
    "ChainListener",
    "Prepared",
    "prepare",
]

#: The longest wait between two rebase attempts, in seconds.
REBASE_MAX_WAIT = 0.05
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


def prepare(
    messages: Iterable[Any],
    limit: int,
    redact: Callable[[str], str] | None,
    digest: Callable[[bytes], bytes],
    model: str | None = None,
) -> list[Prepared]:
    """Validate, convert and canonicalize ``messages``: each one's hash (``digest``),
    canonical body and metadata, after the redaction hook ``redact``, within ``limit``
    bytes. Nothing is written. What every write of a message goes through: a session's
    (``Chain.prepare``) and ``srt import``'s."""
    plain = _core.plain_prepared
    out: list[Prepared] = []
    for given in messages:
        if redact is not None:
            given = redact_strings(given, redact)
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
    return out


class Chain(ChainState):
    """A session's history: what the store holds from the root to the head."""

    __slots__ = ()

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
            self.own -= own_bytes(self.bodies[n:])
            self.call_ids = None
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
        self.own = own_bytes(self.bodies)
        self.status = {i: v for i, v in parent.status.items() if i < keep}
        self.pinned = parent.pinned[:keep]
        self.call_ids = None
        self.head_prefix = parent.prefix(keep)
        self.loaded = True
        self._register()

    # -- writing -----------------------------------------------------------------

    def prepare(self, messages: Iterable[Any], model: str | None = None) -> list[Prepared]:
        """Validate, convert and canonicalize ``messages`` as this store keeps them
        (``prepare``); nothing is written."""
        shared = self.shared
        redact, limit, digest = shared.redact, shared.max_message_bytes, self.store.hashing.digest
        if redact is None and type(messages) is tuple and len(messages) == 1:
            # One plain message, most appends: ``prepare``'s first step, without its frame
            fast = _core.plain_prepared(messages[0], TEXT_HEADS, limit, digest, Prepared)
            if fast is not None:
                shared.count_serialized(1)
                return [fast]
        out = prepare(messages, limit, redact, digest, model)
        shared.count_serialized(len(out))
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
        try:
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
        except SessionNotFoundError as exc:
            raise self.gone() from exc
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
            pinned.append(meta is not None and is_pinned(meta))
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
            self.pinned.append(is_pinned(meta))
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
        if self.staged is not None or not self.loaded:  # (``writable`` inline: every append)
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

    def rewind(self, n: int, objects: Sequence[ObjectPut] = ()) -> None:
        """Move the head back ``n`` messages (CAS; they stay stored for forks), writing
        ``objects`` in the same transaction."""
        if not isinstance(n, int) or isinstance(n, bool):
            raise HistoryIndexError(
                f"rewind() takes how many messages to drop, an int, got {n!r:.40}"
            )
        if not 0 <= n <= len(self.ids):
            raise HistoryIndexError(f"cannot rewind {n} of {len(self.ids)} messages")
        keep = len(self.ids) - n
        new = self.ids[keep - 1] if keep else None
        prefix = self.prefix(keep)
        left = [*self.left(keep, "rewind"), *objects]
        try:
            if left:  # the move, the record of the head it leaves and objects: one write
                self.store.append(self.id, self.head, new, keep, [], objects=left)
            else:
                self.store.move_head(self.id, self.head, new)
        except SessionNotFoundError as exc:
            raise self.gone() from exc
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
