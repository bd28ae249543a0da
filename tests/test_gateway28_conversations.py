"""The Conversations and Responses APIs held to api.openai.com's semantics, through the
official ``openai`` SDK (srt.testing's server the upstream; one gateway for the module).

Every answer of the Conversations API, and a response's ``input_items``, validates
against the SDK's own pydantic models with no field the model lacks; OpenAI's words for
``conversation`` with ``previous_response_id`` (``mutually_exclusive_parameters``) and for
an id without its prefix (``Expected an ID that begins with 'conv'``); and the
``include`` the SDK sends in the query of ``conversations.items.create`` and
``.retrieve``, checked as the lists check it (it was dropped unread).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from pydantic import BaseModel, TypeAdapter

from gateway_support import Harness, harness

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    path = str(Path(tmp_path_factory.mktemp("gw28")) / "srt.db")
    with pytest.MonkeyPatch.context() as mp, harness(path, mp) as h:
        yield h


def _extras(value: Any, path: str = "$") -> list[str]:
    """The fields of a validated SDK model (at any depth) that its class does not name:
    the SDK's models take unknown keys silently, so a strict check looks for them."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{k}" for k in value.model_extra or {}]
        for k in type(value).model_fields:
            found += _extras(getattr(value, k), f"{path}.{k}")
        return found
    if isinstance(value, (list, tuple)):
        return [x for i, v in enumerate(value) for x in _extras(v, f"{path}[{i}]")]
    return []


def strict(model: Any, data: Any) -> Any:
    """``data`` validated by the SDK's ``model`` (``model_validate``), with no extra key."""
    parsed = TypeAdapter(model).validate_python(data)
    assert _extras(parsed) == [], data
    return parsed


def raw(h: Harness, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, h.url + path, headers={"Authorization": "Bearer k"}, **kw)


def refused(h: Harness, call: Any, status: int, param: str | None, code: str) -> Any:
    """``call()`` through the SDK is an OpenAI-shaped ``status`` error naming ``param``
    with ``code``, and nothing went upstream."""
    before = h.srv.requests.total()
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    err = caught.value
    assert (err.status_code, err.param, err.code) == (status, param, code), err.body
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    assert h.srv.requests.total() == before
    return err


# -- 1. shapes ---------------------------------------------------------------------------


def test_every_conversations_answer_is_the_sdks_model_with_nothing_extra(gw: Harness) -> None:
    c = gw.client()
    made = raw(gw, "POST", "/conversations", json={"items": [{"role": "user", "content": "a"}]})
    conv = strict(Conversation, made.json())
    strict(Conversation, raw(gw, "GET", f"/conversations/{conv.id}").json())
    upd = raw(gw, "POST", f"/conversations/{conv.id}", json={"metadata": {"k": "v"}})
    assert strict(Conversation, upd.json()).metadata == {"k": "v"}
    added = raw(
        gw,
        "POST",
        f"/conversations/{conv.id}/items",
        json={
            "items": [
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
                {"role": "assistant", "content": "b"},
            ]
        },
    )
    page = strict(ConversationItemList, added.json())
    assert (page.first_id, page.last_id) == (page.data[0].id, page.data[-1].id)
    listed = strict(ConversationItemList, raw(gw, "GET", f"/conversations/{conv.id}/items").json())
    assert [i.type for i in listed.data] == [
        "message",
        "function_call_output",
        "function_call",
        "message",
    ]  # newest first: OpenAI's default order
    for item in listed.data:
        one = raw(gw, "GET", f"/conversations/{conv.id}/items/{item.id}").json()
        assert strict(ConversationItem, one).id == item.id
    resp = c.responses.create(model=MODEL, input="c", conversation=conv.id)
    inputs = raw(gw, "GET", f"/responses/{resp.id}/input_items", params={"order": "asc"})
    assert [i.type for i in strict(ConversationItemList, inputs.json()).data] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    gone = raw(gw, "DELETE", f"/conversations/{conv.id}/items/{listed.data[0].id}")
    assert strict(Conversation, gone.json()).id == conv.id  # OpenAI returns the conversation
    deleted = strict(
        ConversationDeletedResource, raw(gw, "DELETE", f"/conversations/{conv.id}").json()
    )
    assert deleted.deleted and deleted.id == conv.id
    refused(gw, lambda: c.conversations.retrieve(conv.id), 404, None, "not_found")
    refused(gw, lambda: c.conversations.items.list(conv.id), 404, None, "not_found")
    assert c.responses.retrieve(resp.id).id == resp.id  # a response outlives its conversation


