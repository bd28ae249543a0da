"""Request building: a session's fragments glued per (format, model), the context
window's cut, the cache plan and the request bytes. No I/O besides the store reads
of the chain (a prefix hash) that a windowed or delta request may need.

``Builder`` keeps, per (format, model, partial, window cut), an ``Assembly``: the
glued pieces of every message so far, with running byte, block and token figures.
Only messages new since the last build are looked up in the runtime's fragment
cache or rendered; ``_core.OutputBuffer`` writes the body in one allocation (and
grows the previous body in place once the caller has dropped it).
"""

from __future__ import annotations

import bisect
import json
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, repeat
from typing import Any

from . import _core
from ._chain import Chain
from ._core import OutputBuffer
from ._shared import Shared
from ._types import BuildStats
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
from .errors import ConfigError, UnsupportedFeatureError
from .tokens import Tokenizer
from .wire.base import Frag, Target, WireFormat

__all__ = ["Assembly", "Builder", "Offset", "Parts", "Planned", "Roles", "View"]


class View:
    """The messages a context window keeps: ``cut`` identifies it, ``kept`` lists them."""

    __slots__ = ("cut", "kept")

    def __init__(self, cut: tuple[str, int, int], kept: list[int]) -> None:
        self.cut, self.kept = cut, kept

    def lists(
        self, hashes: Sequence[bytes], bodies: list[bytes], status: dict[int, str]
    ) -> tuple[list[bytes], list[bytes], dict[int, str]]:
        k = self.kept
        kept_status = {j: status[i] for j, i in enumerate(k) if i in status} if status else {}
        return [hashes[i] for i in k], [bodies[i] for i in k], kept_status


class Offset:
    """``base[i] + offset`` without copying ``base``."""

    __slots__ = ("_base", "_offset")

    def __init__(self, base: Sequence[int], offset: int) -> None:
        self._base, self._offset = base, offset

    def __len__(self) -> int:
        return len(self._base)

    def __getitem__(self, i: int) -> int:
        return self._base[i] + self._offset


class Roles:
    """The canonical role of message ``i``, parsed only when asked for."""

    __slots__ = ("_bodies",)

    def __init__(self, bodies: list[bytes]) -> None:
        self._bodies = bodies

    def __len__(self) -> int:
        return len(self._bodies)

    def __getitem__(self, i: int) -> str:
        return str(json.loads(self._bodies[i])["role"])


@dataclass
class Planned:
    asm: Assembly
    tool_frags: list[bytes]
    tool_hashes: tuple[bytes, ...]
    breakpoints: list[Breakpoint]
    report: CacheExplain
    key: str | None
    # Of the messages this request sends (a window may leave some out): the session's
    # own list, which only grows (see cache.Record), or a window's new list.
    hashes: Sequence[bytes]
    kept: list[int] | None = None  # the messages a window kept, when it left some out


