"""What a provider call holds, and the ledger row it makes of it: ``exchange.Call``'s base.

``CallState`` holds one call's options (the provider, the model, the parameters sent, what
is appended and kept) and what its attempts learned (the body, the server-side state
chained from, retries, times, the reply or the usage of a reply that could not be kept),
and makes the call's usage-ledger row from them: the fields fixed once the body is built
(its hash and size, the cache prediction, the ``params`` text ``srt verify`` rebuilds the
body from), then those of the reply. ``Call`` (``exchange``) is this class with the
call's decisions added (build, attempts, recovery, streams, persist): the per-turn path
finds every method on the call itself, with no call level more.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _core
from ._builder import Parts
from ._chain import Prepared
from ._core import Body
from ._hashing import Hashing
from ._types import BuildStats, Reply, Usage, check_flag, check_provider
from .errors import ConfigError, InvalidMessageError
from .message import canonical_tool, replace_lone_surrogates
from .store import CallRecord, ObjectPut
from .wire import get_format, images
from .wire.base import StreamDecoder

if TYPE_CHECKING:  # (the providers load on first use: httpx and asyncio cost ``import srt``)
    from .providers import Provider
    from .providers.http1 import Stop
    from .providers.transport import AsyncResponse, Response

__all__ = ["CallState"]

#: Parameter value types ``Call._shape`` remembers texts for (``bool`` apart from ``int``).
_PLAIN = frozenset({str, int, float, bool, type(None)})
#: Ledger ``params`` texts by what makes them (see ``Call._shape``).
_SHAPES: dict[tuple[Any, ...], str] = {}


def _body_hash(body: bytes | Body, hashing: Hashing) -> bytes:
    """The ledger's hash of a request body under the store's hashing: a ``Body`` resumes
    from its frozen segments' running XXH3 state; a keyed store hashes it whole."""
    if isinstance(body, Body):
        if hashing.digest is _core.digest:
            return body.digest()
        return hashing.digest(bytes(body))
    return hashing.digest(body)


def _check_options(provider: Any, append: Any, objects: Any, include_partial: Any) -> None:
    check_provider(provider)
    if not isinstance(append, (list, tuple)):
        raise InvalidMessageError(f"append must be messages, got {type(append).__name__}")
    if objects is not None and not callable(objects):
        raise ConfigError(f"objects must be a function, got {type(objects).__name__}")
    check_flag("include_partial", include_partial)