def test_the_sdks_iterators_page_through_every_item_both_ways(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": f"m{i}"} for i in range(20)])
    c.conversations.items.create(
        conv.id, items=[{"role": "user", "content": f"n{i}"} for i in range(3)]
    )
    texts = [f"m{i}" for i in range(20)] + [f"n{i}" for i in range(3)]
    first = c.conversations.items.list(conv.id, limit=7, order="asc")
    assert first.has_more and (first.first_id, first.last_id) == (
        first.data[0].id,
        first.data[-1].id,
    )
    for order, want in (("asc", texts), ("desc", texts[::-1])):
        got = [i.content[0].text for i in c.conversations.items.list(conv.id, limit=7, order=order)]
        assert got == want  # 4 pages of 7, 7, 7, 2
    resp = c.responses.create(model=MODEL, input="last", conversation=conv.id)
    inputs = [i.content[0].text for i in c.responses.input_items.list(resp.id, limit=9)]
    assert inputs == ["last", *texts[::-1]]


# -- 2. OpenAI's words for ids ---------------------------------------------------------


def test_conversation_with_previous_response_id_is_openais_mutually_exclusive_400(
    gw: Harness,
) -> None:
    c = gw.client()
    conv = c.conversations.create()
    prev = c.responses.create(model=MODEL, input="a")
    for conversation in (conv.id, {"id": conv.id}):
        err = refused(
            gw,
            lambda conversation=conversation: c.responses.create(
                model=MODEL, input="b", conversation=conversation, previous_response_id=prev.id
            ),
            400,
            None,
            "mutually_exclusive_parameters",
        )
        assert err.message.endswith(
            "Mutually exclusive parameters. Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'."
        )
    assert c.conversations.items.list(conv.id).data == []


@pytest.mark.parametrize(
    ("field", "value", "param", "prefix"),
    [
        ("conversation", "wa_10_972504294724", "conversation", "conv"),
        ("conversation", {"id": "thread-7"}, "conversation", "conv"),
        ("previous_response_id", "gen-123", "previous_response_id", "resp"),
        ("previous_response_id", "msg_0a8c4783", "previous_response_id", "resp"),
    ],
)
def test_an_id_without_its_prefix_is_openais_invalid_value(
    gw: Harness, field: str, value: Any, param: str, prefix: str
) -> None:
    """api.openai.com: ``Invalid 'conversation': 'wa_10_...'. Expected an ID that begins
    with 'conv'.`` (``invalid_value``, 400), where the gateway said 404 not found (and
    ``previous_response_not_found`` for a response id)."""
    ident = value["id"] if isinstance(value, dict) else value
    err = refused(
        gw,
        lambda: gw.client().responses.create(model=MODEL, input="x", **{field: value}),
        400,
        param,
        "invalid_value",
    )
    assert err.message.endswith(
        f"Invalid '{param}': '{ident}'. Expected an ID that begins with '{prefix}'."
    )


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ({}, "conversation.id", "missing_required_parameter"),
        ({"id": "conv_x", "name": "n"}, "conversation.name", "unknown_parameter"),
        ({"id": 5}, "conversation.id", "invalid_type"),
        ("", "conversation", "invalid_value"),
    ],
)
def test_a_malformed_conversation_is_a_400_naming_the_member_at_fault(
    gw: Harness, value: Any, param: str, code: str
) -> None:
    """The ``{"id": ...}`` form's members are named as OpenAI names a body's (the gateway
    said ``code: null`` naming ``conversation``, and "expected a string, but got a
    string" of ``""``)."""
    err = refused(
        gw,
        lambda: gw.client().responses.create(model=MODEL, input="x", conversation=value),
        400,
        param,
        code,
    )
    assert "got a string" not in err.message


# -- 3. include in the query of items.create and items.retrieve -------------------------


def test_items_create_checks_the_include_it_is_sent(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create()
    add = c.conversations.items.create
    item = [{"role": "user", "content": "x"}]
    refused(
        gw, lambda: add(conv.id, items=item, include=["bogus"]), 400, "include", "invalid_value"
    )
    refused(
        gw,
        lambda: add(conv.id, items=item, include=["message.output_text.logprobs"]),
        400,
        "include",
        "unsupported_parameter",
    )
    refused(
        gw,
        lambda: add(conv.id, items=item, extra_query={"foo": "1"}),
        400,
        "foo",
        "unknown_parameter",
    )
    assert c.conversations.items.list(conv.id).data == []  # nothing added by a refusal
    ok = add(conv.id, items=item, include=["message.input_image.image_url"])
    assert [i.type for i in ok.data] == ["message"]


def test_items_retrieve_checks_the_include_it_is_sent(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": "x"}])
    (item,) = c.conversations.items.list(conv.id).data
    get = c.conversations.items.retrieve
    refused(
        gw,
        lambda: get(item.id, conversation_id=conv.id, include=["bogus"]),
        400,
        "include",
        "invalid_value",
    )
    got = get(item.id, conversation_id=conv.id, include=["reasoning.encrypted_content"])
    assert got.id == item.id


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_conversations_unknown_query_parameter_is_a_400_naming_it(
    gw: Harness, method: str
) -> None:
    c = gw.client()
    conv = c.conversations.create()
    body = {"json": {"metadata": {"a": "b"}}} if method == "POST" else {}
    answer = raw(gw, method, f"/conversations/{conv.id}?foo=1", **body)
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "message": "Unrecognized query parameter: foo",
        "type": "invalid_request_error",
        "param": "foo",
        "code": "unknown_parameter",
    }
    kept = c.conversations.retrieve(conv.id)  # neither updated nor deleted
    assert kept.metadata == {}
