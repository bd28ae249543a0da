"""Compaction with the model's own summary, by hand or when a window's budget is near.

``Session.compact(end, summarizer=provider, model=...)`` asks the model to summarise
the history up to ``end``: the request is the session's first ``end`` messages (the
prefix the provider has cached from earlier requests) followed by one user message
with ``instructions``, sent through srt's send path (delta assembly, cache hints,
retries) from a short-lived fork that is deleted afterwards. The reply's text becomes
the summary of a reversible compaction (``srt.compaction``: ``expand()`` restores the
span byte for byte), and the request's ledger row is written, under this session, in
the same transaction as the compaction. The summary's node links to the request
(``by``: provider, model, the ledger row's body hash).

``WindowPolicy(..., compact_at=s)`` does this before a send (and so inside
``Session.run``) once the history holds ``s * budget`` tokens: it summarises
everything after the pinned messages (the leading ones, and the last one whose
metadata pins it) except the newest step, an assistant message
with its tool results (or the last user message), which stays as it is. That span
ends exactly where the previous request ended, so the summary request reads the whole
history from the provider's cache, and no tool call is ever parted from its result.
The summary request is held to the same window (without ``compact_at``), so a history
that one long reply took past the budget is cut rather than sent whole.

A reply that is no summary compacts nothing (``SessionError``; its ledger row is
written): no text, a refusal, a tool call (whatever text came with it), a reply cut
off at the output limit or withheld by a content filter (its stop reason says so), or
a summary too big to store. Under
``compact_at`` such a reply, or a summary no smaller than its span in the window's
tokens, compacts nothing but fails no send: the send goes on (the window cuts), the
ledger row's ``error`` says why, and no summary is asked for again until the span holds
more tokens than the summary did (twice its own, after a reply that was no summary).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from . import compaction, drivers, exchange
from ._builder import Parts
from ._chain import Chain
from ._types import Reply
from .context import WindowPolicy, pinned_prefix
from .errors import ConfigError, ConflictError, InvalidMessageError, SessionError
from .history import delete_session
from .store import CallRecord
from .tokens import Tokenizer
from .wire import get_format

if TYPE_CHECKING:  # (the providers load on first use: httpx and asyncio cost ``import srt``)
    from .providers import Provider

__all__ = ["INSTRUCTIONS", "SessionLike", "aauto", "acompact", "auto", "compact", "due"]


class SessionLike(Protocol):
    """What this module uses of a ``Session``: its name and parts (and its class, to make
    the summary request's fork: ``type(s)(shared, chain)``)."""

    @property
    def name(self) -> str: ...

    @property
    def parts(self) -> Parts: ...


#: What the summary request asks for (``instructions=`` replaces it).
INSTRUCTIONS = (
    "Summarize the conversation so far for yourself, so that you can continue the work "
    "from the summary alone: the task and its goal, what has been done and found (the tool "
    "calls and the results that matter, with exact names, numbers and ids), the decisions "
    "made, and what remains to do. Do not call any tool; reply with the summary only."
)


class _SummaryCall(exchange.Call):
    """A call whose reply is kept aside (not appended) and whose ledger rows are filed
    under ``owner``, the session being compacted."""

    def __init__(self, owner: SessionLike, fork: Any, provider: Provider, **kw: Any) -> None:
        super().__init__(fork, provider, **kw)
        self.owner = owner
        self.row: CallRecord | None = None

    def _row(self, status: str, error: str | None, usage: Any) -> CallRecord:
        row = super()._row(status, error, usage)
        owner = self.owner.parts.chain
        return dataclasses.replace(row, session=owner.id, session_name=owner.name)

    def persist(self, reply: Reply, status: str, error: str | None = None) -> Reply:
        self.reply, self.status = reply, status
        self.row = self._row(status, error, reply.usage)
        return reply


#: Stop reasons (every wire format's) of a reply that is no whole summary: cut off at
#: the output cap, or withheld by the provider's filter.
_UNUSABLE = {
    "length": "was cut off at the output token limit (raise max_tokens)",
    "max_tokens": "was cut off at the output token limit (raise max_tokens)",
    "max_output_tokens": "was cut off at the output token limit (raise max_tokens)",
    "incomplete": "is incomplete (cut off at the output token limit?)",
    "model_context_window_exceeded": "was cut off where the model's context window ends",
    "malformed_model_output": "is malformed (the provider says so)",
    "malformed_tool_use": "is malformed (the provider says so)",
    "refusal": "is a refusal",
    "content_filter": "was withheld by the provider's content filter",
    "content_filtered": "was withheld by the provider's content filter",
    "guardrail_intervened": "was withheld by a guardrail",
}


#: ``send``'s options that are no body parameters and mean nothing to a summary request.
_SEND_ONLY = ("stream", "append", "keep", "objects")


def _text(reply: Reply | None) -> str:
    if reply is None:
        return ""
    content = reply.message.get("content")
    if isinstance(content, list):
        content = "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return content.strip() if isinstance(content, str) else ""


def _unusable(reply: Reply | None) -> str | None:
    """Why ``reply`` cannot be a summary, or ``None`` when its text can."""
    if reply is None:
        return "has no text to use as the summary"
    why = _UNUSABLE.get(str(reply.stop_reason))
    if why is None and reply.message.get("refusal"):
        why = "is a refusal"
    if why is None and reply.message.get("tool_calls"):
        # (its text, if any, is what it says before the call: "Let me read the file.")
        why = "calls a tool instead of giving the summary"
    if why is not None:
        return why
    return None if _text(reply) else "has no text to use as the summary"


def _scratch(s: SessionLike, end: int) -> Any:
    """A fork of ``s`` at ``end`` for the summary request, deleted right after it (its
    lock held): made without the runtime's ``max_sessions``, since a summary leaves the
    store with the sessions it found (a store at its limit refused every summary)."""
    parts = s.parts
    chain = parts.chain
    import uuid  # (here: ``_uuid`` and ``platform`` cost ``import srt`` a few ms)

    name = f"srt-summary-{uuid.uuid4().hex}"
    row = parts.shared.store.create_session(
        name, chain.ids[end - 1], exist_ok=False, head_prefix=chain.believed_prefix(end)
    )
    child = Chain(parts.shared, row.id, name, row.head)
    child.adopt(chain, end)
    session: Any = type(s)
    return session(parts.shared, child)


def _prepare(
    s: SessionLike,
    end: int,
    start: int | None,
    provider: Provider,
    model: str,
    instructions: str | None,
    tools: Sequence[Any] | None,
    params: dict[str, Any],
) -> tuple[_SummaryCall, Any, int | None]:
    odd = sorted(k for k in _SEND_ONLY if k in params)
    if odd:
        raise ConfigError(
            f"compact() does not take {', '.join(odd)}= (send's options; the summary request "
            "is not streamed and appends nothing)"
        )
    parts = s.parts
    with parts.lock:
        parts.chain.writable()
        compaction.span(parts.chain, parts.builder.roles(), end, start)  # checked first
        head = parts.chain.head
        fork = _scratch(s, end)
    try:
        fork.append({"role": "user", "content": instructions or INSTRUCTIONS})
        call = _SummaryCall(
            s,
            fork,
            provider,
            model=model,
            tools=tools,
            cache=params.pop("cache", True),
            include_partial=False,
            params=params,
            stream=False,
        )
    except BaseException:
        delete_session(parts.shared.store, fork.name)
        raise
    return call, fork, head


class _NoSummary(SessionError):
    """The reply is no summary srt can store (its ledger row says why)."""


def _finish(
    s: SessionLike,
    call: _SummaryCall,
    end: int,
    start: int | None,
    head: int | None,
    smaller: Tokenizer | None = None,
) -> int | None:
    row = call.row
    assert row is not None
    parts = s.parts
    store = parts.shared.store
    why = _unusable(call.reply)
    if why is not None:
        text = f"the summarizer's reply {why}; the session was not compacted"
        store.record_call(dataclasses.replace(row, error=text))
        raise _NoSummary(text)
    text = _text(call.reply)
    by = {
        "provider": call.provider.name,
        "model": call.model,
        "body_hash": row.body_hash.hex(),
    }
    with parts.lock:
        try:
            parts.chain.load()
            if parts.chain.head != head:
                raise ConflictError(
                    "the session moved while the summary was being written; it was not "
                    "compacted (the summary request is in the ledger)"
                )
            roles = parts.builder.roles()
            return compaction.compact(
                parts.chain, roles, end, text, start, call=row, by=by, smaller=smaller
            )
        except compaction.NotSmallerError as exc:  # the row says why nothing was compacted
            store.record_call(dataclasses.replace(row, error=str(exc)))
            raise
        except InvalidMessageError as exc:  # e.g. a summary over max_message_bytes
            text = f"the summary could not be stored ({exc}); the session was not compacted"
            store.record_call(dataclasses.replace(row, error=text))
            raise _NoSummary(text) from None
        except Exception:  # nothing was written: the request is still in the ledger
            store.record_call(row)
            raise


def compact(
    s: SessionLike,
    end: int,
    *,
    provider: Provider,
    model: str,
    start: int | None = None,
    instructions: str | None = None,
    tools: Sequence[Any] | None = None,
    **params: Any,
) -> int | None:
    """Compact ``start:end`` with a summary written by ``model`` (see the module)."""
    call, fork, head = _prepare(s, end, start, provider, model, instructions, tools, params)
    try:
        drivers.send(call)
    finally:
        delete_session(s.parts.shared.store, fork.name)
    return _finish(s, call, end, start, head)


async def acompact(
    s: SessionLike,
    end: int,
    *,
    provider: Provider,
    model: str,
    start: int | None = None,
    instructions: str | None = None,
    tools: Sequence[Any] | None = None,
    **params: Any,
) -> int | None:
    """The asyncio twin of ``compact``."""
    call, fork, head = _prepare(s, end, start, provider, model, instructions, tools, params)
    try:
        await drivers.asend(call)
    finally:
        delete_session(s.parts.shared.store, fork.name)
    return _finish(s, call, end, start, head)


# -- automatic compaction (WindowPolicy.compact_at) -------------------------------------------


def due(
    s: SessionLike,
    provider: Provider,
    model: str,
    window: WindowPolicy | None,
    partial: bool = False,
) -> tuple[int, int] | None:
    """The span ``(start, end)`` to compact before the next send under ``window``, or
    ``None``.

    Only what the send sends counts: partial replies count for nothing unless
    ``partial`` (the send's ``include_partial``), and the newest step, kept whole, is the
    last message sent (a partial reply at the end is not it). The span starts after the
    pinned messages: the leading ones, and any whose metadata says ``"pinned": true``
    (with its tool call or results), which the window always sends and a summary must
    not take the place of."""
    if window is None or window.compact_at is None:
        return None
    fmt = get_format(provider.format)
    parts = s.parts
    with parts.lock:
        parts.chain.load()
        counts = parts.builder.sent_counts(window.tokenizer or fmt.tokenizer(model), partial)
        roles, n = parts.builder.roles(), len(counts)
        if sum(counts) < window.compact_at * window.budget:
            return None
        end = n - 1
        while end > 0 and roles[end] == "tool":
            end -= 1  # keep the newest step whole: its call and all its results
        first = pinned_prefix(roles[:n])
        pinned = parts.chain.pinned
        for i in range(end - 1, first - 1, -1):
            if pinned[i]:
                first = i + 1
                break
        while first < end and roles[first] == "tool":
            first += 1  # (a pinned call's results go with it; so does an orphan result)
        if end <= first:
            return None
        refused = parts.builder.refused_summaries().get(window)
        if (
            refused is not None
            and refused[0] == parts.chain.ids[first]
            and sum(counts[first:end]) <= refused[1]
        ):
            return None  # a summary of this span was no smaller: wait until it outgrows it
        return first, end


class _Job:
    """An automatic compaction due before a send: up to ``end``, with ``kw`` for
    ``compact``, held to a summary smaller than its span in ``window``'s tokens."""

    def __init__(self, s: SessionLike, window: WindowPolicy, span: tuple[int, int],
                 tokenizer: Any, kw: dict[str, Any]) -> None:  # fmt: skip
        self.s, self.window, self.tokenizer, self.kw = s, window, tokenizer, kw
        self.start, self.end = span

    def prepare(self) -> tuple[_SummaryCall, Any, int | None]:
        kw = dict(self.kw)
        provider, model = kw.pop("provider"), kw.pop("model")
        tools = kw.pop("tools")
        return _prepare(self.s, self.end, self.start, provider, model, None, tools, kw)

    def finish(self, call: _SummaryCall, head: int | None) -> int | None:
        """The new head; ``None`` when the reply was no summary, or one no smaller than
        the span (its ledger row says why): the send goes on with the window's cut, and
        no summary is asked for again until the span holds more tokens than that summary
        did (twice its own tokens, for a reply that was no summary)."""
        try:
            return _finish(self.s, call, self.end, self.start, head, smaller=self.tokenizer)
        except (compaction.NotSmallerError, _NoSummary) as exc:
            parts = self.s.parts
            with parts.lock:
                chain = parts.chain
                chain.load()
                first = self.start
                if first < self.end <= len(chain.ids):
                    if isinstance(exc, compaction.NotSmallerError):
                        floor = exc.tokens
                    else:
                        counts = parts.builder.sent_counts(self.tokenizer)
                        floor = 2 * sum(counts[first : self.end])
                    parts.builder.refused_summaries()[self.window] = (chain.ids[first], floor)
            return None


def _job(
    s: SessionLike,
    provider: Provider,
    model: str,
    tools: Sequence[Any] | None,
    params: dict[str, Any],
    cache: Any,
    partial: bool,
) -> _Job | None:
    window = params.get("window")
    span = due(s, provider, model, window if isinstance(window, WindowPolicy) else None, partial)
    if span is None:
        return None
    assert isinstance(window, WindowPolicy)
    kw = {k: v for k, v in params.items() if k not in ("window", *_SEND_ONLY)}
    kw.update(
        provider=window.summarizer or provider,
        model=window.summary_model or model,
        tools=tools,
        cache=cache,
        # The summary request is held to the same window (without compacting again):
        # a history grown past the budget in one step is cut, not sent whole.
        window=dataclasses.replace(window, compact_at=None),
    )
    tokenizer = window.tokenizer or get_format(provider.format).tokenizer(model)
    return _Job(s, window, span, tokenizer, kw)


def auto(
    s: SessionLike,
    provider: Provider,
    model: str,
    tools: Sequence[Any] | None,
    params: dict[str, Any],
    cache: Any = True,
    partial: bool = False,
) -> int | None:
    """Compact first if ``params``' window says it is time; the new head, or ``None``.
    ``cache`` and ``partial`` are the send's ``cache`` and ``include_partial``."""
    job = _job(s, provider, model, tools, params, cache, partial)
    if job is None:
        return None
    call, fork, head = job.prepare()
    try:
        drivers.send(call)
    finally:
        delete_session(s.parts.shared.store, fork.name)
    return job.finish(call, head)


def aauto(
    s: SessionLike,
    provider: Provider,
    model: str,
    tools: Sequence[Any] | None,
    params: dict[str, Any],
    cache: Any = True,
    partial: bool = False,
) -> Callable[[], Awaitable[int | None]]:
    """``auto`` for asyncio, as a coroutine function to await before the send."""

    async def run() -> int | None:
        job = _job(s, provider, model, tools, params, cache, partial)
        if job is None:
            return None
        call, fork, head = job.prepare()
        try:
            await drivers.asend(call)
        finally:
            delete_session(s.parts.shared.store, fork.name)
        return job.finish(call, head)

    return run
