"""On both engines, a DELETE at the gateway drops only what nothing live reaches: a
response deleted in the middle of a ``previous_response_id`` chain leaves the later
response working (its history holds the deleted one's turn); the newest one deleted
takes its thread's session with it (the earlier ones still continue); a conversation
re-rooted by new instructions keeps one session; and ``gc`` then frees the messages and
clears the ledger rows' ``params`` (a request's tools) and a deleted session's error
text (``test_gateway_delete_canary.py`` checks the bytes on SQLite)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_support import Harness, harness
from srt.store.base import CallRecord

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "looks up a private thing",
        "parameters": {"type": "object"},
    }
]


@pytest.fixture
def gw(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(store_url, monkeypatch) as h:
        yield h


def _threads(h: Harness) -> set[str]:
    return {s.name for s in h.rt.store.list_sessions() if s.name.startswith("gw/")}


def _said(h: Harness, rid: str) -> list[str]:
    items = h.client().responses.input_items.list(rid, order="asc").data
    return [str(i.content[0].text) for i in items if i.type == "message"]  # type: ignore[union-attr]


def test_a_response_deleted_in_the_middle_of_a_chain(gw: Harness) -> None:
    c = gw.client()
    r1 = c.responses.create(model="gpt-4o-mini", input="one", tools=TOOLS)
    r2 = c.responses.create(model="gpt-4o-mini", input="two", previous_response_id=r1.id)
    r3 = c.responses.create(model="gpt-4o-mini", input="three", previous_response_id=r2.id)
    assert _threads(gw) == {f"gw/default/{r1.id}"}
    c.responses.delete(r2.id)  # the later response's history holds its turn: it stays
    assert _threads(gw) == {f"gw/default/{r1.id}"}
    gw.rt.gc()
    assert _said(gw, r3.id)[0::2] == ["one", "two", "three"]
    r4 = c.responses.create(model="gpt-4o-mini", input="four", previous_response_id=r3.id)
    assert _said(gw, r4.id)[0::2] == ["one", "two", "three", "four"]
    c.responses.delete(r4.id)  # the newest of its thread: the thread goes
    assert _threads(gw) == set()
    r5 = c.responses.create(model="gpt-4o-mini", input="five", previous_response_id=r3.id)
    assert _said(gw, r5.id)[0::2] == ["one", "two", "three", "five"]
    assert c.responses.retrieve(r1.id).tools[0].name == "lookup"  # type: ignore[union-attr]
    for r in (r1, r3, r5):
        c.responses.delete(r.id)
    assert _threads(gw) == set()
    report = gw.rt.gc()
    assert report.messages == 10 and report.ledger_rows == 5
    assert [row["params"] for row in gw.rt.calls()] == [None] * 5
    assert gw.rt.calls()[0]["output_tokens"]  # the accounting stays


def test_a_fork_outlives_the_response_it_forked(gw: Harness) -> None:
    c = gw.client()
    r1 = c.responses.create(model="gpt-4o-mini", input="root")
    r2 = c.responses.create(model="gpt-4o-mini", input="main", previous_response_id=r1.id)
    fork = c.responses.create(model="gpt-4o-mini", input="side", previous_response_id=r1.id)
    for r in (r1, r2):
        c.responses.delete(r.id)
    assert _threads(gw) == set()
    gw.rt.gc()
    assert _said(gw, fork.id)[0::2] == ["root", "side"]
    more = c.responses.create(model="gpt-4o-mini", input="on", previous_response_id=fork.id)
    assert _said(gw, more.id)[0::2] == ["root", "side", "on"]


def test_a_rerooted_conversation_keeps_one_session(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": "hello"}])
    made = []
    for i, instructions in enumerate((None, "first", "then", "then")):
        made.append(
            c.responses.create(
                model="gpt-4o-mini",
                input=f"q{i}",
                conversation=conv.id,
                **({"instructions": instructions} if instructions else {}),
            ).id
        )
        assert len(_threads(gw)) == 1  # the conversation's current thread only
    texts = [str(i.content[0].text) for i in c.conversations.items.list(conv.id, order="asc").data]  # type: ignore[union-attr]
    assert [texts[0], *texts[1::2]] == ["hello", "q0", "q1", "q2", "q3"]
    for rid in made:
        c.responses.delete(rid)  # a conversation's responses leave its thread alone
    assert len(_threads(gw)) == 1
    c.conversations.delete(conv.id)
    assert _threads(gw) == set()
    assert gw.rt.gc().messages == 11  # 9 items, 2 instructions


def test_gc_forgets_a_deleted_sessions_error_text(gw: Harness) -> None:
    store = gw.rt.store
    s = gw.rt.session("gw/default/failed")
    s.append({"role": "user", "content": "x"})
    row = store.get_session("gw/default/failed")
    assert row is not None
    fields: dict[str, Any] = dict(
        at=time.time(), session=row.id, session_name=row.name, node=None, provider="p",
        model="m", format="openai.chat", body_hash=b"\0" * 16, body_bytes=1, messages=1,
        status="error",
    )  # fmt: skip
    store.record_call(CallRecord(**fields, error="upstream 400: your text 'private'"))
    kept = store.record_call(CallRecord(**{**fields, "session": None}, error="stays"))
    gw.rt.gc()
    assert [c["error"] for c in gw.rt.calls()] == ["upstream 400: your text 'private'", "stays"]
    gw.rt.delete("gw/default/failed")
    gw.rt.gc()
    calls = {c["id"]: c for c in gw.rt.calls()}
    assert [c["error"] for c in calls.values()] == [None, "stays"] and kept in calls
    assert [c["status"] for c in calls.values()] == ["error", "error"]
