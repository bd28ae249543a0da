"""A session's records of its earlier heads, as the store files them: objects of kind
``KIND`` scoped to the session's id (``srt.history`` writes, lists and restores them).

Here, below ``srt.history``, so that the store knows the kind: it is declared filed
under a session (``store.owners``), so ``Store.delete_session`` drops a session's
records in the transaction that deletes its row, and ``gc`` frees any left under an id
no session has.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from .base import ANY_HEAD, ObjectRow, Store
from .owners import session_kind

__all__ = ["KIND", "delete_session", "forget", "records"]

KIND = session_kind("srt.head")


def records(store: Store, scope: str) -> Iterator[ObjectRow]:
    """The records of the session whose id is ``scope``, oldest first."""
    after: str | None = None
    while True:
        page = store.list_objects(KIND, scope, after=after, limit=500)
        yield from page
        if len(page) < 500:
            return
        after = page[-1].key


def forget(store: Store, session_id: int) -> int:
    """Drop a session's records of earlier heads (its deletion); how many there were."""
    keys = [row.key for row in records(store, str(session_id))]
    for key in keys:
        store.delete_object(KIND, str(session_id), key)
    return len(keys)


def delete_session(
    store: Store, name: str, *, if_head: int | Literal["any"] | None = ANY_HEAD
) -> None:
    """Delete session ``name``'s head row and, in the same transaction, its records of
    earlier heads (``Store.delete_session``; its messages stay for any fork that shares
    them, ``gc`` frees the rest). With ``if_head``, only while its head is still that
    one (``ConflictError`` otherwise, and nothing is deleted)."""
    store.delete_session(name, if_head=if_head)
