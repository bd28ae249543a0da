"""The gateway against OpenAI's API reference, through the official ``openai`` SDK: each
status code, error ``type``/``code``/``param`` and object shape as api.openai.com answers
(or a clear OpenAI-shaped refusal naming the parameter)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItemList,
)

from gateway_support import Harness, count, harness, refused_400
from rel_support.waits import joined

FN = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _raw(h: Harness) -> httpx.Client:
    return httpx.Client(base_url=h.url, headers={"Authorization": "Bearer sk-any"})


def _requests_reached(h: Harness, n: int) -> None:
    """Until the upstream has received ``n`` requests (10 s at most, then fail)."""
    deadline = time.monotonic() + 10
    while len(h.srv.log) < n:
        assert time.monotonic() < deadline, f"{len(h.srv.log)} of {n} upstream requests"
        time.sleep(0.01)


def _raced(h: Harness, thread: str, n: int, **create: Any) -> openai.APIStatusError:
    """``responses.create(**create)`` while another worker commits a message on
    ``thread`` under it (after the request reached the upstream, its ``n``-th): the
    error it answers."""
    c = h.client()
    h.srv.fault("*", "delay", seconds=1.0)
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(c.responses.create(model="gpt-4o-mini", **create))
        except openai.APIStatusError as exc:
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    _requests_reached(h, n)
    h.rt.session(thread).append({"role": "user", "content": "from worker two"})
    joined(t, what="the request waiting on the session")
    (err,) = out
    assert isinstance(err, openai.APIStatusError), err
    return err


def test_a_raced_response_chain_409_names_the_chain_and_what_to_do(gw: Harness) -> None:
    c = gw.client()
    first = c.responses.create(model="gpt-4o-mini", input="one")
    rec, _ = gw.gateway.records.get_response("default", first.id)
    err = _raced(gw, rec["thread"], 2, input="two", previous_response_id=first.id)
    assert (err.status_code, err.code, err.param) == (409, "conflict", "previous_response_id")
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    assert "response chain" in err.message and first.id in err.message
    assert "conversation" not in err.message and "Retry" in err.message
    again = c.responses.create(model="gpt-4o-mini", input="two", previous_response_id=first.id)
    assert [i.content[0].text for i in c.responses.input_items.list(again.id, order="asc").data][
        -1
    ] == "two"  # the retry branches from the named response, as the message says


def test_a_raced_conversation_409_names_the_conversation(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": "one"}])
    rec = gw.gateway.records.get_conversation("default", conv.id)
    err = _raced(gw, rec["thread"], 1, input="two", conversation=conv.id)
    assert (err.status_code, err.code, err.param) == (409, "conflict", "conversation")
    assert "conversation" in err.message and "Retry" in err.message
    assert "response chain" not in err.message
    texts = [i.content[0].text for i in c.conversations.items.list(conv.id, order="asc").data]
    assert texts == ["one", "from worker two"]  # nothing of the refused request


def test_max_output_tokens_below_openais_minimum_is_refused(gw: Harness) -> None:
    err = refused_400(gw, "max_output_tokens", "integer_below_min_value", max_output_tokens=15)
    assert "Expected a value >= 16, but got 15" in err.message
    r = gw.client().responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=16)
    assert r.max_output_tokens == 16 and gw.srv.log[-1].body["max_completion_tokens"] == 16


def test_safety_identifier_over_64_characters_is_refused(gw: Harness) -> None:
    """OpenAI documents at most 64 characters (and refuses more): refused here, before an
    OpenAI upstream would answer it as its own 400."""
    refused_400(gw, "safety_identifier", "string_above_max_length", safety_identifier="u" * 65)
    r = gw.client().responses.create(model="gpt-4o-mini", input="hi", safety_identifier="u" * 64)
    assert r.safety_identifier == "u" * 64 == gw.srv.log[-1].body["safety_identifier"]


@pytest.mark.parametrize(
    ("metadata", "param", "code"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata", "object_above_max_properties"),
        ({"k" * 65: "v"}, "metadata", "string_above_max_length"),
        ({"k": "v" * 513}, "metadata.k", "string_above_max_length"),
    ],
)
def test_metadata_limits_as_openai_words_them(
    gw: Harness, metadata: dict[str, str], param: str, code: str
) -> None:
    refused_400(gw, param, code, metadata=metadata)
    c = gw.client()
    for call in (
        lambda: c.conversations.create(metadata=metadata),
        lambda: c.conversations.update(c.conversations.create().id, metadata=metadata),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert (caught.value.param, caught.value.code) == (param, code)
    most = {f"{i:064d}": "v" * 512 for i in range(16)}  # every limit reached, none passed
    assert c.responses.create(model="gpt-4o-mini", input="hi", metadata=most).metadata == most
    assert c.conversations.create(metadata=most).metadata == most


@pytest.mark.parametrize("fields", [{"input": []}, {}])
def test_nothing_to_send_is_refused_naming_input(gw: Harness, fields: dict[str, Any]) -> None:
    """An empty input with no instructions and no history: refused here, naming
    ``input``, not sent upstream to come back as the upstream's refusal."""
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().responses.create(model="gpt-4o-mini", **fields)
    assert (caught.value.param, caught.value.code) == ("input", "empty_array")
    assert gw.srv.requests.total() == 0 and count(gw.rt.path, "messages") == 0
    c = gw.client()  # instructions alone, or an empty input on a history, are a turn
    only = c.responses.create(model="gpt-4o-mini", instructions="Be brief.", **fields)
    assert only.status == "completed"
    more = c.responses.create(model="gpt-4o-mini", previous_response_id=only.id, **fields)
    assert more.status == "completed"


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "file_search"},
        {"type": "web_search_preview"},
        {"type": "mcp", "server_label": "x"},
        {"type": "custom", "name": "f"},
    ],
)
def test_tool_choice_forms_not_served_are_unsupported(gw: Harness, choice: Any) -> None:
    """OpenAI's other ``tool_choice`` forms are valid there: refused as unsupported here
    (not as an invalid value), the message naming the form."""
    err = refused_400(gw, "tool_choice", "unsupported_parameter", tools=[FN], tool_choice=choice)
    assert f"'{choice['type']}'" in err.message


