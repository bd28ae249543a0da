"""The gateway worker's sweep with ``gc_minutes`` runs the texts' and the threads' sweeps
under their own leases, then the store's gc (``orphans.sweep_store``): that gc runs no
sweep again (``Runtime.gc(sweeps=False)``), where it ran both a second time, each a
listing of every text or session and a read of the records, right after the first. The
work is counted in rows the store hands out (every session listed, every text scanned),
on both engines; ``srt gc`` (``Runtime.gc()``) still runs the sweeps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from gateway_support import Harness, harness
from srt.errors import ConfigError
from srt.gateway import orphans
from srt.gateway.texts import TEXT
from srt.store import sweeps

LATER = 3 * 86400.0  # past the threads' and the texts' grace
_TIME = time.time


class _Rows:
    """Rows the store hands out: sessions listed, objects of ``TEXT`` scanned."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sessions = self.texts = 0
        listing, scan = store.list_sessions, store.scan_objects

        def list_sessions() -> Any:
            got = listing()
            self.sessions += len(got)
            return got

        def scan_objects(*, batch: int = 500, kind: str | None = None) -> Iterator[Any]:
            for row in scan(batch=batch, kind=kind):
                if row.kind == TEXT:
                    self.texts += 1
                yield row

        monkeypatch.setattr(store, "list_sessions", list_sessions)
        monkeypatch.setattr(store, "scan_objects", scan_objects)


@pytest.fixture
def gw(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(store_url, monkeypatch, gc_minutes=60) as h:
        yield h


def _responses(h: Harness, n: int) -> None:
    """``n`` responses, each its own thread (a session) and instructions (a text)."""
    c = h.client()
    for i in range(n):
        c.responses.create(model="m", input=f"turn {i}", instructions=f"be brief {i}")


def test_the_workers_gc_does_not_sweep_again(gw: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    _responses(gw, 5)
    store = gw.rt.store
    sessions = len(store.list_sessions())
    texts = sum(1 for r in store.scan_objects(kind=TEXT) if r.kind == TEXT)
    assert (sessions, texts) == (5, 5)
    rows = _Rows(store, monkeypatch)
    monkeypatch.setattr(time, "time", lambda: _TIME() + LATER)
    gw.app.state.srt.sweep()  # texts, threads, then gc: each its lease taken
    for kind in (TEXT, orphans.THREAD, orphans.GC):
        assert store.get_object(sweeps.LEASE, "", kind) is not None
    # each listed once (it was three times each: the sweep's, and gc's look for a
    # kind it holds then its sweep of it)
    assert (rows.sessions, rows.texts) == (sessions, texts)


def test_srt_gc_still_sweeps(gw: Harness, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _responses(gw, 2)
    with srt.Runtime(store_url) as rt:
        kinds = dict(rt.gc().swept)
        assert set(kinds) == {TEXT, orphans.THREAD}
        assert rt.gc(sweeps=False).swept == ()
        with pytest.raises(ConfigError, match="sweeps must be True or False, got str"):
            rt.gc(sweeps="no")  # type: ignore[arg-type]
