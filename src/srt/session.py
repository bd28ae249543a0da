"""A session: a named head in the prefix tree. ``Session`` is a façade over three parts:

* ``_chain.Chain``: the history in memory and its compare-and-swap commit;
* ``_builder.Builder``: assembly, context windows, the cache plan, the request bytes;
* ``exchange``: a provider call (send, stream, retry, persist).

Appends are compare-and-swap on the head; fork, rewind and edit move or add heads
and copy no message and no node. ``request()`` assembles the next request from
frozen per-message fragments in one allocation.

The methods that rewrite the history (``rewind``, ``edit``, the compaction's, earlier
heads') are written in ``_session_edits`` and the tool loop's in ``_session_tasks``, and
taken into ``Session``'s own namespace: ``help(srt.Session)`` shows them as its own.
"""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import drivers, exchange, summarize
from . import entries as _entries
from ._builder import Builder, Parts
from ._chain import Chain
from ._session_edits import Edits
from ._session_tasks import Runs
from ._shared import Kept, Shared
from ._types import (
    BuildStats,
    Message,
    Reply,
    UsageSummary,
    binding_errors_typed,
    check_flag,
    check_provider,
)
from .cache import CacheExplain, CachePolicy
from .context import WindowPolicy
from .errors import ConfigError
from .wire import get_format
from .wire.base import check_model

if TYPE_CHECKING:  # (the providers load on first use: httpx and asyncio cost ``import srt``)
    from .pricing import Pricing  # (and the price list, and savings, where they are used)
    from .providers import Provider
    from .savings import Savings

__all__ = ["Session"]

#: The keyword arguments ``send`` and its twins take for srt rather than for the body.
_OWN = ("tools", "cache", "include_partial", "window", "append", "keep", "objects")
_INF = float("inf")
#: Body parameter names already found to be no misspelling of one of ``_OWN``.
_NOT_OWN: set[str] = set()


def _check_params(params: dict[str, Any], call: bool) -> None:
    """Refuse a body parameter that is a misspelling of one of srt's own keyword
    arguments (``appends=``, ``tool=``), before anything is built or sent: it would go
    into the body as given, and the provider refuse the request, billed. ``call``:
    ``send`` and its twins, which refuse ``stream=True`` too (``stream()`` streams);
    ``request`` refuses their options (``append=``), which would be body parameters."""
    for key in params:
        if call and key == "stream":  # (before the cache: request() may take it)
            if params[key] is False:
                continue
            raise ConfigError(
                "stream= is not a send() option: for a streamed reply call "
                "s.stream(...) (or s.astream(...)) with the same arguments"
            )
        if key in _NOT_OWN:
            continue
        if key == "rebase":
            raise ConfigError(
                "rebase= is an option of append(), not of send() or its twins (nothing was "
                "sent): a reply is stored only on the history it answers; when another "
                "handle moved the head, send() raises ConflictError: call s.refresh() and "
                "send again"
            )
        if not call and key in ("append", "keep", "objects"):
            raise ConfigError(
                f"{key}= is an option of send() and stream(), not of request(): "
                "request() builds the body of the stored history (append first)"
            )
        if key in _OWN:
            continue
        import difflib  # (here: a new name, once; ``import srt`` does not load it)

        near = difflib.get_close_matches(key, _OWN, 1, 0.8)
        if near:
            raise ConfigError(
                f"{key}= is not an option of srt; did you mean {near[0]}=? (nothing was "
                "sent: other keyword arguments go into the request body as given)"
            )
        if len(_NOT_OWN) < 4096:
            _NOT_OWN.add(key)


