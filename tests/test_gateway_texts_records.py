"""A response's stored record with a member not as the gateway writes it (``lead``,
``out_start``, ``depth``, ``texts``, ``owner``, its small response ``r`` ...), or naming
a text that is not stored, is the OpenAI-shaped 500 naming the response, never an
unhandled exception nor a response read back with parts silently missing."""

from __future__ import annotations

import json
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


_DAMAGE: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("lead", lambda r: {**r, "lead": "0"}),
    ("lead", lambda r: {**r, "lead": 5}),
    ("lead", lambda r: {k: v for k, v in r.items() if k != "lead"}),
    ("out_start", lambda r: {**r, "out_start": None}),
    ("out_start", lambda r: {**r, "out_start": -1}),
    ("depth", lambda r: {**r, "depth": [1]}),
    ("texts", lambda r: {**r, "texts": ["k"]}),
    ("texts.instructions", lambda r: {**r, "texts": {"instructions": 7}}),
    ("instructions", lambda r: {**r, "texts": {"instructions": "0" * 32}}),  # no such text
    ("tools", lambda r: {**r, "texts": {**r["texts"], "tools": "0" * 32}}),
    ("owner", lambda r: {**r, "owner": "me"}),
    ("owner", lambda r: {**r, "owner": {"host": "h", "pid": "1", "token": "t"}}),
    ("model_up", lambda r: {**r, "model_up": 3}),
    ("output_from", lambda r: {**r, "output_from": "1"}),
    ("thread", lambda r: {**r, "thread": 1}),
    ("r", lambda r: {**r, "r": [r["r"]]}),
    ("r", lambda r: {k: v for k, v in r.items() if k != "r"}),
    ("r.usage", lambda r: {**r, "r": {**r["r"], "usage": [1, 2]}}),
    ("r.usage", lambda r: {**r, "r": {**r["r"], "usage": [1, 2, 3, 4, "5"]}}),
    ("r.created_at", lambda r: {**r, "r": {**r["r"], "created_at": "now"}}),
    ("r.status", lambda r: {**r, "r": {**r["r"], "status": None}}),
    ("r.metadata", lambda r: {**r, "r": {**r["r"], "metadata": []}}),
    ("record", lambda r: [r]),
]


@pytest.mark.parametrize(
    ("member", "damage"), _DAMAGE, ids=[f"{m}{k}" for k, (m, _) in enumerate(_DAMAGE)]
)
def test_a_damaged_response_record_is_a_500_naming_it(
    gw: Harness, member: str, damage: Callable[[dict[str, Any]], Any]
) -> None:
    c = gw.client()
    tools: Any = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    r = c.responses.create(model="gpt-4o-mini", input="first", instructions="be", tools=tools)
    store = gw.rt.store
    row = store.get_object(rc.RESPONSE, "default", r.id)
    assert row is not None
    rec = json.loads(row.value)
    store.put_object(rc.RESPONSE, "default", r.id, json.dumps(damage(rec)).encode(), node=row.node)
    calls: list[Callable[[], Any]] = [
        lambda: c.responses.retrieve(r.id),
        lambda: c.responses.input_items.list(r.id),
        lambda: c.responses.create(model="gpt-4o-mini", input="q", previous_response_id=r.id),
    ]
    for call in calls:
        with pytest.raises(openai.InternalServerError) as info:
            call()
        body = info.value.response.json()["error"]
        assert body["type"] == "server_error" and body["code"] == "server_error"
        assert r.id in body["message"] and "damaged" in body["message"]
        if member != "record":
            assert f"'{member}'" in body["message"]
