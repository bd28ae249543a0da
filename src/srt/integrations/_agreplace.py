"""How ``SrtSession`` replaces a branch's history, or the newest part of it, in one
transaction: ``replace_items``, which the Agents SDK's ``OpenAIResponsesCompactionSession``
calls (as ``_atomic_replace_items``, the hook the SDK's own stores offer) in place of
``clear_session()`` then ``add_items(compacted)``; and ``_get_compaction_snapshot``, the
SDK's hook for automatic compaction of only the items the model saw.

That pair is wrong for ``SrtSession`` twice over: ``clear_session`` empties every
branch, as the SDK's ``AdvancedSQLiteSession`` does, so compacting on a branch would lose
the others and land the summary on ``main``; and a crash or a failed write between the
two leaves the session empty. ``replace_items`` moves the current branch's head to the
new items and writes their patch entries in one append: the store holds the old history
or the new one, and other branches and forks keep theirs (a fork that shared a replaced
place is given the patch entry it saw there first, as when the branch pops below it).

The snapshot is the branch's last ``limit`` items and its head; its ``replace_suffix``
replaces the items from one of them on, in the same way, and only if the head has not
moved since (``False`` otherwise, as the SDK's ``SQLiteSession`` does). Without it the
SDK compacts only a history it saw whole, so a session whose model sees its last items
(``SessionSettings(limit)``) was never compacted.

A replacement also moves the fork points it invalidates: the branch's own (``at``, the
items it shares with its parent) and its forks' come down to the items the new history
still shares with the old one, each fork first taking a copy of the patch entries it saw
through the branch above that point (as ``delete_branch`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agents.memory.session import _CompactionSnapshot

from .. import _core
from ..errors import ConflictError, InvalidMessageError
from ..store.base import ObjectPut
from . import _append
from ._itemstore import Branch, item_key, prepare, visible

__all__ = ["Replace"]

_BRANCH = "agents.branch"
_ITEM = "agents.item"
_RETRIES = 64


class Replace:
    """The history replacement of ``SrtSession`` (a mixin: see the module docstring; its
    methods' ``self`` is an ``SrtSession``, which this module cannot import: a cycle)."""

    # (the read cache's attributes this sets, typed by ``SrtSession``)
    _cache: Any
    _cache_key: Any
    _users: Any

    async def replace_items(self: Any, items: list[Any], *, wrapper: Any = None) -> None:
        """Make ``items`` the whole history of the current branch, in one transaction
        (other branches, and forks of this one, keep theirs)."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise InvalidMessageError(
                f"replace_items takes a list of Responses items, got {type(items).__name__}"
            )
        await self._change(self._replace, list(items))

    async def _atomic_replace_items(self, items: list[Any]) -> bool:
        """The Agents SDK's hook for a store that replaces history atomically."""
        await self.replace_items(items)
        return True

    async def _get_compaction_snapshot(
        self: Any, limit: int, *, prune_prefix: Any = None
    ) -> _CompactionSnapshot | None:
        """The Agents SDK's hook for automatic compaction: the last ``limit`` items of the
        current branch, whether they are all of it, and ``replace_suffix(start, output)``
        that puts ``output`` in place of those from ``start`` on (``False``, nothing
        written, if the branch moved since). ``None`` (the SDK then needs the whole
        history) when asked to prune expired items first, which srt items never are."""
        if prune_prefix is not None:
            return None

        def read() -> tuple[list[Any], int, int | None]:
            cached = self._items()
            head = self._cache_key[0] if self._cache_key is not None else None
            n = min(max(limit, 0), len(cached))
            return cached.tail(n).decode(), len(cached) - n, head

        items, base, head = await self._run(read)

        async def replace_suffix(start: int, output: list[Any]) -> bool:
            if not 0 <= start < len(items):
                return False
            done: bool = await self._change(self._replace_after, base + start, head, output)
            return done

        return _CompactionSnapshot(items, base == 0, replace_suffix)

    def _replace(self: Any, items: list[Any]) -> None:
        prepared = prepare(self._rt, items)  # (a bad item: nothing is written)
        for _ in range(_RETRIES):
            self._items()
            head = self._cache_key[0] if self._cache_key is not None else None
            if self._put_suffix(0, head, prepared):
                return
        raise ConflictError(f"could not replace session {self.session_id!r}: it kept moving")

    def _replace_after(self: Any, pos: int, head: int | None, items: list[Any]) -> bool:
        """Items ``pos`` on of the current branch replaced by ``items`` if its head is
        still ``head`` (``False`` once it is not); refused only by the marks (another
        handle's pop and add of the same items, or its ledger rows), it goes again."""
        prepared = prepare(self._rt, items)
        for _ in range(_RETRIES):
            self._items()
            now = self._cache_key[0] if self._cache_key is not None else None
            if now != head or pos > len(self._cache):
                return False
            if self._put_suffix(pos, head, prepared):
                return True
        raise ConflictError(f"could not replace in session {self.session_id!r}: it kept moving")

    def _put_suffix(self: Any, pos: int, head: int | None, prepared: list[Any]) -> bool:
        """Replace items ``pos`` on of the cached branch (head ``head``) by ``prepared``;
        ``False`` (nothing written) if the head moved."""
        store, cached = self._store, self._cache
        puts = self._patch_puts(pos, [(p[1], p[2]) for p in prepared])
        bodies = [p[3] for p in prepared]
        node, prefix = (cached.ids[pos - 1], cached.prefixes[pos - 1]) if pos else (None, None)
        prefix = prefix if prefix is not None else _core.ROOT
        # The places where the new history is still the old one (same prefix hash).
        new = store.hashing.chain_many(prefix, [store.hashing.digest(b) for b in bodies])
        shared = pos
        while shared - pos < len(new) and shared < len(cached):
            if new[shared - pos] != cached.prefixes[shared]:
                break
            shared += 1
        records = self._lower_forks(shared, puts)
        objects = [ObjectPut(_ITEM, self.session_id, k, v) for k, v in puts.items()]
        objects += [ObjectPut(_BRANCH, self.session_id, b.name, b.encode()) for b in records]
        # (the items it replaces: popped, for usage; the marks in the same write)
        objects += self._usage_cut(cached, self._users, shared)
        try:  # (no bodies: the head moves down to ``node``, with the objects)
            _append.append(
                self._rt, self._s.name, node, pos, prefix, bodies, objects, expected=head
            )
        except ConflictError:
            self._cache = None
            return False
        self._patches.update(puts)
        for b in records:
            self._branches[b.name] = b
            if b.name != self._branch:
                self._touch(b.session)  # (its handles read their copied entries)
        self._cache, self._cache_key, self._users = None, None, None
        self._s.refresh()
        return True

    def _lower_forks(self: Any, shared: int, puts: dict[str, bytes]) -> list[Branch]:
        """The records of the current branch and its forks whose fork point passes
        ``shared`` (the places the new history keeps), brought down to it; into ``puts``,
        the patch entries each then needs a copy of (the ones it saw above ``shared``)."""
        seen = {**self._patches, **puts}
        out = []
        for b in self._branches.values():
            if b.at <= shared or (b.name != self._branch and b.parent != self._branch):
                continue
            sees = visible(seen, self._branches, b.name)
            for pos in range(shared, b.at):
                key = item_key(b.name, pos)
                if key not in seen and pos in sees:
                    puts[key] = seen[key] = sees[pos]
            out.append(Branch(b.name, b.session, b.parent, shared, b.created))
        return out