@binding_errors_typed
class Session:
    """A conversation held in the runtime's store. Get one from ``Runtime.session()``.

    A ``Session`` handle remembers the head it last saw. If another handle or
    process appends first, the next append raises ``ConflictError`` (nothing is
    written) unless ``rebase=True`` is passed. A handle may be shared between
    threads; its methods are serialised by a lock.
    """

    __slots__ = ("__weakref__", "_builder", "_chain", "_lock", "_shared", "parts")

    def __init__(
        self, shared: Shared, chain: Chain | None = None, kept: Kept | None = None
    ) -> None:
        """``kept``: the state a collected handle of this session left (``chain`` is its
        chain), taken over with its builder and lock (``Runtime.session``)."""
        if not isinstance(shared, Shared) or chain is None:  # (srt.Session("notes"): a TypeError)
            raise ConfigError("a Session comes from its runtime: s = rt.session(name)")
        self._shared = shared
        self._chain = chain
        if kept is None:
            self._lock = threading.RLock()
            chain.lock = self._lock
            self._builder = Builder(shared, chain)
            chain.listener = self._builder
        else:  # (the same lock: another handle copying this chain takes it)
            self._lock = kept.lock
            self._builder = kept.builder
            self._builder.last_build = None
        #: The parts srt's layers above the session work on (``_builder.Parts``).
        self.parts = Parts(shared, chain, self._builder, self._lock)

    # -- the memory budget (Runtime(memory_budget=...)) ----------------------------

    def footprint(self) -> int:
        """Bytes this handle's loaded state holds (an estimate; 0 when not loaded)."""
        if not self._chain.loaded:
            return 0
        return self._chain.footprint() + self._builder.footprint()

    #: ``footprint`` itself, for ``append``'s charge (the public name has a frame around it)
    _footprint = footprint

    def evict(self) -> bool:
        """Drop the loaded state (read again from the store on the next use); the
        handle stays valid. False, and nothing dropped, if another thread is using it
        or a call in flight holds messages staged on it (``send(..., append=...)``: they
        are in memory only until the reply commits them)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._chain.staged is not None:
                return False
            self._chain.unload()
            return True
        finally:
            self._lock.release()

    def remains(self) -> tuple[Chain, Builder, Any]:
        """What this handle leaves when it is collected: its chain, builder and lock,
        which ``Shared.keep`` may keep for the session's next handle."""
        return self._chain, self._builder, self._lock

    def _used(self) -> None:
        """Count this session's state (against the memory budget, if any): the caller
        holds the lock and has just loaded, built or committed."""
        self._shared.charge(self)

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        """The session's lock, and its state counted against the memory budget after."""
        with self._lock:
            try:
                yield
            finally:
                self._shared.charge(self)

    # -- identity ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The session's name, as this handle opened it."""
        return self._chain.name

    @property
    def head(self) -> int | None:
        """Node id of the last message, or ``None`` for an empty session."""
        return self._chain.head

    @property
    def prefix_hash(self) -> str | None:
        """Hex prefix hash of the whole history: equal hashes mean equal histories."""
        with self._using():
            self._chain.load()
            return self._chain.prefix().hex() if len(self._chain) else None

    @property
    def last_build(self) -> BuildStats | None:
        """What the last ``request()`` (or send) built, with its cache explain."""
        return self._builder.last_build

    @property
    def store_id(self) -> str:
        """The random id of this session's store (names files derived from it)."""
        return self._shared.store.store_id

    def prefix_hashes(self) -> list[bytes]:
        """The prefix hash of every message, root first, as the store computes them."""
        with self._lock:
            return self._chain.prefix_hashes()

    def __len__(self) -> int:
        with self._using():
            self._chain.load()
            return len(self._chain)

    def __repr__(self) -> str:
        return f"<srt.Session name={self.name!r} head={self.head}>"

    def refresh(self) -> None:
        """Re-read the head from the store (after a ``ConflictError``).

        When the new head continues the history this handle holds (another handle
        appended), only the new messages are read."""
        with self._using():
            self._chain.refresh()

    # -- writing -----------------------------------------------------------------

    def append(
        self,
        *messages: Any,
        rebase: bool = False,
        model: str | None = None,
        timeout: float | None = None,
    ) -> int | None:
        """Append messages atomically; return the new head node id.

        Messages may be OpenAI Chat dicts, ``srt.Message``, Anthropic or Bedrock
        message dicts, or OpenAI Responses items (a list of items is read as one
        Responses input); each is converted to the canonical model. ``model`` names
        the model that produced any provider artifacts in them (thinking blocks,
        reasoning items) when the message itself does not.

        Every message is validated first; an invalid one raises
        ``InvalidMessageError`` and nothing is written. If the head moved since this
        handle last saw it, raises ``ConflictError`` (nothing written), or with
        ``rebase=True`` re-reads the head and appends on top of it, again and again
        while other writers keep moving it, for up to ``timeout`` seconds (default:
        the store's busy timeout, 10 s), then raises ``ConflictError``. Waiting for
        other writers' transactions counts against the same ``timeout``
        (``StoreBusyError`` when it runs out there).
        """
        if timeout is not None and (
            not isinstance(timeout, (int, float))
            or isinstance(timeout, bool)
            or not 0 <= timeout < _INF  # (NaN too; inf was an OverflowError on PostgreSQL)
        ):
            raise ConfigError("timeout must be a finite number of seconds >= 0, or None")
        if rebase is not False:
            check_flag("rebase", rebase)
        if model is not None:  # (model=5 was taken, and named no model)
            check_model(model)
        with self._lock:  # (``_using`` spelled out: its generator is most of a turn's calls)
            try:
                prepared = self._chain.prepare(messages, model)
                if not prepared:
                    return self._chain.head
                return self._chain.append(prepared, rebase=rebase, timeout=timeout)
            finally:
                # (``Shared.charge``, two frames fewer)
                self._shared.budget.charge(self, self._footprint())

    def fork(self, name: str, at: int | None = None) -> Session:
        """A new session sharing this one's first ``at`` messages (all by default).

        ``at`` follows slice rules: ``at=-1`` keeps all but the last message. No
        message or node is copied; the fork is one new head row.
        """
        with self._using():
            self._chain.load()
            return Session(self._shared, self._chain.fork(name, self._chain.index(at)))

    # -- rewriting the history (written in _session_edits) ------------------------------

    rewind = Edits.rewind
    edit = Edits.edit
    compact = Edits.compact
    acompact = Edits.acompact
    expand = Edits.expand

    # -- reading -----------------------------------------------------------------

    def messages_bytes(self) -> list[bytes]:
        """The canonical bytes of each message, oldest first (shared, frozen objects)."""
        with self._using():
            self._chain.load()
            return list(self._chain.bodies)

    def messages(self, *, metadata: bool = False) -> list[dict[str, Any]]:
        """The messages of this session as Chat Completions dicts, oldest first.

        With ``metadata=True`` a message stored with metadata carries it under
        ``metadata`` (the key ``append`` takes), read from the store."""
        check_flag("metadata", metadata)
        with self._using():
            self._chain.load()
            if not metadata:
                return _entries.decode(self._chain.bodies)
            rows = self._shared.store.chain(self._chain.head)
            out = _entries.decode([r[2] for r in rows])
            for msg, r in zip(out, rows, strict=True):
                meta = _entries.user_metadata(r[5]) if r[5] is not None else None
                if meta is not None:
                    msg["metadata"] = meta
            return out

    def entries(self) -> list[_entries.Entry]:
        """Every message with what srt keeps beside it: its status (partial replies),
        its metadata, and for a compaction summary the messages it replaced
        (``srt.entries.Entry``)."""
        with self._lock:
            store = self._shared.store
            return _entries.entries(store, store.chain(self._chain.head))

    # -- earlier heads (srt.history; written in _session_edits) ---------------------------

    history = Edits.history
    restore = Edits.restore

    @property
    def cache_key(self) -> str | None:
        """The root scope's prompt-cache key (the default; ``last_build.cache_key`` is the key
        a request sent): from the root message, shared by forks (``None``: empty)."""
        with self._using():
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
        with self._using():
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
        given, but for a misspelling of one of srt's own keywords (``tool=``) and
        ``send``'s options (``append=``): ``ConfigError``. ``cache`` is ``True``,
        ``False`` or a ``CachePolicy``. With ``cache`` true (or a ``CachePolicy``) the
        cache planner adds the format's hints: Anthropic ``cache_control`` and Bedrock
        ``cachePoint`` breakpoints, or OpenAI's ``prompt_cache_key``. ``last_build`` tells what
        this call did, including the cache explain (``last_build.cache``).
        """
        fmt = get_format(format)
        check_model(model)
        if include_partial is not False:  # (a dict or list was a TypeError from the cache)
            check_flag("include_partial", include_partial)
        if params:
            _check_params(params, False)
        # ``_using`` without its generator: this is the hot path of every build.
        with self._lock:
            try:
                self._chain.load()
                return self._builder.request(
                    fmt, model, tools or (), cache, include_partial, window, params
                )
            finally:
                self._shared.charge(self)

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
        keep = check_flag("keep", params.pop("keep", True))
        objects = params.pop("objects", None)
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
            used=self._used,
            append=append,
            keep=keep,
            objects=objects,
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
        call fails or the session moved, none of them is written), ``keep=False``,
        which appends nothing at all (the ledger row is still written), and
        ``objects=fn``: ``fn(reply, depth)`` returns store objects (``ObjectPut``) to
        write in the reply's commit, ``depth`` being the session's length after it
        (anything but a list of them, or ``None``, is a ``ConfigError``: the reply is
        not appended and its ledger row is kept). A misspelling of one of these
        keywords (``appends=``, ``tool=``) or ``stream=True`` (call ``stream``) is a
        ``ConfigError`` before anything is sent. The body is built by delta assembly
        (or, for OpenAI Responses, as a delta on the provider's stored state when it
        holds this session's prefix). A window with ``compact_at`` may first compact the
        history with the model's summary (``srt.summarize``).
        """
        if params:  # (before an automatic summary is asked for)
            _check_params(params, True)
        summarize.auto(self, provider, model, tools, params, cache, include_partial)
        return drivers.send(
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
    ) -> drivers.ReplyStream:
        """Like ``send`` but streamed: iterate the result for text deltas. A stream that is
        cut off, fails or is closed early keeps what arrived as a partial reply."""
        if params:  # (before an automatic summary is asked for)
            _check_params(params, True)
        summarize.auto(self, provider, model, tools, params, cache, include_partial)
        call = self._call(provider, model, tools, cache, include_partial, params, True)
        return drivers.ReplyStream(call)

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
        """The asyncio twin of ``send``; a handle's asyncio calls take turns (docs/api.md)."""
        if params:
            _check_params(params, True)
        call = self._call(provider, model, tools, cache, include_partial, params, False)
        before = summarize.aauto(self, provider, model, tools, params, cache, include_partial)
        return await drivers.asend(call, before)

    def astream(
        self,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        cache: bool | CachePolicy = True,
        include_partial: bool = False,
        **params: Any,
    ) -> drivers.AsyncReplyStream:
        """The asyncio twin of ``stream``: ``async for delta in s.astream(...)``."""
        if params:
            _check_params(params, True)
        call = self._call(provider, model, tools, cache, include_partial, params, True)
        before = summarize.aauto(self, provider, model, tools, params, cache, include_partial)
        return drivers.AsyncReplyStream(call, before=before)

    # -- tasks: the tool loop (srt.tasks; written in _session_tasks) ---------------------

    run = Runs.run
    run_stream = Runs.run_stream
    arun = Runs.arun
    arun_stream = Runs.arun_stream

    # -- the ledger ------------------------------------------------------------------

    def usage(self) -> UsageSummary:
        """Totals of this session's ledger rows (every request it sent)."""
        return UsageSummary.of(self.calls())

    def calls(self) -> list[dict[str, Any]]:
        """This session's ledger rows, oldest first."""
        return [c.as_dict() for c in self._shared.store.calls(session=self._chain.id)]

    def savings(self, pricing: Pricing | None = None) -> Savings:
        """This session's billed input against a careful stateless client under the same
        caching rules and against a client with no caching (``srt.savings.of_store``)."""
        from .savings import of_store

        return of_store(self._shared.store, self.calls(), pricing)

    def predict(
        self,
        format: str | None = None,
        /,
        *,
        model: str,
        tools: Sequence[Any] | None = None,
        pricing: Pricing | None = None,
        provider: Provider | None = None,
    ) -> tuple[CacheExplain, tuple[float, float] | None]:
        """The cache explain for the next request and its expected input cost in USD
        (with the predicted cache reads, and with no caching), if priced. ``format``:
        ``provider``'s if one is given, else ``"openai.chat"``. With ``provider``, the
        request is priced at that provider's prices, as the model it says ``model``
        runs (``Provider.served_model``: an Azure deployment's, ``Azure(deployments=)``);
        a deployment it names no model for is priced by its own name, so one named for
        no model stays unpriced (``None``)."""
        from .pricing import check_pricing

        pricing = check_pricing(pricing)
        name = served = None
        if provider is not None:
            check_provider(provider)
            format = format or getattr(provider, "format", None)
            name = getattr(provider, "name", None)
            served_model = getattr(provider, "served_model", None)
            served = served_model(model) if served_model is not None else None
        ex = self.explain(format or "openai.chat", model=model, tools=tools)
        return ex, pricing.predict(model, ex.total_tokens, ex.cached_tokens, name, served=served)


# The methods written in Edits and Runs are Session's own, and named so (as numpy's
# ``set_module`` names its functions): ``help(srt.Session)`` shows no "from ..." beside
# them (Python 3.13 on), and pickle finds them on Session.
for _name, _method in vars(Session).items():
    if isinstance(_method, types.FunctionType) and _method.__module__ != __name__:
        _method.__module__, _method.__qualname__ = __name__, f"Session.{_name}"
