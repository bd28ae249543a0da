"""Reversible compaction: a span of history replaced by a content-addressed summary.

The summary is an ordinary message (so equal summaries of equal histories share
nodes) whose header names the span (the first digits of its end's prefix hash), so a
summary of another span is another node; its node's metadata links to the first and
last node of the span it replaces, which stay stored while something reaches them
(the head the compaction left is recorded as an earlier head: ``srt.history``); once
that record expired, ``gc`` may free the span, and ``expand`` then says so.
``expand`` re-appends the span and what followed on the summary's parent, and because
prefix hashes name whole histories the original nodes are found again: nothing is
copied and the bytes are the original ones. What is appended again keeps its nodes'
metadata (pins, the user's metadata, a later summary's link) and status (a partial
reply stays one: a node appended again with no status would be completed).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._chain import Chain, Prepared
from .context import pinned_prefix
from .entries import compaction_link, span_named, span_rows
from .errors import ConflictError, CorruptionError, HistoryIndexError, SessionError
from .message import own_metadata
from .store import CallRecord
from .tokens import Tokenizer

__all__ = ["SPAN_ID_CHARS", "NotSmallerError", "compact", "expand", "span"]


class NotSmallerError(SessionError):
    """The summary holds no fewer tokens than the span it would replace (nothing was
    written); ``tokens`` is the summary message's count."""

    def __init__(self, message: str, tokens: int) -> None:
        super().__init__(message)
        self.tokens = tokens


#: Hex digits of the span's prefix hash in a summary's header (48 bits: two different
#: spans after one parent summarized in the same words share a node only by a collision).
SPAN_ID_CHARS = 12


def span(chain: Chain, roles: list[str], end: int, start: int | None) -> int:
    """The first index of the span ``start:end`` to compact (checked), in the loaded
    ``chain`` whose canonical roles are ``roles``."""
    n = len(chain)
    for name, value in (("end", end), ("start", start)):
        if (value is not None or name == "end") and (
            not isinstance(value, int) or isinstance(value, bool)
        ):
            raise HistoryIndexError(f"compact()'s {name} must be an int, got {value!r}")
    first = pinned_prefix(roles) if start is None else start
    if not (0 <= first < end <= n):
        raise HistoryIndexError(f"cannot compact {first}:{end} of {n} messages")
    lead = 0
    while lead < n and roles[lead] in ("system", "developer"):
        lead += 1
    if first < lead:
        # The summary is a user message: in place of the instructions it would demote
        # them to something the user said, and change what the model was told to be.
        raise HistoryIndexError(
            f"cannot compact from {first}: the leading {lead} system/developer message(s) "
            f"are the model's instructions, not history (start at {lead} or later)"
        )
    if roles[first] == "tool" or (end < n and roles[end] == "tool"):
        raise HistoryIndexError("a compaction boundary may not split a tool call from its result")
    return first


def compact(
    chain: Chain,
    roles: list[str],
    end: int,
    summary: str | Callable[[list[dict[str, Any]]], str],
    start: int | None,
    *,
    call: CallRecord | None = None,
    by: dict[str, Any] | None = None,
    smaller: Tokenizer | None = None,
) -> int | None:
    """Replace messages ``start:end`` of the loaded ``chain`` by one summary message; the
    new head. ``call`` is the ledger row of the request that wrote the summary (written in
    the same transaction); ``by`` says who wrote it (kept in the summary node's link).
    With ``smaller``, a summary message that is not smaller than the span in that
    tokenizer's counts raises ``NotSmallerError`` and nothing is written."""
    n = len(chain)
    first = span(chain, roles, end, start)
    replaced = [json.loads(b) for b in chain.bodies[first:end]]
    head = chain.head
    text = summary(replaced) if callable(summary) else summary
    if chain.head != head or len(chain) != n:
        # (the callable wrote to this session through the same handle: the span and
        # what follows it are no longer the ones it was given)
        raise ConflictError(
            "the summary function changed the session it summarises; it was not compacted"
        )
    if not isinstance(text, str) or not text.strip():
        got = (
            type(text).__name__
            if not isinstance(text, str)
            else "only whitespace"
            if text
            else "an empty string"
        )
        raise SessionError(f"a compaction summary must be non-empty text, got {got}")
    link: dict[str, Any] = {
        "first": chain.ids[first],
        "last": chain.ids[end - 1],
        "count": end - first,
    }
    if by is not None:
        link["by"] = by
    # The header names the span (its prefix hash: the whole history up to its end), so a
    # summary of another span is another message and another node: a node's metadata is
    # its first writer's, and its link must be this span's.
    span_id = chain.prefix(end).hex()[:SPAN_ID_CHARS]
    msg = {
        "role": "user",
        "content": f"[Summary of {end - first} earlier messages, span {span_id}]\n{text}",
        "metadata": {"srt_compacted": link},
    }
    with own_metadata():
        prepared = chain.prepare([msg])
    if smaller is not None:
        tokens = chain.shared.tokens
        mine = tokens.message_tokens(smaller, prepared[0].body, prepared[0].hash)
        theirs = sum(  # (partial replies are not sent: they cost no request anything)
            tokens.message_tokens(smaller, chain.bodies[i], chain.hashes[i])
            for i in range(first, end)
            if i not in chain.status
        )
        if mine >= theirs:
            raise NotSmallerError(
                f"the summary ({mine} tokens) is not smaller than the {end - first} "
                f"messages it would replace ({theirs} tokens); the session was not compacted",
                mine,
            )
    rest = _carried(chain, end, n)
    status = _statuses(chain, [None], end, n)
    chain.commit(first, prepared + rest, status, call=call, action="compact")
    return chain.head


def _carried(chain: Chain, start: int, stop: int) -> list[Prepared]:
    """Messages ``start:stop`` of ``chain`` to append again after a span is replaced,
    each with its node's metadata (its pin, the user's metadata, a summary's link)."""
    out = []
    for i in range(start, stop):
        meta = chain.store.node_meta(chain.ids[i])
        meta = meta.encode() if isinstance(meta, str) else meta
        out.append(Prepared(chain.hashes[i], chain.bodies[i], meta))
    return out


def _statuses(
    chain: Chain, first: list[str | None], start: int, stop: int
) -> list[str | None] | None:
    """``first`` and the statuses of messages ``start:stop`` of ``chain``, for a commit
    that appends them again: a partial reply stays one (a node appended again with no
    status is completed); ``None`` when all are complete."""
    marks = chain.status
    if not any(marks.get(i) for i in range(start, stop)) and not any(first):
        return None
    return first + [marks.get(i) for i in range(start, stop)]


def expand(chain: Chain) -> int | None:
    """Undo the newest compaction in the loaded ``chain``; the new head."""
    store = chain.store
    for k in range(len(chain) - 1, -1, -1):
        link = compaction_link(store.node_meta(chain.ids[k]))
        if link is not None:
            break
    else:
        raise SessionError("this history holds no compaction to expand")
    span = span_rows(store, link)
    if span is None:
        raise SessionError(
            "the compacted span is no longer stored: gc freed it once nothing reached it "
            "(the history retention had passed)"
        )
    if not span_named(span, chain.bodies[k]):
        raise CorruptionError(
            "the compaction's link names other messages than the span its summary "
            "replaced (a store copied by srt copy before it wrote such links anew); "
            "nothing was changed"
        )
    items = [Prepared(r[1], r[2], None) for r in span]
    items += _carried(chain, k + 1, len(chain))
    status = _statuses(chain, [r[4] for r in span], k + 1, len(chain))
    chain.commit(k, items, status, action="expand")
    return chain.head
