"""The reports of the Store protocol's maintenance operations (gc, vacuum, verify,
search, the ``ls`` and ``tree`` views), and what engines share to build them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_FAULTS",
    "USER_PREFIX",
    "BackupReport",
    "Fault",
    "FaultList",
    "GcReport",
    "Hit",
    "SessionOverview",
    "TreeNode",
    "VacuumReport",
    "VerifyReport",
    "build_tree",
    "session_overviews",
]


@dataclass(frozen=True)
class GcReport:
    """What one ``gc`` removed, and the state of the store afterwards.

    The page figures are the engine's (SQLite's pages); an engine without them
    reports 0 and ``checkpointed`` False.
    """

    nodes: int
    messages: int
    message_bytes: int  # canonical body bytes of the messages removed
    ledger_rows: int  # ledger rows whose node was removed (kept, with node NULL)
    pages_freed: int  # pages this gc returned to the file's free list
    free_pages: int  # free pages in the file afterwards (reused first; vacuum drops them)
    page_size: int
    secure_delete: bool
    checkpointed: bool  # the WAL was checkpointed and truncated afterwards
    dry_run: bool
    objects: int = 0  # expired objects removed
    #: objects filed under a session id no session has (``store.owners``) removed
    orphan_objects: int = 0
    #: the prefix hashes of ``gc(watch=...)`` no live node carries (any more)
    dead_prefixes: tuple[bytes, ...] = ()
    #: the local provider's saved KV states removed with them (``Runtime.gc``), and bytes
    state_files: int = 0
    state_bytes: int = 0
    #: objects the sweeps of their kinds removed (``store.sweeps``), as (kind, count),
    #: one pair for each sweep run (``Runtime.gc``): the gateway's unnamed texts
    swept: tuple[tuple[str, int], ...] = ()

    @property
    def bytes_freed(self) -> int:
        return self.pages_freed * self.page_size

    @property
    def free_bytes(self) -> int:
        return self.free_pages * self.page_size


@dataclass(frozen=True)
class BackupReport:
    """What one ``backup`` copied."""

    path: str  # where the copy is
    pages: int
    page_size: int
    bytes: int  # the copy's size on disk
    seconds: float
    encrypted: bool


@dataclass(frozen=True)
class VacuumReport:
    """Store sizes (for SQLite: database plus WAL) before and after ``vacuum``."""

    bytes_before: int
    bytes_after: int
    checkpointed: bool


@dataclass(frozen=True)
class Fault:
    """One inconsistency found by ``verify``."""

    kind: str  # integrity, message, node, session, ledger, object, foreign_key, search_index
    table: str
    row: int | None
    detail: str
    places: tuple[tuple[str, int], ...] = ()  # (session, 1-based position) reaching it

    def __str__(self) -> str:
        where = f"{self.table} row {self.row}" if self.row is not None else self.table
        text = f"{where}: {self.detail}"
        if self.places:
            shown = ", ".join(f"{name!r} message {pos}" for name, pos in self.places[:8])
            more = len(self.places) - 8
            text += f"; reached by {shown}" + (f" and {more} more" if more > 0 else "")
        elif self.kind in ("message", "node"):
            text += "; reached by no session"
        return text


#: Faults listed by ``verify`` at most (the count of the rest is still given).
MAX_FAULTS = 100


@dataclass(frozen=True)
class VerifyReport:
    """Counts of what ``verify`` checked, and the faults found (first first)."""

    messages: int
    nodes: int
    sessions: int
    calls: int
    faults: tuple[Fault, ...]
    more_faults: int = 0  # faults found beyond MAX_FAULTS
    #: objects filed under a session id no session has (``store.owners``): not a fault,
    #: garbage the next ``gc`` frees
    orphan_objects: int = 0

    @property
    def ok(self) -> bool:
        return not self.faults


@dataclass(frozen=True)
class Hit:
    """A stored message matching a search, and where sessions use it."""

    message: int
    role: str
    text: str
    places: tuple[tuple[str, int], ...]  # (session, 1-based position)


@dataclass(frozen=True)
class SessionOverview:
    """One session as ``srt ls`` lists it."""

    name: str
    messages: int
    turns: int  # user messages
    tokens: int  # estimated: sum of ceil(canonical bytes / 4) over its messages
    branches: int  # sessions sharing its first message, itself included
    created: float
    updated: float
    head_prefix: str | None


@dataclass
class TreeNode:
    """A node of a conversation tree: one message and the branches that continue it."""

    id: int
    depth: int
    role: str
    text: str  # the message text, at most ``tree(..., width)`` characters
    status: str | None  # a partial reply's status (cancelled, incomplete, error)
    heads: list[str] = field(default_factory=list)  # sessions whose head is this node
    children: list[TreeNode] = field(default_factory=list)


#: Canonical bytes of a user message begin with this (``message.canonicalize``).
USER_PREFIX = b'{"role":"user"'


def session_overviews(
    stats: Sequence[Sequence[Any]], sessions: Sequence[Sequence[Any]]
) -> list[SessionOverview]:
    """``overview``'s rows from what an engine read in one snapshot: ``stats`` as (session
    id, messages, user turns, estimated tokens, root node id) per non-empty session, and
    ``sessions`` as (id, name, created, updated, head prefix) in name order."""
    by_id = {
        sid: (int(n), int(turns or 0), int(tokens or 0), root)
        for sid, n, turns, tokens, root in stats
    }
    per_root: dict[Any, int] = {}
    for _n, _turns, _tokens, root in by_id.values():
        if root is not None:
            per_root[root] = per_root.get(root, 0) + 1
    out = []
    for sid, name, created, updated, prefix in sessions:
        n, turns, tokens, root = by_id.get(sid, (0, 0, 0, None))
        out.append(
            SessionOverview(
                name=name,
                messages=n,
                turns=turns,
                tokens=tokens,
                branches=per_root.get(root, 0) if root is not None else 1,
                created=created,
                updated=updated,
                head_prefix=bytes(prefix).hex() if prefix is not None else None,
            )
        )
    return out


def build_tree(rows: Sequence[Sequence[Any]], heads: Sequence[Sequence[Any]]) -> TreeNode | None:
    """``tree``'s result from (node id, parent, depth, status, role, text) rows in depth
    order and (head node id, session name) pairs."""
    nodes: dict[int, TreeNode] = {}
    top: TreeNode | None = None
    for nid, parent, depth, status, role, text in rows:
        node = TreeNode(nid, depth, str(role), str(text), status)
        nodes[nid] = node
        if parent is None:
            top = node
        elif parent in nodes:
            nodes[parent].children.append(node)
    for head, session in heads:
        if head in nodes:
            nodes[head].heads.append(session)
    return top


class FaultList:
    """The faults ``verify`` found: the first ``MAX_FAULTS``, and a count of the rest."""

    def __init__(self) -> None:
        self.items: list[Fault] = []
        self.more = 0

    def add(self, fault: Fault) -> None:
        if len(self.items) < MAX_FAULTS:
            self.items.append(fault)
        else:
            self.more += 1
