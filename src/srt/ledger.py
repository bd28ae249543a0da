"""Checking the usage ledger against the history: every recorded body can be rebuilt.

A ledger row records the XXH3-128 of the exact body sent, its size, the node of the
reply it stored, the number of messages it sent and (``params``) what else shaped the
body: the body parameters, tools, partial replies, the cache breakpoints placed and the
messages a context window kept. ``verify_ledger`` rebuilds each such body from the
stored messages (``session.replay_call``) and checks its hash and size. Rows that
record no parameters (a request that failed before a reply was stored, a node swept by
``gc``, or a row written before srt recorded them) are counted as not checkable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _core
from .errors import SrtError
from .session import replay_call
from .store.base import MAX_FAULTS, Fault

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["LedgerReport", "verify_ledger"]


@dataclass(frozen=True)
class LedgerReport:
    """How many ledger rows were rebuilt and checked, how many could not be, and the
    rows whose body did not come out as recorded."""

    checked: int
    unchecked: int
    faults: tuple[Fault, ...]
    more_faults: int = 0

    @property
    def ok(self) -> bool:
        return not self.faults


def verify_ledger(rt: Runtime, rows: Iterable[Mapping[str, Any]] | None = None) -> LedgerReport:
    """Rebuild the body of each ledger row (default: all) and compare it with the row."""
    checked = unchecked = more = 0
    faults: list[Fault] = []

    def fault(row: Mapping[str, Any], detail: str) -> None:
        nonlocal more
        if len(faults) >= MAX_FAULTS:
            more += 1
            return
        name, pos = row.get("session_name"), int(row.get("messages") or 0) + 1
        places = ((str(name), pos),) if name is not None else ()
        faults.append(Fault("ledger", "calls", row.get("id"), detail, places))

    for row in rt.calls() if rows is None else rows:
        try:
            body = replay_call(rt, row)
        except SrtError as exc:
            checked += 1
            fault(row, f"its body cannot be rebuilt from node {row.get('node')}: {exc}")
            continue
        if body is None:
            unchecked += 1
            continue
        checked += 1
        if _core.digest(body) != row["body_hash"] or len(body) != row["body_bytes"]:
            fault(
                row,
                f"the body rebuilt from node {row['node']} and its parameters is "
                f"{len(body):,} bytes hashing to {_core.digest(body).hex()[:12]}…, not the "
                f"{row['body_bytes']:,} bytes hashing to {bytes(row['body_hash']).hex()[:12]}… "
                "recorded",
            )
    return LedgerReport(checked, unchecked, tuple(faults), more)
