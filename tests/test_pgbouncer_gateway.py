"""The gateway on PostgreSQL through PgBouncer in transaction mode (pools of 2 server
connections), driven by the official ``openai`` SDK: two workers, each its own app and
runtime, alternate on one chain and one conversation (``test_gateway_postgres``'s setup)."""

from __future__ import annotations

import pytest

from pg_support import fresh_bouncer_url
from test_gateway_postgres import two_workers


def test_a_chain_and_a_conversation_across_two_workers_behind_pgbouncer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_bouncer_url() as url, two_workers(url, monkeypatch) as (srv, (a, b)):
        r1 = a.responses.create(model="gpt-4o-mini", input="one", instructions="be terse")
        r2 = b.responses.create(model="gpt-4o-mini", input="two", previous_response_id=r1.id)
        r3 = a.responses.create(model="gpt-4o-mini", input="three", previous_response_id=r2.id)
        sent = srv.log[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "two", "three"]
        assert b.responses.retrieve(r3.id).model_dump() == r3.model_dump()
        conv = a.conversations.create(metadata={"k": "v"})
        for i, c in enumerate((a, b, a, b)):
            r = c.responses.create(model="gpt-4o-mini", input=f"turn {i}", conversation=conv.id)
            assert r.status == "completed"
        items = b.conversations.items.list(conv.id, order="asc").data
        assert [getattr(i, "role", None) for i in items] == ["user", "assistant"] * 4
        assert [i.content[0].text for i in items[::2]] == [f"turn {i}" for i in range(4)]