class CallState:
    """What a ``Call`` holds, and its ledger row (``Call`` adds the decisions)."""

    #: Set by ``Call.build``: the chain's length with the body built, and its cache
    #: prediction (``srt.cache.CacheExplain``).
    messages: int
    explain: Any

    def __init__(
        self,
        session: Any,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] | None,
        cache: Any,
        include_partial: bool,
        params: dict[str, Any],
        stream: bool,
        append: Sequence[Any] = (),
        keep: bool = True,
        used: Callable[[], None] | None = None,
        objects: Callable[[Reply, int], Sequence[ObjectPut]] | None = None,
    ) -> None:
        _check_options(provider, append, objects, include_partial)
        parts: Parts = session.parts
        self.used = used
        #: ``used`` ran after this build (``sent``): the persist need not count again.
        self.counted = False
        self.chain = parts.chain
        self.builder = parts.builder
        self.lock = parts.lock
        #: Messages sent with this call and committed with its reply (staged until then).
        self.append = list(append)
        self.staged: list[Prepared] | None = None
        #: False: nothing is appended (the ledger row is still written).
        self.keep_reply = keep
        self.objects = objects
        self.provider = provider
        self.model = model
        self.tools = tools
        self.cache = cache
        self.include_partial = include_partial
        self.stream = stream
        self.fmt = get_format(provider.format)
        key_param = getattr(provider, "cache_key_param", None)
        if key_param is not None:  # e.g. Azure(prompt_cache_key=True)
            self.fmt = self.fmt.keyed(key_param)
        if getattr(provider, "any_image", False):  # an OpenAI-compatible server's
            self.fmt = images.any_image(self.fmt)
        params = dict(params)
        self.window = params.pop("window", None)
        extra = dict(getattr(provider, "extra_params", {}) or {})
        params_for = getattr(provider, "params_for", None)
        if params_for is not None:  # e.g. the local provider's slot routing
            extra.update(params_for(session))
        self.params = {**extra, **params, **(provider.stream_params() if stream else {})}
        default = getattr(provider, "params_default", None)
        if default is not None:  # e.g. the local provider's reply limit
            self.params = {**self.params, **default(self.params)}
        self.stored = bool(self.params.get("store", True)) if self.fmt.server_state else None
        self.previous_response_id: str | None = None
        self.fallback: str | None = None
        self.retries = 0
        #: The body of the attempt in flight went to the socket (``sent``): the provider
        #: may bill it, so the call gets its ledger row whatever stops it (``interrupted``).
        self.went = False
        #: The usage a reply that could not be kept reported (``received``), for its row,
        #: and the model it named (any value: ``_reply_model`` checks it).
        self.billed: Usage | None = None
        self.named: Any = None
        #: The reply (or the stream's events) reported its usage: False for a stream cut
        #: off before its usage event, whose row then records no usage (NULL), not zeros.
        self.metered = True
        self.t0 = 0.0
        self.ttft: float | None = None
        self.decoder: StreamDecoder | None = None
        #: The response being read (``opened``), and whether another thread stopped the
        #: call (``Call.cancel``): its body is then aborted.
        # (weakly: the response's callbacks lead back to the call, and a cycle would keep
        # the body and the response alive after the call returns, until a collection)
        self.response: weakref.ref[Response | AsyncResponse] | None = None
        self.cancelled = False
        #: What stops the request before its response's head (``providers.http1.Stop``,
        #: given to each attempt of a sync stream by ``drivers._open``).
        self.stop: Stop | None = None
        #: The thread iterating a sync stream (``ReplyStream.close`` from another one
        #: cancels it instead).
        self.reader: int | None = None
        self.reply: Reply | None = None
        self.status: str | None = None
        #: The request body: a ``Body`` of chunks from the history's frozen segments
        #: (never joined), or the bytes of a delta on server-side state.
        self.body: bytes | Body = b""
        #: What shaped the body beside the stored messages: the build's stats, the
        #: parameters sent and the index a delta follows (set by ``build``).
        self.shaped_by: tuple[BuildStats | None, dict[str, Any], int | None] | None = None
        #: The ledger row's fields that do not depend on the reply (``sent``).
        self.fixed: dict[str, Any] | None = None

    # -- the ledger row ---------------------------------------------------------------

    def _shape(self, lb: BuildStats | None, sent: dict[str, Any], after: int | None) -> str:
        """What shaped the body beside the stored messages, for the ledger's ``params``:
        enough for ``srt verify`` to rebuild the body and check its hash.

        Most turns send what the previous one did: without tools or a window, and with
        plain values as parameters, the text is remembered by what makes it."""
        key: tuple[Any, ...] | None = None
        # The key the body sent (``None``: none), where srt may send one and it is not the
        # root's (which a row without it means): the parameters hold only the caller's.
        ck: tuple[str | None, ...] = ()
        root = self.builder.cache_key if self.fmt.cache.key_param is not None else None
        if (
            self.cache
            and root is not None
            and lb is not None
            and (lb.cache_key != root() or get_format(self.fmt.name).cache.key_param is None)
        ):  # (a format keyed by its provider's opt-in: its rows always name the key sent)
            ck = (lb.cache_key,)
        if not self.tools and (lb is None or lb.window is None):
            # (a float by its repr: -0.0 == 0.0, and their JSON differs)
            items = tuple((k, type(v), repr(v) if type(v) is float else v) for k, v in sent.items())
            if all(t in _PLAIN for _, t, _ in items):
                bps = tuple((b.where, b.index, b.ttl) for b in lb.breakpoints) if lb else ()
                key = (items, bool(self.cache), self.include_partial, bps, after, ck)
                shape = _SHAPES.get(key)
                if shape is not None:
                    return shape
        shape = self._shaped(lb, sent, after, ck)
        if key is not None:
            if len(_SHAPES) >= 256:
                _SHAPES.clear()
            _SHAPES[key] = shape
        return shape

    def _shaped(
        self, lb: BuildStats | None, sent: dict[str, Any], after: int | None, ck: tuple[Any, ...]
    ) -> str:
        key = {"cache_key": ck[0]} if ck else {}
        return json.dumps(
            {
                "params": sent,
                "cache": bool(self.cache),
                **key,
                "include_partial": self.include_partial,
                "tools": [json.loads(canonical_tool(t)) for t in self.tools or ()],
                "breakpoints": [[b.where, b.index, b.ttl] for b in lb.breakpoints] if lb else [],
                "kept": list(lb.window) if lb is not None and lb.window is not None else None,
                "after": after,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def _fixed(self) -> dict[str, Any]:
        """The ledger row's fields known once the body is built: the body's hash and size,
        the cache prediction, the parameters."""
        ex = self.explain
        chain = self.chain
        shape = self._shape(*self.shaped_by) if self.shaped_by is not None else None
        return {
            "session": chain.id,
            "session_name": chain.name,
            "provider": self.provider.name,
            "model": self.model,
            "format": self.fmt.name,
            "body_hash": _body_hash(self.body, chain.store.hashing),
            "body_bytes": len(self.body),
            "messages": self.messages,
            "predicted_cached_tokens": ex.cached_tokens if ex is not None else None,
            "explain": json.dumps(
                {"reason": ex.reason, "diverged_at": ex.diverged_at} if ex is not None else None
            ),
            "previous_response_id": self.previous_response_id,
            "stored": None if self.stored is None else int(self.stored),
            "fallback": self.fallback,
            "params": shape,
        }

    def _row(self, status: str, error: str | None, usage: Usage | None) -> CallRecord:
        now = time.monotonic()
        fixed = self.fixed if self.fixed is not None else self._fixed()
        if not self.metered:
            usage = None
        return CallRecord(
            at=time.time(),
            node=None,
            input_tokens=usage.input_tokens if usage else None,
            cache_read_tokens=usage.cache_read_tokens if usage else None,
            cache_write_tokens=usage.cache_write_tokens if usage else None,
            cache_write_1h_tokens=usage.cache_write_1h_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            latency_ms=(now - self.t0) * 1000.0 if self.t0 else None,
            ttft_ms=(self.ttft - self.t0) * 1000.0 if self.ttft else None,
            retries=self.retries,
            status=status,
            error=self.provider.redact(error) if error else None,
            response_id=self.reply.response_id if self.reply else None,
            reply_model=self._reply_model(),
            **fixed,
        )

    def _reply_model(self) -> str | None:
        """The model the reply (or a reply that could not be kept) named, if not the one
        asked for (an Azure deployment's); if it named none, or only the one asked for
        (a deployment's name echoed back), the one the provider says the model asked for
        runs (``Provider.served_model``)."""
        named = self.reply.model if self.reply is not None else self.named
        if not (isinstance(named, str) and named) or named == self.model:  # the provider's
            served = getattr(self.provider, "served_model", None)
            named = served(self.model) if served is not None else None
        ok = isinstance(named, str) and named and named != self.model
        redact = self.provider.redact  # (an upstream that echoes the key puts none here)
        return replace_lone_surrogates(redact(named)[:200]) if ok else None  # type: ignore[arg-type]
