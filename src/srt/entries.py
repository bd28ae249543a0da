"""What srt keeps beside each message of a history: metadata, status, compactions.

``Session.entries()`` reads them from the store in one chain walk; ``Session.messages()``
stays the plain, fast list of Chat dicts (``metadata=True`` adds each message's
metadata under the same ``metadata`` key ``append`` takes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from . import _core
from .message import ROLES
from .store import ChainRow, Store

__all__ = ["COMPACTED", "Entry", "decode", "entries", "replaced", "user_metadata"]

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


@dataclass(frozen=True)
class Entry:
    """One message of a session's history and what srt keeps beside it.

    ``status`` is ``None`` for a complete message, else the status of a partial reply
    (``"incomplete"``, ``"cancelled"`` or ``"error"``), which requests leave out unless
    ``include_partial=True``. ``metadata`` is the dict given with the message (never
    hashed or sent), without srt's own keys. For a compaction summary, ``replaced`` holds
    the messages it replaces (``Session.expand()`` brings them back).
    """

    index: int
    message: dict[str, Any]
    status: str | None = None
    metadata: dict[str, Any] | None = None
    replaced: tuple[dict[str, Any], ...] = field(default=())

    @property
    def partial(self) -> bool:
        return self.status is not None


def _meta(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def user_metadata(raw: bytes | str | None) -> dict[str, Any] | None:
    """A node's metadata as the user gave it: srt's own keys left out."""
    meta = _meta(raw)
    if meta is None:
        return None
    mine = {k: v for k, v in meta.items() if k != COMPACTED}
    return mine or None


def replaced(store: Store, raw: bytes | str | None) -> tuple[dict[str, Any], ...]:
    """The messages a compaction summary replaced (its metadata names their span)."""
    meta = _meta(raw)
    link = meta.get(COMPACTED) if meta else None
    if not isinstance(link, dict):
        return ()
    chain = store.chain(int(link["last"]))
    span = chain[len(chain) - int(link["count"]) :]
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
            out.append(Entry(i, message, r[4], user_metadata(raw), replaced(store, raw)))
    return out
