"""Reversible compaction: a span of history replaced by a content-addressed summary.

The summary is an ordinary message (so equal summaries of equal histories share
nodes); its node's metadata links to the first and last node of the span it
replaces, which stay stored. ``expand`` re-appends the span and what followed on
the summary's parent, and because prefix hashes name whole histories the original
nodes are found again: nothing is copied and the bytes are the original ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .context import pinned_prefix
from .errors import HistoryIndexError, SessionError

if TYPE_CHECKING:
    from .session import Session
    from .store import CallRecord

__all__ = ["compact", "expand", "span"]


def span(s: Session, end: int, start: int | None) -> int:
    """The first index of the span ``start:end`` to compact (checked). Caller holds the
    lock and has loaded the chain."""
    n = len(s._ids)
    roles = s._meta_roles()
    first = pinned_prefix(roles) if start is None else start
    if not (0 <= first < end <= n):
        raise HistoryIndexError(f"cannot compact {first}:{end} of {n} messages")
    if roles[first] == "tool" or (end < n and roles[end] == "tool"):
        raise HistoryIndexError("a compaction boundary may not split a tool call from its result")
    return first


def compact(
    s: Session,
    end: int,
    summary: str | Callable[[list[dict[str, Any]]], str],
    start: int | None,
    *,
    call: CallRecord | None = None,
    by: dict[str, Any] | None = None,
) -> int | None:
    """``call`` is the ledger row of the request that wrote the summary (written in the
    same transaction); ``by`` says who wrote it (kept in the summary node's link)."""
    with s._lock:
        s._load()
        n = len(s._ids)
        first = span(s, end, start)
        replaced = [json.loads(b) for b in s._bodies[first:end]]
        text = summary(replaced) if callable(summary) else summary
        if not isinstance(text, str) or not text:
            raise SessionError("a compaction summary must be non-empty text")
        link: dict[str, Any] = {
            "first": s._ids[first],
            "last": s._ids[end - 1],
            "count": end - first,
        }
        if by is not None:
            link["by"] = by
        msg = {
            "role": "user",
            "content": f"[Summary of {end - first} earlier messages]\n{text}",
            "metadata": {"srt_compacted": link},
        }
        prepared = s._prepare([msg])
        rest: list[tuple[bytes, bytes, bytes | None]] = [
            (s._hashes[i], s._bodies[i], None) for i in range(end, n)
        ]
        s._commit(first, prepared + rest, call=call, action="compact")
        return s._head


def expand(s: Session) -> int | None:
    with s._lock:
        s._load()
        store = s._rt.store
        for k in range(len(s._ids) - 1, -1, -1):
            meta = store.node_meta(s._ids[k])
            if isinstance(meta, bytes) and b'"srt_compacted"' in meta:
                link = json.loads(meta)["srt_compacted"]
                break
        else:
            raise SessionError("this history holds no compaction to expand")
        chain = store.chain(link["last"])
        span = chain[len(chain) - int(link["count"]) :]
        if not span or span[0][0] != link["first"]:
            raise SessionError("the compacted span is no longer stored (was it collected?)")
        items: list[tuple[bytes, bytes, bytes | None]] = [(r[1], r[2], None) for r in span]
        items += [(s._hashes[i], s._bodies[i], None) for i in range(k + 1, len(s._ids))]
        s._commit(k, items, action="expand")
        return s._head
