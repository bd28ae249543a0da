"""The branches of an Agents SDK session (``SrtSession``'s ``fork``, ``switch_to``,
``delete_branch`` and ``branches``: see ``srt.integrations.agents``).

A branch is a record (kind ``agents.branch``, scope the session id, key its name) naming
its srt session, its parent and ``at``, the items it shares with the parent; a fork is
one new head row at the node the handle's cache holds, nothing copied. Deleting a branch
gives its forks a copy of every patch entry they saw through it first, then ``_touch``es
each fork's srt session, so that every handle's cache of it is read again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from ..errors import ConfigError, ConflictError, SessionNotFoundError
from ..runtime import check_name
from ._itemstore import Branch, item_key

__all__ = ["MAIN", "Branches"]

log = logging.getLogger("srt.integrations.agents")

#: The name of the first branch: the srt session named ``session_id``.
MAIN = "main"
_BRANCH = "agents.branch"
_STATE = "agents.state"
_ITEM = "agents.item"


class Branches:
    """The branch methods of ``SrtSession`` (a mixin: its methods' ``self`` is an
    ``SrtSession``, which this module cannot import: a cycle)."""

    # (the attributes of ``SrtSession`` this sets or reads, typed by it)
    _branch: str
    _cache: Any

    @property
    def branch(self) -> str:
        """The current branch."""
        return self._branch

    async def fork(
        self: Any, at_turn: int | None = None, name: str | None = None, *, switch: bool = True
    ) -> str:
        """Start a branch sharing the current one up to before user turn ``at_turn``
        (1-based; ``None``: all of it). Nothing is copied. Returns its name
        (``name``, or ``"branch-N"``) and, with ``switch``, makes it current."""
        made: str = await self._change(self._fork, at_turn, name, switch)
        return made

    def _fork(self: Any, at_turn: int | None, name: str | None, switch: bool) -> str:
        items = self._items()
        at = len(items)
        if at_turn is not None:
            if not isinstance(at_turn, int) or isinstance(at_turn, bool) or at_turn < 1:
                raise ConfigError(f"at_turn must be a positive int, got {at_turn!r}")
            users = self._user_positions(items)
            if at_turn > len(users):
                raise ConfigError(
                    f"the branch {self._branch!r} has {len(users)} user turns, not {at_turn}"
                )
            at = users[at_turn - 1]
        self._branches = self._load_branches()
        if name is None:  # (one whose srt session is free: another session may hold it)
            n = len(self._branches)
            while f"branch-{n}" in self._branches or self._store.get_session(
                f"{self.session_id}@branch-{n}"
            ):
                n += 1
            name = f"branch-{n}"
        if not isinstance(name, str) or not name or name in self._branches:
            raise ConfigError(f"a new branch needs a new, non-empty name; got {name!r}")
        # One new head row at the node the cache holds (the store checks that the node
        # still carries the prefix hash this handle saw).
        child = check_name(f"{self.session_id}@{name}")
        node, prefix = (items.ids[at - 1], items.prefixes[at - 1]) if at else (None, None)
        self._store.create_session(
            child, node, exist_ok=False, head_prefix=prefix, limit=self._rt.max_sessions
        )
        info = Branch(name, child, self._branch, at, time.time())
        self._store.put_object(_BRANCH, self.session_id, name, info.encode())
        self._branches[name] = info
        if switch:
            self._switch(name)
        return name

    async def switch_to(self: Any, branch: str) -> None:
        """Make ``branch`` the current branch (``SessionNotFoundError`` if it does not exist)."""
        await self._change(self._switch, branch)

    def _switch(self: Any, branch: str) -> None:
        self._open(branch)
        self._store.put_object(_STATE, self.session_id, "current", branch.encode())

    async def delete_branch(self: Any, branch: str, *, force: bool = False) -> None:
        """Delete ``branch`` (not ``main``; the current one only with ``force``, which
        switches to ``main``). Branches forked from it keep their items: what they shared
        with it is theirs from then on."""
        await self._change(self._delete_branch, branch, force)

    def _delete_branch(self: Any, branch: str, force: bool) -> None:
        if branch == MAIN:
            raise ConfigError("the main branch cannot be deleted (clear_session empties it)")
        self._branches = self._load_branches()
        self._patches = self._load_patches()
        info = self._branches.get(branch)
        if info is None:
            raise SessionNotFoundError(f"session {self.session_id!r} has no branch {branch!r}")
        if branch == self._branch:
            if not force:
                raise ConfigError(f"{branch!r} is the current branch (force=True deletes it)")
            self._switch(MAIN)
        # Its forks take a copy of every patch entry they saw through it, and inherit no
        # more (at 0): then its entries, its record and its srt session go.
        for child in [c for c in self._branches.values() if c.parent == branch]:
            for pos in range(child.at):
                key = item_key(child.name, pos)
                seen = self._visible(pos, branch)
                if key not in self._patches and seen is not None:
                    self._store.put_object(_ITEM, self.session_id, key, seen)
                    self._patches[key] = seen
            moved = Branch(child.name, child.session, info.parent, 0, child.created)
            self._store.put_object(_BRANCH, self.session_id, child.name, moved.encode())
            self._branches[child.name] = moved
            self._touch(child.session)
        for key in [k for k in self._patches if k.partition("@")[2] == branch]:
            self._store.delete_object(_ITEM, self.session_id, key)
            del self._patches[key]
        self._store.delete_object(_BRANCH, self.session_id, branch)
        self._usage_forget(branch)
        del self._branches[branch]
        with contextlib.suppress(SessionNotFoundError):
            self._rt.delete(info.session)
        if self._cache is not None:
            self._cache = None  # (a fork of it may be current: it now reads its own entries)

    def _touch(self: Any, name: str) -> None:
        """Move srt session ``name``'s head to where it is: its update time changes, so
        every handle's cache of it (keyed by head and time) is read again. Once, not
        until it lands: a head another handle moved meanwhile (``ConflictError``) was
        moved after this handle's writes that call for the touch, and its time with it,
        which is all a touch is for; a session deleted meanwhile has no cache left to
        refresh. Either is logged at debug, with what happened; any other failure is
        raised."""
        row = self._store.get_session(name)
        if row is None:
            log.debug("no touch of srt session %r: it was deleted meanwhile", name)
            return
        try:
            self._store.move_head(row.id, row.head, row.head)
        except (ConflictError, SessionNotFoundError) as exc:
            log.debug("no touch of srt session %r (%s): %s", name, type(exc).__name__, exc)

    async def branches(self: Any) -> list[dict[str, Any]]:
        """Every branch: ``name``, ``items``, ``parent``, ``at`` (items shared with the
        parent), ``created`` and ``current``, oldest first."""
        out: list[dict[str, Any]] = await self._run(self._list)
        return out

    def _list(self: Any) -> list[dict[str, Any]]:
        self._branches = self._load_branches()
        out = [
            {
                "name": b.name,
                "items": self._items_in(b.session),
                "parent": b.parent,
                "at": b.at,
                "created": b.created,
                "current": b.name == self._branch,
            }
            for b in self._branches.values()
        ]
        return sorted(out, key=lambda d: d["created"])

    def _items_in(self: Any, session: str) -> int:
        """How many messages the branch's srt session holds: one row read per branch."""
        row = self._store.get_session(session)
        return self._store.node_depth(row.head) if row is not None and row.head is not None else 0
