"""A session: a named head in the prefix tree, with its chain and fragments in memory.

Appends are compare-and-swap on the head; fork, rewind and edit move or add
heads and copy no message and no node. ``request()`` assembles the next request
from frozen per-message fragments in one allocation.
"""

from __future__ import annotations

import json
import random
import threading
import time
from array import array
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _core, compaction, exchange, summarize, tasks
from . import entries as _entries
from . import history as _history
from ._assembly import Assembly, Offset, Planned, Roles, View
from ._types import BuildStats, Message, Reply, UsageSummary
from .cache import (
    Breakpoint,
    CacheExplain,
    CachePolicy,
    Layout,
    Record,
    estimate_tokens,
    explain,
    min_cacheable_tokens,
    plan,
)
from .context import WindowPolicy, select
from .errors import ConflictError, HistoryIndexError, SessionError
from .message import canonical_text, canonicalize, redact_strings
from .pricing import Pricing
from .providers.base import Provider
from .savings import Savings, savings
from .store import CallRecord, NewNode, ObjectPut
from .tokens import Tokenizer, for_model
from .wire import get_format
from .wire.base import Target, WireFormat, check_model
from .wire.convert import to_canonical

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Session"]

_REBASE_ATTEMPTS = 64
#: ``rebase=True`` gives up after at least ``_REBASE_ATTEMPTS`` attempts and this many
#: seconds (eight writers of eight processes on one PostgreSQL session lost 64 races in a
#: row once in 47,487 appends at load 40; bench/pg_scale.py scale).
_REBASE_SECONDS = 10.0
#: The longest wait between two rebase attempts, in seconds.
_REBASE_MAX_WAIT = 0.05


