"""The Conversations API through the official ``openai`` SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import openai
import pytest

from gateway_support import Harness, harness
from support import wait_for_request


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def test_conversation_crud_and_items(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(
        items=[{"role": "user", "content": "first"}], metadata={"topic": "demo"}
    )
    assert conv.metadata == {"topic": "demo"}
    assert c.conversations.retrieve(conv.id).id == conv.id
    upd = c.conversations.update(conv.id, metadata={"topic": "changed"})
    assert upd.metadata == {"topic": "changed"}
    added = c.conversations.items.create(
        conv.id,
        items=[
            {"type": "message", "role": "assistant", "content": "a reply"},
            {"type": "message", "role": "user", "content": "second"},
        ],
    )
    assert [i.type for i in added.data] == ["message", "message"]
    page = c.conversations.items.list(conv.id, order="asc", limit=2)
    assert [i.content[0].text for i in page.data] == ["first", "a reply"] and page.has_more
    rest = c.conversations.items.list(conv.id, order="asc", after=page.data[-1].id)
    assert [i.content[0].text for i in rest.data] == ["second"]
    one = c.conversations.items.retrieve(page.data[1].id, conversation_id=conv.id)
    assert one.id == page.data[1].id
    c.conversations.items.delete(page.data[1].id, conversation_id=conv.id)
    left = c.conversations.items.list(conv.id, order="asc")
    assert [i.content[0].text for i in left.data] == ["first", "second"]
    assert left.data[0].id == page.data[0].id  # items before the deleted one keep their ids
    c.conversations.delete(conv.id)
    with pytest.raises(openai.NotFoundError):
        c.conversations.retrieve(conv.id)


def test_responses_append_to_a_conversation(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create()
    for i in range(3):
        r = c.responses.create(model="gpt-4o-mini", input=f"turn {i}", conversation=conv.id)
        assert r.conversation is not None and r.conversation.id == conv.id
    sent = gw.srv.log[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant"] * 2 + ["user"]
    items = c.conversations.items.list(conv.id, order="asc")
    assert len(items.data) == 6 and items.data[-1].role == "assistant"
    assert items.data[-1].id == r.output[0].id  # the response's output item is the item
    with c.responses.stream(model="claude-sonnet-4-5", input="streamed", conversation=conv.id) as s:
        s.until_done()
    assert len(c.conversations.items.list(conv.id).data) == 8


def test_two_concurrent_responses_on_one_conversation(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create()
    gw.srv.fault("*", "delay", count=2, seconds=0.5)
    results: list[object] = []

    def one(text: str) -> None:
        try:
            results.append(
                c.responses.create(model="gpt-4o-mini", input=text, conversation=conv.id)
            )
        except openai.APIStatusError as exc:
            results.append(exc)

    threads = [threading.Thread(target=one, args=(t,)) for t in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert len(errors) == 1 and errors[0].status_code == 409
    assert errors[0].body is not None and errors[0].code in ("conversation_locked", "conflict")
    items = c.conversations.items.list(conv.id, order="asc").data
    assert [i.role for i in items] == ["user", "assistant"]  # never interleaved


def test_two_workers_racing_on_one_conversation(gw: Harness) -> None:
    """Two handles (two workers) on one conversation: the head CAS gives one 409."""
    c = gw.client()
    conv = c.conversations.create()
    gateway = gw.gateway
    rec = gateway.records.get_conversation("default", conv.id)
    other = gw.rt.session(rec["thread"])  # what a second worker holds
    c.responses.create(model="gpt-4o-mini", input="from worker one", conversation=conv.id)
    gateway.threads.forget(rec["thread"])
    # the second worker's stale handle tries to commit on the old head
    with pytest.raises(Exception) as e:
        other.send(
            gateway.route("gpt-4o-mini")[1],
            model="gpt-4o-mini",
            append=[{"role": "user", "content": "from worker two"}],
        )
    assert type(e.value).__name__ == "ConflictError"
    assert len(c.conversations.items.list(conv.id).data) == 2


def test_items_are_read_while_a_response_runs_on_the_conversation(gw: Harness) -> None:
    """Reads never get the busy 409 of writes: they see what the store holds."""
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": "a"}])
    (first,) = c.conversations.items.list(conv.id).data
    gw.srv.fault("*", "delay", seconds=1.5)
    r = c.responses.create(model="gpt-4o-mini", input="b", conversation=conv.id, background=True)
    deadline = time.monotonic() + 10
    wait_for_request(gw.srv, 10)  # the turn is under way
    with pytest.raises(openai.ConflictError):  # a write waits for the turn
        c.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}])
    listed = c.conversations.items.list(conv.id).data
    assert [x.id for x in listed] == [first.id]  # the turn has committed nothing yet
    assert c.conversations.items.retrieve(first.id, conversation_id=conv.id).id == first.id
    assert c.conversations.items.list(conv.id, after=first.id).data == []
    while c.responses.retrieve(r.id).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    items = c.conversations.items.list(conv.id, order="asc").data
    assert items[0].id == first.id and len(items) == 3
