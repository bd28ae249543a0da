"""How ``SrtSession`` replaces a branch's history in one transaction: ``replace_items``,
which the Agents SDK's ``OpenAIResponsesCompactionSession`` calls (as
``_atomic_replace_items``, the hook the SDK's own stores offer) in place of
``clear_session()`` then ``add_items(compacted)``.

That pair is wrong for ``SrtSession`` twice over: ``clear_session`` empties every
branch, as the SDK's ``AdvancedSQLiteSession`` does, so compacting on a branch would lose
the others and land the summary on ``main``; and a crash or a failed write between the
two leaves the session empty. ``replace_items`` moves the current branch's head to the
new items and writes their patch entries in one append: the store holds the old history
or the new one, and other branches and forks keep theirs (a fork that shared a replaced
place is given the patch entry it saw there first, as when the branch pops below it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import _core
from ..errors import ConflictError, InvalidMessageError
from ..store.base import ObjectPut
from . import _append
from ._itemstore import prepare

__all__ = ["Replace"]

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

    def _replace(self: Any, items: list[Any]) -> None:
        prepared = prepare(self._rt, items)  # (a bad item: nothing is written)
        store = self._store
        for _ in range(_RETRIES):
            self._items()
            head = self._cache_key[0] if self._cache_key is not None else None
            puts = self._patch_puts(0, [(p[1], p[2]) for p in prepared])
            objects = [ObjectPut(_ITEM, self.session_id, k, v) for k, v in puts.items()]
            bodies = [p[3] for p in prepared]
            try:
                if bodies:
                    _append.append(
                        self._rt, self._s.name, None, 0, _core.ROOT, bodies, objects, expected=head
                    )
                else:
                    row = store.get_session(self._s.name)
                    if row is None or row.head != head:
                        raise ConflictError("the session moved")
                    store.move_head(row.id, head, None)
            except ConflictError:
                self._cache = None
                continue
            self._patches.update(puts)
            self._cache, self._cache_key, self._users = None, None, None
            self._s.refresh()
            return
        raise ConflictError(f"could not replace session {self.session_id!r}: it kept moving")