def _backoff(attempt: int) -> None:
    """Wait a random while, longer after each lost race (up to ``_REBASE_MAX_WAIT``), so
    that writers racing on one session take turns instead of the last winner winning
    again: without it, one thread of a process that keeps appending starved the others
    past 64 attempts on PostgreSQL (bench/pg_faults.py restart)."""
    if attempt:
        time.sleep(random.uniform(0, min(_REBASE_MAX_WAIT, 0.001 * 2**attempt)))


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
        self._ids: array[int] = array("q")  # node ids, 8 bytes each
        self._hashes = _core.HashSeq()  # 16 bytes a message, packed
        self._bodies: list[bytes] = []
        self._status: dict[int, str] = {}  # index -> status, for partial replies only
        self._pinned = bytearray()  # 1 where the metadata says {"pinned": true}
        self._roles: list[str] = []  # canonical roles, parsed lazily (windows)
        self._ntok: dict[str, list[int]] = {}  # token counts per tokenizer (windows)
        self._cuts: dict[WindowPolicy, int] = {}
        self._asm: dict[tuple[str, str, bool, tuple[str, int, int] | None], Assembly] = {}
        self._head_prefix = _core.ROOT
        # (length before, head prefix before) while messages are staged for a send.
        self._staged: tuple[int, bytes] | None = None
        self.last_build: BuildStats | None = None
        # Set only on a handle that rebuilds a recorded request (``replay_call``): the
        # breakpoints it placed and the messages its window kept, instead of planning.
        self._replay: tuple[list[Breakpoint], list[int] | None] | None = None

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
        if self._staged is not None and keep == self._staged[0]:
            return self._staged[1]
        return self._rt.store.node_prefix(self._ids[keep - 1])

    def _load(self) -> None:
        if self._loaded:
            return
        rows = self._rt.store.chain(self._head)
        intern = self._rt._intern
        self._ids = array("q", [r[0] for r in rows])
        self._hashes = _core.HashSeq(b"".join([r[1] for r in rows]))
        self._bodies = [intern(r[1], r[2]) for r in rows]
        self._status = {i: r[4] for i, r in enumerate(rows) if r[4] is not None}
        self._pinned = bytearray(isinstance(r[5], bytes) and b'"pinned":true' in r[5] for r in rows)
        self._roles, self._ntok, self._cuts = [], {}, {}
        self._head_prefix = rows[-1][3] if rows else _core.ROOT
        self._asm = {}
        self._loaded = True

    def refresh(self) -> None:
        """Re-read the head from the store (after a ``ConflictError``)."""
        with self._lock:
            row = self._rt.store.get_session(self._name)
            if row is None or row.id != self._id:
                raise SessionError(f"session {self._name!r} was deleted or replaced")
            if row.head == self._head and self._loaded:
                return
            rows = None
            if self._loaded and self._head is not None and row.head is not None:
                # Usually other writers appended on top of our head: read only that.
                rows = self._rt.store.chain_extension(row.head, len(self._ids), self._head_prefix)
            if not rows:
                self._head = row.head
                self._loaded = False
                self._load()
                return
            intern = self._rt._intern
            for r in rows:
                if r[4] is not None:
                    self._status[len(self._bodies)] = r[4]
                self._ids.append(r[0])
                self._hashes.append(r[1])
                self._bodies.append(intern(r[1], r[2]))
                self._pinned.append(isinstance(r[5], bytes) and b'"pinned":true' in r[5])
            self._head = rows[-1][0]
            self._head_prefix = rows[-1][3]

    def _truncate(self, n: int) -> None:
        if n < len(self._hashes):
            # A new sequence: a recorded request (cache.Record) keeps the old one's prefix.
            self._hashes = self._hashes.head(n)
        del self._ids[n:], self._bodies[n:]
        for i in [i for i in self._status if i >= n]:
            del self._status[i]
        del self._pinned[n:], self._roles[n:]
        for counts in self._ntok.values():
            del counts[n:]
        self._cuts = {w: c for w, c in self._cuts.items() if c <= n}  # a cut past n is stale
        for key, asm in list(self._asm.items()):
            if key[3] is not None:
                del self._asm[key]  # a windowed view: rebuilt from cached fragments
            elif asm.n > n:
                asm.truncate(n)

    # -- writing -----------------------------------------------------------------

    def _prepare(
        self, messages: Iterable[Any], model: str | None = None
    ) -> list[tuple[bytes, bytes, bytes | None]]:
        limit = self._rt.max_message_bytes
        hook = self._rt.redact
        out: list[tuple[bytes, bytes, bytes | None]] = []
        for given in messages:
            if hook is not None:
                given = redact_strings(given, hook)
            text = canonical_text(given, limit)  # {"role": ..., "content": "..."}: most turns
            if text is not None:
                out.append((_core.digest(text), text, None))
                continue
            converted = to_canonical(given, model) if not isinstance(given, Message) else [given]
            for msg in converted:
                body, meta = canonicalize(msg, limit)
                out.append((_core.digest(body), body, meta))
        self._rt._count_serialized(len(out))
        return out

    def _left(self, keep: int, action: str) -> list[ObjectPut]:
        """The record of the head a move to ``keep`` messages leaves (none on top)."""
        if keep >= len(self._ids) or (self._staged is not None and keep == self._staged[0]):
            return []  # on top of the head (a send's staged messages are not stored yet)
        put = _history.head_record(
            self._id, self._head, len(self._ids), action, self._rt.history_retention
        )
        return [put] if put is not None else []

    def _commit(
        self,
        keep: int,
        prepared: list[tuple[bytes, bytes, bytes | None]],
        status: str | None = None,
        call: CallRecord | None = None,
        action: str = "edit",
        plain: int = 0,
    ) -> None:
        """Write ``prepared`` after the first ``keep`` messages of the chain (CAS on head).

        ``status`` marks the messages as a partial reply (all but the first ``plain``
        of them, which a send staged); ``call`` is a ledger row written in the same
        transaction. A head left behind (``keep`` short of the chain) is recorded as an
        earlier head, ``action`` saying why (``srt.history``).
        """
        parent = self._ids[keep - 1] if keep else None
        prefixes = _core.chain_many(self._prefix(keep), [p[0] for p in prepared])
        items = [
            NewNode(h, body, prefix, meta, None if i < plain else status)
            for i, ((h, body, meta), prefix) in enumerate(zip(prepared, prefixes, strict=True))
        ]
        ids = self._rt.store.append(
            self._id, self._head, parent, keep, items, call=call, objects=self._left(keep, action)
        )
        staged, self._staged = self._staged, None
        start = 0
        if staged is not None and staged[0] == keep and plain and len(self._ids) == keep + plain:
            # The staged messages are the first ``plain`` written: keep them in memory as
            # they are (their fragments stay assembled), with their node ids filled in.
            for k in range(plain):
                self._ids[keep + k] = ids[k]
            start = plain
        else:
            self._truncate(keep)
        intern = self._rt._intern
        for node_id, (h, body, meta) in zip(ids[start:], prepared[start:], strict=True):
            self._ids.append(node_id)
            self._hashes.append(h)
            self._bodies.append(intern(h, body))
            if status is not None and len(self._bodies) > keep + plain:
                self._status[len(self._bodies) - 1] = status
            self._pinned.append(meta is not None and b'"pinned":true' in meta)
        self._head = self._ids[-1] if self._ids else None
        self._head_prefix = prefixes[-1] if prefixes else self._prefix()

    def _stage(self, prepared: list[tuple[bytes, bytes, bytes | None]]) -> None:
        """Hold ``prepared`` after the chain in memory only, for one send that commits
        them with its reply (``send(..., append=...)``); ``_unstage`` drops them."""
        n = len(self._ids)
        self._staged = (n, self._head_prefix)
        prefixes = _core.chain_many(self._head_prefix, [p[0] for p in prepared])
        for h, body, meta in prepared:
            self._ids.append(-1)  # no node yet
            self._hashes.append(h)
            self._bodies.append(body)
            self._pinned.append(meta is not None and b'"pinned":true' in meta)
        if prefixes:
            self._head_prefix = prefixes[-1]

    def _unstage(self) -> None:
        if self._staged is not None:
            n, prefix = self._staged
            self._staged = None
            self._truncate(n)
            self._head_prefix = prefix

    def append(self, *messages: Any, rebase: bool = False, model: str | None = None) -> int | None:
        """Append messages atomically; return the new head node id.

        Messages may be OpenAI Chat dicts, ``srt.Message``, Anthropic or Bedrock
        message dicts, or OpenAI Responses items (a list of items is read as one
        Responses input); each is converted to the canonical model. ``model`` names
        the model that produced any provider artifacts in them (thinking blocks,
        reasoning items) when the message itself does not.

        Every message is validated first; an invalid one raises
        ``InvalidMessageError`` and nothing is written. If the head moved since this
        handle last saw it, raises ``ConflictError`` (nothing written), or with
        ``rebase=True`` re-reads the head and appends on top of it.
        """
        with self._lock:
            prepared = self._prepare(messages, model)
            if not prepared:
                return self._head
            self._load()
            give_up = time.monotonic() + _REBASE_SECONDS
            attempt = 0
            while True:
                try:
                    self._commit(len(self._ids), prepared)
                    return self._head
                except ConflictError:
                    if not rebase:
                        raise
                    attempt += 1
                    if attempt >= _REBASE_ATTEMPTS and time.monotonic() >= give_up:
                        raise ConflictError(
                            f"could not rebase after {attempt} attempts in "
                            f"{_REBASE_SECONDS:.0f} s (other writers kept moving the head)"
                        ) from None
                    _backoff(attempt)
                    self.refresh()

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
            left = self._left(keep, "rewind")
            if left:  # the move and the record of the head it leaves, in one write
                self._rt.store.append(self._id, self._head, new, keep, [], objects=left)
            else:
                self._rt.store.move_head(self._id, self._head, new)
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
            # The prefix this handle believes in (derived, not read back: a node id it
            # saw may have been collected and reused by another process).
            believed = (
                self._head_prefix
                if keep == len(self._ids)
                else _core.chain_many(_core.ROOT, self._hashes[:keep])[-1]
                if keep
                else None
            )
            child = self._rt._create(name, head, believed)
            child._ids = self._ids[:keep]
            child._hashes = self._hashes.head(keep)
            child._bodies = self._bodies[:keep]
            child._status = {i: v for i, v in self._status.items() if i < keep}
            child._pinned = self._pinned[:keep]
            child._head_prefix = self._prefix(keep)
            child._loaded = True
            return child

    # -- compaction ----------------------------------------------------------------

    def compact(
        self,
        end: int,
        summary: str | Callable[[list[dict[str, Any]]], str] | None = None,
        *,
        start: int | None = None,
        summarizer: Provider | None = None,
        model: str | None = None,
        instructions: str | None = None,
        tools: Sequence[Any] | None = None,
        **params: Any,
    ) -> int | None:
        """Replace messages ``start:end`` by one summary message; return the new head.

        ``start`` defaults to just after the pinned prefix (leading system messages
        and the first user message). ``summary`` is the text, or a callable given the
        replaced messages; or, with ``summarizer=provider, model=...``, the model
        writes it: the request is the first ``end`` messages (a prefix the provider
        has cached) and ``instructions``, with ``tools`` and ``params`` as for
        ``send``, and its ledger row is written with the compaction (``srt.summarize``).
        The summary is an ordinary content-addressed message whose node records the
        exact span it replaces, so the originals stay stored and ``expand()`` restores
        them byte for byte. Put ``end`` where a context window would cut (e.g. the
        ``cache_aware`` step): the summary then becomes part of the new, stable cached
        prefix. Tool calls and their results are never split.
        """
        if summarizer is None:
            if summary is None:
                raise SessionError("compact() needs a summary, or summarizer= and model=")
            return compaction.compact(self, end, summary, start)
        if summary is not None or model is None:
            raise SessionError("with summarizer=, give model= and no summary")
        check_model(model)
        return summarize.compact(
            self,
            end,
            provider=summarizer,
            model=model,
            start=start,
            instructions=instructions,
            tools=tools,
            **params,
        )

    async def acompact(
        self,
        end: int,
        *,
        summarizer: Provider,
        model: str,
        start: int | None = None,
        instructions: str | None = None,
        tools: Sequence[Any] | None = None,
        **params: Any,
    ) -> int | None:
        """The asyncio twin of ``compact(end, summarizer=..., model=...)``."""
        check_model(model)
        return await summarize.acompact(
            self,
            end,
            provider=summarizer,
            model=model,
            start=start,
            instructions=instructions,
            tools=tools,
            **params,
        )

    def expand(self) -> int | None:
        """Undo the newest compaction in this history: the replaced messages come back,
        byte for byte, on their original nodes. Returns the new head."""
        return compaction.expand(self)

    # -- reading -----------------------------------------------------------------

    def messages_bytes(self) -> list[bytes]:
        """The canonical bytes of each message, oldest first (shared, frozen objects)."""
        with self._lock:
            self._load()
            return list(self._bodies)

    def messages(self, *, metadata: bool = False) -> list[dict[str, Any]]:
        """The messages of this session as Chat Completions dicts, oldest first.

        With ``metadata=True`` a message stored with metadata carries it under
        ``metadata`` (the key ``append`` takes), read from the store."""
        with self._lock:
            self._load()
            if not metadata:
                return [json.loads(b) for b in self._bodies]
            out = []
            for r in self._rt.store.chain(self._head):
                msg = json.loads(r[2])
                meta = _entries.user_metadata(r[5])
                if meta is not None:
                    msg["metadata"] = meta
                out.append(msg)
            return out

    def entries(self) -> list[_entries.Entry]:
        """Every message with what srt keeps beside it: its status (partial replies),
        its metadata, and for a compaction summary the messages it replaced
        (``srt.entries.Entry``)."""
        with self._lock:
            return _entries.entries(self._rt.store, self._rt.store.chain(self._head))

    # -- earlier heads -------------------------------------------------------------------

    def history(self) -> list[_history.HeadRecord]:
        """The heads this session left by ``rewind``, ``edit``, ``compact``, ``expand``
        or ``restore``, newest first, while their retention lasts (``srt.history``)."""
        return _history.history(self._rt.store, self._id)

    def restore(self, record: _history.HeadRecord | str) -> int | None:
        """Make an earlier head (a ``history()`` record or its key) the head again; the
        head it replaces is recorded in turn. Returns the new head."""
        with self._lock:
            self._load()
            found = _history.find(self, record)
            left = _history.head_record(
                self._id, self._head, len(self._ids), "restore", self._rt.history_retention
            )
            self._rt.store.append(
                self._id, self._head, found.head, found.messages, [],
                objects=[left] if left is not None else [],
            )  # fmt: skip
            self._head = found.head
            self._loaded = False
            self._load()
            return self._head

    @property
    def cache_key(self) -> str | None:
        """The prompt-cache key of this history: derived from its root message, so every
        fork of one conversation shares it (``None`` for an empty session)."""
        with self._lock:
            self._load()
            if not self._hashes:
                return None
            return "srt-" + _core.chain(_core.ROOT, self._hashes[0]).hex()

    def _assembly(
        self,
        fmt: WireFormat,
        target: Target,
        partial: bool = False,
        view: View | None = None,
    ) -> Assembly:
        """This session's glued fragments for ``fmt`` and ``target``, brought up to date.

        Partial replies (stored with a status) are left out unless ``partial``. A
        ``view`` (a context window's cut) assembles only its messages; it is kept for
        as long as the cut stays where it is, so the kept prefix stays byte-stable.
        """
        key = (fmt.name, target.model, partial, view.cut if view is not None else None)
        asm = self._asm.get(key)
        if asm is None:
            asm = self._asm[key] = Assembly()
        hashes, bodies, status = (
            (self._hashes, self._bodies, self._status)
            if view is None
            else view.lists(self._hashes, self._bodies, self._status)
        )
        n = len(hashes)
        if asm.n > n:
            asm.truncate(n)
        asm.serialized = 0
        start = asm.n
        while start < n:
            if start in status and not partial:
                asm.skip()
                start += 1
                continue
            stop = n if partial or not status else start + 1
            while stop < n and stop not in status:
                stop += 1
            self._extend(asm, fmt, target, hashes, bodies, start, stop)
            start = stop
        return asm

    def _extend(
        self,
        asm: Assembly,
        fmt: WireFormat,
        target: Target,
        hashes: Sequence[bytes],
        bodies: list[bytes],
        i: int,
        j: int,
    ) -> None:
        if fmt.identity:
            asm.extend_identity(fmt, target, bodies[i:j])
            return
        cache = self._rt._fragments
        frags = []
        for k in range(i, j):
            ckey = (hashes[k], fmt.name, target.model)
            frag = cache.get(ckey)
            if frag is None:
                frag = fmt.render(bodies[k], target)
                asm.serialized += 1
                cache.put(ckey, frag, len(frag.data) + 100)
            frags.append(frag)
        asm.extend(fmt, frags)

    # -- context windows -------------------------------------------------------------

    def _meta_roles(self) -> list[str]:
        """The canonical role of every message (parsed once per message)."""
        roles = self._roles
        for b in self._bodies[len(roles) :]:
            roles.append(str(json.loads(b)["role"]))
        return roles

    def _window(self, fmt: WireFormat, model: str, window: WindowPolicy | None) -> View | None:
        """The messages a context window keeps, or ``None`` when all of them fit."""
        if self._replay is not None:
            kept = self._replay[1]
            return None if kept is None else View(("replay", len(kept), 0), list(kept))
        if window is None:
            return None
        tokenizer = window.tokenizer or for_model(fmt.provider, model)
        counts = self._token_counts(tokenizer)
        roles = self._meta_roles()
        # One cut per policy, whatever the format: every format sends the same messages.
        kept, cut = select(window, counts, roles, self._pinned, self._cuts.get(window))
        self._cuts[window] = cut
        if len(kept) == len(counts):
            return None
        return View((window.kind, window.budget, cut), kept)

    def _token_counts(self, tokenizer: Tokenizer) -> list[int]:
        """Each message's tokens under ``tokenizer``, cached per (message hash, tokenizer)."""
        counts = self._ntok.setdefault(tokenizer.name, [])
        cache = self._rt._token_cache
        for i in range(len(counts), len(self._bodies)):
            counts.append(cache.message_tokens(tokenizer, self._bodies[i], self._hashes[i]))
        return counts

    def _plan(
        self,
        fmt: WireFormat,
        model: str,
        tools: Sequence[Any],
        cache: bool | CachePolicy,
        partial: bool = False,
        window: WindowPolicy | None = None,
    ) -> Planned:
        target = Target(fmt.provider, model)
        view = self._window(fmt, model, window)
        asm = self._assembly(fmt, target, partial, view)
        hashes, bodies, _status = (
            (self._hashes, self._bodies, self._status)
            if view is None
            else view.lists(self._hashes, self._bodies, self._status)
        )
        tool_frags, tool_hashes = self._rt._tool_fragments(fmt, tools)
        policy = cache if isinstance(cache, CachePolicy) else CachePolicy()
        min_tokens = policy.min_tokens or min_cacheable_tokens(fmt.provider, model)
        tool_bytes = sum(len(t) for t in tool_frags)
        tool_tokens = sum(estimate_tokens(len(t)) for t in tool_frags)
        layout = Layout(
            tool_bytes=tool_bytes,
            tool_tokens=tool_tokens,
            tool_count=len(tool_frags),
            system_count=asm.system_count,
            cum_bytes=Offset(asm.nbytes, tool_bytes),
            cum_tokens=Offset(asm.ntokens, tool_tokens),
            cum_blocks=asm.blocks,
        )
        key = self.cache_key
        records = self._rt._records
        previous = records.get((fmt.name, model, key))
        other = self._rt._last_model.get((fmt.name, key))
        shared = previous.shared(hashes) if previous is not None else 0
        prev_end = shared if previous is not None and shared == previous.n else None
        breakpoints = plan(layout, prev_end, min_tokens, policy) if cache and fmt.marker else []
        report = explain(
            format=fmt.name,
            provider=fmt.provider,
            model=model,
            hashes=hashes,
            roles=Roles(bodies),
            tools=tool_hashes,
            layout=layout,
            previous=previous,
            other_model=other if other != model else None,
            min_tokens=min_tokens,
            marker=fmt.marker is not None and bool(cache),
            breakpoints=breakpoints,
            shared=shared if previous is not None else None,
        )
        if self._replay is not None:
            breakpoints = list(self._replay[0])
        kept = view.kept if view is not None else None
        return Planned(asm, tool_frags, tool_hashes, breakpoints, report, key, hashes, kept)

    def explain(
        self,
        format: str = "openai.chat",
        /,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool | CachePolicy = True,
    ) -> CacheExplain:
        """What the provider's prompt cache should serve for the next request, and
        on a miss the first diverging message and why. Nothing is sent or recorded."""
        fmt = get_format(format)
        check_model(model)
        with self._lock:
            self._load()
            return self._plan(fmt, model, tools or (), cache).report

    def request(
        self,
        format: str = "openai.chat",
        /,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool | CachePolicy = True,
        include_partial: bool = False,
        window: WindowPolicy | None = None,
        **params: Any,
    ) -> bytes:
        """The exact bytes of the next request body in ``format`` for ``model``.

        Fragments already built are reused as frozen bytes; only messages new since
        the last build are serialized. ``tools`` are tool definitions (OpenAI
        function shape, or Anthropic's or Bedrock's); ``params`` go into the body as
        given. With ``cache`` true (or a ``CachePolicy``) the cache planner adds the
        format's hints: Anthropic ``cache_control`` and Bedrock ``cachePoint``
        breakpoints, or OpenAI's ``prompt_cache_key``. ``last_build`` tells what
        this call did, including the cache explain (``last_build.cache``).
        """
        fmt = get_format(format)
        check_model(model)
        with self._lock:
            self._load()
            p = self._plan(fmt, model, tools or (), cache, include_partial, window)
            asm = p.asm
            pieces, system, tool_frags = asm.pieces, asm.system, p.tool_frags
            if p.breakpoints:
                pieces, system, tool_frags = list(pieces), list(system), list(tool_frags)
                for bp in p.breakpoints:
                    if bp.where == "message":
                        j = asm.message_piece(bp.index)
                        pieces[j] = fmt.mark(pieces[j], bp.ttl)
                    elif bp.where == "system":
                        system[bp.index] = fmt.mark(system[bp.index], bp.ttl)
                    else:
                        tool_frags[bp.index] = fmt.mark(tool_frags[bp.index], bp.ttl)
            if cache and fmt.provider == "openai" and p.key is not None:
                params.setdefault("prompt_cache_key", p.key)
            head, tail = fmt.envelope(model, params, system, tool_frags)
            body = asm.out.build(head, pieces, b"", fmt.close(asm.last_role()) + tail)
            n = len(p.hashes)
            self._rt._count_serialized(asm.serialized)
            self._record(fmt, model, p)
            self.last_build = BuildStats(
                format,
                n,
                asm.serialized,
                n - asm.serialized,
                len(body),
                asm.notes(),
                p.report,
                tuple(p.breakpoints),
                tuple(p.kept) if p.kept is not None else None,
            )
            return body

    def _request_after(
        self,
        fmt: WireFormat,
        index: int,
        *,
        model: str,
        tools: Sequence[Any] | None,
        include_partial: bool,
        params: dict[str, Any],
        cache: bool | CachePolicy = True,
    ) -> bytes:
        """Only the messages after ``index`` (for server-side state such as
        ``previous_response_id``). Caller holds the lock and has loaded the chain."""
        # The provider still sees (and bills) the whole chain: explain and record that.
        planned = self._plan(fmt, model, tools or (), cache, include_partial)
        self._record(fmt, model, planned)
        asm = planned.asm
        pieces = asm.pieces_after(index)
        if pieces:
            pieces[0] = b""  # no separator before the first item sent
        tool_frags, _ = self._rt._tool_fragments(fmt, tools or ())
        if cache and fmt.provider == "openai" and planned.key is not None:
            params = {**params}
            params.setdefault("prompt_cache_key", planned.key)
        head, tail = fmt.envelope(model, params, [], tool_frags)
        body = _core.assemble(head, pieces, b"", fmt.close(asm.last_role()) + tail)
        n = len(self._hashes)
        self.last_build = BuildStats(
            fmt.name,
            n - index - 1,
            asm.serialized,
            n - index - 1,
            len(body),
            asm.notes(),
            planned.report,
        )
        return body

    def _record(self, fmt: WireFormat, model: str, p: Planned) -> None:
        """Remember this request as the previous one for its (format, model, cache key)."""
        self._rt._records[(fmt.name, model, p.key)] = Record(
            p.hashes, len(p.hashes), p.tool_hashes, p.breakpoints
        )
        self._rt._last_model[(fmt.name, p.key)] = model

    # -- provider calls ----------------------------------------------------------------

    def _call(
        self,
        provider: Provider,
        model: str,
        tools: Any,
        cache: Any,
        partial: bool,
        params: dict[str, Any],
        stream: bool,
    ) -> exchange.Call:
        check_model(model)
        append = params.pop("append", ())
        keep = params.pop("keep", True)
        if isinstance(append, (str, bytes, dict, Message)):
            append = (append,)
        return exchange.Call(
            self,
            provider,
            model=model,
            tools=tools,
            cache=cache,
            include_partial=partial,
            params=params,
            stream=stream,
            append=append,
            keep=bool(keep),
        )

    def send(
        self,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool | CachePolicy = True,
        include_partial: bool = False,
        **params: Any,
    ) -> Reply:
        """Send the next request to ``provider``; append the reply and its usage atomically.

        ``params`` go into the body, except ``window=WindowPolicy(...)``, which bounds
        the history sent (see ``srt.context``), ``append=[messages]``, messages sent
        after the history and appended *with* the reply in one compare-and-swap (if the
        call fails or the session moved, none of them is written), and ``keep=False``,
        which appends nothing at all (the ledger row is still written). The body is
        built by delta assembly (or, for OpenAI Responses, as a delta on the provider's
        stored state when it holds this session's prefix). A window with
        ``compact_at`` may first compact the history with the model's summary
        (``srt.summarize``).
        """
        summarize.auto(self, provider, model, tools, {**params, "cache": cache})
        return exchange.send(
            self._call(provider, model, tools, cache, include_partial, params, False)
        )

    def stream(
        self,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool | CachePolicy = True,
        include_partial: bool = False,
        **params: Any,
    ) -> exchange.ReplyStream:
        """Like ``send`` but streamed: iterate the result for text deltas. A stream that is
        cut off, fails or is closed early keeps what arrived as a partial reply."""
        summarize.auto(self, provider, model, tools, {**params, "cache": cache})
        call = self._call(provider, model, tools, cache, include_partial, params, True)
        return exchange.ReplyStream(call)

    async def asend(
        self,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool | CachePolicy = True,
        include_partial: bool = False,
        **params: Any,
    ) -> Reply:
        """The asyncio twin of ``send``."""
        await summarize.aauto(self, provider, model, tools, {**params, "cache": cache})()
        call = self._call(provider, model, tools, cache, include_partial, params, False)
        return await exchange.asend(call)

    def astream(
        self,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool | CachePolicy = True,
        include_partial: bool = False,
        **params: Any,
    ) -> exchange.AsyncReplyStream:
        """The asyncio twin of ``stream``: ``async for delta in s.astream(...)``."""
        call = self._call(provider, model, tools, cache, include_partial, params, True)
        before = summarize.aauto(self, provider, model, tools, {**params, "cache": cache})
        return exchange.AsyncReplyStream(call, before=before)

    # -- tasks: the tool loop (srt.tasks) ------------------------------------------------

    def _task(self, provider: Provider, model: str, tools: Sequence[Any], **kw: Any) -> tasks.Task:
        check_model(model)
        opts = {k: kw.pop(k) for k in tasks.OPTIONS if k in kw}
        return tasks.Task(self, provider, model=model, tools=tools, params=kw, **opts)

    def run(
        self,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] = (),
        max_steps: int | None = tasks.MAX_STEPS,
        time_budget: float | None = None,
        token_budget: int | None = None,
        approve: Callable[[tasks.ToolCall], Any] | None = None,
        concurrency: int = tasks.CONCURRENCY,
        **params: Any,
    ) -> tasks.TaskResult:
        """Run the task this session holds: call the model, run the tools it calls
        (Python callables, parallel calls at most ``concurrency`` at a time), append
        every reply and result as it happens, and repeat until the model answers or a
        budget is spent. On a session whose process died mid-task it resumes, never
        re-running a tool whose result was saved. ``params`` go to every ``send``
        (e.g. ``window=``, ``max_tokens=``). See ``srt.tasks``."""
        return tasks.run(
            self._task(
                provider,
                model,
                tools,
                max_steps=max_steps,
                time_budget=time_budget,
                token_budget=token_budget,
                approve=approve,
                concurrency=concurrency,
                **params,
            )
        )

    def run_stream(
        self, provider: Provider, *, model: str, tools: Sequence[Any] = (), **options: Any
    ) -> tasks.TaskStream:
        """``run``, streamed: iterate for ``TaskEvent``s (text deltas, tool calls and
        results, replies); ``.result`` holds the ``TaskResult`` at the end. Takes
        ``run``'s options."""
        return tasks.run_stream(self._task(provider, model, tools, **options))

    async def arun(
        self, provider: Provider, *, model: str, tools: Sequence[Any] = (), **options: Any
    ) -> tasks.TaskResult:
        """The asyncio twin of ``run`` (async tools are awaited, sync ones run in
        threads; ``approve`` may be a coroutine function). Takes ``run``'s options."""
        return await tasks.arun(self._task(provider, model, tools, **options))

    def arun_stream(
        self, provider: Provider, *, model: str, tools: Sequence[Any] = (), **options: Any
    ) -> AsyncIterator[tasks.TaskEvent]:
        """The asyncio twin of ``run_stream``: ``async for event in s.arun_stream(...)``."""
        return tasks.arun_stream(self._task(provider, model, tools, **options))

    def usage(self) -> UsageSummary:
        """Totals of this session's ledger rows (every request it sent)."""
        return UsageSummary.of(self.calls())

    def calls(self) -> list[dict[str, Any]]:
        """This session's ledger rows, oldest first."""
        return [c.as_dict() for c in self._rt.store.calls(session=self._id)]

    def savings(self, pricing: Pricing | None = None) -> Savings:
        """This session's billed input against a careful stateless client under the same
        caching rules and against a client with no caching (``srt.savings``)."""
        return savings(self.calls(), pricing, history=self._rt.store.tail)

    def predict(
        self,
        format: str = "openai.chat",
        /,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        pricing: Pricing | None = None,
    ) -> tuple[CacheExplain, tuple[float, float] | None]:
        """The cache explain for the next request and its expected input cost in USD
        (with the predicted cache reads, and with no caching), if priced."""
        ex = self.explain(format, model=model, tools=tools)
        return ex, (pricing or Pricing()).predict(model, ex.total_tokens, ex.cached_tokens)


