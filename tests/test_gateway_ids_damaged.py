"""A conversation (or response) record damaged in the store, its ``ids`` or another
member not as the gateway writes them, is an OpenAI-shaped 500 ``server_error`` naming
it, logged once, on every route that reads it; never an unhandled exception."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness
from srt.gateway import records as rc


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


#: Members of a conversation's record damaged, each as the store will hold it.
_DAMAGE: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("ids", lambda r: {**r, "ids": "x"}),
    ("ids", lambda r: {**r, "ids": None}),
    ("gens", lambda r: {**r, "gen": 1, "gens": [[1]]}),
    ("gens", lambda r: {**r, "gen": 1, "gens": "[[1, 1]]"}),
    ("kept", lambda r: {**r, "kept": "0" * 32}),  # names no stored text
    ("kept", lambda r: {**r, "kept": 7}),
    ("lead", lambda r: {k: v for k, v in r.items() if k != "lead"}),
    ("thread", lambda r: {**r, "thread": ["gw"]}),
    ("record", lambda r: [r]),
]


def _server_error(exc: openai.InternalServerError, name: str) -> None:
    assert exc.status_code == 500
    body = exc.response.json()["error"]
    assert body["type"] == "server_error" and body["code"] == "server_error"
    assert name in body["message"] and "damaged" in body["message"]
    assert "Traceback" not in exc.response.text


@pytest.mark.parametrize(
    ("member", "damage"), _DAMAGE, ids=[f"{m}{k}" for k, (m, _) in enumerate(_DAMAGE)]
)
def test_a_damaged_conversation_record_is_a_500_naming_it(
    gw: Harness,
    caplog: pytest.LogCaptureFixture,
    member: str,
    damage: Callable[[dict[str, Any]], Any],
) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": "hi"}])
    item = c.conversations.items.list(conv.id).data[0].id
    store = gw.rt.store
    row = store.get_object(rc.CONVERSATION, "default", conv.id)
    assert row is not None
    store.put_object(
        rc.CONVERSATION, "default", conv.id, json.dumps(damage(json.loads(row.value))).encode()
    )
    calls: list[Callable[[], Any]] = [
        lambda: c.conversations.retrieve(conv.id),
        lambda: c.conversations.update(conv.id, metadata={"a": "b"}),
        lambda: c.conversations.items.list(conv.id),
        lambda: c.conversations.items.retrieve(item, conversation_id=conv.id),
        lambda: c.conversations.items.delete(item, conversation_id=conv.id),
        lambda: c.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}]),
        lambda: c.responses.create(model="gpt-4o-mini", input="q", conversation=conv.id),
        lambda: c.conversations.delete(conv.id),
    ]
    for call in calls:
        caplog.clear()
        with caplog.at_level(logging.ERROR), pytest.raises(openai.InternalServerError) as info:
            call()
        _server_error(info.value, conv.id)
        if member != "record":
            assert member in info.value.response.json()["error"]["message"]
        logged = [r for r in caplog.records if conv.id in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is None  # once, no traceback
    assert sum(gw.srv.requests.values()) == 0  # nothing went upstream
    # the store still holds the damaged record as it was: nothing written over it
    after = store.get_object(rc.CONVERSATION, "default", conv.id)
    assert after is not None and json.loads(after.value) == damage(json.loads(row.value))


def test_a_response_record_with_damaged_ids_is_a_500_naming_it(
    gw: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="first")
    store = gw.rt.store
    row = store.get_object(rc.RESPONSE, "default", r.id)
    assert row is not None
    rec = json.loads(row.value)
    rec["ids"] = [[0, "a"], [0, "b"]]  # parts that do not start in order
    store.put_object(rc.RESPONSE, "default", r.id, json.dumps(rec).encode(), node=row.node)
    calls: list[Callable[[], Any]] = [
        lambda: c.responses.retrieve(r.id),
        lambda: c.responses.input_items.list(r.id),
        lambda: c.responses.create(model="gpt-4o-mini", input="q", previous_response_id=r.id),
    ]
    for call in calls:
        caplog.clear()
        with caplog.at_level(logging.ERROR), pytest.raises(openai.InternalServerError) as info:
            call()
        _server_error(info.value, r.id)
        assert "ids" in info.value.response.json()["error"]["message"]
        assert len([x for x in caplog.records if r.id in x.getMessage()]) == 1
