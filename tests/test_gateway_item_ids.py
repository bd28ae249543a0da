"""Item ids are unique per conversation and per response thread, through the SDK; the
stored messages stay shared, and ids shown before ids had a scope keep resolving."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from gateway_support import Harness, count, harness
from srt import _core
from srt.gateway import items as it


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


FIRST = [{"role": "user", "content": "the same first message"}]


def test_two_conversations_with_the_same_history_show_different_ids(
    gw: Harness, db_path: str
) -> None:
    c = gw.client()
    a = c.conversations.create(items=FIRST)
    messages = count(db_path, "messages")
    b = c.conversations.create(items=FIRST)
    assert count(db_path, "messages") == messages  # the message is stored once
    ia = c.conversations.items.list(a.id).data[0].id
    ib = c.conversations.items.list(b.id).data[0].id
    assert ia != ib
    assert ia != it.item_id("message", _core.ROOT, 0)  # not the bare prefix hash
    assert c.conversations.items.retrieve(ia, conversation_id=a.id).id == ia
    with pytest.raises(openai.NotFoundError):  # another conversation's item
        c.conversations.items.retrieve(ia, conversation_id=b.id)
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.delete(ia, conversation_id=b.id)
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.list(b.id, after=ia)
    assert [x.id for x in c.conversations.items.list(b.id).data] == [ib]  # b untouched
    # the replies of equal turns on both conversations: different ids too
    ra = c.responses.create(model="gpt-4o-mini", input="again", conversation=a.id)
    rb = c.responses.create(model="gpt-4o-mini", input="again", conversation=b.id)
    assert ra.output[0].id != rb.output[0].id
    assert c.conversations.items.list(a.id).data[0].id == ra.output[0].id
    added = c.conversations.items.create(b.id, items=[{"role": "user", "content": "x"}])
    assert added.data[0].id == c.conversations.items.list(b.id).data[0].id


def test_two_responses_with_the_same_input_show_different_ids(gw: Harness) -> None:
    c = gw.client()
    r1 = c.responses.create(model="gpt-4o-mini", input="same")
    r2 = c.responses.create(model="gpt-4o-mini", input="same")
    assert r1.output[0].id != r2.output[0].id
    assert c.responses.retrieve(r1.id).output[0].id == r1.output[0].id
    in1 = c.responses.input_items.list(r1.id).data[0].id
    in2 = c.responses.input_items.list(r2.id).data[0].id
    assert in1 != in2
    with pytest.raises(openai.NotFoundError):
        c.responses.input_items.list(r2.id, after=in1)
    # a chain keeps its scope: the next response lists r1's items with r1's ids
    r3 = c.responses.create(model="gpt-4o-mini", input="next", previous_response_id=r1.id)
    listed = [x.id for x in c.responses.input_items.list(r3.id, order="asc").data]
    assert listed[:2] == [in1, r1.output[0].id]
    # two forks of r1 with the same input: their outputs differ from each other
    f1 = c.responses.create(model="gpt-4o-mini", input="fork", previous_response_id=r1.id)
    f2 = c.responses.create(model="gpt-4o-mini", input="fork", previous_response_id=r1.id)
    assert len({r3.output[0].id, f1.output[0].id, f2.output[0].id}) == 3
    # a streamed response announces the id its stored output keeps
    with c.responses.stream(model="gpt-4o-mini", input="same") as s:
        done = s.get_final_response()
    assert done.output[0].id not in (r1.output[0].id, r2.output[0].id)
    assert c.responses.retrieve(done.id).output[0].id == done.output[0].id


def test_a_conversation_stored_before_scoped_ids_keeps_its_old_ids(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[*FIRST, {"role": "user", "content": "second"}])
    records = gw.gateway.records
    rec = records.get_conversation("default", conv.id)
    assert rec is not None and rec.pop("ids") == 1
    old = it.item_id("message", _core.ROOT, 0)  # the id such a conversation showed
    with pytest.raises(openai.NotFoundError):  # not in one made with scoped ids
        c.conversations.items.retrieve(old, conversation_id=conv.id)
    records.put_conversation("default", rec)  # as an older gateway stored it
    shown = c.conversations.items.list(conv.id, order="asc").data
    assert shown[0].id != old  # shown scoped now
    assert c.conversations.items.retrieve(old, conversation_id=conv.id).id == shown[0].id
    after = c.conversations.items.list(conv.id, order="asc", after=old).data
    assert [x.id for x in after] == [shown[1].id]
    c.conversations.items.delete(old, conversation_id=conv.id)
    left = c.conversations.items.list(conv.id).data
    assert [x.content[0].text for x in left] == ["second"]  # type: ignore[union-attr]


def test_a_response_stored_before_scoped_ids_keeps_its_old_ids(gw: Harness) -> None:
    c = gw.client()
    r1 = c.responses.create(model="gpt-4o-mini", input="first")
    r2 = c.responses.create(model="gpt-4o-mini", input="second", previous_response_id=r1.id)
    records = gw.gateway.records
    found = records.get_response("default", r2.id)
    assert found is not None
    rec, node = found
    assert rec.pop("ids") == 1
    shown = [x.id for x in c.responses.input_items.list(r2.id, order="asc").data]
    old = it.item_id("message", _core.ROOT, 0)  # the id its first item showed then
    with pytest.raises(openai.NotFoundError):
        c.responses.input_items.list(r2.id, after=old)
    records.put_response("default", rec, node)  # as an older gateway stored it
    assert [x.id for x in c.responses.input_items.list(r2.id, order="asc").data] == shown
    after = c.responses.input_items.list(r2.id, order="asc", after=old).data
    assert [x.id for x in after] == shown[1:]


def _ids(c: openai.OpenAI, cid: str) -> list[str]:
    return [x.id for x in c.conversations.items.list(cid, order="asc").data]


def test_an_item_made_after_a_deletion_never_shows_a_deleted_items_id(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=FIRST)
    r = c.responses.create(model="gpt-4o-mini", input="q", conversation=conv.id)
    first, question, reply = _ids(c, conv.id)
    assert reply == r.output[0].id
    # the newest reply and its question deleted, then the same turn made again
    c.conversations.items.delete(reply, conversation_id=conv.id)
    c.conversations.items.delete(question, conversation_id=conv.id)
    again = c.responses.create(model="gpt-4o-mini", input="q", conversation=conv.id)
    shown = _ids(c, conv.id)
    assert shown[0] == first  # the items before the deletion keep their ids
    assert shown[1:] == [c.responses.input_items.list(again.id).data[0].id, again.output[0].id]
    assert not {question, reply} & set(shown)
    for gone in (question, reply):
        with pytest.raises(openai.NotFoundError):
            c.conversations.items.retrieve(gone, conversation_id=conv.id)
    # an item deleted from the middle: the items after it keep their ids
    c.conversations.items.create(conv.id, items=[{"role": "user", "content": "last"}])
    before = _ids(c, conv.id)
    c.conversations.items.delete(before[1], conversation_id=conv.id)
    after = _ids(c, conv.id)
    assert after == [before[0], *before[2:]]
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.retrieve(before[1], conversation_id=conv.id)
    # items added after a deletion at the end: new ids too
    c.conversations.items.delete(after[-1], conversation_id=conv.id)
    added = c.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}])
    assert added.data[0].id not in before + after
    assert _ids(c, conv.id) == [*after[:-1], added.data[0].id]
    # a response on it lists the conversation's items with the conversation's ids
    r3 = c.responses.create(model="gpt-4o-mini", input="y", conversation=conv.id)
    listed = [x.id for x in c.responses.input_items.list(r3.id, order="asc").data]
    assert [*listed, r3.output[0].id] == _ids(c, conv.id)
    assert c.responses.retrieve(r3.id).output[0].id == r3.output[0].id


def test_a_conversation_stored_before_scoped_ids_never_shows_a_deleted_old_id(
    gw: Harness,
) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[*FIRST, {"role": "user", "content": "second"}])
    records = gw.gateway.records
    rec = records.get_conversation("default", conv.id)
    assert rec is not None
    del rec["ids"]
    records.put_conversation("default", rec)  # as an older gateway stored it
    first = gw.rt.session(rec["thread"], create=False).prefix_hashes()[0]
    old = [it.item_id("message", _core.ROOT, 0), it.item_id("message", first, 0)]
    shown = _ids(c, conv.id)
    assert c.conversations.items.retrieve(old[1], conversation_id=conv.id).id == shown[1]
    c.conversations.items.delete(old[1], conversation_id=conv.id)
    c.conversations.items.create(conv.id, items=[{"role": "user", "content": "third"}])
    with pytest.raises(openai.NotFoundError):  # the deleted item's old id names nothing
        c.conversations.items.retrieve(old[1], conversation_id=conv.id)
    assert c.conversations.items.retrieve(old[0], conversation_id=conv.id).id == shown[0]


def test_a_fork_lists_its_inherited_items_with_the_ids_shown_for_them(gw: Harness) -> None:
    c = gw.client()
    r1 = c.responses.create(model="gpt-4o-mini", input="first")
    in1 = c.responses.input_items.list(r1.id).data[0].id
    r2 = c.responses.create(model="gpt-4o-mini", input="second", previous_response_id=r1.id)
    # r1 is no longer its thread's newest response: this one forks there
    f = c.responses.create(model="gpt-4o-mini", input="fork", previous_response_id=r1.id)
    listed = [x.id for x in c.responses.input_items.list(f.id, order="asc").data]
    assert listed[:2] == [in1, r1.output[0].id]
    r2_in = c.responses.input_items.list(r2.id).data[0].id
    assert listed[2] != r2_in and f.output[0].id != r2.output[0].id  # its own: its scope
    after = c.responses.input_items.list(f.id, order="asc", after=in1).data
    assert [x.id for x in after] == listed[1:]
    # continued, and forked again: every item keeps the id it was first shown with
    g = c.responses.create(model="gpt-4o-mini", input="on", previous_response_id=f.id)
    chain = [*listed, f.output[0].id]
    assert [x.id for x in c.responses.input_items.list(g.id, order="asc").data][:-1] == chain
    f2 = c.responses.create(model="gpt-4o-mini", input="fork", previous_response_id=f.id)
    assert [x.id for x in c.responses.input_items.list(f2.id, order="asc").data][:-1] == chain
    g_in = c.responses.input_items.list(g.id).data[0].id
    assert f2.output[0].id not in (g.output[0].id, f.output[0].id)
    assert c.responses.input_items.list(f2.id).data[0].id != g_in
    assert c.responses.retrieve(f2.id).output[0].id == f2.output[0].id


#: Ids of our shape that are not ours: whitespace and signs Python's hex parsers take.
_NEAR = [
    "msg_" + "00 " * 10 + "0000",  # bytes.fromhex skips the spaces: 11 bytes, not 16
    "msg_" + "\t" + "0" * 31 + "00",
    "msg_" + "0" * 32 + "+1",
    "msg_" + "0" * 32 + " 1",
    "msg_" + "AB" * 16 + "00",
]


def test_ids_of_our_shape_that_are_not_ours_are_404(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=FIRST)
    r = c.responses.create(model="gpt-4o-mini", input="q", conversation=conv.id)
    shown = _ids(c, conv.id)
    for bad in _NEAR:
        with pytest.raises(openai.NotFoundError):
            c.conversations.items.retrieve(bad, conversation_id=conv.id)
        with pytest.raises(openai.NotFoundError):
            c.conversations.items.delete(bad, conversation_id=conv.id)
        with pytest.raises(openai.NotFoundError):
            c.conversations.items.list(conv.id, after=bad)
        with pytest.raises(openai.NotFoundError):
            c.responses.input_items.list(r.id, after=bad)
    assert _ids(c, conv.id) == shown
    for bad in _NEAR:
        assert it.parse_id(bad) is None, bad
