"""Request building: a session's fragments glued per (format, model), the context
window's cut, the cache plan and the request bytes. No I/O besides the store reads
of the chain (a prefix hash) that a windowed or delta request may need.

``Builder`` keeps, per (format, model, partial, window cut), an ``Assembly``: the
glued pieces of every message so far, with running byte, block and token figures.
Only messages new since the last build are looked up in the runtime's fragment
cache or rendered. ``request`` returns the body as bytes: ``_core.OutputBuffer`` writes
it in one allocation (and grows the previous body in place once the caller has
dropped it). ``request_body`` (what ``Session.send`` uses) returns it as a
``_core.Body`` of a few large chunks from ``_core.Segments``: runs of pieces joined
once and kept, so no turn copies the history, and the transport writes the chunks to
the socket one after another.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import _core
from . import _fragments as fragments
from ._cachekeys import sent_key
from ._chain import Chain
from ._core import Body, Segments
from ._pieces import Assembly, Offset, Planned, Roles, View, target_of
from ._shared import Shared
from ._types import BuildStats
from .cache import (
    RETENTION_SECONDS,
    Breakpoint,
    CachePolicy,
    Layout,
    Record,
    estimate_tokens,
    explain,
    min_cacheable_tokens,
    plan,
)
from .context import WindowPolicy, select
from .errors import ConfigError
from .tokens import Tokenizer
from .wire.base import Target, WireFormat

__all__ = ["Builder", "Parts"]

#: ``_core.Segments`` settings for send bodies: a body under ``min_bytes`` is one chunk
#: (nothing kept); larger ones freeze runs of ``segment_bytes`` and merge them up to
#: ``merge_bytes``, so a body of B bytes reaches the socket in about B / 4 MiB + 16 writes.
SEGMENTS = {"min_bytes": 128 * 1024, "segment_bytes": 256 * 1024, "merge_bytes": 4 * 1024 * 1024}


#: An assembly's key: (format, model, partial replies sent, a context window's cut).
_Key = tuple[str, str, bool, tuple[str, int, int] | None]


class _Windows:
    """What a session's context windows derive from its history: each message's role and
    token counts (per tokenizer), and each policy's last cut. Made on a first window (most
    sessions never use one, and a loaded session should not pay for three containers)."""

    __slots__ = ("cuts", "ntok", "refused", "roles")

    def __init__(self) -> None:
        self.roles: list[str] = []  # canonical roles, parsed lazily
        self.ntok: dict[str, list[int]] = {}  # token counts per tokenizer
        self.cuts: dict[WindowPolicy, int] = {}
        #: Per ``compact_at`` window, the last summary refused (a reply that was no
        #: summary, or one not smaller than its span): (the span's first node, the
        #: tokens the span must outgrow before another is asked for) (``srt.summarize``).
        self.refused: dict[WindowPolicy, tuple[int, int]] = {}


class Builder:
    """A session's request builder: assemblies, windows, the cache plan, the bytes.

    It reads the session's ``Chain`` and listens to it (``reset``, ``truncate``).
    The caller holds the session's lock and has loaded the chain.
    """

    __slots__ = (
        "__weakref__",
        "_asm",
        "_asm1",
        "_bare",
        "_ck",
        "_key1",
        "_win",
        "chain",
        "last_build",
        "replay",
        "shared",
    )

    def __init__(self, shared: Shared, chain: Chain) -> None:
        self.shared = shared
        self.chain = chain
        self.last_build: BuildStats | None = None
        #: Set only to rebuild a recorded request (``srt.ledger``): the breakpoints it
        #: placed and the messages its window kept, used instead of planning them.
        self.replay: tuple[list[Breakpoint], list[int] | None] | None = None
        # The first assembly (most sessions build for one format) in two slots, any
        # others in a dict made for the second: a dict's table for one item is 200 bytes.
        self._key1: _Key | None = None
        self._asm1: Assembly | None = None
        self._asm: dict[_Key, Assembly] | None = None
        self._win: _Windows | None = None  # what context windows need, made on first use
        self._ck: tuple[bytes, str] | None = None  # (root hash, cache key): cache_key's last
        # The last bare envelope: (format, model, last role, cache key, head, close + tail).
        self._bare: tuple[WireFormat, str, str | None, str | None, bytes, bytes] | None = None

    def footprint(self) -> int:
        """Bytes the assemblies hold (an estimate): list slots, the packed per-message
        figures, and the bodies their writers keep (fragments are the shared cache's)."""
        total = (8 * len(self._win.roles) if self._win is not None else 0) + 600
        for _, asm in self._assemblies():
            total += 8 * (len(asm.pieces) + len(asm.system)) + 25 * asm.n + 400
            total += asm.out.capacity + asm.out.spare if asm.out is not None else 0
            total += asm.segments.holding if asm.segments is not None else 0
        return total

    # -- following the chain -------------------------------------------------------------

    def reset(self) -> None:
        """The chain was (re)loaded: everything derived from it is dropped."""
        self._win = None
        self._key1 = self._asm1 = self._asm = None

    def copy_from(self, other: Builder, n: int) -> None:
        """Start (after ``reset``) from a copy of ``other``'s first assembly that holds
        exactly the chain's ``n`` messages, unwindowed; under ``other``'s lock."""
        for key, asm in other._assemblies():
            if key[3] is None and asm.n == n:
                self._key1, self._asm1, self._asm = key, asm.copy(), None
                return

    def truncate(self, n: int) -> None:
        """The chain dropped its messages from ``n`` on."""
        win = self._win
        if win is not None:
            del win.roles[n:]
            for counts in win.ntok.values():
                del counts[n:]
            win.cuts = {w: c for w, c in win.cuts.items() if c <= n}  # a cut past n is stale
        for key, asm in self._assemblies():
            if key[3] is not None:
                self._drop(key)  # a windowed view: rebuilt from cached fragments
            elif asm.n > n:
                asm.truncate(n)

    def _assemblies(self) -> list[tuple[_Key, Assembly]]:
        """Every (key, assembly) this builder keeps."""
        out: list[tuple[_Key, Assembly]] = []
        if self._key1 is not None and self._asm1 is not None:
            out.append((self._key1, self._asm1))
        if self._asm:
            out += self._asm.items()
        return out

    def _drop(self, key: _Key) -> None:
        if key == self._key1:
            self._key1 = self._asm1 = None
        elif self._asm is not None:
            self._asm.pop(key, None)

    def _windows(self) -> _Windows:
        if self._win is None:
            self._win = _Windows()
        return self._win

    def roles(self) -> list[str]:
        """The canonical role of every message (parsed once per message)."""
        roles = self._windows().roles
        for b in self.chain.bodies[len(roles) :]:
            roles.append(str(json.loads(b)["role"]))
        return roles

    def cache_key(self) -> str | None:
        """The root scope's prompt-cache key of this history (``_cachekeys``): derived from
        its root message, so every fork shares it (``None`` for an empty session)."""
        hashes = self.chain.hashes
        if not hashes:
            return None
        root, ck = hashes[0], self._ck
        if ck is None or ck[0] != root:
            key = "srt-" + self.shared.store.hashing.chain(_core.ROOT, root).hex()
            ck = self._ck = self.shared.same((root, key))
        return ck[1]

    # -- assembly --------------------------------------------------------------------------

    def _lists(self, view: View | None) -> tuple[Sequence[bytes], list[bytes], dict[int, str]]:
        c = self.chain
        if view is None:
            return c.hashes, c.bodies, c.status
        return view.lists(c.hashes, c.bodies, c.status)

    def assembly(
        self, fmt: WireFormat, target: Target, partial: bool = False, view: View | None = None
    ) -> Assembly:
        """This session's glued fragments for ``fmt`` and ``target``, brought up to date.

        Partial replies (stored with a status) are left out unless ``partial``. A
        ``view`` (a context window's cut) assembles only its messages; it is kept for
        as long as the cut stays where it is, so the kept prefix stays byte-stable.
        """
        key = (fmt.name, target.model, partial, view.cut if view is not None else None)
        if self._asm1 is not None and self._key1 == key:
            asm = self._asm1
        else:
            found = self._asm.get(key) if self._asm is not None else None
            if found is None:
                found, key = Assembly(fmt.sep), self.shared.same(key)
                if self._asm1 is None:
                    self._key1, self._asm1 = key, found
                else:
                    if self._asm is None:
                        self._asm = {}
                    self._asm[key] = found
            asm = found
        hashes, bodies, status = self._lists(view)
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
            fragments.extend(self.shared, asm, fmt, target, hashes, bodies, start, stop)
            start = stop
        return asm

    # -- context windows ---------------------------------------------------------------------

    def _window(
        self, fmt: WireFormat, model: str, window: WindowPolicy | None, partial: bool = False
    ) -> View | None:
        """The messages a context window keeps, or ``None`` when all of them fit. Partial
        replies count for nothing unless ``partial`` (the request leaves them out)."""
        if self.replay is not None:
            kept = self.replay[1]
            return None if kept is None else View(("replay", len(kept), 0), list(kept))
        if window is None:
            return None
        if not isinstance(window, WindowPolicy):
            raise ConfigError(
                f"window must be a srt.WindowPolicy (or None), got {type(window).__name__}"
            )
        counts = self.sent_counts(window.tokenizer or fmt.tokenizer(model), partial)
        roles, pinned = self.roles(), self.chain.pinned
        n = len(roles)
        if len(counts) < n:  # (partial replies at the end: the newest step precedes them)
            roles, pinned = roles[: len(counts)], pinned[: len(counts)]
        # One cut per policy, whatever the format: every format sends the same messages.
        cuts = self._windows().cuts
        kept, cut = select(window, counts, roles, pinned, cuts.get(window))
        cuts[window] = cut
        if len(kept) == n:
            return None
        return View((window.kind, window.budget, cut), kept)

    def refused_summaries(self) -> dict[WindowPolicy, tuple[int, int]]:
        """The last summary refused, per window (kept with the window's other state
        while the history is not read again)."""
        return self._windows().refused

    def sent_counts(self, tokenizer: Tokenizer, partial: bool = False) -> list[int]:
        """Each message's tokens as a request sends it: partial replies count for nothing
        unless ``partial`` (the request leaves them out), and those at the end are not in
        the list, which ends with the last message sent (a context window's newest step
        and an automatic summary's end are found there). Not to be changed in place."""
        counts = self.token_counts(tokenizer)
        status = self.chain.status
        if not status or partial:
            return counts
        m = len(counts)
        while m and m - 1 in status:
            m -= 1
        return [0 if i in status else counts[i] for i in range(m)]

    def token_counts(self, tokenizer: Tokenizer) -> list[int]:
        """Each message's tokens under ``tokenizer``, cached per (message hash, tokenizer)."""
        counts = self._windows().ntok.setdefault(tokenizer.name, [])
        cache = self.shared.tokens
        c = self.chain
        for i in range(len(counts), len(c.bodies)):
            counts.append(cache.message_tokens(tokenizer, c.bodies[i], c.hashes[i]))
        return counts

    # -- the cache plan ------------------------------------------------------------------------

    def plan(
        self,
        fmt: WireFormat,
        model: str,
        tools: Sequence[Any],
        cache: bool | CachePolicy,
        partial: bool = False,
        window: WindowPolicy | None = None,
        params: dict[str, Any] | None = None,
    ) -> Planned:
        if not (cache is True or cache is False or isinstance(cache, CachePolicy)):
            raise ConfigError(
                "cache must be True, False or a srt.CachePolicy (its TTLs and key scope are "
                f"set there, e.g. srt.CachePolicy(static_ttl='1h')), got {cache!r:.40}"
            )
        target = target_of(fmt.provider, model)
        hashes: Sequence[bytes]
        tool_frags: list[bytes]
        tool_hashes: tuple[bytes, ...]
        if window is None and self.replay is None:
            view = None  # what ``_window`` gives: every message
            asm = self.assembly(fmt, target, partial, None)
            hashes, bodies = self.chain.hashes, self.chain.bodies
        else:
            view = self._window(fmt, model, window, partial)
            asm = self.assembly(fmt, target, partial, view)
            hashes, bodies, _status = self._lists(view)
        policy = cache if isinstance(cache, CachePolicy) else self.shared.cache_policy
        min_tokens = (
            policy.min_tokens or fmt.cache.min_tokens or min_cacheable_tokens(fmt.cache, model)
        )
        if (type(tools) is tuple or type(tools) is list) and not tools:  # as tool_fragments
            tool_frags, tool_hashes, tool_bytes, tool_tokens = [], (), 0, 0
        else:
            tool_frags, tool_hashes = self.shared.tool_fragments(fmt, tools)
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
        root = self.cache_key()  # what the explain compares by where no key is sent
        sent = sent_key(self.shared, self.chain, root, fmt, cache, policy, params)
        key = sent if sent is not None else root
        previous = self.shared.records.get((fmt.name, model, key))
        other = self.shared.last_model.get((fmt.name, key))
        shared = previous.shared(hashes) if previous is not None else 0
        prev_end = shared if previous is not None and shared == previous.n else None
        breakpoints = plan(layout, prev_end, min_tokens, policy) if cache and fmt.marker else []
        report = explain(
            format=fmt.name,
            provider=fmt.provider,
            rules=fmt.cache,
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
        if self.replay is not None:
            breakpoints = list(self.replay[0])
        kept = view.kept if view is not None else None
        return Planned(asm, tool_frags, tool_hashes, breakpoints, report, key, hashes, kept, sent)

    def _record(self, fmt: WireFormat, model: str, p: Planned, params: dict[str, Any]) -> None:
        """Remember this request as the previous one for its (format, model, cache key)."""
        retention = params.get("prompt_cache_retention") if fmt.cache.idle_ttl_s else None
        self.shared.records[(fmt.name, model, p.key)] = Record(
            p.hashes,
            len(p.hashes),
            p.tool_hashes,
            p.breakpoints,
            idle_ttl_s=RETENTION_SECONDS.get(retention) if type(retention) is str else None,
        )
        self.shared.last_model[(fmt.name, p.key)] = model

    # -- request bytes ---------------------------------------------------------------------------

    def _envelope(
        self,
        fmt: WireFormat,
        model: str,
        tools: Sequence[Any],
        cache: bool | CachePolicy,
        partial: bool,
        window: WindowPolicy | None,
        params: dict[str, Any],
    ) -> tuple[Planned, bytes, dict[int, bytes], bytes]:
        """The plan, and the body's head, marked pieces (index -> bytes) and tail."""
        p = self.plan(fmt, model, tools, cache, partial, window, params)
        asm = p.asm
        system, tool_frags = asm.system, p.tool_frags
        marks: dict[int, bytes] = {}
        if p.breakpoints:
            system, tool_frags = list(system), list(tool_frags)
            for bp in p.breakpoints:
                if bp.where == "message":
                    j = asm.message_piece(bp.index)
                    marks[j] = fmt.mark(asm.pieces[j], bp.ttl)
                elif bp.where == "system":
                    system[bp.index] = fmt.mark(system[bp.index], bp.ttl)
                else:
                    tool_frags[bp.index] = fmt.mark(tool_frags[bp.index], bp.ttl)
        plain = not params and not system and not tool_frags
        if p.sent is not None:
            params.setdefault(fmt.cache.key_param, p.sent)  # type: ignore[arg-type]
        last = asm.last_role()
        if not plain:
            head, tail = fmt.envelope(model, params, system, tool_frags)
            return p, head, marks, fmt.close(last) + tail
        # A bare envelope (no parameters but the cache key) is a function of the format,
        # model, last role and key (as envelope and close are of their arguments).
        key = p.sent if params else None
        bare = self._bare
        if bare is None or bare[:4] != (fmt, model, last, key):
            head, tail = fmt.envelope(model, params, system, tool_frags)
            bare = self._bare = self.shared.same(
                (fmt, model, last, key, head, fmt.close(last) + tail)
            )
        return p, bare[4], marks, bare[5]

    def _built(
        self, fmt: WireFormat, model: str, p: Planned, size: int, params: dict[str, Any]
    ) -> None:
        asm = p.asm
        n = len(p.hashes)
        if asm.serialized:
            self.shared.count_serialized(asm.serialized)
        self._record(fmt, model, p, params)
        self.last_build = BuildStats(
            fmt.name,
            n,
            asm.serialized,
            n - asm.serialized,
            size,
            asm.notes(),
            p.report,
            tuple(p.breakpoints),
            tuple(p.kept) if p.kept is not None else None,
            p.sent,
        )

    def request(
        self,
        fmt: WireFormat,
        model: str,
        tools: Sequence[Any],
        cache: bool | CachePolicy,
        partial: bool,
        window: WindowPolicy | None,
        params: dict[str, Any],
    ) -> bytes:
        """The exact bytes of the next request body (see ``Session.request``)."""
        p, head, marks, tail = self._envelope(fmt, model, tools, cache, partial, window, params)
        pieces = p.asm.pieces
        if marks:
            pieces = list(pieces)
            for j, marked in marks.items():
                pieces[j] = marked
        body = p.asm.build(head, pieces, tail)
        self._built(fmt, model, p, len(body), params)
        return body

    def request_body(
        self,
        fmt: WireFormat,
        model: str,
        tools: Sequence[Any],
        cache: bool | CachePolicy,
        partial: bool,
        window: WindowPolicy | None,
        params: dict[str, Any],
    ) -> Body:
        """The next request body as chunks, byte for byte what ``request`` returns: the
        history's frozen segments are reused as they are, so a turn copies only the
        pieces not frozen yet (and the marked ones) and the tail."""
        p, head, marks, tail = self._envelope(fmt, model, tools, cache, partial, window, params)
        asm = p.asm
        if asm.segments is None:
            asm.segments = Segments(**SEGMENTS, sep=asm.sep)
        body = Body(asm.segments.build(head, asm.pieces, tail, marks or None), asm.segments)
        self._built(fmt, model, p, len(body), params)
        return body

    def request_after(
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
        ``previous_response_id``)."""
        # The provider still sees (and bills) the whole chain: explain and record that.
        planned = self.plan(fmt, model, tools or (), cache, include_partial, None, params)
        self._record(fmt, model, planned, params)
        asm = planned.asm
        pieces = asm.pieces_after(index)
        if pieces and not asm.sep:
            pieces[0] = b""  # no separator before the first item sent (with ``sep``: none)
        tool_frags, _ = self.shared.tool_fragments(fmt, tools or ())
        if planned.sent is not None:  # (the caller's own, if any, was a str and is kept)
            params = {**params, fmt.cache.key_param: planned.sent}  # type: ignore[dict-item]
        head, tail = fmt.envelope(model, params, [], tool_frags)
        body = _core.assemble(head, pieces, asm.sep, fmt.close(asm.last_role()) + tail)
        n = len(self.chain.hashes)
        self.last_build = BuildStats(
            fmt.name,
            n - index - 1,
            asm.serialized,
            n - index - 1,
            len(body),
            asm.notes(),
            planned.report,
            cache_key=planned.sent,
        )
        return body


@dataclass(frozen=True, slots=True)
class Parts:
    """A session's parts, as ``Session.parts`` hands them to srt's layers above it
    (the exchange, compaction, summaries, tasks): its lock, its chain and its builder,
    and what its runtime's sessions share. Hold the lock to use the chain or builder."""

    shared: Shared
    chain: Chain
    builder: Builder
    lock: threading.RLock
