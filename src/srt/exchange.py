"""A provider call: build by delta assembly, send, stream, and persist atomically.

``Call`` holds every decision of one request: building the body (or a delta on the
provider's stored state), the ledger row, recovering from a lost server-side
response, decoding a stream, persisting the reply. The drivers in ``drivers.py``
(``send``, ``ReplyStream``; ``asend``, ``AsyncReplyStream``) only do the I/O, in the way
httpx's ``Client`` and ``AsyncClient`` share one ``BaseClient``: each is a few lines,
the same lines with and without ``await``. What a call holds, and the ledger row it makes
of it, are its base ``_call_state.CallState``'s.

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

import contextlib
import dataclasses
import json
import sys
import time
import weakref
from typing import TYPE_CHECKING, Any

from . import _tool_pairs as tool_pairs
from ._call_state import CallState
from ._chain import Prepared
from ._core import Body
from ._types import Reply
from .errors import (
    ConfigError,
    ConflictError,
    InvalidMessageError,
    ProviderContextOverflowError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    SrtError,
    StreamInterruptedError,
)
from .message import redact_strings, replace_lone_surrogates
from .store import CallRecord, ObjectPut

if TYPE_CHECKING:
    from .providers.transport import AsyncResponse, HTTPRequest, Response

__all__ = ["Call"]

RESPONSES_RETENTION_S = 30 * 24 * 3600.0


def _replaced(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` with each lone surrogate in its strings replaced by U+FFFD."""
    out: dict[str, Any] = redact_strings(message, replace_lone_surrogates)
    return out


def _status_of(exc: BaseException) -> str:
    if isinstance(exc, (GeneratorExit, KeyboardInterrupt)):
        return "cancelled"
    aio = sys.modules.get("asyncio")  # (no asyncio loaded: no task was cancelled)
    if aio is not None and isinstance(exc, aio.CancelledError):
        return "cancelled"
    if isinstance(exc, (StreamInterruptedError, ProviderTimeoutError)):
        return "incomplete"
    return "error"


