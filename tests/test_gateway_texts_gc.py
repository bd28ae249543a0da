"""The gateway's texts (instructions, tools, kept ids, stored once per tenant) that no
live response or conversation names are collected, on both engines, through the official
``openai`` SDK against ``srt serve``; texts still named stay and their records read back
whole; a writer reusing a text while the sweep runs never leaves a dangling key."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness
from srt.gateway import records as rc

N = 6


@pytest.fixture
def gw(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(store_url, monkeypatch) as h:
        h.gateway.records.texts.grace_s = 0.0  # every text unused from now on is old
        yield h


def _texts(h: Harness) -> set[str]:
    return {o.key for o in h.rt.store.scan_objects(kind=rc.TEXT)}


def _expire(h: Harness, rid: str) -> None:
    """As the retention would: the response's object past its ``expires`` time."""
    store = h.rt.store
    row = store.get_object(rc.RESPONSE, "default", rid)
    assert row is not None
    store.put_object(rc.RESPONSE, "default", rid, row.value, node=row.node, expires=time.time() - 1)


def test_texts_of_a_deleted_conversation_are_collected(gw: Harness) -> None:
    c = gw.client()
    gone = c.conversations.create()
    kept = c.conversations.create()
    turns = [  # new instructions every turn: a new text every turn
        c.responses.create(
            model="gpt-4o-mini", input=f"q{i}", instructions=f"day {i}", conversation=gone.id
        )
        for i in range(N)
    ]
    live = c.responses.create(
        model="gpt-4o-mini",
        input="hello",
        instructions="stay",
        conversation=kept.id,
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    )
    before = len(_texts(gw))  # and the kept ids of each history re-rooted
    assert before >= N + 2
    c.conversations.delete(gone.id)
    first = gw.gateway.records.collect_texts()  # what only the conversation named
    for i, r in enumerate(turns):  # its responses still name theirs: read back whole
        assert c.responses.retrieve(r.id).instructions == f"day {i}"
        assert c.responses.input_items.list(r.id).data
    for r in turns:
        _expire(gw, r.id)
    assert first + gw.gateway.records.collect_texts() == before - 2
    assert len(_texts(gw)) == 2  # the live response's instructions and tools
    again = c.responses.retrieve(live.id)
    assert again.instructions == "stay" and again.tools[0].name == "f"  # type: ignore[union-attr]
    assert [i.id for i in c.conversations.items.list(kept.id).data]
    assert gw.gateway.records.collect_texts() == 0


def test_texts_of_expired_or_deleted_responses_are_collected(gw: Harness) -> None:
    c = gw.client()
    made = [
        c.responses.create(model="gpt-4o-mini", input=f"q{i}", instructions=f"turn {i}")
        for i in range(N)
    ]
    assert len(_texts(gw)) == N
    for r in made[:3]:
        _expire(gw, r.id)
    c.responses.delete(made[3].id)
    assert gw.gateway.records.collect_texts() == 4
    assert len(_texts(gw)) == N - 4
    for i, r in enumerate(made[4:], 4):
        got = c.responses.retrieve(r.id)
        assert got.instructions == f"turn {i}" and got.output_text
    # a text collected, reused by a later turn, is stored again
    r = c.responses.create(model="gpt-4o-mini", input="q", instructions="turn 0")
    assert c.responses.retrieve(r.id).instructions == "turn 0"


def test_a_text_used_within_the_grace_period_stays(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="q", instructions="recent")
    c.responses.delete(r.id)
    gw.gateway.records.texts.grace_s = 3600.0
    assert gw.gateway.records.collect_texts() == 0
    assert len(_texts(gw)) == 1


def test_a_record_naming_a_text_that_is_gone_is_a_500(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="q", instructions="lost")
    row = gw.rt.store.get_object(rc.RESPONSE, "default", r.id)
    assert row is not None
    key = json.loads(row.value)["texts"]["instructions"]
    assert gw.rt.store.delete_object(rc.TEXT, "default", key)
    gw.gateway.records.texts.forget("default", key)
    with pytest.raises(openai.InternalServerError) as info:
        c.responses.retrieve(r.id)
    assert "damaged" in info.value.message and "instructions" in info.value.message


def test_a_writer_reusing_a_text_while_the_sweep_runs_keeps_it(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = gw.client()
    first = c.responses.create(model="gpt-4o-mini", input="q", instructions="shared")
    c.responses.delete(first.id)  # its text is named by no record now
    (key,) = _texts(gw)
    store = gw.rt.store
    deleting, written = threading.Event(), threading.Event()
    real = store.delete_object

    def delete_object(kind: str, scope: str, k: str, **kw: Any) -> bool:
        if kind == rc.TEXT:  # the sweep found it unnamed and old: the writer runs now
            deleting.set()
            assert written.wait(30)
        return real(kind, scope, k, **kw)

    monkeypatch.setattr(store, "delete_object", delete_object)
    got: list[int] = []
    sweep = threading.Thread(target=lambda: got.append(gw.gateway.records.collect_texts()))
    sweep.start()
    assert deleting.wait(30)
    second = c.responses.create(model="gpt-4o-mini", input="q", instructions="shared")
    written.set()
    sweep.join(30)
    assert got == [0] and _texts(gw) == {key}
    assert c.responses.retrieve(second.id).instructions == "shared"
