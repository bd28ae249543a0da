"""A running gateway frees what deletions left without ``srt gc``: the lease holder's
sweep (``State.sweep``) collects, after the texts and the threads, the nodes and
messages nothing reaches any more (``orphans.sweep_store``, ``Runtime.gc``), on both
engines: a deleted response's and conversation's canary leaves no byte in a SQLite
file, ``-wal`` or ``-shm``, and no row on PostgreSQL, while what stays keeps working.
Turns under way (held at their upstream) while it collects lose nothing.
``server.gc_minutes`` changes its interval or turns it off (0)."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import psycopg
import pytest

import srt
from gateway_support import Harness, canary_tool, harness
from srt.errors import ConfigError
from srt.gateway import orphans
from srt.gateway.config import from_dict
from srt.store import sweeps
from support import found_in_files
from test_gateway_delete_sweep_races import Hold, _running, workers

LATER = 3 * 86400.0  # past the texts' grace
_TIME = time.time


def _copies(url: str, canary: str) -> int:
    """How many times ``canary`` is stored: in the SQLite file, ``-wal`` and ``-shm``;
    on PostgreSQL, the rows of messages, objects and ledger params holding it."""
    if not url.startswith("postgresql://"):
        return sum(found_in_files(url, canary.encode()).values())
    from pg_support import server_url

    found = re.search(r"schema=(\w+)", url)
    assert found is not None
    s = found[1]
    with psycopg.connect(server_url()) as c:
        return sum(
            int(c.execute(sql.format(s=s), (canary.encode(),)).fetchone()[0])  # type: ignore[index]
            for sql in (
                "SELECT count(*) FROM {s}.messages WHERE position(%s::bytea in body) > 0",
                "SELECT count(*) FROM {s}.objects WHERE position(%s::bytea in value) > 0",
                "SELECT count(*) FROM {s}.calls "
                "WHERE position(%s::bytea in convert_to(coalesce(params::text, ''), 'UTF8')) > 0",
            )
        )


def _sweep_later(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's sweep, the clock past the texts' grace (``texts.GRACE_S``)."""
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: _TIME() + LATER)
        h.app.state.srt.sweep()


def _deleted(h: Harness, canary: str) -> None:
    """A chain with tools and a conversation with responses, the canary in their input,
    instructions and tool descriptions, all deleted through the SDK."""
    c = h.client()
    r1 = c.responses.create(
        model="gpt-4o-mini",
        input=f"{canary} is my secret " + canary * 200,
        instructions=f"keep {canary} safe",
        tools=canary_tool(canary),
    )
    r2 = c.responses.create(model="gpt-4o-mini", input=f"{canary} 2", previous_response_id=r1.id)
    conv = c.conversations.create(items=[{"role": "user", "content": f"note {canary}"}])
    made = c.responses.create(
        model="gpt-4o-mini", input=f"{canary} turn", instructions=canary, conversation=conv.id
    )
    for rid in (r1.id, r2.id, made.id):
        assert c.responses.delete(rid) is None
    c.conversations.delete(conv.id)


