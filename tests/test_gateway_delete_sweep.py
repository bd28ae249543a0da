"""Threads an older gateway left, that no live record names, go with ``srt gc``
(``Runtime.gc``) and the workers' hourly sweep (``gateway.orphans``), on both engines:
the thread of a response whose record was deleted without it (as a DELETE did before
threads went with it) or expired, and a conversation's earlier history that no record
names; the messages only they reached are then freed (no byte of them left in a SQLite
file). Live threads, young ones (a turn's under way: ``test_gateway_delete_sweep_races``)
and sessions that are not the gateway's stay."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from gateway_support import Harness, harness, srt_cli
from srt.gateway import orphans
from srt.gateway import records as rc
from srt.gateway.texts import SWEEP_S
from srt.store import sweeps
from srt.store.reports import GcReport
from support import NOTHING, found_in_files

LATER = 3 * 86400.0  # past the threads' grace and the texts'
_TIME = time.time


@pytest.fixture
def gw(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(store_url, monkeypatch) as h:
        yield h


def _gc(url: str, monkeypatch: pytest.MonkeyPatch, *, dry_run: bool = False) -> GcReport:
    """``srt gc`` from another runtime, the clock ``LATER`` ahead."""
    with srt.Runtime(url) as rt, monkeypatch.context() as m:
        m.setattr(time, "time", lambda: _TIME() + LATER)
        return rt.gc(dry_run=dry_run)


def _sessions(url: str) -> set[str]:
    with srt.Runtime(url) as rt:
        return {s.name for s in rt.sessions()}


def _stray(rt: srt.Runtime, name: str, text: str) -> None:
    """A thread session no record names, written through the store API as an older
    gateway left it (a conversation's earlier history)."""
    reply = {"role": "assistant", "content": f"noted: {text}"}
    rt.session(name).append({"role": "user", "content": text}, reply)


def _unrecorded(h: Harness, rid: str) -> None:
    """Delete a response's record only, as a DELETE did before its thread went with it."""
    assert h.rt.store.delete_object(rc.RESPONSE, "default", rid)


def _expiring(h: Harness, rid: str) -> None:
    """Make a response expire in a day (``response_retention_days = 1``)."""
    row = h.rt.store.get_object(rc.RESPONSE, "default", rid)
    assert row is not None
    h.rt.store.put_object(
        rc.RESPONSE, "default", rid, row.value, node=row.node, expires=_TIME() + 86400.0
    )


def test_threads_no_record_names_go(gw: Harness, store_url: str, monkeypatch: Any) -> None:
    c = gw.client()
    live1 = c.responses.create(model="m", input="live one")
    live2 = c.responses.create(model="m", input="live two", previous_response_id=live1.id)
    conv = c.conversations.create(items=[{"role": "user", "content": "conv item"}])
    c.responses.create(model="m", input="conv turn", conversation=conv.id)
    deleted = c.responses.create(model="m", input="deleted long ago")
    expired = c.responses.create(model="m", input="expired")
    _unrecorded(gw, deleted.id)
    _expiring(gw, expired.id)
    earlier = f"gw/default/{conv.id}~0123456789ab"
    _stray(gw.rt, earlier, "an earlier history")
    _stray(gw.rt, "gw/acme/resp_" + "ab" * 16, "another tenant's")
    _stray(gw.rt, "notes", "not the gateway's")
    _stray(gw.rt, "gw/notes", "not a thread the gateway makes")
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "stateless"}])
    orphans_ = {
        f"gw/default/{deleted.id}",
        f"gw/default/{expired.id}",
        earlier,
        "gw/acme/resp_" + "ab" * 16,
    }
    before = _sessions(store_url)
    assert orphans_ < before and "gw/default/chat" in before

    dry = _gc(store_url, monkeypatch, dry_run=True)
    assert dict(dry.swept)[orphans.THREAD] == 4
    assert _sessions(store_url) == before  # a dry run changes nothing
    report = _gc(store_url, monkeypatch)
    assert dict(report.swept)[orphans.THREAD] == 4
    assert (report.nodes, report.messages) == (8, 8)  # the four threads' two each
    assert _sessions(store_url) == before - orphans_
    assert _gc(store_url, monkeypatch).swept == ((orphans.THREAD, 0),)

    # what lives reads back whole and goes on
    assert [i.content[0].text for i in c.responses.input_items.list(live2.id, order="asc").data][
        0::2
    ] == ["live one", "live two"]  # type: ignore[union-attr]
    on = c.responses.create(model="m", input="three", previous_response_id=live2.id)
    assert on.output_text
    assert len(c.conversations.items.list(conv.id).data) == 3
    assert c.responses.create(model="m", input="again", conversation=conv.id).output_text


def test_a_young_thread_stays(gw: Harness, store_url: str) -> None:
    """A thread changed within the grace period (a turn may be about to write the
    record naming it) is not taken, nor counted."""
    young = "gw/default/resp_" + "cd" * 16
    _stray(gw.rt, young, "made a moment ago")
    with srt.Runtime(store_url) as rt:
        assert orphans.collect(rt.store, dry_run=True) == 0
        assert dict(rt.gc().swept)[orphans.THREAD] == 0
    assert young in _sessions(store_url)
    with srt.Runtime(store_url) as rt:
        assert orphans.collect(rt.store, grace_s=0.0) == 1  # past it, it goes
    assert young not in _sessions(store_url)