def test_tool_choice_served_forms(gw: Harness) -> None:
    c = gw.client()
    for choice in ("none", "auto", "required", {"type": "function", "name": "f"}):
        r = c.responses.create(model="responses/x", input="hi", tools=[FN], tool_choice=choice)
        assert gw.srv.log[-1].body["tool_choice"] == choice  # a Responses upstream's words
        assert r.tool_choice == choice or r.tool_choice.model_dump() == choice


def test_unstored_response_cannot_be_continued(gw: Harness) -> None:
    """As OpenAI answers: a 400 ``previous_response_not_found`` naming the parameter."""
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="hi", store=False)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="gpt-4o-mini", input="more", previous_response_id=r.id)
    err = caught.value
    assert (err.param, err.code) == ("previous_response_id", "previous_response_not_found")


def test_conversation_objects_parse_as_the_sdks_models(gw: Harness) -> None:
    """Each success validates as the SDK's own model (no field missing or mistyped)."""
    with _raw(gw) as http:
        made = http.post("/conversations", json={"items": [{"role": "user", "content": "a"}]})
        conv = Conversation.model_validate(made.json())
        assert conv.object == "conversation" and conv.metadata == {}
        added = http.post(
            f"/conversations/{conv.id}/items",
            json={"items": [{"role": "user", "content": "b"}, {"role": "user", "content": "c"}]},
        )
        batch = ConversationItemList.model_validate(added.json())
        assert [i.id for i in batch.data] == [batch.first_id, batch.last_id]
        items = ConversationItemList.model_validate(
            http.get(f"/conversations/{conv.id}/items").json()
        )
        assert items.object == "list" and items.first_id == items.data[0].id
        assert not items.has_more
        other = http.post("/conversations", json={"items": [{"role": "user", "content": "b"}]})
        foreign = http.get(f"/conversations/{other.json()['id']}/items").json()["data"][0]["id"]
        for method in ("GET", "DELETE"):  # an item of another conversation is not found
            r = http.request(method, f"/conversations/{conv.id}/items/{foreign}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        gone = ConversationDeletedResource.model_validate(
            http.delete(f"/conversations/{conv.id}").json()
        )
        assert gone.deleted and gone.id == conv.id
        for method, path in (("GET", ""), ("POST", ""), ("GET", "/items"), ("DELETE", "")):
            r = http.request(method, f"/conversations/{conv.id}{path}", json={"metadata": {}})
            assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
