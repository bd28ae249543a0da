"""Threads no record names (``gw.thread``), and their collection.

A DELETE at the gateway drops the threads (sessions ``gw/<tenant>/<id>``) that nothing
live reaches any more (``Threads.drop``, ``Placer.retire``). A store written by an older
gateway still holds such threads: those of responses deleted or expired
(``response_retention_days``) before that, and the sessions a conversation left when new
instructions or a deleted item moved it to another; so does a worker killed in a turn,
between making a thread and writing the record that names it. ``collect`` deletes the
threads that no live response or conversation record names, so ``gc`` frees what they
alone reached.

A thread is made before the record that names it: a new response's session when its
turn starts, its record in the turn's commit (without streaming) or before its stream; a
conversation's session, then its record; a re-rooted or forked history's session, then
the record naming it (in the commit, or before the stream). So a thread no record names
yet may be a turn's under way. ``collect`` takes only a thread unchanged (its session's
``updated`` time: made, or its head moved) for ``GRACE_S``, far longer than a turn
lasts, and deletes it only if it is still unchanged when it does (read again just
before). A turn working on an old thread no record names is one whose record went while
it ran (its previous response or its conversation deleted): its commit then finds its
session gone, and the client is told that its previous response or conversation is no
longer there (``service.Gateway``), as if the DELETE had taken the thread itself.

The sessions are listed first; the records are read only while some thread old enough
to go is not yet known to be named (a store whose old threads are all named reads every
record, one whose threads are all recent reads none). A tenant with a record that cannot
be read keeps all its threads (what it names is not known). ``srt gc`` (``Runtime.gc``)
runs it (``store.sweeps``: the store holds a session named ``gw/...``), and the workers
serving a store once in each ``texts.SWEEP_S``, the one that takes the lease (``sweep``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from typing import TYPE_CHECKING

from ..errors import ConflictError, SessionNotFoundError
from ..store import sweeps
from ..store.base import Store
from ..store.heads import delete_session
from ..store.reports import GcReport
from .records import CONVERSATION, RESPONSE, thread_name
from .texts import SWEEP_S

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["GC", "GRACE_S", "THREAD", "collect", "sweep", "sweep_store"]

log = logging.getLogger("srt.gateway")

#: The kind of the sweep (``store.sweeps``): it removes sessions, not objects.
THREAD = "gw.thread"
#: The key of the lease on the workers' collection of what no session reaches (``gc``).
GC = "gw.gc"
#: A thread no record names is kept this long after it last changed.
GRACE_S = 86400.0

#: The threads the gateway makes: a response's or a conversation's, and the history a
#: conversation was moved to (``<conversation>~<suffix>``); the tenant is group 1.
_THREAD = re.compile(r"gw/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/(?:resp|conv)_[0-9a-f]+(?:~[0-9a-f]+)?")


def collect(store: Store, *, dry_run: bool = False, grace_s: float = GRACE_S) -> int:
    """Delete the threads no live response or conversation names and unchanged for
    ``grace_s`` (see the module); how many went (with ``dry_run``, how many would go:
    nothing is deleted)."""
    before = time.time() - grace_s
    old: dict[str, dict[str, float]] = {}  # tenant -> {its old thread: its updated time}
    for info in store.list_sessions():
        found = _THREAD.fullmatch(info.name)
        if found is not None and info.updated < before:
            old.setdefault(found[1], {})[info.name] = info.updated
    for kind in (RESPONSE, CONVERSATION):
        if old:
            _spare(store, kind, old)
    if dry_run:
        return sum(map(len, old.values()))
    gone = 0
    for _tenant, names in sorted(old.items()):
        for name, updated in sorted(names.items()):
            row = store.get_session(name)
            if row is None or row.updated != updated:
                continue  # gone meanwhile, or changed: a turn works on it
            # (only at the head checked: a turn that lands meanwhile keeps the thread)
            with contextlib.suppress(SessionNotFoundError, ConflictError):
                delete_session(store, name, if_head=row.head)
                gone += 1
    if gone:
        log.info("threads: %d no record names deleted", gone)
    return gone


def _spare(store: Store, kind: str, old: dict[str, dict[str, float]]) -> None:
    """Take out of ``old`` the threads a live record of ``kind`` names (all of a tenant's
    if one of its records cannot be read); stops reading once ``old`` is empty."""
    with sweeps.scanning(store, kind) as rows:
        for row in rows:
            names = old.get(row.scope)
            if names is None:
                continue
            try:
                rec = json.loads(row.value)
                thread = rec.get("thread", thread_name(row.scope, row.key))
                if not isinstance(thread, str):
                    raise ValueError("'thread' is not a string")
            except (ValueError, AttributeError) as exc:
                log.warning("%s %s: its record cannot be read (%s)", kind, row.key, exc)
                names.clear()
            else:
                names.pop(thread, None)
            if not names:
                del old[row.scope]
                if not old:
                    return


def sweep(store: Store, every_s: float = SWEEP_S) -> int | None:
    """``collect``, run once in each ``every_s`` by one of the workers serving the store,
    whichever takes the store's lease first (``sweeps.take``); None for the others."""
    if not sweeps.take(store, THREAD, every_s):
        return None
    return collect(store)


def sweep_store(rt: Runtime, every_s: float) -> GcReport | None:
    """What ``srt gc`` does but its sweeps (``Runtime.gc(sweeps=False)``: the nodes and
    messages no session or object reaches any more, the deleted and expired threads'
    history, zeroed on SQLite), once in each ``every_s`` by the worker that takes the
    store's lease on it (``sweeps.take``, key ``GC``); None for the others. The worker's
    sweep has just run the texts' and the threads' (``records.sweep_texts``, ``sweep``),
    each under its own lease; run again here, each listed every text or session twice
    more (``sweeps_for``'s look for one, then the sweep) and read the records again."""
    if not sweeps.take(rt.store, GC, every_s):
        return None
    report = rt.gc(sweeps=False)
    if report.nodes or report.messages:
        log.info("gc: %d nodes, %d messages collected", report.nodes, report.messages)
    return report


def _sweep(store: Store, dry_run: bool) -> int:
    """``srt gc``'s sweep of the threads (``store.sweeps``)."""
    return collect(store, dry_run=dry_run)


sweeps.declare(
    THREAD,
    _sweep,
    noun="gateway thread",
    why=f"that no live response or conversation names, unchanged for {GRACE_S / 3600:g} hours",
)
