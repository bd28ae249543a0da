"""Whose an ``srt import`` scratch session is, and the sweep of those whose import died.

``srt import`` writes into ``srt-import-<hex>-NAME`` and renames it at the end; a
process killed on the way (SIGKILL, power loss) leaves it. Just after creating it,
the import files an *owner record* under it (kind ``OWNER``, declared as filed under
the session, so it goes with the session): the host, its boot and pid namespace (Linux
``/proc``), and the process as ``srt._task.owner`` names it (pid and start time, so a
reused pid is not taken for the import). It deletes the record before the rename, so
the session named ``NAME`` carries none.

``reap`` deletes the scratch sessions whose owner is provably dead: recorded on this
host (same name, boot and pid namespace) by a process other than this one that no
longer runs. One recorded elsewhere (another machine on a shared PostgreSQL, another
container on a shared file) or by a live process is left alone, and so is one without
a record (made by an srt that kept none, or by a process killed between the
creation and the record);
on Windows, where a process cannot be probed, none is deleted. ``srt import`` reaps
before it creates its own scratch session, and ``srt gc`` through the store's sweeps.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .._task import alive, owner
from ..errors import SessionNotFoundError
from ..store.base import Store
from ..store.owners import session_kind
from ..store.sweeps import declare

__all__ = ["OWNER", "SCRATCH", "forget", "reap", "record"]

#: The start of a scratch session's name.
SCRATCH = "srt-import-"
#: The kind of a scratch session's owner record (scope: the session id, key ``KEY``).
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


def record(store: Store, session_id: int, name: str) -> None:
    """File this process as the owner of scratch session ``name`` (id ``session_id``)."""
    value = {**_host(), "owner": owner(), "name": name}
    store.put_object(OWNER, str(session_id), KEY, json.dumps(value).encode())


def forget(store: Store, session_id: int) -> None:
    """Remove the owner record (before the scratch session takes its real name)."""
    store.delete_object(OWNER, str(session_id), KEY)


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


def reap(store: Store, dry_run: bool = False) -> int:
    """Delete (``dry_run``: count) the scratch sessions of imports that died on this
    host (see the module); how many."""
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


declare(
    OWNER,
    reap,
    noun="scratch session",
    why="of an srt import killed on this host (its process is gone)",
)
