"""A session: a named head in the prefix tree, with its chain and fragments in memory.

Appends are compare-and-swap on the head; fork, rewind and edit move or add
heads and copy no message and no node. ``request()`` assembles the next request
from frozen per-message fragments in one allocation.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _core, exchange
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
from .context import WindowPolicy, pinned_prefix, select
from .errors import ConflictError, HistoryIndexError, SessionError, UnsupportedFeatureError
from .message import canonicalize
from .pricing import Pricing, Savings
from .providers.base import Provider
from .store import NewNode
from .tokens import Tokenizer, for_model
from .wire import get_format
from .wire.base import Frag, Target, WireFormat, check_model
from .wire.convert import to_canonical

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
        self._status: list[str | None] = []  # None, or a partial reply's status
        self._pinned: list[bool] = []  # metadata {"pinned": true}
        self._roles: list[str] = []  # canonical roles, parsed lazily (windows)
        self._ntok: dict[str, list[int]] = {}  # token counts per tokenizer (windows)
        self._cuts: dict[WindowPolicy, int] = {}
        self._asm: dict[tuple[str, str, bool, tuple[str, int, int] | None], _Assembly] = {}
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
        self._status = [r[4] for r in rows]
        self._pinned = [isinstance(r[5], bytes) and b'"pinned":true' in r[5] for r in rows]
        self._roles, self._ntok, self._cuts = [], {}, {}
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
        del self._ids[n:], self._hashes[n:], self._bodies[n:], self._status[n:]
        del self._pinned[n:], self._roles[n:]
        for counts in self._ntok.values():
            del counts[n:]
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
        out = []
        for given in messages:
            converted = to_canonical(given, model) if not isinstance(given, Message) else [given]
            for msg in converted:
                body, meta = canonicalize(msg, limit)
                out.append((_core.digest(body), body, meta))
        self._rt._count_serialized(len(out))
        return out

    def _commit(
        self,
        keep: int,
        prepared: list[tuple[bytes, bytes, bytes | None]],
        status: str | None = None,
        call: Sequence[Any] | None = None,
    ) -> None:
        """Write ``prepared`` after the first ``keep`` messages of the chain (CAS on head).

        ``status`` marks the messages as a partial reply; ``call`` is a ledger row
        written in the same transaction.
        """
        parent = self._ids[keep - 1] if keep else None
        prefixes = _core.chain_many(self._prefix(keep), [p[0] for p in prepared])
        items: list[NewNode] = [
            (h, body, prefix, meta, status)
            for (h, body, meta), prefix in zip(prepared, prefixes, strict=True)
        ]
        ids = self._rt._store.append(self._id, self._head, parent, keep, items, call)
        self._truncate(keep)
        intern = self._rt._intern
        for node_id, (h, body, meta) in zip(ids, prepared, strict=True):
            self._ids.append(node_id)
            self._hashes.append(h)
            self._bodies.append(intern(h, body))
            self._status.append(status)
            self._pinned.append(meta is not None and b'"pinned":true' in meta)
        self._head = self._ids[-1] if self._ids else None
        self._head_prefix = prefixes[-1] if prefixes else self._prefix()

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
            child._status = self._status[:keep]
            child._pinned = self._pinned[:keep]
            child._head_prefix = self._prefix(keep)
            child._loaded = True
            return child

    # -- compaction ----------------------------------------------------------------

    def compact(
        self,
        end: int,
        summary: str | Callable[[list[dict[str, Any]]], str],
        *,
        start: int | None = None,
    ) -> int | None:
        """Replace messages ``start:end`` by one summary message; return the new head.

        ``start`` defaults to just after the pinned prefix (leading system messages
        and the first user message). ``summary`` is the text, or a callable given the
        replaced messages. The summary is an ordinary content-addressed message whose
        node records the exact span it replaces, so the originals stay stored and
        ``expand()`` restores them byte for byte. Put ``end`` where a context window
        would cut (e.g. the ``cache_aware`` step): the summary then becomes part of
        the new, stable cached prefix. Tool calls and their results are never split.
        """
        with self._lock:
            self._load()
            n = len(self._ids)
            roles = self._meta_roles()
            first = pinned_prefix(roles) if start is None else start
            if not (0 <= first < end <= n):
                raise HistoryIndexError(f"cannot compact {first}:{end} of {n} messages")
            if end < n and roles[end] == "tool":
                raise HistoryIndexError(
                    "a compaction boundary may not split a tool call from its result"
                )
            span = [json.loads(b) for b in self._bodies[first:end]]
            text = summary(span) if callable(summary) else summary
            if not isinstance(text, str) or not text:
                raise SessionError("a compaction summary must be non-empty text")
            link = {"first": self._ids[first], "last": self._ids[end - 1], "count": end - first}
            msg = {
                "role": "user",
                "content": f"[Summary of {end - first} earlier messages]\n{text}",
                "metadata": {"srt_compacted": link},
            }
            prepared = self._prepare([msg])
            rest: list[tuple[bytes, bytes, bytes | None]] = [
                (self._hashes[i], self._bodies[i], None) for i in range(end, n)
            ]
            self._commit(first, prepared + rest)
            return self._head

    def expand(self) -> int | None:
        """Undo the newest compaction in this history: the replaced messages come back,
        byte for byte, on their original nodes. Returns the new head."""
        with self._lock:
            self._load()
            store = self._rt._store
            for k in range(len(self._ids) - 1, -1, -1):
                meta = store.node_meta(self._ids[k])
                if isinstance(meta, bytes) and b'"srt_compacted"' in meta:
                    link = json.loads(meta)["srt_compacted"]
                    break
            else:
                raise SessionError("this history holds no compaction to expand")
            chain = store.chain(link["last"])
            span = chain[len(chain) - int(link["count"]) :]
            if not span or span[0][0] != link["first"]:
                raise SessionError("the compacted span is no longer stored (was it collected?)")
            items: list[tuple[bytes, bytes, bytes | None]] = [(r[1], r[2], None) for r in span]
            items += [
                (self._hashes[i], self._bodies[i], None) for i in range(k + 1, len(self._ids))
            ]
            self._commit(k, items)
            return self._head

    # -- reading -----------------------------------------------------------------

    def messages_bytes(self) -> list[bytes]:
        """The canonical bytes of each message, oldest first (shared, frozen objects)."""
        with self._lock:
            self._load()
            return list(self._bodies)

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

    def _assembly(
        self,
        fmt: WireFormat,
        target: Target,
        partial: bool = False,
        view: _View | None = None,
    ) -> _Assembly:
        """This session's glued fragments for ``fmt`` and ``target``, brought up to date.

        Partial replies (stored with a status) are left out unless ``partial``. A
        ``view`` (a context window's cut) assembles only its messages; it is kept for
        as long as the cut stays where it is, so the kept prefix stays byte-stable.
        """
        key = (fmt.name, target.model, partial, view.cut if view is not None else None)
        asm = self._asm.get(key)
        if asm is None:
            asm = self._asm[key] = _Assembly()
        hashes, bodies, status = (
            (self._hashes, self._bodies, self._status) if view is None else view.lists(self)
        )
        n = len(hashes)
        if asm.n > n:
            asm.truncate(n)
        asm.serialized = 0
        start = asm.n
        while start < n:
            if status[start] is not None and not partial:
                asm.skip()
                start += 1
                continue
            stop = start + 1
            while stop < n and (partial or status[stop] is None):
                stop += 1
            self._extend(asm, fmt, target, hashes, bodies, start, stop)
            start = stop
        return asm

    def _extend(
        self,
        asm: _Assembly,
        fmt: WireFormat,
        target: Target,
        hashes: list[bytes],
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

    def _window(self, fmt: WireFormat, model: str, window: WindowPolicy | None) -> _View | None:
        """The messages a context window keeps, or ``None`` when all of them fit."""
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
        return _View((window.kind, window.budget, cut), kept)

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
    ) -> _Planned:
        target = Target(fmt.provider, model)
        view = self._window(fmt, model, window)
        asm = self._assembly(fmt, target, partial, view)
        hashes, bodies, _status = (
            (self._hashes, self._bodies, self._status) if view is None else view.lists(self)
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
            cum_bytes=_Offset(asm.nbytes, tool_bytes),
            cum_tokens=_Offset(asm.ntokens, tool_tokens),
            cum_blocks=asm.blocks,
        )
        key = self.cache_key
        records = self._rt._records
        previous = records.get((fmt.name, model, key))
        other = self._rt._last_model.get((fmt.name, key))
        prev_end = None
        if (
            previous is not None
            and len(previous.hashes) <= len(hashes)
            and hashes[: len(previous.hashes)] == previous.hashes
        ):
            prev_end = len(previous.hashes)
        breakpoints = plan(layout, prev_end, min_tokens, policy) if cache and fmt.marker else []
        report = explain(
            format=fmt.name,
            provider=fmt.provider,
            model=model,
            hashes=hashes,
            roles=_Roles(bodies),
            tools=tool_hashes,
            layout=layout,
            previous=previous,
            other_model=other if other != model else None,
            min_tokens=min_tokens,
            marker=fmt.marker is not None and bool(cache),
            breakpoints=breakpoints,
        )
        return _Planned(asm, tool_frags, tool_hashes, breakpoints, report, key, list(hashes))

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
            body = _core.assemble(head, pieces, b"", fmt.close(asm.last_role()) + tail)
            n = len(p.hashes)
            self._rt._count_serialized(asm.serialized)
            self._record(fmt, model, p)
            self.last_build = BuildStats(
                format, n, asm.serialized, n - asm.serialized, len(body), asm.notes(), p.report
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

    def _record(self, fmt: WireFormat, model: str, p: _Planned) -> None:
        """Remember this request as the previous one for its (format, model, cache key)."""
        self._rt._records[(fmt.name, model, p.key)] = Record(p.hashes, p.tool_hashes, p.breakpoints)
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
        return exchange.Call(
            self,
            provider,
            model=model,
            tools=tools,
            cache=cache,
            include_partial=partial,
            params=params,
            stream=stream,
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
        the history sent (see ``srt.context``). The body is built by delta assembly
        (or, for OpenAI Responses, as a delta on the provider's stored state when it
        holds this session's prefix).
        """
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
        return exchange.AsyncReplyStream(call)

    def usage(self) -> UsageSummary:
        """Totals of this session's ledger rows (every request it sent)."""
        return UsageSummary.of(self._rt._store.calls("WHERE session = ?", (self._id,)))

    def calls(self) -> list[dict[str, Any]]:
        """This session's ledger rows, oldest first."""
        return self._rt._store.calls("WHERE session = ?", (self._id,))

    def savings(self, pricing: Pricing | None = None) -> Savings:
        """Billed input against a stateless client for this session's requests."""
        return (pricing or Pricing()).savings(self.calls())

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
        (with the predicted cache reads, and for a stateless client), if priced."""
        ex = self.explain(format, model=model, tools=tools)
        return ex, (pricing or Pricing()).predict(model, ex.total_tokens, ex.cached_tokens)


class _View:
    """The messages a context window keeps: ``cut`` identifies it, ``kept`` lists them."""

    __slots__ = ("cut", "kept")

    def __init__(self, cut: tuple[str, int, int], kept: list[int]) -> None:
        self.cut, self.kept = cut, kept

    def lists(self, s: Session) -> tuple[list[bytes], list[bytes], list[str | None]]:
        k = self.kept
        return [s._hashes[i] for i in k], [s._bodies[i] for i in k], [s._status[i] for i in k]


class _Offset:
    """``base[i] + offset`` without copying ``base``."""

    __slots__ = ("_base", "_offset")

    def __init__(self, base: list[int], offset: int) -> None:
        self._base, self._offset = base, offset

    def __len__(self) -> int:
        return len(self._base)

    def __getitem__(self, i: int) -> int:
        return self._base[i] + self._offset


class _Roles:
    """The canonical role of message ``i``, parsed only when asked for."""

    __slots__ = ("_bodies",)

    def __init__(self, bodies: list[bytes]) -> None:
        self._bodies = bodies

    def __len__(self) -> int:
        return len(self._bodies)

    def __getitem__(self, i: int) -> str:
        return str(json.loads(self._bodies[i])["role"])


@dataclass
class _Planned:
    asm: _Assembly
    tool_frags: list[bytes]
    tool_hashes: tuple[bytes, ...]
    breakpoints: list[Breakpoint]
    report: CacheExplain
    key: str | None
    hashes: list[bytes]  # of the messages this request sends (a window may leave some out)


class _Assembly:
    """One session's fragments glued for one (format, model), extendable and truncatable."""

    __slots__ = (
        "_ends",
        "_notes",
        "_roles",
        "_sys",
        "blocks",
        "nbytes",
        "ntokens",
        "pieces",
        "serialized",
        "system",
    )

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.system: list[bytes] = []
        self._ends: list[int] = []  # len(pieces) after message i
        self._sys: list[int] = []  # len(system) after message i
        self._roles: list[str | None] = []  # last wire role after message i
        self._notes: list[str | None] = []
        self.nbytes: list[int] = []  # bytes of system + message fragments up to message i
        self.blocks: list[int] = []  # content blocks up to message i
        self.ntokens: list[int] = []  # estimated tokens up to message i (per fragment)
        self.serialized = 0

    @property
    def n(self) -> int:
        return len(self._ends)

    @property
    def system_count(self) -> int:
        """Messages rendered into the system area (they are all leading, so the count is
        the number of messages before the first one that added a message piece)."""
        if not self.system:
            return 0
        return bisect.bisect_left(self._ends, 1)

    def message_piece(self, i: int) -> int:
        """Index in ``pieces`` of message ``i``'s fragment."""
        return self._ends[i] - 1

    def last_role(self) -> str | None:
        return self._roles[-1] if self._roles else None

    def notes(self) -> tuple[str, ...]:
        return tuple(n for n in self._notes if n)

    def pieces_after(self, i: int) -> list[bytes]:
        """A copy of the pieces that follow message ``i``."""
        return self.pieces[self._ends[i] :]

    def skip(self) -> None:
        """A message that is not sent (a partial reply): no pieces, same totals."""
        self._ends.append(len(self.pieces))
        self._sys.append(len(self.system))
        self._roles.append(self.last_role())
        self._notes.append(None)
        self.nbytes.append(self.nbytes[-1] if self.nbytes else 0)
        self.blocks.append(self.blocks[-1] if self.blocks else 0)
        self.ntokens.append(self.ntokens[-1] if self.ntokens else 0)

    def truncate(self, k: int) -> None:
        del self.pieces[self._ends[k - 1] if k else 0 :]
        del self.system[self._sys[k - 1] if k else 0 :]
        del self._ends[k:], self._sys[k:], self._roles[k:], self._notes[k:]
        del self.nbytes[k:], self.blocks[k:], self.ntokens[k:]

    def extend_identity(self, fmt: WireFormat, target: Target, bodies: list[bytes]) -> None:
        """Fast path for formats whose fragment is normally the canonical body itself."""
        pieces, ends, sys, roles, notes, nbytes, blocks, ntokens = (
            self.pieces,
            self._ends,
            self._sys,
            self._roles,
            self._notes,
            self.nbytes,
            self.blocks,
            self.ntokens,
        )
        nsys = len(self.system)
        plain = fmt.plain
        total = nbytes[-1] if nbytes else 0
        nblocks = blocks[-1] if blocks else 0
        ntok = ntokens[-1] if ntokens else 0
        for body in bodies:
            if not plain(body):
                self.extend(fmt, [fmt.render(body, target)])
                total, nblocks, ntok = nbytes[-1], blocks[-1], ntokens[-1]
                continue
            pieces.append(fmt.glue(roles[-1] if roles else None, ""))
            pieces.append(body)
            ends.append(len(pieces))
            sys.append(nsys)
            roles.append("")
            notes.append(None)
            total += len(body)
            nblocks += 1
            ntok += (len(body) + 3) // 4
            nbytes.append(total)
            blocks.append(nblocks)
            ntokens.append(ntok)

    def extend(self, fmt: WireFormat, frags: list[Frag]) -> None:
        last = self.last_role()
        pieces, system = self.pieces, self.system
        for f in frags:
            if not f.data:
                pass  # nothing to send for this message (e.g. an empty reply)
            elif f.kind == "system" and last is None:
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
            self.nbytes.append((self.nbytes[-1] if self.nbytes else 0) + len(f.data))
            self.blocks.append((self.blocks[-1] if self.blocks else 0) + f.blocks)
            prev = self.ntokens[-1] if self.ntokens else 0
            self.ntokens.append(prev + (len(f.data) + 3) // 4)