class Call(CallState):
    """One request in flight for one session (sync or async).

    ``session`` is the public handle (a provider's ``params_for`` may read it); the
    call works on its parts (``session.parts``: the lock, the chain, the builder).
    ``append`` are messages sent after the history and committed with the reply;
    ``keep=False`` commits nothing (the ledger row is still written). ``objects(reply,
    depth)`` gives store objects to write in the reply's commit (``depth``: the
    session's length after it; ``ObjectPut(at_head=True)`` files one under the reply).
    ``used`` counts the session's state against the runtime's memory budget once the
    body is sent, and again after the persist only if that was not done or the history
    had to be read again: the reply's own few bytes are counted at the session's next
    use (a count right after the wait for the reply took ~20 us of the turn).
    """

    # -- building ----------------------------------------------------------------

    def build(self, *, allow_delta: bool = True) -> bytes | Body:
        chain, builder = self.chain, self.builder
        with self.lock:
            chain.load()
            if self.staged is None:
                chain.writable()  # (not while another call's messages are staged on it)
                self.expected_head = chain.head
                self.keep = len(chain)
                self.staged = chain.prepare(self.append, self.model) if self.append else []
                if self.staged:
                    chain.stage(self.staged)
            tool_pairs.check(chain.bodies, () if self.include_partial else chain.status)
            delta = self._server_state() if allow_delta else None
            after: int | None = None
            sent = self.params
            if delta is None:
                self.previous_response_id = None
                self.body = builder.request_body(
                    self.fmt,
                    self.model,
                    self.tools or (),
                    self.cache,
                    self.include_partial,
                    self.window,
                    dict(self.params),
                )
            else:
                after, rid = delta
                self.previous_response_id = rid
                sent = {**self.params, "previous_response_id": rid}
                self.body = builder.request_after(
                    self.fmt,
                    after,
                    model=self.model,
                    tools=self.tools,
                    include_partial=self.include_partial,
                    params=sent,
                    cache=self.cache,
                )
            self.messages = len(chain)
            lb = builder.last_build
            self.explain = lb.cache if lb else None
            self.shaped_by = (lb, sent, after)
            self.fixed = None
            self.counted = False
        return self.body

    def _server_state(self) -> tuple[int, str] | None:
        """(index of the message the server already holds, response id), or None."""
        if not self.fmt.server_state or self.params.get("store") is False:
            return None
        if not getattr(self.provider, "server_state", True):
            return None  # a server that keeps no responses (or refused to chain)
        if self.window is not None:
            return None  # the server's chain would keep what the window leaves out
        if "previous_response_id" in self.params or "conversation" in self.params:
            return None  # the caller's own state (the API takes one or the other)
        ids = self.chain.ids
        found = self.chain.store.last_response(ids[-64:], self.fmt.name, self.model)
        if found is None:
            return None
        node, rid, at = found
        if time.time() - at > RESPONSES_RETENTION_S:
            self.fallback = "expired"
            return None
        index = ids.index(node)
        if index == len(ids) - 1:
            return None  # nothing new to send
        if tool_pairs.renamed_at(self.chain.bodies[index], index):
            return None  # (the server knows that reply's calls by the ids it gave them)
        return index, rid

    # -- one attempt -----------------------------------------------------------------

    def next_request(self) -> HTTPRequest:
        """The HTTP request of the next attempt (the clock starts now)."""
        req = self.provider.request(self.model, self.body, self.stream, self.params)
        req.sent = self.sent
        req.overflow = getattr(self.provider, "context_overflow", self.fmt.context_overflow)
        self.went = False
        self.billed = self.named = None
        self.t0 = time.monotonic()
        return req

    def sent(self) -> None:
        """The body went to the socket: while the provider works on it, take the ledger
        row's fields that do not depend on the reply (``_fixed``) and count the state
        the build left against the memory budget, so that less is left to do once the
        reply arrives. If another thread holds the session, the persist does both."""
        self.went = True
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self.fixed is None:
                self.fixed = self._fixed()
            if self.used is not None:
                self.used()
                self.counted = True
        except Exception:  # (the persist takes the row's fields again, and raises there)
            self.fixed = None
        finally:
            self.lock.release()

    def opened(self, resp: Response | AsyncResponse) -> None:
        """A 2xx head arrived after ``resp.retries`` retries."""
        self.retries = resp.retries
        if self.stream:
            # (the model asked names a reply that does not name its own: Bedrock's)
            self.decoder = self.fmt.stream_decoder(self.model)
        self.response = weakref.ref(resp)
        if self.cancelled:  # (``cancel`` came while the head was awaited)
            self.abort()

    def cancel(self) -> None:
        """Stop a sync stream from another thread (``ReplyStream.cancel``): its body is
        aborted, so a read blocked on the provider (keep-alives, no data) returns now and
        the stream ends as cancelled; before the head, its request is stopped now
        (``stop``; on srt's pool: another client's body is aborted once the head comes)."""
        self.cancelled = True
        stop = self.stop
        if stop is not None:
            stop.stop()
        self.abort()

    def abort(self) -> None:
        # (``response`` is set before ``opened`` reads ``cancelled``, and ``cancelled``
        # before this reads ``response``: one of the two aborts it. An asyncio call's
        # response has no ``abort``: its task is cancelled instead.)
        resp = self.response() if self.response is not None else None
        abort = getattr(resp, "abort", None)
        if abort is not None:
            abort()

    def received(self, raw: bytes) -> Reply:
        """The whole body of a non-streamed reply arrived."""
        self.ttft = time.monotonic()
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProviderResponseError("the provider's reply is not valid JSON") from None
        try:
            reply = self.fmt.parse_reply(data, self.model)
        except ProviderError:
            # The reply cannot be kept, but the provider billed the call: its ledger row
            # (``fail``) records the usage the body reports, where that parses, and the
            # model it names (every format that names one does so there: ``Reply.model``).
            self.billed = self.fmt.parse_usage(data)
            self.named = data.get("model") if isinstance(data, dict) else None
            raise
        # (parse_reply has read the usage: the reply reported one if the object holds it)
        self.metered = bool(data.get("usage"))
        return reply

    def feed(self, chunk: bytes) -> list[str]:
        """A chunk of a streamed reply: the text deltas it completes."""
        assert self.decoder is not None
        deltas = self.decoder.feed(chunk)
        if deltas and self.ttft is None:
            self.ttft = time.monotonic()
        return deltas

    def recover(self, exc: ProviderError) -> bool:
        """Record a failed attempt; if it failed because the provider no longer holds
        the response chained from, or refuses ``previous_response_id`` altogether (as
        llama.cpp's server does, with a 400 that names it), switch to full assembly and
        say to resend once. A refusal also turns chaining off for the provider."""
        self.fail(exc)
        if (
            self.previous_response_id is None
            or not isinstance(exc, ProviderResponseError)
            or exc.status not in (400, 404, 422)
        ):
            return False
        body = exc.body or ""
        if "previous_response_not_found" in body:
            self.fallback = "previous_response_not_found"
        elif "previous_response_id" in body:
            self.fallback = "previous_response_id_refused"
            if "support" in body:  # "does not support", "unsupported", "not supported"
                with contextlib.suppress(AttributeError):
                    self.provider.server_state = False
        else:
            return False
        self.build(allow_delta=False)
        return True

    # -- ledger and persistence ----------------------------------------------------

    def persist(self, reply: Reply, status: str, error: str | None = None) -> Reply:
        """Append the reply and its ledger row in one transaction."""
        self.reply, self.status = reply, status
        chain = self.chain
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
        with self.lock:
            staged = self.staged or []
            loaded = chain.loaded  # (else the commit reads the history again)
            try:
                if message.get("tool_calls"):
                    chain.load()  # (the memory budget may have dropped it meanwhile)
                    known = tool_pairs.CallIds.of(chain)
                    unique = tool_pairs.unique_calls(message, known.ids, self.keep + len(staged))
                    if unique is not message:  # (a call id the conversation holds already)
                        message = unique
                        shown = {**reply.message, "tool_calls": unique["tool_calls"]}
                        reply = self.reply = dataclasses.replace(reply, message=shown)
                try:
                    prepared = chain.prepare([message])
                except InvalidMessageError as exc:
                    prepared = self._storable(message, exc, row)
                    shown = _replaced(reply.message)  # (what is stored, as the provider named it)
                    reply = self.reply = dataclasses.replace(reply, message=shown)
                if not self.keep_reply:
                    chain.store.record_call(row)
                    return reply
                if chain.head != self.expected_head:
                    chain.store.record_call(row)
                    raise ConflictError(
                        "the session moved while the reply was being generated; the reply "
                        "was not appended (its usage is in the ledger)"
                    )
                depth = self.keep + len(staged) + len(prepared)
                try:
                    puts = self._objects_of(reply, depth) if self.objects else ()
                except BaseException:  # (the caller's function: the request was billed)
                    chain.store.record_call(row)
                    raise
                try:
                    chain.commit(
                        self.keep,
                        staged + prepared,
                        None if status == "ok" else status,
                        row,
                        plain=len(staged),
                        objects=puts,
                    )
                except ConflictError:
                    chain.store.record_call(row)
                    raise
            finally:
                chain.unstage()
                # (on a refusal too: the commit may have read the history again)
                if self.used is not None and not (self.counted and loaded):
                    self.used()
                    self.counted = True
        return reply

    def _objects_of(self, reply: Reply, depth: int) -> list[ObjectPut]:
        """What ``objects(reply, depth)`` gives to write with the reply: a list of
        ``ObjectPut``; anything else is a ``ConfigError`` and the reply is not stored."""
        objects = self.objects
        puts = objects(reply, depth) if objects is not None else None
        if puts is None:
            return []
        if not isinstance(puts, (list, tuple)) or not all(isinstance(p, ObjectPut) for p in puts):
            raise ConfigError(
                "objects= must return a list of srt.store.ObjectPut (or None), got "
                f"{type(puts).__name__}; the reply was not appended (its usage is in the ledger)"
            )
        return list(puts)

    def _storable(
        self, message: dict[str, Any], exc: InvalidMessageError, row: CallRecord
    ) -> list[Prepared]:
        """A reply the store refused as it came. Its lone surrogates (half an emoji,
        which JSON allows) become U+FFFD, and it is stored so; a reply refused for
        anything else (over ``max_message_bytes``) is recorded in the ledger, usage and
        all, and is the provider's error, not the caller's input's."""
        fixed = _replaced(message)
        if fixed != message:
            try:
                return self.chain.prepare([fixed])
            except InvalidMessageError as again:
                exc = again
        self.status = "error"
        why = f"the provider's reply could not be stored ({exc}); its usage is in the ledger"
        self.chain.store.record_call(dataclasses.replace(row, status="error", error=why))
        raise ProviderResponseError(why) from None

    def fail(self, exc: BaseException) -> None:
        """Record a call that stored no reply (with the usage of a reply that could not
        be kept, where it parsed: ``received``)."""
        self.status = "error"
        msg = str(exc)[:2000]
        self.chain.store.record_call(self._row("error", msg, self.billed))

    def interrupted(self, exc: BaseException) -> None:
        """The call was stopped by a cancellation (a task cancelled, ``asyncio.timeout``,
        Ctrl-C; not an ordinary exception) before its reply was read: if its body had
        gone out, the provider may bill it, so its ledger row is written (no usage; status
        ``cancelled`` for a cancellation). A store failure here is not raised over the
        cancellation, which the caller (``asyncio.timeout``) must see as it is."""
        if not self.went or isinstance(exc, Exception):
            return  # (an ordinary exception is reported where it is met, as before)
        self.went = False
        self.status = _status_of(exc)
        msg = type(exc).__name__  # (not its text: a cancel message is the caller's own)
        with contextlib.suppress(SrtError):
            self.chain.store.record_call(self._row(self.status, msg, None))

    def abandon(self) -> None:
        """Drop the staged messages of a call that ends without a reply, and count what
        its build loaded against the memory budget if nothing did (it failed before its
        body went out): uncounted, that state would never be evicted."""
        if self.staged or not self.counted:
            with self.lock:
                if self.staged:  # (this call's own ``append=`` messages: a call refused
                    # because another holds staged messages must not drop that one's)
                    self.chain.unstage()
                if not self.counted and self.used is not None:
                    self.used()
                    self.counted = True

    def check_done(self) -> None:
        """The body ended: ``StreamInterruptedError`` unless its final event came."""
        assert self.decoder is not None
        if not self.decoder.done:
            raise StreamInterruptedError("the stream ended before its final event")

    def end_stream(self, exc: BaseException | None) -> None:
        """The stream ended (``exc`` None: completely): persist the reply, or what
        arrived as a partial reply, scrubbing secrets from the error first."""
        dec = self.decoder
        assert dec is not None
        obj = self._response()  # (built once: the usage check and the reply read it)
        self.metered = self._reported(obj)
        if exc is None:
            try:
                reply = dec.reply() if obj is None else self.fmt.parse_reply(obj, dec.model)
            except ProviderError as bad:
                # The whole stream came (the caller saw its text) but its reply cannot be
                # stored as one (a block srt does not keep): stored as what arrived, with
                # its ledger row (the provider bills the call), as a stream cut off is.
                self.end_stream(bad)
                raise
            self.persist(reply, "ok")
            return
        self._scrub(exc)
        if isinstance(exc, ProviderContextOverflowError) and not dec.deltas:
            # Refused after the head (a streamed Responses call's ``error`` event), before
            # any output: as a refusal before the head, the ledger row only, and the
            # messages given with ``append=`` are not appended.
            self.fail(exc)
            self.abandon()
            return
        self.persist(dec.partial(), _status_of(exc), f"{type(exc).__name__}: {exc}"[:2000])

    def _response(self) -> Any:
        """The stream's response object as far as it got; ``None`` where it cannot be
        built (then ``reply`` raises what building it raised)."""
        assert self.decoder is not None
        try:
            return self.decoder.response()
        except (ProviderError, AttributeError, KeyError, TypeError, ValueError):
            return None

    def _reported(self, obj: Any) -> bool:
        """Whether the stream's events reported the call's usage (OpenAI's come in its
        last chunk, Bedrock's in ``metadata``, Anthropic's input at ``message_start``):
        a stream cut off before then was billed, but by how much is not known. ``obj``:
        the stream's response object (``_response``)."""
        try:
            return obj is not None and self.fmt.parse_usage(obj) is not None
        except (ProviderError, AttributeError, KeyError, TypeError, ValueError):
            return False

    def _scrub(self, exc: BaseException) -> None:
        """Remove any secret (or key-shaped text) from a provider error's message.

        Stream decoders quote a provider's mid-stream error event, which may echo the
        credential it was sent; the decoders do not hold the secrets, the provider does.
        """
        if not isinstance(exc, ProviderError) or not exc.args:
            return
        text = str(exc.args[0])
        clean = self.provider.redact(text)
        if clean == text:
            return
        exc.args = (clean, *exc.args[1:])
        if isinstance(exc, ProviderResponseError) and exc.body:
            exc.body = self.provider.redact(exc.body)
        if isinstance(exc, ProviderContextOverflowError):  # (the event's own text)
            exc.provider_message = self.provider.redact(exc.provider_message)
