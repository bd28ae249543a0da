"""An item keeps the id it was first shown with for its life, through the SDK: after a
deletion in the middle of a conversation and after new instructions re-root a history
(a conversation's, or a ``previous_response_id`` chain's), as OpenAI keeps an item's id.
Deleted ids stay 404, the stored messages stay shared, and a record stored before ids
were kept shows the ids it showed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.conversations import ConversationItemList

from gateway_support import Harness, count, harness
from srt import _core
from srt.gateway import items as it


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _ids(c: openai.OpenAI, cid: str) -> list[str]:
    page = c.conversations.items.list(cid, order="asc", limit=100)
    assert isinstance(page, openai.pagination.SyncConversationCursorPage)
    return [x.id for x in page.data]


def _texts(c: openai.OpenAI, cid: str) -> list[str]:
    data = c.conversations.items.list(cid, order="asc", limit=100).data
    return [x.content[0].text for x in data]  # type: ignore[union-attr]


def _check_ids(c: openai.OpenAI, cid: str, shown: list[str]) -> None:
    """Every item lists, retrieves and pages (``after``, both orders) by ``shown``."""
    assert _ids(c, cid) == shown
    for k, ident in enumerate(shown):
        assert c.conversations.items.retrieve(ident, conversation_id=cid).id == ident
        asc = c.conversations.items.list(cid, order="asc", after=ident, limit=100)
        assert [x.id for x in asc.data] == shown[k + 1 :]
        desc = c.conversations.items.list(cid, order="desc", after=ident, limit=100)
        assert [x.id for x in desc.data] == shown[:k][::-1]


def _gone(c: openai.OpenAI, cid: str, ident: str) -> None:
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.retrieve(ident, conversation_id=cid)
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.list(cid, after=ident)
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.delete(ident, conversation_id=cid)


def test_items_after_a_deletion_in_the_middle_keep_their_ids(gw: Harness, db_path: str) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[_user(f"m{k}") for k in range(5)])
    shown = _ids(c, conv.id)
    c.conversations.items.delete(shown[1], conversation_id=conv.id)
    kept = [shown[0], *shown[2:]]
    _check_ids(c, conv.id, kept)
    _gone(c, conv.id, shown[1])
    # a second deletion, further on, and one before the first: the rest keep theirs
    c.conversations.items.delete(shown[3], conversation_id=conv.id)
    c.conversations.items.delete(shown[0], conversation_id=conv.id)
    kept = [shown[2], shown[4]]
    _check_ids(c, conv.id, kept)
    assert _texts(c, conv.id) == ["m2", "m4"]
    # the same messages added again, and a turn made: never a deleted id
    messages = count(db_path, "messages")
    added = c.conversations.items.create(conv.id, items=[_user("m0"), _user("m1"), _user("m3")])
    assert count(db_path, "messages") == messages  # stored once
    r = c.responses.create(model="gpt-4o-mini", input="q", conversation=conv.id)
    now = _ids(c, conv.id)
    assert now[:2] == kept and now[2:5] == [x.id for x in added.data]
    assert now[-1] == r.output[0].id  # the response's output shows the conversation's id
    assert not set(now) & {shown[0], shown[1], shown[3]}
    assert len(set(now)) == len(now)
    for ident in (shown[0], shown[1], shown[3]):
        _gone(c, conv.id, ident)
    # the response lists its input with the conversation's ids, and its output is the same
    listed = [x.id for x in c.responses.input_items.list(r.id, order="asc", limit=100).data]
    assert listed == now[:-1]
    assert c.responses.retrieve(r.id).output[0].id == r.output[0].id
    # and the list is what the SDK's own type takes
    raw = c.conversations.items.with_raw_response.list(conv.id, limit=100)
    page = ConversationItemList.model_validate_json(raw.http_response.text)
    assert [x.id for x in page.data] == now[::-1]  # type: ignore[union-attr]


def test_two_conversations_rewritten_alike_show_different_ids(gw: Harness, db_path: str) -> None:
    c = gw.client()
    items = [_user("a"), _user("b"), _user("c")]
    a = c.conversations.create(items=items)
    messages = count(db_path, "messages")
    b = c.conversations.create(items=items)
    assert count(db_path, "messages") == messages
    for conv in (a, b):
        c.conversations.items.delete(_ids(c, conv.id)[0], conversation_id=conv.id)
    ia, ib = _ids(c, a.id), _ids(c, b.id)
    assert len(ia) == len(ib) == 2 and not set(ia) & set(ib)
    for ident in ia:
        _gone(c, b.id, ident)
    assert count(db_path, "messages") == messages  # the rewrites copied no message


def test_a_function_call_deleted_with_its_output_leaves_the_rest_their_ids(gw: Harness) -> None:
    c = gw.client()
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    out = {"type": "function_call_output", "call_id": "c1", "output": "ok"}
    conv = c.conversations.create(items=[_user("q"), call, out, _user("after")])
    shown = _ids(c, conv.id)
    c.conversations.items.delete(shown[1], conversation_id=conv.id)  # the call: and its output
    _check_ids(c, conv.id, [shown[0], shown[3]])
    for ident in shown[1:3]:
        _gone(c, conv.id, ident)


def test_an_item_left_in_a_message_that_lost_another_keeps_its_id(gw: Harness) -> None:
    c = gw.client()
    calls = [
        {"type": "function_call", "call_id": f"c{k}", "name": "f", "arguments": "{}"}
        for k in (1, 2, 3)
    ]
    outs = [{"type": "function_call_output", "call_id": f"c{k}", "output": "ok"} for k in (1, 2, 3)]
    conv = c.conversations.create(items=[_user("q"), *calls, *outs, _user("after")])
    shown = _ids(c, conv.id)
    kinds = [x.type for x in c.conversations.items.list(conv.id, order="asc").data]
    assert kinds[1:4] == ["function_call"] * 3  # one assistant message, three items
    c.conversations.items.delete(shown[1], conversation_id=conv.id)  # c1, and its output
    left = [shown[0], shown[2], shown[3], shown[5], shown[6], shown[7]]
    _check_ids(c, conv.id, left)
    # the message loses another: what is left still shows its own id
    c.conversations.items.delete(shown[3], conversation_id=conv.id)  # c3, and its output
    _check_ids(c, conv.id, [shown[0], shown[2], shown[5], shown[7]])
    for ident in (shown[1], shown[3], shown[4], shown[6]):
        _gone(c, conv.id, ident)


def test_new_instructions_on_a_conversation_keep_its_items_ids(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[_user("one"), _user("two")])
    r1 = c.responses.create(model="gpt-4o-mini", input="q1", conversation=conv.id)
    shown = _ids(c, conv.id)
    r2 = c.responses.create(
        model="gpt-4o-mini", input="q2", conversation=conv.id, instructions="be brief"
    )
    now = _ids(c, conv.id)
    assert now[:4] == shown and shown[-1] == r1.output[0].id
    assert now[-1] == r2.output[0].id and len(set(now)) == 6
    listed = [x.id for x in c.responses.input_items.list(r2.id, order="asc", limit=100).data]
    assert listed == now[:-1]
    _check_ids(c, conv.id, now)
    # other instructions again, streamed: the same ids, and the stream shows its own
    with c.responses.stream(
        model="gpt-4o-mini", input="q3", conversation=conv.id, instructions="be long"
    ) as s:
        r3 = s.get_final_response()
    later = _ids(c, conv.id)
    assert later[:6] == now and later[-1] == r3.output[0].id
    # a deletion after the re-roots: the items after it keep theirs
    c.conversations.items.delete(later[1], conversation_id=conv.id)
    _check_ids(c, conv.id, [later[0], *later[2:]])
    _gone(c, conv.id, later[1])


def test_new_instructions_on_a_response_chain_keep_the_ids_it_showed(gw: Harness) -> None:
    c = gw.client()
    r1 = c.responses.create(model="gpt-4o-mini", input="first")
    r2 = c.responses.create(model="gpt-4o-mini", input="second", previous_response_id=r1.id)
    chain = [x.id for x in c.responses.input_items.list(r2.id, order="asc").data]
    chain.append(r2.output[0].id)
    r3 = c.responses.create(
        model="gpt-4o-mini", input="third", previous_response_id=r2.id, instructions="new"
    )
    listed = [x.id for x in c.responses.input_items.list(r3.id, order="asc").data]
    assert listed[:4] == chain and len(set(listed)) == 5
    after = c.responses.input_items.list(r3.id, order="asc", after=chain[1]).data
    assert [x.id for x in after] == listed[2:]
    # continued, and forked from the re-rooted response: still the ids first shown
    r4 = c.responses.create(
        model="gpt-4o-mini", input="fourth", previous_response_id=r3.id, instructions="new"
    )
    f = c.responses.create(
        model="gpt-4o-mini", input="fork", previous_response_id=r3.id, instructions="new"
    )
    for r in (r4, f):
        got = [x.id for x in c.responses.input_items.list(r.id, order="asc").data]
        assert got[:6] == [*listed, r3.output[0].id]
    assert f.output[0].id != r4.output[0].id
    assert c.responses.retrieve(r3.id).output[0].id == r3.output[0].id


def test_a_conversation_rewritten_by_the_gateway_before_keeps_the_ids_it_shows(
    gw: Harness,
) -> None:
    """A record as the gateway stored it before ids were kept: a deletion had started a
    new generation from item 1 (``gens``), and its ids came from the prefix hashes."""
    c = gw.client()
    conv = c.conversations.create(items=[_user("a"), _user("b"), _user("c")])
    records = gw.gateway.records
    rec = records.get_conversation("default", conv.id)
    assert rec is not None and "kept" not in rec
    rec.update(gen=1, gens=[[1, 1]])  # the shape the old ``renew`` wrote
    records.put_conversation("default", rec)
    hashes = gw.rt.session(rec["thread"], create=False).prefix_hashes()
    base, gen1 = it.Ids.of("default", f"conv/{conv.id}"), it.Ids.of("default", f"conv/{conv.id}/1")
    old = [
        it.item_id("message", _core.ROOT, 0, base),
        it.item_id("message", hashes[0], 0, gen1),
        it.item_id("message", hashes[1], 0, gen1),
    ]
    _check_ids(c, conv.id, old)  # read with today's code: the ids it showed
    c.conversations.items.delete(old[0], conversation_id=conv.id)
    _check_ids(c, conv.id, old[1:])
    added = c.conversations.items.create(conv.id, items=[_user("a")])
    assert added.data[0].id not in old
    _gone(c, conv.id, old[0])