class Assembly:
    """One session's fragments glued for one (format, model), extendable and truncatable."""

    __slots__ = (
        "_ends",
        "_nnotes",
        "_notes",
        "_roles",
        "_sys",
        "blocks",
        "nbytes",
        "ntokens",
        "out",
        "pieces",
        "serialized",
        "system",
    )

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.system: list[bytes] = []
        # Per-message running figures as 8-byte arrays, not lists of int objects: a
        # session keeps one Assembly per format it builds for as long as it lives.
        self._ends = array("q")  # len(pieces) after message i
        self._sys = array("q")  # len(system) after message i
        self._roles: list[str | None] = []  # last wire role after message i
        self._notes: list[str | None] = []
        self._nnotes = 0  # how many of _notes are set
        self.nbytes = array("q")  # bytes of system + message fragments up to message i
        self.blocks = array("q")  # content blocks up to message i
        self.ntokens = array("q")  # estimated tokens up to message i (per fragment)
        self.serialized = 0
        # The last large body built from these pieces, grown in place by the next build
        # once the caller has dropped it (see _core.OutputBuffer). One per assembly, so
        # a session that builds for two formats in turn keeps both warm.
        self.out = OutputBuffer()

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
        return tuple(n for n in self._notes if n) if self._nnotes else ()

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
        # New piece lists rather than ``del``: a list handed to an OutputBuffer must
        # keep its items (see _core.OutputBuffer); only appends may change it.
        self.pieces = self.pieces[: self._ends[k - 1] if k else 0]
        self.system = self.system[: self._sys[k - 1] if k else 0]
        self._nnotes = sum(1 for n in self._notes[:k] if n)
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
        m = len(bodies)
        if m > 8 and fmt.plain_all(bodies):
            # A whole chain at once (a cold load): the same records as the loop below,
            # built list by list instead of message by message.
            k0 = len(pieces)
            new = [fmt.glue("", "")] * (2 * m)
            new[0] = fmt.glue(roles[-1] if roles else None, "")
            new[1::2] = bodies
            pieces.extend(new)
            ends.extend(range(k0 + 2, k0 + 2 * m + 1, 2))
            sys.extend(repeat(nsys, m))
            roles.extend(repeat("", m))
            notes.extend(repeat(None, m))
            lens = list(map(len, bodies))
            nbytes.extend(islice(accumulate(lens, initial=total), 1, None))
            blocks.extend(range(nblocks + 1, nblocks + m + 1))
            toks = [(n + 3) // 4 for n in lens]
            ntokens.extend(islice(accumulate(toks, initial=ntok), 1, None))
            return
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
            if f.note:
                self._nnotes += 1
            self.nbytes.append((self.nbytes[-1] if self.nbytes else 0) + len(f.data))
            self.blocks.append((self.blocks[-1] if self.blocks else 0) + f.blocks)
            prev = self.ntokens[-1] if self.ntokens else 0
            self.ntokens.append(prev + (len(f.data) + 3) // 4)


class Builder:
    """A session's request builder: assemblies, windows, the cache plan, the bytes.

    It reads the session's ``Chain`` and listens to it (``reset``, ``truncate``).
    The caller holds the session's lock and has loaded the chain.
    """

    def __init__(self, shared: Shared, chain: Chain) -> None:
        self.shared = shared
        self.chain = chain
        self.last_build: BuildStats | None = None
        #: Set only to rebuild a recorded request (``srt.ledger``): the breakpoints it
        #: placed and the messages its window kept, used instead of planning them.
        self.replay: tuple[list[Breakpoint], list[int] | None] | None = None
        self._asm: dict[tuple[str, str, bool, tuple[str, int, int] | None], Assembly] = {}
        self._roles: list[str] = []  # canonical roles, parsed lazily (windows)
        self._ntok: dict[str, list[int]] = {}  # token counts per tokenizer (windows)
        self._cuts: dict[WindowPolicy, int] = {}

    # -- following the chain -------------------------------------------------------------

    def reset(self) -> None:
        """The chain was (re)loaded: everything derived from it is dropped."""
        self._roles, self._ntok, self._cuts = [], {}, {}
        self._asm = {}

    def truncate(self, n: int) -> None:
        """The chain dropped its messages from ``n`` on."""
        del self._roles[n:]
        for counts in self._ntok.values():
            del counts[n:]
        self._cuts = {w: c for w, c in self._cuts.items() if c <= n}  # a cut past n is stale
        for key, asm in list(self._asm.items()):
            if key[3] is not None:
                del self._asm[key]  # a windowed view: rebuilt from cached fragments
            elif asm.n > n:
                asm.truncate(n)

    def roles(self) -> list[str]:
        """The canonical role of every message (parsed once per message)."""
        roles = self._roles
        for b in self.chain.bodies[len(roles) :]:
            roles.append(str(json.loads(b)["role"]))
        return roles

    def cache_key(self) -> str | None:
        """The prompt-cache key of this history: derived from its root message, so every
        fork of one conversation shares it (``None`` for an empty session)."""
        hashes = self.chain.hashes
        if not hashes:
            return None
        return "srt-" + self.shared.store.hashing.chain(_core.ROOT, hashes[0]).hex()

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
        asm = self._asm.get(key)
        if asm is None:
            asm = self._asm[key] = Assembly()
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
        cache = self.shared.fragments
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

    # -- context windows ---------------------------------------------------------------------

    def _window(self, fmt: WireFormat, model: str, window: WindowPolicy | None) -> View | None:
        """The messages a context window keeps, or ``None`` when all of them fit."""
        if self.replay is not None:
            kept = self.replay[1]
            return None if kept is None else View(("replay", len(kept), 0), list(kept))
        if window is None:
            return None
        if not isinstance(window, WindowPolicy):
            raise ConfigError(
                f"window must be a srt.WindowPolicy (or None), got {type(window).__name__}"
            )
        tokenizer = window.tokenizer or fmt.tokenizer(model)
        counts = self.token_counts(tokenizer)
        roles = self.roles()
        # One cut per policy, whatever the format: every format sends the same messages.
        kept, cut = select(window, counts, roles, self.chain.pinned, self._cuts.get(window))
        self._cuts[window] = cut
        if len(kept) == len(counts):
            return None
        return View((window.kind, window.budget, cut), kept)

    def token_counts(self, tokenizer: Tokenizer) -> list[int]:
        """Each message's tokens under ``tokenizer``, cached per (message hash, tokenizer)."""
        counts = self._ntok.setdefault(tokenizer.name, [])
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
    ) -> Planned:
        target = Target(fmt.provider, model)
        view = self._window(fmt, model, window)
        asm = self.assembly(fmt, target, partial, view)
        hashes, bodies, _status = self._lists(view)
        tool_frags, tool_hashes = self.shared.tool_fragments(fmt, tools)
        policy = cache if isinstance(cache, CachePolicy) else CachePolicy()
        min_tokens = policy.min_tokens or min_cacheable_tokens(fmt.cache, model)
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
        key = self.cache_key()
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
        return Planned(asm, tool_frags, tool_hashes, breakpoints, report, key, hashes, kept)

    def _record(self, fmt: WireFormat, model: str, p: Planned) -> None:
        """Remember this request as the previous one for its (format, model, cache key)."""
        self.shared.records[(fmt.name, model, p.key)] = Record(
            p.hashes, len(p.hashes), p.tool_hashes, p.breakpoints
        )
        self.shared.last_model[(fmt.name, p.key)] = model

    # -- request bytes ---------------------------------------------------------------------------

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
        p = self.plan(fmt, model, tools, cache, partial, window)
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
        if cache and fmt.cache.key_param is not None and p.key is not None:
            params.setdefault(fmt.cache.key_param, p.key)
        head, tail = fmt.envelope(model, params, system, tool_frags)
        body = asm.out.build(head, pieces, b"", fmt.close(asm.last_role()) + tail)
        n = len(p.hashes)
        self.shared.count_serialized(asm.serialized)
        self._record(fmt, model, p)
        self.last_build = BuildStats(
            fmt.name,
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
        planned = self.plan(fmt, model, tools or (), cache, include_partial)
        self._record(fmt, model, planned)
        asm = planned.asm
        pieces = asm.pieces_after(index)
        if pieces:
            pieces[0] = b""  # no separator before the first item sent
        tool_frags, _ = self.shared.tool_fragments(fmt, tools or ())
        if cache and fmt.cache.key_param is not None and planned.key is not None:
            params = {**params}
            params.setdefault(fmt.cache.key_param, planned.key)
        head, tail = fmt.envelope(model, params, [], tool_frags)
        body = _core.assemble(head, pieces, b"", fmt.close(asm.last_role()) + tail)
        n = len(self.chain.hashes)
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


@dataclass(frozen=True)
class Parts:
    """A session's parts, as ``Session.parts`` hands them to srt's layers above it
    (the exchange, compaction, summaries, tasks): its lock, its chain and its builder,
    and what its runtime's sessions share. Hold the lock to use the chain or builder."""

    shared: Shared
    chain: Chain
    builder: Builder
    lock: threading.RLock
