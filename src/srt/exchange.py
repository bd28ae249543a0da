"""A provider call: build by delta assembly, send, stream, and persist atomically.

The provider layer never touches the database; this module (on the session side)
does the persisting. A reply and its ledger row are written in one transaction.
A stream that is cut off, fails or is cancelled stores what arrived as a partial
reply with status ``incomplete``, ``error`` or ``cancelled``; partial replies are
left out of later requests unless ``include_partial=True``.

OpenAI Responses server-side state: when the newest reply in the session's chain
was produced by a stored Responses call for the same model (and is younger than
OpenAI's 30-day retention), the next call sends only the messages after it with
``previous_response_id``. OpenAI still bills every token of the chain as input
(only its prompt-cache discount applies); what shrinks is the bytes on the wire.
On ``previous_response_not_found`` srt resends the full history once and records
why in the ledger's ``fallback`` column.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from . import _core
from ._types import Reply, Usage
from .errors import (
    ConflictError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from .message import canonical_tool
from .providers.base import Provider
from .providers.streams import StreamDecoder, decoder_for
from .providers.transport import redact
from .store import CallRecord
from .wire import get_format

if TYPE_CHECKING:
    from .session import Session

__all__ = ["AsyncReplyStream", "Call", "ReplyStream"]

RESPONSES_RETENTION_S = 30 * 24 * 3600.0


def _scrubbed(exc: BaseException, secrets: tuple[str, ...]) -> BaseException:
    """``exc`` with any secret (or key-shaped text) removed from its message.

    Stream decoders quote a provider's mid-stream error event, which may echo the
    credential it was sent; the decoders do not hold the secrets, so this does.
    """
    if not isinstance(exc, ProviderError) or not exc.args:
        return exc
    text = str(exc.args[0])
    clean = redact(text, secrets)
    if clean == text:
        return exc
    exc.args = (clean, *exc.args[1:])
    if isinstance(exc, ProviderResponseError) and exc.body:
        exc.body = redact(exc.body, secrets)
    return exc


def _status_of(exc: BaseException) -> str:
    if isinstance(exc, (GeneratorExit, KeyboardInterrupt, asyncio.CancelledError)):
        return "cancelled"
    if isinstance(exc, (StreamInterruptedError, ProviderTimeoutError)):
        return "incomplete"
    return "error"


class Call:
    """One request in flight for one session (sync or async)."""

    def __init__(
        self,
        session: Session,
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
    ) -> None:
        self.session = session
        #: Messages sent with this call and committed with its reply (staged until then).
        self.append = list(append)
        self.staged: list[tuple[bytes, bytes, bytes | None]] | None = None
        #: False: nothing is appended (the ledger row is still written).
        self.keep_reply = keep
        self.provider = provider
        self.model = model
        self.tools = tools
        self.cache = cache
        self.include_partial = include_partial
        self.stream = stream
        self.fmt = get_format(provider.format)
        params = dict(params)
        self.window = params.pop("window", None)
        extra = dict(getattr(provider, "extra_params", {}) or {})
        params_for = getattr(provider, "params_for", None)
        if params_for is not None:  # e.g. the local provider's slot routing
            extra.update(params_for(session))
        self.params = {**extra, **params, **(provider.stream_params() if stream else {})}
        self.stored = bool(self.params.get("store", True)) if self._responses else None
        self.previous_response_id: str | None = None
        self.fallback: str | None = None
        self.retries = 0
        self.t0 = 0.0
        self.ttft: float | None = None
        self.decoder: StreamDecoder | None = None
        self.reply: Reply | None = None
        self.status: str | None = None
        self.shape: str | None = None  # the ledger's params, set by build()

    @property
    def _responses(self) -> bool:
        return self.fmt.name.endswith(".responses")

    # -- building ----------------------------------------------------------------

    def build(self, *, allow_delta: bool = True) -> bytes:
        s = self.session
        with s._lock:
            s._load()
            if self.staged is None:
                self.expected_head = s._head
                self.keep = len(s._ids)
                self.staged = s._prepare(self.append, self.model) if self.append else []
                if self.staged:
                    s._stage(self.staged)
            delta = self._server_state() if allow_delta else None
            after: int | None = None
            sent = self.params
            if delta is None:
                self.previous_response_id = None
                self.body = s.request(
                    self.fmt.name,
                    model=self.model,
                    tools=self.tools,
                    cache=self.cache,
                    include_partial=self.include_partial,
                    window=self.window,
                    **self.params,
                )
            else:
                after, rid = delta
                self.previous_response_id = rid
                sent = {**self.params, "previous_response_id": rid}
                self.body = s._request_after(
                    self.fmt,
                    after,
                    model=self.model,
                    tools=self.tools,
                    include_partial=self.include_partial,
                    params=sent,
                    cache=self.cache,
                )
            self.messages = len(s._ids)
            self.explain = s.last_build.cache if s.last_build else None
            self.shape = self._shape(sent, after)
        return self.body

    def _shape(self, sent: dict[str, Any], after: int | None) -> str:
        """What shaped the body beside the stored messages, for the ledger's ``params``:
        enough for ``srt verify`` to rebuild the body and check its hash."""
        lb = self.session.last_build
        return json.dumps(
            {
                "params": sent,
                "cache": bool(self.cache),
                "include_partial": self.include_partial,
                "tools": [json.loads(canonical_tool(t)) for t in self.tools or ()],
                "breakpoints": [[b.where, b.index, b.ttl] for b in lb.breakpoints] if lb else [],
                "kept": list(lb.window) if lb is not None and lb.window is not None else None,
                "after": after,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    def _server_state(self) -> tuple[int, str] | None:
        """(index of the message the server already holds, response id), or None."""
        if not self._responses or self.params.get("store") is False:
            return None
        if self.window is not None:
            return None  # the server's chain would keep what the window leaves out
        if "previous_response_id" in self.params:
            return None
        s = self.session
        ids = s._ids[-64:]
        found = s._rt.store.last_response(ids, self.fmt.name, self.model)
        if found is None:
            return None
        node, rid, at = found
        if time.time() - at > RESPONSES_RETENTION_S:
            self.fallback = "expired"
            return None
        index = s._ids.index(node)
        if index == len(s._ids) - 1:
            return None  # nothing new to send
        return index, rid

    # -- ledger and persistence ----------------------------------------------------

    def _row(self, status: str, error: str | None, usage: Usage | None) -> CallRecord:
        s = self.session
        now = time.monotonic()
        ex = self.explain
        return CallRecord(
            at=time.time(),
            session=s._id,
            session_name=s.name,
            node=None,
            provider=self.provider.name,
            model=self.model,
            format=self.fmt.name,
            body_hash=_core.digest(self.body),
            body_bytes=len(self.body),
            messages=self.messages,
            input_tokens=usage.input_tokens if usage else None,
            cache_read_tokens=usage.cache_read_tokens if usage else None,
            cache_write_tokens=usage.cache_write_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            predicted_cached_tokens=ex.cached_tokens if ex is not None else None,
            explain=json.dumps(
                {"reason": ex.reason, "diverged_at": ex.diverged_at} if ex is not None else None
            ),
            latency_ms=(now - self.t0) * 1000.0 if self.t0 else None,
            ttft_ms=(self.ttft - self.t0) * 1000.0 if self.ttft else None,
            retries=self.retries,
            status=status,
            error=redact(error, self.provider._secrets) if error else None,
            response_id=self.reply.response_id if self.reply else None,
            previous_response_id=self.previous_response_id,
            stored=None if self.stored is None else int(self.stored),
            fallback=self.fallback,
            params=self.shape,
        )

    def persist(self, reply: Reply, status: str, error: str | None = None) -> None:
        """Append the reply and its ledger row in one transaction."""
        self.reply, self.status = reply, status
        s = self.session
        row = self._row(status, error, reply.usage)
        message = reply.message
        if message.get("artifacts"):
            # Providers name a dated snapshot in replies; artifacts are replayed to the
            # model this session asks for, so they are filed under that name.
            provider = self.fmt.provider
            message = dict(message)
            message["artifacts"] = [
                {**a, "model": self.model} if a.get("provider") == provider else a
                for a in message["artifacts"]
            ]
        with s._lock:
            staged = self.staged or []
            try:
                prepared = s._prepare([message])
                if not self.keep_reply:
                    s._rt.store.record_call(row)
                    return
                if s._head != self.expected_head:
                    s._rt.store.record_call(row)
                    raise ConflictError(
                        "the session moved while the reply was being generated; the reply "
                        "was not appended (its usage is in the ledger)"
                    )
                try:
                    s._commit(
                        self.keep,
                        staged + prepared,
                        None if status == "ok" else status,
                        row,
                        plain=len(staged),
                    )
                except ConflictError:
                    s._rt.store.record_call(row)
                    raise
            finally:
                s._unstage()

    def fail(self, exc: BaseException) -> None:
        """Record a call that stored no reply."""
        self.status = "error"
        msg = str(exc)[:2000]
        self.session._rt.store.record_call(self._row("error", msg, None))

    def abandon(self) -> None:
        """Drop the staged messages of a call that ends without a reply."""
        s = self.session
        with s._lock:
            s._unstage()

    def finish_stream(self, exc: BaseException | None) -> None:
        assert self.decoder is not None
        if exc is None:
            self.persist(self.decoder.reply(), "ok")
            return
        status = _status_of(exc)
        partial = self.decoder.partial()
        self.persist(partial, status, f"{type(exc).__name__}: {exc}"[:2000])

    def recover(self, exc: ProviderError) -> bool:
        """Record a failed attempt; if it failed because the provider no longer holds
        the response chained from, switch to full assembly and say to resend once."""
        self.fail(exc)
        lost = (
            self.previous_response_id is not None
            and isinstance(exc, ProviderResponseError)
            and exc.status in (400, 404)
            and "previous_response_not_found" in (exc.body or "")
        )
        if lost:
            self.fallback = "previous_response_not_found"
            self.build(allow_delta=False)
        return lost

    def parse(self, raw: bytes) -> Reply:
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProviderResponseError("the provider's reply is not valid JSON") from None
        return self.fmt.parse_reply(data)


# -- sync ------------------------------------------------------------------------------


def send(call: Call) -> Reply:
    try:
        return _send(call)
    finally:
        call.abandon()


def _send(call: Call) -> Reply:
    call.build()
    while True:
        req = call.provider.request(call.model, call.body, False, call.params)
        call.t0 = time.monotonic()
        try:
            resp = call.provider.transport.open(req)
            call.retries = resp.retries
            raw = resp.read()
            call.ttft = time.monotonic()
            reply = call.parse(raw)
        except ProviderError as exc:
            if call.recover(exc):
                continue
            raise
        call.persist(reply, "ok")
        return reply


class ReplyStream:
    """Iterate to receive text deltas; the reply is persisted when the stream ends.

    ``close()`` (or leaving a ``with`` block early) cancels it; what arrived is
    stored with status ``cancelled``. ``reply`` holds the final (or partial) reply.
    """

    def __init__(self, call: Call) -> None:
        self._call = call
        self._gen: Generator[str, None, None] | None = None

    @property
    def reply(self) -> Reply | None:
        return self._call.reply

    @property
    def status(self) -> str | None:
        return self._call.status

    def __iter__(self) -> Generator[str, None, None]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    def _open(self) -> Any:
        call = self._call
        call.build()
        while True:
            req = call.provider.request(call.model, call.body, True, call.params)
            call.t0 = time.monotonic()
            try:
                resp = call.provider.transport.open(req)
            except ProviderError as exc:
                if call.recover(exc):
                    continue
                raise
            call.retries = resp.retries
            return resp

    def _run(self) -> Generator[str, None, None]:
        call = self._call
        try:
            resp = self._open()
        except BaseException:
            call.abandon()
            raise
        call.decoder = dec = decoder_for(call.fmt.name)
        try:
            for chunk in resp.iter_bytes():
                for delta in dec.feed(chunk):
                    if call.ttft is None:
                        call.ttft = time.monotonic()
                    yield delta
            if not dec.done:
                raise StreamInterruptedError("the stream ended before its final event")
        except BaseException as exc:
            resp.close()
            _scrubbed(exc, call.provider._secrets)
            call.finish_stream(exc)
            raise
        call.finish_stream(None)

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> str:
        """Consume the whole stream and return its text."""
        return "".join(self)


# -- asyncio ---------------------------------------------------------------------------


async def asend(call: Call) -> Reply:
    try:
        return await _asend(call)
    finally:
        call.abandon()


async def _asend(call: Call) -> Reply:
    call.build()
    while True:
        req = call.provider.request(call.model, call.body, False, call.params)
        call.t0 = time.monotonic()
        try:
            resp = await call.provider.async_transport.open(req)
            call.retries = resp.retries
            raw = await resp.read()
            call.ttft = time.monotonic()
            reply = call.parse(raw)
        except ProviderError as exc:
            if call.recover(exc):
                continue
            raise
        call.persist(reply, "ok")
        return reply


class AsyncReplyStream:
    """The asyncio twin of ``ReplyStream``: ``async for delta in s.astream(...)``."""

    def __init__(self, call: Call, before: Callable[[], Awaitable[object]] | None = None) -> None:
        self._call = call
        self._before = before  # awaited before the request is built (auto-compaction)
        self._gen: AsyncGenerator[str, None] | None = None

    @property
    def reply(self) -> Reply | None:
        return self._call.reply

    @property
    def status(self) -> str | None:
        return self._call.status

    def __aiter__(self) -> AsyncGenerator[str, None]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def _run(self) -> AsyncGenerator[str, None]:
        call = self._call
        try:
            if self._before is not None:
                await self._before()
            resp = await self._open()
        except BaseException:
            call.abandon()
            raise
        call.retries = resp.retries
        call.decoder = dec = decoder_for(call.fmt.name)
        try:
            async for chunk in resp.aiter_bytes():
                for delta in dec.feed(chunk):
                    if call.ttft is None:
                        call.ttft = time.monotonic()
                    yield delta
            if not dec.done:
                raise StreamInterruptedError("the stream ended before its final event")
        except BaseException as exc:
            await resp.aclose()
            _scrubbed(exc, call.provider._secrets)
            call.finish_stream(exc)
            raise
        call.finish_stream(None)

    async def _open(self) -> Any:
        call = self._call
        call.build()
        while True:
            req = call.provider.request(call.model, call.body, True, call.params)
            call.t0 = time.monotonic()
            try:
                return await call.provider.async_transport.open(req)
            except ProviderError as exc:
                if call.recover(exc):
                    continue
                raise

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()

    async def text(self) -> str:
        return "".join([d async for d in self])
