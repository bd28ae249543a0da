"""A ``function_call_output`` whose ``call_id`` no ``function_call`` before it names (in
the input, the conversation or the ``previous_response_id`` chain) is OpenAI's 400,
before anything is stored or sent upstream, through the SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, count, harness
from support import connect

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _output(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": "sunny"}


def _state(gw: Harness) -> tuple[int, ...]:
    path = gw.rt.path
    return (
        gw.srv.requests.total(),
        count(path, "calls"),
        count(path, "sessions"),
        count(path, "nodes"),
        count(path, "objects") if "objects" in _tables(gw) else 0,
    )


def _tables(gw: Harness) -> set[str]:
    with connect(gw.rt.path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master").fetchall()}


def _refused(gw: Harness, call_id: str, param: str, make: Any) -> None:
    before = _state(gw)
    with pytest.raises(openai.BadRequestError) as e:
        make()
    assert e.value.status_code == 400
    body: Any = e.value.body
    assert body["message"] == f"No tool call found for function call output with call_id {call_id}."
    assert body["param"] == param
    assert _state(gw) == before  # nothing stored, nothing sent


@pytest.mark.parametrize("stream", [False, True])
def test_an_orphan_output_in_a_new_response_is_a_400(gw: Harness, stream: bool) -> None:
    c = gw.client()

    def make() -> Any:
        given = [{"role": "user", "content": "hi"}, _output("call_nowhere")]
        if not stream:
            return c.responses.create(model="gpt-4o-mini", input=given)
        with c.responses.stream(model="gpt-4o-mini", input=given) as s:
            return s.get_final_response()

    _refused(gw, "call_nowhere", "input", make)
    # a call and its output in one input are answered
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
    ok = c.responses.create(model="gpt-4o-mini", input=[call, _output("c1")], tools=TOOLS)
    assert ok.status == "completed"
    # an output before its call is still an orphan
    _refused(
        gw,
        "c2",
        "input",
        lambda: c.responses.create(
            model="gpt-4o-mini", input=[_output("c2"), {**call, "call_id": "c2"}], tools=TOOLS
        ),
    )


def test_an_orphan_output_on_a_chain_or_a_conversation_is_a_400(gw: Harness) -> None:
    c = gw.client()
    gw.srv.script("*", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    r = c.responses.create(model="gpt-4o-mini", input="weather?", tools=TOOLS)
    (call,) = [o for o in r.output if o.type == "function_call"]
    _refused(
        gw,
        "call_other",
        "input",
        lambda: c.responses.create(
            model="gpt-4o-mini", input=[_output("call_other")], previous_response_id=r.id
        ),
    )
    r2 = c.responses.create(
        model="gpt-4o-mini", input=[_output(call.call_id)], previous_response_id=r.id, tools=TOOLS
    )
    assert r2.status == "completed"

    conv = c.conversations.create(items=[{"role": "user", "content": "hi"}])
    _refused(
        gw,
        "call_x",
        "input",
        lambda: c.responses.create(
            model="gpt-4o-mini", input=[_output("call_x")], conversation=conv.id
        ),
    )
    _refused(
        gw,
        "call_y",
        "items",
        lambda: c.conversations.items.create(conv.id, items=[_output("call_y")]),
    )
    _refused(gw, "call_z", "items", lambda: c.conversations.create(items=[_output("call_z")]))
    # the conversation goes on: nothing of the refused inputs was kept
    ok = c.responses.create(model="gpt-4o-mini", input="and now?", conversation=conv.id)
    assert ok.status == "completed"
    assert [m["role"] for m in gw.srv.log[-1].body["messages"]] == ["user", "user"]
    # a call stored in the conversation answers a later output
    gw.srv.script("*", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}])
    r3 = c.responses.create(model="gpt-4o-mini", input="rome?", conversation=conv.id, tools=TOOLS)
    (call3,) = [o for o in r3.output if o.type == "function_call"]
    added = c.conversations.items.create(conv.id, items=[_output(call3.call_id)])
    assert added.data[0].type == "function_call_output"


def _pair_in_the_middle(gw: Harness, c: openai.OpenAI) -> tuple[str, str, list[Any]]:
    """A conversation: a message, a response's function call, its output, and the reply
    after it; its id, the call's call_id, and its items."""
    conv = c.conversations.create(items=[{"role": "user", "content": "hi"}])
    gw.srv.script("*", [{"tool_calls": [{"name": "get_weather", "arguments": {}}]}])
    r = c.responses.create(model="gpt-4o-mini", input="w?", conversation=conv.id, tools=TOOLS)
    (call,) = [o for o in r.output if o.type == "function_call"]
    c.responses.create(
        model="gpt-4o-mini", input=[_output(call.call_id)], conversation=conv.id, tools=TOOLS
    )
    items = c.conversations.items.list(conv.id, order="asc").data
    kinds = [x.type for x in items]
    assert kinds == ["message", "message", "function_call", "function_call_output", "message"]
    return conv.id, call.call_id, items


def test_deleting_an_output_its_call_precedes_with_items_after_it_is_a_400(gw: Harness) -> None:
    c = gw.client()
    cid, call_id, items = _pair_in_the_middle(gw, c)
    before = _state(gw)
    with pytest.raises(openai.BadRequestError) as e:
        c.conversations.items.delete(items[3].id, conversation_id=cid)
    body: Any = e.value.body
    assert body["code"] == "invalid_value" and body["type"] == "invalid_request_error"
    assert call_id in body["message"] and items[2].id in body["message"]
    assert "unanswered" in body["message"] and "delete the function call" in body["message"]
    assert _state(gw) == before  # nothing changed
    assert [x.id for x in c.conversations.items.list(cid, order="asc").data] == [
        x.id for x in items
    ]
    ok = c.responses.create(model="gpt-4o-mini", input="again", conversation=cid, tools=TOOLS)
    assert ok.status == "completed"
    # the last item, an output, can be deleted: its call then waits for an output
    gw.srv.script("*", [{"tool_calls": [{"name": "get_weather", "arguments": {}}]}])
    r = c.responses.create(model="gpt-4o-mini", input="w?", conversation=cid, tools=TOOLS)
    (call,) = [o for o in r.output if o.type == "function_call"]
    added = c.conversations.items.create(cid, items=[_output(call.call_id)])
    c.conversations.items.delete(added.data[0].id, conversation_id=cid)
    assert c.conversations.items.list(cid).data[0].id == call.id
    answered = c.responses.create(
        model="gpt-4o-mini", input=[_output(call.call_id)], conversation=cid, tools=TOOLS
    )
    assert answered.status == "completed"


def test_deleting_a_call_deletes_its_output_with_it(gw: Harness) -> None:
    c = gw.client()
    cid, _call_id, items = _pair_in_the_middle(gw, c)
    c.conversations.items.delete(items[2].id, conversation_id=cid)  # the call and its output
    left = c.conversations.items.list(cid, order="asc").data
    assert [x.type for x in left] == ["message", "message", "message"]
    assert left[:2] == items[:2]
    ok = c.responses.create(model="gpt-4o-mini", input="again", conversation=cid)
    assert ok.status == "completed"
    sent = gw.srv.log[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "user", "assistant", "user"]
