"""Usage rows for the Agents SDK session: ledger rows from the SDK's request usage, and
the ledger summed per user turn of a chain."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from .. import _core
from ..store.base import CallRecord, ChainRow


def model_of(items: Sequence[Any], default: str) -> str:
    """The model named by the newest item's ``provider_data``, else ``default``."""
    for item in reversed(items):
        data = item.get("provider_data") if isinstance(item, dict) else None
        if isinstance(data, dict) and "model" in data:
            return str(data["model"])
    return default


def ledger_row(
    entry: Any, *, session: int | None, name: str, node: int | None, model: str, messages: int
) -> CallRecord:
    """The ledger row of one request the SDK made (its ``RequestUsage``)."""
    details = entry.input_tokens_details
    out = getattr(entry, "output_tokens_details", None)
    return CallRecord(
        at=time.time(),
        session=session,
        session_name=name,
        node=node,
        provider="openai-agents",
        model=model,
        format="external",
        body_hash=_core.digest(b""),
        body_bytes=0,
        messages=messages,
        input_tokens=entry.input_tokens,
        cache_read_tokens=getattr(details, "cached_tokens", 0) or 0,
        cache_write_tokens=getattr(details, "cache_write_tokens", 0) or 0,
        output_tokens=entry.output_tokens,
        reasoning_tokens=getattr(out, "reasoning_tokens", 0) or 0,
    )


def per_turn(rows: Sequence[ChainRow], calls: Iterable[CallRecord]) -> list[dict[str, Any]]:
    """``calls`` summed per user turn of the chain ``rows`` (calls off the chain are left out)."""
    turn_of: dict[int, int] = {}
    turn = 0
    for node, _h, body, *_rest in rows:
        if json.loads(body)["role"] == "user":
            turn += 1
        turn_of[node] = turn
    out = {
        t: {"turn": t, "requests": 0, "input_tokens": 0, "cached_tokens": 0, "output_tokens": 0}
        for t in range(1, turn + 1)
    }
    for call in calls:
        t = turn_of.get(call.node) if call.node is not None else None
        if not t:
            continue
        row = out[t]
        row["requests"] += 1
        row["input_tokens"] += call.input_tokens or 0
        row["cached_tokens"] += call.cache_read_tokens or 0
        row["output_tokens"] += call.output_tokens or 0
    return [out[t] for t in sorted(out)]
