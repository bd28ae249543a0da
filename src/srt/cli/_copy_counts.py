"""What ``srt copy`` really wrote: the destination store, as ``copy_store`` sees it,
counting as it goes.

``copy_store``'s own report counts the messages it sends per session (a message two
forks share counts twice) and every object it rewrites (a re-run "copied" each object
again, unchanged). ``srt copy`` reports what this run added to ``DEST`` instead: the
distinct messages ``DEST`` did not hold before (by hash: each is stored once, however
many sessions share it) and the objects that were new or changed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ..store import Store
    from ..store.checks import NewNode

__all__ = ["Counted"]


class Counted:
    """``store`` (every attribute is the store's) with ``append`` and ``put_object``
    counting: ``messages``, the distinct messages appended that the store did not hold
    when this was made (those its sessions' and objects' chains reached); ``objects``
    and ``objects_present``, the objects written that were new or changed, and those
    written over an equal one (the same value, node and expiry)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._known = _held(store)
        self._new: set[bytes] = set()
        self.objects = 0
        self.objects_present = 0

    @property
    def store(self) -> Store:
        """This, typed as the store it stands for (to hand to ``copy_store``)."""
        return cast("Store", self)

    @property
    def messages(self) -> int:
        return len(self._new)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append(
        self,
        session: int,
        expected: int | None,
        parent: int | None,
        depth: int,
        items: Sequence[NewNode],
        **options: Any,
    ) -> list[int]:
        ids = self._store.append(session, expected, parent, depth, items, **options)
        self._new.update(it.hash for it in items if it.hash not in self._known)
        return ids

    def put_object(
        self,
        kind: str,
        scope: str,
        key: str,
        value: bytes,
        *,
        node: int | None = None,
        expires: float | None = None,
        **options: Any,
    ) -> bool:
        old = self._store.get_object(kind, scope, key)
        written = self._store.put_object(
            kind, scope, key, value, node=node, expires=expires, **options
        )
        if written:
            if old is not None and (old.value, old.node, old.expires) == (value, node, expires):
                self.objects_present += 1
            else:
                self.objects += 1
        return written


def _held(store: Store) -> set[bytes]:
    """The hashes of the messages on the chains of ``store``'s sessions and objects."""
    rows = (store.get_session(info.name) for info in store.list_sessions())
    heads = {row.head for row in rows if row is not None and row.head is not None}
    heads.update(obj.node for obj in store.scan_objects() if obj.node is not None)
    seen: set[bytes] = set()
    for head in heads:
        seen.update(row[1] for row in store.chain(head))
    return seen
