"""Sweeps: garbage among a kind's objects that only the layer defining the kind can tell.

``Store.gc`` removes the objects past their ``expires`` time and those filed under a
session no session has (``store.owners``); which other objects of a kind are garbage
(a gateway text no live record names) only the layer that defines the kind knows. That
layer declares a sweep where it defines the kind::

    declare(TEXT, collect, noun="gateway text", why="that no live record names ...")

``collect(store, dry_run)`` removes (or, with ``dry_run``, counts) that garbage and
returns how many objects it was. ``Runtime.gc`` (``srt gc``) runs, before the store's
own gc, the sweep of every kind the store holds a live object of, and reports the counts
by kind (``GcReport.swept``).

A layer that ``import srt`` does not load (the gateway) names the module declaring its
sweep in ``LAZY`` (kind -> module): ``sweeps_for`` imports it only when the store holds
an object of that kind, so a store without one pays one look-up per kind and ``import
srt`` nothing. A sweep of sessions rather than objects (the gateway's threads) names its
kind and the start of their names in ``SESSIONS``: it runs when the store holds such a
session (one listing of the sessions, handed to its sweep: ``srt gc`` lists them once). A
sweep runs beside the writers of its kind (a
gateway serving the store) and must be safe against them: the store gives it
``delete_object(written_before=...)``.

Where several processes serve one store (a gateway's workers), each running a kind's
sweep on a timer, ``take`` makes it one sweep per interval per store: the first process
to ask in an interval takes a lease, an object of kind ``LEASE`` written only if none is
live (``put_object(if_absent=True)``) and expiring at the interval's end; the others are
refused until then. A holder that dies mid-sweep holds it no longer than that.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from .._types import SessionInfo
from .base import ObjectRow, Store

__all__ = [
    "LAZY",
    "LEASE",
    "SESSIONS",
    "Sweep",
    "declare",
    "declared",
    "scanning",
    "sweeps_for",
    "take",
]


@dataclass(frozen=True)
class Sweep:
    """The sweep of one kind: ``collect(store, dry_run) -> count``; ``noun`` and ``why``
    say what it removes (``srt gc``: "removed 3 gateway texts <why>")."""

    kind: str
    collect: Callable[[Store, bool], int]
    noun: str
    why: str


_SWEEPS: dict[str, Sweep] = {}

#: Kinds whose sweep is declared by a module ``import srt`` does not load: kind -> module.
LAZY: dict[str, str] = {"gw.text": "srt.gateway.records", "gw.thread": "srt.gateway.orphans"}
#: Kinds whose sweep removes sessions, not objects: kind -> the start of their names.
SESSIONS: dict[str, str] = {"gw.thread": "gw/"}


def declare(kind: str, collect: Callable[[Store, bool], int], *, noun: str, why: str) -> None:
    """Declare the sweep of ``kind`` (see the module); a second declaration replaces it."""
    _SWEEPS[kind] = Sweep(kind, collect, noun, why)


def declared(kind: str) -> Sweep | None:
    """The sweep declared for ``kind``, if any (without importing ``LAZY``'s modules)."""
    return _SWEEPS.get(kind)


#: The kind of the leases on sweeping a kind (``take``): scope "", key the swept kind.
LEASE = "srt.sweep"


def take(store: Store, kind: str, every_s: float) -> bool:
    """Take the lease on sweeping ``kind`` for ``every_s`` seconds from now: True for the
    first caller (any process) while no lease on it is live, False for the others."""
    now = time.time()
    holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": now})
    return store.put_object(
        LEASE, "", kind, holder.encode("utf-8"), expires=now + every_s, if_absent=True
    )


@contextlib.contextmanager
def scanning(store: Store, kind: str, batch: int = 500) -> Iterator[Iterator[ObjectRow]]:
    """``store.scan_objects(kind=kind)``, closed at the block's end: a reader that stops
    early ends the scan then, not when the generator is garbage."""
    rows = store.scan_objects(kind=kind, batch=batch)
    try:
        yield iter(rows)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


class _Listed:
    """``store``, whose first ``list_sessions()`` answers with the listing ``sweeps_for``
    made (a sweep of sessions lists them first: it was the second listing of every
    session in one ``srt gc``); everything else, and any later listing, is the store's.
    A sweep reads each session again before it deletes it, as it must anyway with
    writers going on (``gateway.orphans``)."""

    def __init__(self, store: Store, listing: list[SessionInfo]) -> None:
        self._store = store
        self._listing: list[SessionInfo] | None = listing

    def list_sessions(self) -> list[SessionInfo]:
        found, self._listing = self._listing, None
        return self._store.list_sessions() if found is None else found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _listed(sweep: Sweep, listing: list[SessionInfo]) -> Sweep:
    """``sweep``, whose ``collect`` gets the store with ``listing`` (``_Listed``)."""

    def collect(store: Store, dry_run: bool) -> int:
        return sweep.collect(cast(Store, _Listed(store, listing)), dry_run)

    return Sweep(sweep.kind, collect, sweep.noun, sweep.why)


def sweeps_for(store: Store) -> list[Sweep]:
    """The sweeps of the kinds ``store`` holds a live object (``SESSIONS``: a session)
    of, by kind (importing the ``LAZY`` module of such a kind first). The sessions are
    listed at most once, here, and a sweep of sessions is handed that listing."""
    found = []
    listing: list[SessionInfo] | None = None
    for kind in sorted({*_SWEEPS, *LAZY}):
        prefix = SESSIONS.get(kind)
        if prefix is not None:
            if listing is None:
                listing = store.list_sessions()
            if not any(s.name.startswith(prefix) for s in listing):
                continue
        else:
            with scanning(store, kind, batch=1) as rows:
                if next(rows, None) is None:
                    continue
        if kind not in _SWEEPS:
            importlib.import_module(LAZY[kind])
        sweep = _SWEEPS.get(kind)
        if sweep is not None:
            found.append(sweep if prefix is None or listing is None else _listed(sweep, listing))
    return found
