"""Whose an ``srt import`` scratch session is, and the sweep of those whose import died.

``srt import`` writes into ``srt-import-<hex>-NAME`` and renames it at the end; a
process killed on the way (SIGKILL, power loss) leaves it. Before it creates it, the
import files an *owner record* under the scratch session's name (kind ``PENDING``, scope
the name): the host, its boot and pid namespace (Linux ``/proc``), and the process as
``srt._task.owner`` names it (pid and start time, so a reused pid is not taken for the
import). It deletes the record after the rename, so the session named ``NAME`` carries
none, and a process killed at any point leaves a record naming what it left: the
scratch session, or no session at all (killed before creating it, or after the rename:
the record names a session no longer there).

``reap`` deletes the scratch sessions whose owner is provably dead, with their records:
recorded on this host (same name, boot and pid namespace) by a process other than this
one that no longer runs. One recorded elsewhere (another machine on a shared PostgreSQL,
another container on a shared file) or by a live process is left alone; on Windows,
where a process cannot be probed, none is deleted. A record naming no session goes
once its owner is dead (nothing else is removed). ``srt import`` reaps before it
creates its own scratch session, and ``srt gc`` through the store's sweeps.

An srt before this filed the record after creating the session, under its id (kind
``OWNER``, filed under the session, so it went with it): a process killed between the
two left a scratch session no record named, never reaped. ``reap`` still reads those
records, for the scratch sessions such an srt left.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

from .._task import alive, owner
from ..errors import SessionNotFoundError
from ..store.base import Store
from ..store.owners import session_kind
from ..store.sweeps import declare

__all__ = ["OWNER", "PENDING", "SCRATCH", "forget", "reap", "record"]

#: The start of a scratch session's name.
SCRATCH = "srt-import-"
#: The kind of a scratch session's owner record (scope: the session's name, key ``KEY``),
#: written before the session is created, deleted after its rename.
PENDING = "srt.import.scratch"
#: The kind of the owner records an earlier srt filed under a scratch session's id.
OWNER = session_kind("srt.import.owner")
KEY = "owner"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _host() -> dict[str, str]:
    """This host as far as processes go: two processes with the same values see the
    same pids (``""``: not known here)."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    name = os.uname().nodename if hasattr(os, "uname") else ""
    return {"host": name, "boot": _read("/proc/sys/kernel/random/boot_id"), "pidns": pidns}


def record(store: Store, name: str) -> None:
    """File this process as the owner of scratch session ``name``, before creating it."""
    value = {**_host(), "owner": owner(), "name": name}
    store.put_object(PENDING, name, KEY, json.dumps(value).encode())


def forget(store: Store, name: str) -> None:
    """Remove the owner record of scratch session ``name`` (after its rename, or its
    deletion on a failure)."""
    store.delete_object(PENDING, name, KEY)


def _dead(value: bytes) -> str | None:
    """The scratch session's name if its recorded owner is provably dead, else None."""
    try:
        data: Any = json.loads(value)
        name, who = data["name"], data["owner"]
        here = _host()
        same = all(data[k] == here[k] for k in here)
    except (ValueError, TypeError, KeyError):
        return None
    if sys.platform == "win32" or not same or not here["host"]:
        return None
    if not isinstance(name, str) or not isinstance(who, str) or who == owner():
        return None
    return None if alive(who) else name


def _reap_pending(store: Store, dry_run: bool) -> int:
    """``reap`` over the records filed under scratch sessions' names."""
    count = 0
    for row in list(store.scan_objects(kind=PENDING)):
        name = _dead(row.value)
        if name is None or name != row.scope or not name.startswith(SCRATCH):
            continue
        if store.get_session(name) is not None:
            if not dry_run:
                with contextlib.suppress(SessionNotFoundError):  # (another reaper was first)
                    store.delete_session(name)
            count += 1
        if not dry_run:  # (the record last: a reaper stopped before it, the next finishes)
            store.delete_object(PENDING, name, KEY)
    return count


def _reap_owned(store: Store, dry_run: bool) -> int:
    """``reap`` over the records an earlier srt filed under scratch sessions' ids."""
    count = 0
    for row in list(store.scan_objects(kind=OWNER)):
        name = _dead(row.value)
        if name is None or not name.startswith(SCRATCH):
            continue
        found = store.get_session(name)
        if found is None or str(found.id) != row.scope:
            continue
        if not dry_run:
            try:
                store.delete_session(name)  # (its owner record with it)
            except SessionNotFoundError:
                continue  # (another reaper was first)
        count += 1
    return count


def reap(store: Store, dry_run: bool = False) -> int:
    """Delete (``dry_run``: count) the scratch sessions of imports that died on this
    host (see the module); how many."""
    return _reap_pending(store, dry_run) + _reap_owned(store, dry_run)


_WHY = "of an srt import killed on this host (its process is gone)"
declare(PENDING, _reap_pending, noun="scratch session", why=_WHY)
declare(OWNER, _reap_owned, noun="scratch session", why=_WHY)
