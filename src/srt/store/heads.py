"""A session's records of its earlier heads, as the store files them: objects of kind
``KIND`` scoped to the session's id (``srt.history`` writes, lists and restores them).

Here, below ``srt.history``, so that whatever deletes a session through the Store
protocol (``srt.history``, ``srt copy``'s scratch sessions) drops its records with it,
and whatever copies them (``srt copy``) knows them: a record under an id no session has
would be listed by the next session given that id.
"""

from __future__ import annotations

from collections.abc import Iterator

from .base import ObjectRow, Store

__all__ = ["KIND", "delete_session", "forget", "records"]

KIND = "srt.head"


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


def delete_session(store: Store, name: str) -> None:
    """Delete session ``name``'s head row and its records of earlier heads (its messages
    stay for any fork that shares them; ``gc`` frees the rest)."""
    row = store.get_session(name)
    if row is not None:
        # Records first: a failure after them leaves a session without earlier heads,
        # never records without their session, which a new session given the same id
        # (SQLite reuses the highest) would list and restore as its own.
        forget(store, row.id)
    store.delete_session(name)
    if row is not None:
        forget(store, row.id)  # any recorded by a move in the meantime
