"""A session: a named head in the prefix tree. ``Session`` is a façade over three parts:

* ``_chain.Chain``: the history in memory and its compare-and-swap commit;
* ``_builder.Builder``: assembly, context windows, the cache plan, the request bytes;
* ``exchange``: a provider call (send, stream, retry, persist).

Appends are compare-and-swap on the head; fork, rewind and edit move or add heads
and copy no message and no node. ``request()`` assembles the next request from
frozen per-message fragments in one allocation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import compaction, exchange
from ._builder import Builder
from ._chain import Chain
from ._shared import Shared
from ._types import BuildStats, Reply, UsageSummary
from .cache import CacheExplain, CachePolicy
from .context import WindowPolicy
from .errors import HistoryIndexError
from .pricing import Pricing, Savings
from .providers import Provider
from .wire import get_format
from .wire.base import check_model

__all__ = ["Session"]


class Session:
    """A conversation held in the runtime's store. Get one from ``Runtime.session()``.

    A ``Session`` handle remembers the head it last saw. If another handle or
    process appends first, the next append raises ``ConflictError`` (nothing is
    written) unless ``rebase=True`` is passed. A handle may be shared between
    threads; its methods are serialised by a lock.
    """

    def __init__(self, shared: Shared, chain: Chain) -> None:
        self._shared = shared
        self._lock = threading.RLock()
        self._chain = chain
        self._builder = Builder(shared, chain)
        chain.listener = self._builder

    # -- identity ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._chain.name

    @property
    def head(self) -> int | None:
        """Node id of the last message, or ``None`` for an empty session."""
        return self._chain.head

    @property
    def prefix_hash(self) -> str | None:
        """Hex prefix hash of the whole history: equal hashes mean equal histories."""
        with self._lock:
            self._chain.load()
            return self._chain.prefix().hex() if len(self._chain) else None

    @property
    def last_build(self) -> BuildStats | None:
        """What the last ``request()`` (or send) built, with its cache explain."""
        return self._builder.last_build

    def __len__(self) -> int:
        with self._lock:
            self._chain.load()
            return len(self._chain)

    def __repr__(self) -> str:
        return f"<srt.Session name={self.name!r} head={self.head}>"

    def refresh(self) -> None:
        """Re-read the head from the store (after a ``ConflictError``)."""
        with self._lock:
            self._chain.refresh()

    # -- writing -----------------------------------------------------------------

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
            prepared = self._chain.prepare(messages, model)
            if not prepared:
                return self._chain.head
            return self._chain.append(prepared, rebase=rebase)

    def rewind(self, n: int = 1) -> None:
        """Drop the last ``n`` messages from this session (they stay stored for forks)."""
        with self._lock:
            self._chain.load()
            self._chain.rewind(n)

    def edit(self, index: int, message: Any) -> int | None:
        """Replace message ``index`` and drop everything after it; return the new head.

        The old branch stays stored (fork first to keep a name on it).
        """
        with self._lock:
            chain = self._chain
            chain.load()
            n = len(chain)
            if not isinstance(index, int) or isinstance(index, bool):
                raise HistoryIndexError(f"index must be an int, got {type(index).__name__}")
            keep = index + n if index < 0 else index
            if not 0 <= keep < n:
                raise HistoryIndexError(f"index {index} is outside a session of {n} messages")
            chain.commit(keep, chain.prepare([message]))
            return chain.head

    def fork(self, name: str, at: int | None = None) -> Session:
        """A new session sharing this one's first ``at`` messages (all by default).

        ``at`` follows slice rules: ``at=-1`` keeps all but the last message. No
        message or node is copied; the fork is one new head row.
        """
        with self._lock:
            self._chain.load()
            return Session(self._shared, self._chain.fork(name, self._chain.index(at)))

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
            self._chain.load()
            return compaction.compact(self._chain, self._builder.roles(), end, summary, start)

    def expand(self) -> int | None:
        """Undo the newest compaction in this history: the replaced messages come back,
        byte for byte, on their original nodes. Returns the new head."""
        with self._lock:
            self._chain.load()
            return compaction.expand(self._chain)

    # -- reading -----------------------------------------------------------------

    def messages_bytes(self) -> list[bytes]:
        """The canonical bytes of each message, oldest first (shared, frozen objects)."""
        with self._lock:
            self._chain.load()
            return list(self._chain.bodies)

    def messages(self) -> list[dict[str, Any]]:
        """The messages of this session as Chat Completions dicts, oldest first."""
        with self._lock:
            self._chain.load()
            return [json.loads(b) for b in self._chain.bodies]

    @property
    def cache_key(self) -> str | None:
        """The prompt-cache key of this history: derived from its root message, so every
        fork of one conversation shares it (``None`` for an empty session)."""
        with self._lock:
            self._chain.load()
            return self._builder.cache_key()

    # -- requests ------------------------------------------------------------------

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
            self._chain.load()
            return self._builder.plan(fmt, model, tools or (), cache).report

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
            self._chain.load()
            return self._builder.request(
                fmt, model, tools or (), cache, include_partial, window, params
            )

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
            self._chain,
            self._builder,
            self._lock,
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

    # -- the ledger ------------------------------------------------------------------

    def usage(self) -> UsageSummary:
        """Totals of this session's ledger rows (every request it sent)."""
        return UsageSummary.of(self.calls())

    def calls(self) -> list[dict[str, Any]]:
        """This session's ledger rows, oldest first."""
        return [c.as_dict() for c in self._shared.store.calls(session=self._chain.id)]

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
