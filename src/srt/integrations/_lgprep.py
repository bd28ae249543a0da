"""What ``SrtSaver`` stores for LangChain messages: canonical bytes and patches.

``prepare`` gives each message's canonical bytes and the patch that turns the canonical
message back into it (``srt.integrations._lcmsg``, ``_patch``), after the runtime's
redaction hook. ``settle`` matches them against the chain a thread holds below a node:
a tool result marked ``is_error`` (a ``ToolMessage`` with ``status="error"``) that the
thread holds unmarked at that place, as srt stored it before the flag existed
(``srt.integrations._unmarked``), is taken as that stored message, its patch made
against the stored form. A thread written before the flag thus goes on without a second
copy of its messages from that result on (an import of the same file again stores
nothing), and reads back the ``ToolMessage`` LangGraph gave. A result the thread stored
for a ``ToolMessage`` that was no error is a real difference: the marked one is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..message import canonicalize, redact_strings
from ..runtime import Runtime
from . import _lcmsg, _patch
from ._lgnames import Scope
from ._unmarked import unmarked

__all__ = ["prepare", "settle"]

_MARK = b'"is_error":true'  # in a marked tool message's canonical bytes

Prepared = list[tuple[bytes, Any]]


def prepare(rt: Runtime, messages: Sequence[Any]) -> Prepared:
    """Canonical bytes and patch of each LangChain message."""
    out = []
    limit = rt.max_message_bytes
    for m in messages:
        data = _lcmsg.dump(m)
        if rt.redact is not None:  # the runtime's hook, on all of the message
            data = redact_strings(data, rt.redact)
            m = _lcmsg.load(data)
        body, _meta = canonicalize(_lcmsg.canonical(m), limit)
        out.append((body, _patch.diff(_lcmsg.base(json.loads(body)), data)))
    return out


def settle(
    sc: Scope, parent: int | None, prepared: Prepared, digest: Callable[[bytes], bytes]
) -> Prepared:
    """``prepared`` (bytes and patches of a chain to go below ``parent``) with each
    marked tool result the scope knows stored unmarked at its place replaced by that
    stored form and a patch against it (see the module doc)."""
    if not any(_MARK in body for body, _patch_ in prepared):
        return prepared
    out = list(prepared)
    up = parent
    for i, (body, patch) in enumerate(prepared):
        node = sc.child.get((up or 0, digest(body)))
        if node is None:
            node = _stored_unmarked(sc, up, body, digest)
            if node is None:
                break
            old = sc.nodes[node].body
            whole = _patch.apply(_lcmsg.base(json.loads(body)), patch)
            out[i] = (old, _patch.diff(_lcmsg.base(json.loads(old)), whole))
        up = node
    return out


def _stored_unmarked(
    sc: Scope, up: int | None, body: bytes, digest: Callable[[bytes], bytes]
) -> int | None:
    """The node below ``up`` holding ``body`` unmarked, unless it was stored for a
    ``ToolMessage`` that was no error."""
    if _MARK not in body:
        return None
    old = unmarked(json.loads(body))
    if old is None:
        return None
    plain = canonicalize(old, len(body))[0]
    node = sc.child.get((up or 0, digest(plain)))
    if node is not None and node in sc.extras:
        first = _patch.apply(_lcmsg.base(old), sc.extras[node])
        if first.get("data", {}).get("status") != "error":
            return None
    return node
