"""The usage marks of an Agents SDK session's branch (``SrtSession``, ``_usage``).

A row counts for the user turn of the item it was recorded against; what a pop or a
clear did to it since is kept per branch beside the ledger (which never changes), as
its *marks* (``agents.state`` object ``usage@<branch>``): ``floor``, a ledger row id up
to which the branch's rows count no more (the newest when the session was last
cleared), ``void``, id ranges whose rows of the branch count no more, and ``moved``,
row id -> the position its usage now stands at.
Popping a reply moves the rows at it down to its turn's user message, as the SDK keeps
a turn's usage until its last message goes; popping a user message voids the rows at
or above it (``replace_items`` removes the items it replaces as if popped). So usage
recorded before a clear or for a popped turn never counts for the same items added
again (content-addressed, they come back as the same nodes), where the SDK's new rows
start from nothing too. A new run's first rows void those counting in their turn (its
usage replaces the turn's, as the SDK's ``store_run_usage`` replaces the turn's row).

The marks are written in the transaction of the head move they follow (the pop, the
clear of ``main``, the replacement), so a crash leaves both or neither; and by
compare-and-swap over the value read (``ObjectPut.expect``): a handle that raced
another's pop finds the head or the marks moved, and goes again from what is stored,
so no handle's marks overwrite another's. A head move that changes none of them only
checks them there (``Marks.cut``: ``ObjectPut.check``, no write), which still sends it
back if a write of ledger rows (which always writes them) came between. They stay
small however many pops: what a pop voided is folded, when written, into ``floor`` and
``void`` (id ranges holding no ledger row of the branch that still counts), and
``moved`` keeps only rows that still count, so the marks grow with the branch's usage
that counts, not with its pops."""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..errors import ConflictError
from ..store.base import CallRecord, ObjectPut, Store

__all__ = ["STATE", "Marks", "at", "fold", "like", "marks", "swap"]

STATE = "agents.state"


@dataclass(frozen=True, slots=True)
class Marks:
    """A branch's marks (see the module docstring), and ``raw``, their bytes as stored
    (``None``: none stored), which a write of new marks expects to find."""

    floor: int = 0
    void: tuple[tuple[int, int], ...] = ()  # (first, last) ids, sorted, disjoint
    moved: dict[int, int | None] = field(default_factory=dict)  # (None: void, not folded)
    raw: bytes | None = None
    n: int = 0  # (the writes so far: every one changes the bytes)

    def where(self, call: CallRecord, at: dict[int, int]) -> int | None:
        """Where in the branch ``call``'s usage stands (``at``: node -> position),
        ``None`` if nowhere: void, or recorded against an item the branch lost."""
        cid = call.id
        if cid is not None:
            if cid <= self.floor or _in(self.void, cid):
                return None
            if cid in self.moved:
                return self.moved[cid]
        return at.get(call.node) if call.node is not None else None

    def put(self, scope: str, branch: str, new: Marks) -> ObjectPut:
        """The write of ``new`` in place of these marks, with ``n`` one more, refused
        (``ConflictError``, with whatever it goes with) if another wrote first."""
        value = json.dumps(
            {
                "floor": new.floor,
                "void": [list(r) for r in new.void],
                "moved": {str(k): v for k, v in new.moved.items()},
                "n": self.n + 1,
            },
            separators=(",", ":"),
        ).encode()
        key = f"usage@{branch}"
        if self.raw is None:
            return ObjectPut(STATE, scope, key, value, if_absent=True)
        return ObjectPut(STATE, scope, key, value, expect=self.raw)

    def cut(self, scope: str, branch: str, new: Marks) -> ObjectPut:
        """``put`` for a pop, clear or replacement: if ``new`` holds what these marks
        hold, no write, only the check (``ObjectPut.check``) that they are still these
        (a write of ledger rows meanwhile writes them: the head move goes again); a
        branch with no marks stored yet has them written once."""
        same = (new.floor, new.void, new.moved) == (self.floor, self.void, self.moved)
        if self.raw is None or not same:
            return self.put(scope, branch, new)
        key = f"usage@{branch}"
        return ObjectPut(STATE, scope, key, self.raw, expect=self.raw, check=True)


def fold(
    calls: Sequence[CallRecord], floor: int, moved: dict[int, int | None], old: Marks
) -> Marks:
    """Marks for the branch whose own ledger rows are ``calls`` (oldest first) after a
    change: ``old``'s ``void``, with ``floor`` and ``moved`` (``None``: void) as the
    change left them, folded to hold nothing for a row that counts no more. The leading
    run of void rows raises ``floor``; each later run is one ``void`` range (it holds no
    row of the branch that counts, and a row written later has a larger id)."""
    ranges: list[tuple[int, int]] = []
    kept: dict[int, int | None] = {}
    run: tuple[int, int] | None = None  # (first, last) id of the current void rows
    counted = False  # (a row that counts came before: a run no longer raises the floor)
    for call in calls:
        cid = call.id
        if cid is None:
            continue
        if cid <= floor or _in(old.void, cid) or (cid in moved and moved[cid] is None):
            run = (run[0] if run else cid, cid)
            continue
        if run is not None:
            if counted:
                ranges.append(run)
            else:
                floor = max(floor, run[1])
            run = None
        counted = True
        if cid in moved:
            kept[cid] = moved[cid]
    if run is not None:
        if counted:
            ranges.append(run)
        else:
            floor = max(floor, run[1])
    return Marks(floor, tuple(ranges), kept)


def _in(ranges: Sequence[tuple[int, int]], cid: int) -> bool:
    """Whether id ``cid`` is in one of the sorted, disjoint (first, last) ``ranges``."""
    i = bisect.bisect_right(ranges, (cid, math.inf))
    return bool(i) and cid <= ranges[i - 1][1]


def at(row: CallRecord, node: int | None) -> CallRecord:
    """``row`` recorded against ``node``."""
    return replace(row, node=node)


def like(
    calls: Sequence[CallRecord], old: Marks, first: CallRecord, extras: Sequence[int]
) -> Marks:
    """``old`` with the rows ``extras`` (written after ``first``, against its node, and
    seen by no pop or clear) given what ``first`` has: void, moved, or counting (then
    out of any void range a fold drew over them)."""

    def void(cid: int) -> bool:
        return cid <= old.floor or _in(old.void, cid) or old.moved.get(cid, 0) is None

    row = next((c for c in reversed(calls) if c.node == first.node and c.at == first.at), None)
    marks: dict[int, int | None] = {c.id: None for c in calls if c.id is not None and void(c.id)}
    marks.update((k, v) for k, v in old.moved.items() if v is not None)
    for cid in extras:
        marks.pop(cid, None)
        if row is None or row.id is None or void(row.id):
            marks[cid] = None
        elif row.id in old.moved:
            marks[cid] = old.moved[row.id]
    return fold(calls, 0, marks, Marks())


def swap(store: Store, put: ObjectPut) -> bool:
    """``put`` written on its own (its condition held)."""
    try:
        return store.put_object(
            put.kind, put.scope, put.key, put.value, if_absent=put.if_absent, expect=put.expect
        )
    except ConflictError:
        return False


def marks(store: Store, scope: str, branch: str) -> Marks:
    """The marks of branch ``branch`` of agents session ``scope`` (none: ``Marks()``)."""
    row = store.get_object(STATE, scope, f"usage@{branch}")
    if row is None:
        return Marks()
    data = json.loads(row.value)
    return Marks(
        int(data["floor"]),
        tuple((int(a), int(b)) for a, b in data.get("void", ())),
        {int(k): v for k, v in data["moved"].items()},
        row.value,
        int(data.get("n", 0)),
    )
