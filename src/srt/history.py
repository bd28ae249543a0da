"""Earlier heads of a session: recorded when the head moves back, listed, restored.

Appending keeps every earlier history reachable (it is a prefix of the new one). A
``rewind``, an ``edit``, a ``compact`` or ``expand``, and a ``restore`` move the head
elsewhere; the head they leave is recorded, in the same transaction as the move, as a
store object (kind ``srt.head``, scoped to the session's id) that names the old head
node. That keeps its chain alive under ``gc`` until the object expires, a *retention
period* after the move, after which ``gc`` frees what nothing else reaches.

The retention is the database's: ``DEFAULT_RETENTION_S`` (7 days) until
``set_retention`` stores another (0: keep no earlier heads); ``Runtime(
history_retention=...)`` overrides it for one runtime. Changing it re-dates the records
of the sessions that exist. Deleting a session drops its records, so ``srt delete``
then ``srt gc`` frees everything only that session reached, earlier heads included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, SessionError
from .store import ObjectPut, Store, heads
from .store.heads import delete_session

__all__ = [
    "DEFAULT_RETENTION_S",
    "KIND",
    "HeadRecord",
    "check_retention",
    "delete_session",
    "find",
    "forget_history",
    "get_retention",
    "head_record",
    "history",
    "set_retention",
]

KIND = heads.KIND
SETTINGS = ("srt.settings", "db", "history_retention")
DEFAULT_RETENTION_S = 7 * 86400.0
ACTIONS = ("rewind", "edit", "compact", "expand", "restore")


@dataclass(frozen=True)
class HeadRecord:
    """An earlier head of a session: ``key`` names it for ``Session.restore``."""

    key: str
    head: int | None  # the node that was the head (None: the session was empty)
    messages: int  # the messages of that history
    at: float  # when the head moved away from it (Unix time)
    action: str  # what moved it: rewind, edit, compact, expand or restore
    expires: float | None  # when gc may free it (if nothing else reaches it)


def check_retention(seconds: Any) -> float:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 <= seconds < float("inf")
    ):
        raise ConfigError("the history retention is a number of seconds, 0 or more")
    return float(seconds)


def get_retention(store: Store) -> float:
    """The database's retention of earlier heads, in seconds."""
    row = store.get_object(*SETTINGS)
    if row is None:
        return DEFAULT_RETENTION_S
    try:
        return check_retention(json.loads(row.value))
    except (ValueError, ConfigError):
        return DEFAULT_RETENTION_S


def head_record(session_id: int, head: int | None, messages: int, action: str,
                retention: float) -> ObjectPut | None:  # fmt: skip
    """The object recording ``head`` as it is left, or ``None`` with no retention."""
    if retention <= 0 or action not in ACTIONS:
        return None
    now = time.time()
    value = json.dumps({"messages": messages, "action": action, "at": now}).encode()
    # A key that sorts by time and is unique per head left at one instant.
    key = f"{int(now * 1e6):014x}.{head if head is not None else 0:x}"
    return ObjectPut(KIND, str(session_id), key, value, node=head, expires=now + retention)


def _records(store: Store, scope: str) -> Iterator[Any]:
    return heads.records(store, scope)


def history(store: Store, session_id: int) -> list[HeadRecord]:
    """The session's recorded earlier heads, newest first (expired ones are gone)."""
    out = []
    for row in _records(store, str(session_id)):
        data = json.loads(row.value)
        out.append(
            HeadRecord(
                row.key,
                row.node,
                int(data["messages"]),
                float(data["at"]),
                str(data["action"]),
                row.expires,
            )
        )
    out.reverse()
    return out


def find(records: list[HeadRecord], key: HeadRecord | str, name: str) -> HeadRecord:
    """The record of ``records`` (session ``name``'s history) that ``key`` names."""
    if not isinstance(key, (HeadRecord, str)):
        raise SessionError(
            f"session {name!r} has no earlier head {key!r:.40}: restore() takes a record "
            f"of history() or its key, got {type(key).__name__}"
        )
    wanted = key.key if isinstance(key, HeadRecord) else key
    for record in records:
        if record.key == wanted:
            return record
    raise SessionError(
        f"session {name!r} has no earlier head {wanted!r} (expired, or never recorded)"
    )


def forget_history(store: Store, session_id: int) -> int:
    """Drop a session's records of earlier heads (its deletion); how many there were."""
    return heads.forget(store, session_id)


def set_retention(store: Store, seconds: float, session_ids: list[int]) -> int:
    """Store the database's retention and re-date the records of ``session_ids``;
    returns how many records were re-dated (a record past the new retention is due
    for ``gc`` now)."""
    seconds = check_retention(seconds)
    store.put_object(*SETTINGS, json.dumps(seconds).encode())
    n = 0
    for sid in session_ids:
        for row in list(_records(store, str(sid))):
            at = float(json.loads(row.value)["at"])
            store.put_object(
                KIND, row.scope, row.key, row.value, node=row.node, expires=at + seconds
            )
            n += 1
    return n
