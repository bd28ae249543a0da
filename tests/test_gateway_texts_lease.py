"""The workers serving one store sweep its gateway texts once an interval between them,
on both engines: the first to ask takes the store's lease (``store.sweeps.take``) and the
others read nothing until it expires, also when its holder died mid-sweep. A sweep reads
the records only while a text old enough to go is not yet known to be named."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from gateway_support import Harness, harness
from srt.gateway import records as rc
from srt.gateway.texts import SWEEP_S
from srt.store import sweeps

NAMING = (rc.RESPONSE, rc.CONVERSATION)
_TIME = time.time


class Worker:
    """A second gateway worker's records on the same store (its own runtime), counting
    the rows its store's scans yield, by kind."""

    def __init__(self, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.records = rc.Records(rt.store, text_grace_s=0.0)
        self.read: dict[str | None, int] = {}
        real = rt.store.scan_objects

        def scan_objects(**kw: Any) -> Iterator[Any]:
            kind = kw.get("kind")
            self.read.setdefault(kind, 0)
            for row in real(**kw):
                self.read[kind] += 1
                yield row

        monkeypatch.setattr(rt.store, "scan_objects", scan_objects)


@pytest.fixture
def gw(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(store_url, monkeypatch) as h:
        h.gateway.records.texts.grace_s = 0.0  # every text unused from now on is old
        yield h


def _unnamed(h: Harness, instructions: str) -> None:
    """A text no record names (its response made and deleted)."""
    c = h.client()
    c.responses.delete(c.responses.create(model="m", input="q", instructions=instructions).id)


def _later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the clock (the store's expiry checks and the leases') ``seconds`` ahead."""
    monkeypatch.setattr(time, "time", lambda: _TIME() + seconds)


def test_one_worker_sweeps_an_interval(
    gw: Harness, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unnamed(gw, "one")
    with srt.Runtime(store_url) as rt:
        other = Worker(rt, monkeypatch)
        assert gw.gateway.records.sweep_texts() == 1  # the first takes the lease
        _unnamed(gw, "two")
        assert other.records.sweep_texts() is None  # the other reads nothing
        assert other.read == {}
        assert gw.gateway.records.sweep_texts() is None  # nor the holder, this interval
        lease = rt.store.get_object(sweeps.LEASE, "", rc.TEXT)
        assert lease is not None and lease.expires is not None
        assert lease.expires - lease.created == pytest.approx(SWEEP_S)
        _later(monkeypatch, SWEEP_S + 1)  # the next interval: whoever asks first
        assert other.records.sweep_texts() == 1
        assert other.read[rc.TEXT] == 1
        assert gw.gateway.records.sweep_texts() is None
        assert {r.key for r in rt.store.scan_objects(kind=rc.TEXT)} == set()


def test_a_crashed_holders_lease_expires(
    gw: Harness, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unnamed(gw, "left")

    def crash(*args: Any, **kw: Any) -> int:
        raise RuntimeError("the worker died mid-sweep")

    with srt.Runtime(store_url) as rt:
        other = Worker(rt, monkeypatch)
        with monkeypatch.context() as m:
            m.setattr(gw.gateway.records.texts, "collect", crash)
            with pytest.raises(RuntimeError):
                gw.gateway.records.sweep_texts()  # took the lease, swept nothing
        assert other.records.sweep_texts() is None
        assert [r.key for r in rt.store.scan_objects(kind=rc.TEXT)]  # still there
        _later(monkeypatch, SWEEP_S - 60)
        assert other.records.sweep_texts() is None  # held to the interval's end
        _later(monkeypatch, SWEEP_S + 1)
        assert other.records.sweep_texts() == 1
        assert not list(rt.store.scan_objects(kind=rc.TEXT))


def test_a_sweep_reads_records_only_for_old_unnamed_texts(
    gw: Harness, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = gw.client()
    for i in range(5):
        c.responses.create(model="m", input=f"q{i}", instructions="shared")
    with srt.Runtime(store_url) as rt:
        sweeper = Worker(rt, monkeypatch)
        texts = sweeper.records.texts
        texts.grace_s = 3600.0  # every text was used within it: no record is read
        assert texts.collect(NAMING) == 0
        assert sweeper.read == {rc.TEXT: 1}
        texts.grace_s = 0.0  # old, and named by the first record read: reading stops
        sweeper.read.clear()
        assert texts.collect(NAMING) == 0
        assert sweeper.read == {rc.TEXT: 1, rc.RESPONSE: 1}
        _unnamed(gw, "gone")  # one text no record names: every record is read
        sweeper.read.clear()
        assert texts.collect(NAMING, dry_run=True) == 1
        assert sweeper.read == {rc.TEXT: 2, rc.RESPONSE: 5, rc.CONVERSATION: 0}
        assert texts.collect(NAMING) == 1
        assert len(list(rt.store.scan_objects(kind=rc.TEXT))) == 1  # "shared" stays