@pytest.fixture
def gw(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(store_url, monkeypatch, gc_minutes=60) as h:
        yield h


def test_the_sweep_frees_what_a_client_deleted(
    gw: Harness, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"CANARY{secrets.token_hex(6)}"  # (the test server echoes 20 chars)
    c = gw.client()
    kept = c.responses.create(model="gpt-4o-mini", input="stays " + "x" * 300, instructions="i")
    _deleted(gw, canary)
    assert _copies(store_url, canary) > 0
    _sweep_later(gw, monkeypatch)  # no srt gc
    assert _copies(store_url, canary) == 0
    lease = gw.rt.store.get_object(sweeps.LEASE, "", orphans.GC)
    assert lease is not None and lease.expires is not None
    assert lease.expires - lease.created == pytest.approx(60 * 60.0)
    got = c.responses.retrieve(kept.id)
    assert got.output_text and got.instructions == "i"
    assert c.responses.input_items.list(kept.id).data
    on = c.responses.create(model="gpt-4o-mini", input="on", previous_response_id=kept.id)
    assert on.status == "completed"
    assert [i.role for i in c.responses.input_items.list(on.id, order="asc").data] == [  # type: ignore[union-attr]
        "user",
        "assistant",
        "user",
    ]
    with srt.Runtime(store_url) as rt:
        assert rt.store.verify().ok
        assert (rt.store.gc(dry_run=True).nodes, rt.store.gc(dry_run=True).messages) == (0, 0)


def test_one_worker_collects_an_interval(
    gw: Harness, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first worker to ask takes the lease (``gw.gc``); another worker in the same
    interval collects nothing, the first of the next interval does."""
    c = gw.client()
    gw.app.state.srt.sweep()
    gone = c.responses.create(model="m", input="then deleted")
    c.responses.delete(gone.id)
    with srt.Runtime(store_url) as other:
        assert orphans.sweep_store(other, 3600.0) is None  # this interval's is taken
        assert other.store.gc(dry_run=True).nodes == 2
        monkeypatch.setattr(time, "time", lambda: _TIME() + 3601.0)
        report = orphans.sweep_store(other, 3600.0)
        assert report is not None and (report.nodes, report.messages) == (2, 2)


@pytest.mark.parametrize("minutes", [None, 0])
def test_gc_minutes_0_leaves_it_to_srt_gc(
    store_url: str, monkeypatch: pytest.MonkeyPatch, minutes: int | None
) -> None:
    """0, the default: the sweep collects the texts and threads, not the history."""
    canary = f"CANARY{secrets.token_hex(6)}"
    given = {} if minutes is None else {"gc_minutes": minutes}
    with harness(store_url, monkeypatch, **given) as h:
        _deleted(h, canary)
        _sweep_later(h, monkeypatch)
        assert _copies(store_url, canary) > 0  # the texts went, the history stays
        assert h.rt.store.get_object(sweeps.LEASE, "", orphans.GC) is None
        assert h.rt.gc().messages > 0


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (-1, "-1"),
        (0.5, "0.5"),
        (True, "True"),
        ("60", "'60'"),
        (float("nan"), "nan"),
        (1e9, "1000000000.0"),
    ],
)
def test_gc_minutes_is_checked(value: Any, said: str) -> None:
    data = {
        "server": {"gc_minutes": value},
        "upstreams": {"u": {"kind": "openai", "api_key_env": "K"}},
        "routes": [{"model": "*", "upstream": "u"}],
    }
    with pytest.raises(
        ConfigError, match=r"server\.gc_minutes must be 0 .* got " + re.escape(said)
    ):
        from_dict(data)
    data["server"] = {"gc_minutes": 15}
    assert from_dict(data).gc_minutes == 15


def test_turns_under_way_lose_nothing_to_the_sweep(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each held at its upstream while the lease holder's sweep collects (what a
    deleted response left goes meanwhile): a continuation, a new response, a
    conversation's turn; each then completes, reads back whole and continues. A held
    continuation of a response another worker deletes, collected before the turn
    commits: the client is told its previous response is gone, nothing is written."""
    with workers(store_url, monkeypatch, 2) as (srv, c, c2):
        base = c.responses.create(model="m", input="base")
        doomed = c.responses.create(model="m", input="doomed")
        conv = c.conversations.create(items=[{"role": "user", "content": "first item"}])
        turns = {
            "on": lambda: c.responses.create(
                model="m", input="held on", previous_response_id=base.id
            ),
            "new": lambda: c.responses.create(model="m", input="held new"),
            "conv": lambda: c.responses.create(model="m", input="held conv", conversation=conv.id),
            "doomed": lambda: c.responses.create(
                model="m", input="held doomed", previous_response_id=doomed.id
            ),
        }
        done: dict[str, Any] = {}
        for k, (name, create) in enumerate(turns.items()):
            canary = f"CANARY{secrets.token_hex(6)}"
            garbage = c.responses.create(model="m", input=f"{canary} garbage")
            c.responses.delete(garbage.id)
            hold = Hold(srv)
            turn = _running(create)
            hold.wait()
            if name == "doomed":
                assert c2.responses.delete(doomed.id) is None  # another worker
            with srt.Runtime(store_url) as rt, monkeypatch.context() as m:
                m.setattr(time, "time", lambda k=k: _TIME() + 3601.0 * (k + 1))
                report = orphans.sweep_store(rt, 3600.0)  # the lease holder's collection
            assert report is not None and report.messages >= 2
            assert _copies(store_url, canary) == 0
            hold.release()
            if name == "doomed":
                with pytest.raises(openai.BadRequestError) as caught:
                    turn.result(60)
                assert caught.value.code == "previous_response_not_found"
            else:
                done[name] = turn.result(60)
                assert done[name].status == "completed"
        items = c.responses.input_items.list(done["on"].id, order="asc").data
        said = [i.content[0].text for i in items]  # type: ignore[union-attr]
        assert said[0::2] == ["base", "held on"]
        assert c.responses.retrieve(done["new"].id).output_text == done["new"].output_text
        listed = c.conversations.items.list(conv.id, order="asc").data
        said = [i.content[0].text for i in listed if i.role == "user"]  # type: ignore[union-attr]
        assert said == ["first item", "held conv"]
        for r in done.values():
            on = c.responses.create(model="m", input="more", previous_response_id=r.id)
            assert on.status == "completed"
        with srt.Runtime(store_url) as rt:
            assert rt.store.verify().ok


def test_a_session_appending_while_the_sweep_collects(store_url: str) -> None:
    """A writer appending turn after turn while sweeps collect garbage made between
    them: every acknowledged turn is there, in order, and the store verifies."""
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as writer_rt:
        stop = threading.Event()
        done: list[int] = []

        def write() -> None:
            s = writer_rt.session("gw/default/resp_" + "ab" * 16)
            n = 0
            while not stop.is_set() or n < 30:
                s.append({"role": "user", "content": f"turn {n}"})
                done.append(n)
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        collected = 0
        try:
            for k in range(20):
                doomed = rt.session(f"gw/default/conv_{k:032x}")
                doomed.append({"role": "user", "content": f"garbage {k}"})
                rt.delete(doomed.name)
                report = rt.gc()
                collected += report.messages
        finally:
            stop.set()
            writer.join(60)
        assert collected == 20
        got = [m["content"] for m in rt.session("gw/default/resp_" + "ab" * 16).messages()]
        assert got == [f"turn {n}" for n in done]
        assert rt.store.verify().ok
