"""What srt keeps beside each message of a history: metadata, status, compactions.

``Session.entries()`` reads them from the store in one chain walk; ``Session.messages()``
stays the plain, fast list of Chat dicts (``metadata=True`` adds each message's
metadata under the same ``metadata`` key ``append`` takes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import _core
from .errors import CorruptionError
from .message import RESERVED_PREFIX, ROLES
from .store import ChainRow, Store
from .store.checks import damaged_metadata

__all__ = [
    "COMPACTED",
    "TOOL",
    "Entry",
    "compaction_link",
    "decode",
    "entries",
    "replaced",
    "span_named",
    "span_rows",
    "tool_record",
    "user_metadata",
]

#: Roles whose plain text message ``_core.decode_messages`` can read without a parser.
_PLAIN_ROLES = {r.encode(): r for r in ROLES - {"tool"}}


def decode(bodies: list[bytes]) -> list[dict[str, Any]]:
    """``[json.loads(b) for b in bodies]`` for canonical message bodies: the commonest
    message, ``{"role": ..., "content": "text"}`` with no escape in its text, is made
    from its text's bytes alone; any other is parsed."""
    out: list[dict[str, Any]] = _core.decode_messages(bodies, _PLAIN_ROLES, json.loads)
    return out


#: The metadata key srt files a compaction summary's link under (``srt.compaction``).
COMPACTED = "srt_compacted"
#: The metadata key srt files a tool run's record under (``Session.run``'s tool results).
TOOL = "srt_tool"


@dataclass(frozen=True)
class Entry:
    """One message of a session's history and what srt keeps beside it.

    ``status`` is ``None`` for a complete message, else the status of a partial reply
    (``"incomplete"``, ``"cancelled"`` or ``"error"``), which requests leave out unless
    ``include_partial=True``. ``metadata`` is the dict given with the message (never
    hashed or sent), without srt's own keys (``srt_...``), so it can be given to ``append``
    again. ``tool`` is a tool result's record when ``Session.run`` ran the tool (its
    ``name``, ``status``, ``seconds``, and an ``error`` and ``traceback`` if it raised).
    For a compaction summary, ``replaced`` holds the messages it replaces
    (``Session.expand()`` brings them back).
    """

    index: int
    message: dict[str, Any]
    status: str | None = None
    metadata: dict[str, Any] | None = None
    replaced: tuple[dict[str, Any], ...] = field(default=())
    tool: dict[str, Any] | None = None

    @property
    def partial(self) -> bool:
        """Whether this is a partial reply (``status`` incomplete, cancelled or error)."""
        return self.status is not None


def _meta(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:  # (JSONDecodeError, UnicodeDecodeError)
        raise damaged_metadata() from None
    return value if isinstance(value, dict) else None


def user_metadata(raw: bytes | str | None) -> dict[str, Any] | None:
    """A node's metadata as the user gave it: srt's own keys (``srt_...``, which ``append``
    refuses) left out, so a message read back with it can be appended again."""
    meta = _meta(raw)
    if meta is None:
        return None
    mine = {k: v for k, v in meta.items() if not k.startswith(RESERVED_PREFIX)}
    return mine or None


def tool_record(raw: bytes | str | None) -> dict[str, Any] | None:
    """A tool result's record from its node's metadata (``Session.run`` files it under
    ``srt_tool``); ``None`` for any other node."""
    if isinstance(raw, bytes):
        if b'"srt_tool"' not in raw:
            return None  # (most metadata, without parsing)
    elif not isinstance(raw, str) or f'"{TOOL}"' not in raw:
        return None
    meta = _meta(raw)
    record = meta.get(TOOL) if meta else None
    return record if isinstance(record, dict) else None


def compaction_link(raw: bytes | str | None) -> dict[str, int] | None:
    """A compaction summary's link from its node's metadata: the ``first`` and ``last``
    node of the span it replaced and their ``count``; ``None`` for any other node (or
    a link that is not srt's shape)."""
    if isinstance(raw, bytes):
        if b'"srt_compacted"' not in raw:
            return None  # (most metadata, without parsing)
    elif not isinstance(raw, str) or f'"{COMPACTED}"' not in raw:
        return None
    try:
        meta = _meta(raw)
    except CorruptionError:
        return None
    link = meta.get(COMPACTED) if meta else None
    if not isinstance(link, dict):
        return None
    out: dict[str, int] = {}
    for key in ("first", "last", "count"):
        value = link.get(key)
        if type(value) is not int:
            return None
        out[key] = value
    return out if out["count"] >= 1 else None


def span_rows(store: Store, link: dict[str, int]) -> list[ChainRow] | None:
    """The chain rows of the span ``link`` names; ``None`` once ``gc`` freed it (it
    stays stored while a history or an earlier head reaches it)."""
    try:
        store.node_depth(link["last"])
    except CorruptionError:  # the node is missing: collected
        return None
    rows = store.chain(link["last"])
    count = link["count"]
    if len(rows) < count or rows[-count][0] != link["first"]:
        return None  # (its ids were freed and used again)
    return rows[-count:]


#: A summary's header: the span it replaced, named by the first hex digits of the prefix
#: hash of the span's last message (``compaction.compact`` writes it).
_SPAN_ID = re.compile(rb'"\[Summary of \d+ earlier messages, span ([0-9a-f]{1,32})\]')


def span_named(span: list[ChainRow], body: bytes) -> bool:
    """Whether ``span`` (``span_rows``) is the one the summary ``body``'s header names: a
    link copied from another store with its ids (by ``srt copy`` before it wrote them
    anew) names other nodes there. A summary without srt's header is taken as it is."""
    found = _SPAN_ID.search(body)
    return found is None or span[-1][3].hex().startswith(found.group(1).decode())


def replaced(store: Store, raw: bytes | str | None, body: bytes) -> tuple[dict[str, Any], ...]:
    """The messages a compaction summary (of canonical ``body``) replaced (its metadata
    names their span); none once the span was collected, or if it is not the span the
    summary's header names."""
    link = compaction_link(raw)
    span = span_rows(store, link) if link is not None else None
    if not span or not span_named(span, body):
        return ()
    return tuple(json.loads(r[2]) for r in span)


def entries(store: Store, rows: list[ChainRow]) -> list[Entry]:
    """The entries of a chain (``Store.chain`` rows, oldest first)."""
    messages = decode([r[2] for r in rows])
    out = []
    for i, (r, message) in enumerate(zip(rows, messages, strict=True)):
        raw = r[5]
        if raw is None:  # most messages: no metadata, so nothing to parse
            out.append(Entry(i, message, r[4]))
        else:
            meta, spans = user_metadata(raw), replaced(store, raw, r[2])
            out.append(Entry(i, message, r[4], meta, spans, tool_record(raw)))
    return out
