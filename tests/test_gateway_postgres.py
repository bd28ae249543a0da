"""Two gateway workers on one PostgreSQL database, driven by the official ``openai`` SDK.

Each worker is its own app with its own runtime (its own live sessions and caches), as
``srt serve --workers`` runs them; requests alternate between them, so every turn after
the first finds the other worker's head in the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import openai
import pytest

import srt
import srt.gateway
from gateway_support import UPSTREAM_KEY, config, serving
from srt.testing import ProviderServer


@contextlib.contextmanager
def two_workers(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ProviderServer, list[openai.OpenAI]]]:
    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(ProviderServer(api_key=UPSTREAM_KEY))
        clients = []
        for _ in range(2):
            rt = stack.enter_context(srt.Runtime(url))
            base = stack.enter_context(serving(srt.gateway.app(config(srv, open=True), rt)))
            c = openai.OpenAI(base_url=base, api_key="sk-any", max_retries=0)
            stack.callback(c.close)
            clients.append(c)
        yield srv, clients


def test_a_chain_across_two_workers(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with two_workers(pg_url, monkeypatch) as (srv, (a, b)):
        r1 = a.responses.create(model="gpt-4o-mini", input="one", instructions="be terse")
        r2 = b.responses.create(
            model="gpt-4o-mini", input="two", previous_response_id=r1.id, instructions="be terse"
        )
        r3 = a.responses.create(
            model="gpt-4o-mini", input="three", previous_response_id=r2.id, instructions="be terse"
        )
        sent = srv.log[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "two", "three"]
        assert sent[0] == {"role": "system", "content": "be terse"}
        assert b.responses.retrieve(r3.id).model_dump() == r3.model_dump()
        # a fork from the first response, on the other worker
        r4 = b.responses.create(
            model="gpt-4o-mini", input="again", previous_response_id=r1.id, instructions="be terse"
        )
        sent = srv.log[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "again"]
        items = a.responses.input_items.list(r4.id, order="asc")
        assert [i.type for i in items.data] == ["message", "message", "message"]
        assert items.data[0].content[0].text == "one" and items.data[-1].content[0].text == "again"


def test_a_conversation_across_two_workers(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with two_workers(pg_url, monkeypatch) as (srv, (a, b)):
        conv = a.conversations.create(metadata={"k": "v"})
        for i, c in enumerate((a, b, a, b)):
            r = c.responses.create(model="gpt-4o-mini", input=f"turn {i}", conversation=conv.id)
            assert r.status == "completed"
        sent = srv.log[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == [
            "turn 0",
            "turn 1",
            "turn 2",
            "turn 3",
        ]
        items = a.conversations.items.list(conv.id, order="asc").data
        assert [getattr(i, "role", None) for i in items] == ["user", "assistant"] * 4
        assert b.conversations.retrieve(conv.id).metadata == {"k": "v"}