def test_a_tenant_with_an_unreadable_record_keeps_its_threads(
    gw: Harness, store_url: str, monkeypatch: Any
) -> None:
    c = gw.client()
    mine = c.responses.create(model="m", input="mine")
    _unrecorded(gw, mine.id)
    gw.rt.store.put_object(rc.RESPONSE, "default", "resp_" + "ee" * 16, b"[1, 2]")
    other = "gw/acme/conv_" + "12" * 16
    _stray(gw.rt, other, "acme's")
    report = _gc(store_url, monkeypatch)
    assert dict(report.swept)[orphans.THREAD] == 1
    left = _sessions(store_url)
    assert f"gw/default/{mine.id}" in left and other not in left


def test_workers_sweep_threads_one_an_interval(
    gw: Harness, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly sweep of the workers serving a store: the first to ask takes the
    lease (and sweeps the texts and the threads), the others sweep nothing until it
    expires."""
    c = gw.client()
    first = c.responses.create(model="m", input="first")
    _unrecorded(gw, first.id)
    monkeypatch.setattr(time, "time", lambda: _TIME() + LATER)
    with srt.Runtime(store_url) as rt:
        gw.app.state.srt.sweep()  # the worker's hourly sweep
        assert f"gw/default/{first.id}" not in _sessions(store_url)
        lease = rt.store.get_object(sweeps.LEASE, "", orphans.THREAD)
        assert lease is not None and lease.expires is not None
        assert lease.expires - lease.created == pytest.approx(SWEEP_S)
        left = "gw/default/resp_" + "0f" * 16
        with monkeypatch.context() as m:
            m.setattr(time, "time", _TIME)  # made LATER ago, as the clock reads now
            _stray(rt, left, "left")
        assert orphans.sweep(rt.store) is None  # another worker, this interval
        assert left in _sessions(store_url)
        monkeypatch.setattr(time, "time", lambda: _TIME() + LATER + SWEEP_S + 1)
        assert orphans.sweep(rt.store) == 1  # the next interval's first
        assert left not in _sessions(store_url)


def test_orphan_threads_leave_no_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: a chain, a conversation and its responses whose records an older gateway
    deleted without their threads, and a conversation's earlier history: after ``srt
    gc`` no byte of them is left in the file, ``-wal`` or ``-shm``; the rest reads back."""
    db = str(tmp_path / "srt.db")
    canary = f"CANARY{secrets.token_hex(6)}"  # (the test server echoes 20 chars)
    with harness(db, monkeypatch) as h:
        c = h.client()
        kept = [c.responses.create(model="m", input=f"keep {i} " + "k" * 300).id for i in range(8)]
        r1 = c.responses.create(model="m", input=f"{canary} secret " + canary * 200)
        r2 = c.responses.create(model="m", input=f"{canary} two", previous_response_id=r1.id)
        conv = c.conversations.create(items=[{"role": "user", "content": f"{canary} item"}])
        r3 = c.responses.create(model="m", input=f"{canary} in conv", conversation=conv.id)
        _stray(h.rt, f"gw/default/{conv.id}~00aa11bb22cc", f"{canary} earlier " + canary * 50)
        kept += [c.responses.create(model="m", input=f"keep {i} " + "k" * 300).id for i in range(8)]
        for rid in (r1.id, r2.id, r3.id):
            _unrecorded(h, rid)
        assert h.rt.store.delete_object(rc.CONVERSATION, "default", conv.id)
        assert sum(found_in_files(db, canary.encode()).values()) > 0
    report = _gc(db, monkeypatch)
    assert dict(report.swept)[orphans.THREAD] == 3
    assert found_in_files(db, canary.encode()) == NOTHING
    with harness(db, monkeypatch) as h:
        c = h.client()
        for rid in kept:
            assert c.responses.retrieve(rid).output_text
            assert c.responses.input_items.list(rid).data


def test_srt_gc_counts_the_threads(
    gw: Harness, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``srt gc`` (a child process, on the real clock) counts the threads it removed,
    in its report and in ``--json``'s ``swept``."""
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: _TIME() - LATER)  # made LATER ago
        gone = gw.client().responses.create(model="m", input="gone")
    _unrecorded(gw, gone.id)
    dry = json.loads(srt_cli(store_url, tmp_path, "gc", "--dry-run", "--json"))
    assert dry["swept"] == {orphans.THREAD: 1}
    line = (
        "removed 1 gateway thread that no live response or conversation names, "
        "unchanged for 24 hours"
    )
    assert line.replace("removed", "would remove") in srt_cli(
        store_url, tmp_path, "gc", "--dry-run"
    )
    assert line in srt_cli(store_url, tmp_path, "gc").splitlines()
    assert f"gw/default/{gone.id}" not in _sessions(store_url)