def replay_call(rt: Runtime, call: Mapping[str, Any]) -> bytes | None:
    """The body of the request a ledger row records, rebuilt from the history stored at
    its node and the parameters recorded with it (``params``): the model, body
    parameters, tools, partial replies, the breakpoints placed and the messages a window
    kept. ``None`` when the row records no parameters or no node (a failed request, a
    node swept by gc). Nothing is written, and the runtime's planner is left as it was."""
    spec_text, node = call.get("params"), call.get("node")
    if not spec_text or node is None:
        return None
    spec = json.loads(spec_text)
    n = int(call["messages"])
    tail = rt.store.tail(int(node), n - 1) if n else []
    if n and not tail:
        return None
    head = tail[0][0] if n else None
    s = Session(rt, int(call.get("session") or 0), "(replay)", head)
    s._replay = (
        [Breakpoint(str(w), int(i), str(ttl), 0, "replay") for w, i, ttl in spec["breakpoints"]],
        spec.get("kept"),
    )
    saved = (dict(rt._records), dict(rt._last_model), rt._serialized)
    try:
        with s._lock:
            s._load()
            if len(s) != n:
                return None
            fmt = get_format(str(call["format"]))
            tools, partial = spec.get("tools") or None, bool(spec["include_partial"])
            if spec.get("after") is not None:
                return s._request_after(
                    fmt,
                    int(spec["after"]),
                    model=str(call["model"]),
                    tools=tools,
                    include_partial=partial,
                    params=dict(spec["params"]),
                    cache=bool(spec["cache"]),
                )
            return s.request(
                fmt.name,
                model=str(call["model"]),
                tools=tools,
                cache=bool(spec["cache"]),
                include_partial=partial,
                **spec["params"],
            )
    finally:
        rt._records.clear()
        rt._records.update(saved[0])
        rt._last_model.clear()
        rt._last_model.update(saved[1])
        rt._serialized = saved[2]
