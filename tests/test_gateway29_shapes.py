"""The Responses API's remaining shapes held to api.openai.com, through the official
``openai`` SDK (srt.testing's server the upstream; one gateway for the module).

What api.openai.com sends was read from recordings of it (the openai-dotnet SDK's
session records: 155 response objects, 78 streamed ``response`` snapshots, empty lists)
and OpenAI's OpenAPI spec:

- an empty list's ``first_id``/``last_id`` are ``null`` (as the recordings' empty lists
  have them; the SDK types them ``str`` but builds its models unvalidated, so a client
  reads ``None``): srt sent that already, kept and pinned here;
- a response carries ``store`` (every recorded one does; the SDK's ``Response`` lacks
  it) and never ``output_text`` (the spec: "SDK-only convenience property"): the gateway
  sent ``output_text`` on create, retrieve, background and cancel;
- a path id without its prefix is a 400 ``invalid_value`` naming ``response_id`` or
  ``conversation_id`` (the gateway said 404).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseItemList
from pydantic import BaseModel, TypeAdapter

from gateway_support import Harness, harness

MODEL = "gpt-4o-mini"
#: What api.openai.com sends that the SDK's models do not declare (every response has it).
SENT_BEYOND_THE_SDK = {"$.store", "$.response.store"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    path = str(Path(tmp_path_factory.mktemp("gw29")) / "srt.db")
    with pytest.MonkeyPatch.context() as mp, harness(path, mp) as h:
        yield h


def _extras(value: Any, path: str = "$") -> list[str]:
    """The fields of a validated SDK model (at any depth) its class does not name."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{k}" for k in value.model_extra or {}]
        for k in type(value).model_fields:
            found += _extras(getattr(value, k), f"{path}.{k}")
        return found
    if isinstance(value, (list, tuple)):
        return [x for i, v in enumerate(value) for x in _extras(v, f"{path}[{i}]")]
    return []


def strict(model: Any, data: Any) -> Any:
    """``data`` validated by the SDK's ``model``, with nothing extra but ``store``."""
    parsed = TypeAdapter(model).validate_python(data)
    assert set(_extras(parsed)) <= SENT_BEYOND_THE_SDK, data
    return parsed


def as_openai_response(data: dict[str, Any]) -> Response:
    """A response object as api.openai.com sends one: the SDK's ``Response`` strictly,
    with ``store`` and without ``output_text``."""
    assert "output_text" not in data and isinstance(data["store"], bool), data
    parsed: Response = strict(Response, data)
    return parsed


def streamed(c: openai.OpenAI, **body: Any) -> list[dict[str, Any]]:
    """The events of ``responses.create(stream=True, **body)`` as sent (JSON)."""
    body.setdefault("model", MODEL)
    with c.responses.with_streaming_response.create(stream=True, **body) as r:
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


# -- 1. an empty list -------------------------------------------------------------------


def test_an_empty_lists_first_and_last_id_are_null_as_api_openai_com_sends_them(
    gw: Harness,
) -> None:
    c = gw.client()
    conv = c.conversations.create()
    raw = c.conversations.items.with_raw_response.list(conv.id).http_response.json()
    assert raw == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    page = c.conversations.items.list(conv.id)  # the SDK reads it, as api.openai.com's
    assert (page.data, page.first_id, page.last_id, page.has_more) == ([], None, None, False)
    assert list(page) == []
    resp = c.responses.create(model=MODEL, input="a")
    (item,) = c.responses.input_items.list(resp.id).data
    past = c.responses.input_items.with_raw_response.list(resp.id, after=item.id)
    assert past.http_response.json() == raw
    full = c.responses.input_items.with_raw_response.list(resp.id).http_response.json()
    listed = strict(ResponseItemList, full)
    assert (listed.first_id, listed.last_id) == (item.id, item.id)


# -- 2. store kept, output_text gone ----------------------------------------------------


def test_no_response_object_carries_output_text_and_each_carries_store(gw: Harness) -> None:
    """Create, retrieve, a background create and its cancel, ``store: false``, and the
    ``response`` of each streamed ``response.*`` event: api.openai.com's shape. The
    SDK's own ``output_text`` property still reads the text."""
    c = gw.client()
    made = c.responses.with_raw_response.create(model=MODEL, input="hi")
    resp = as_openai_response(made.http_response.json())
    assert made.http_response.json()["store"] is True
    assert made.parse().output_text == resp.output_text and resp.output_text.startswith("reply")
    got = c.responses.with_raw_response.retrieve(resp.id).http_response.json()
    assert as_openai_response(got).output == resp.output
    unstored = c.responses.with_raw_response.create(model=MODEL, input="x", store=False)
    assert as_openai_response(unstored.http_response.json()).id
    assert unstored.http_response.json()["store"] is False
    bg = c.responses.with_raw_response.create(model=MODEL, input="bg", background=True)
    bg_resp = as_openai_response(bg.http_response.json())
    deadline = time.monotonic() + 30  # a bound on the wait, nothing timed asserted
    while c.responses.retrieve(bg_resp.id).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = c.responses.with_raw_response.cancel(bg_resp.id).http_response.json()
    assert as_openai_response(cancelled).id == bg_resp.id
    evs = streamed(c, input="s")
    for e in evs:
        if "response" in e:
            as_openai_response(e["response"])
    assert evs[-1]["response"]["status"] == "completed"


# -- 3. a path id without its prefix -----------------------------------------------------


def _calls(c: openai.OpenAI, conv: str, item: str) -> list[tuple[str, Any, str, str]]:
    """(what, call, param, the id named) for every path that names a response or a
    conversation."""
    return [
        ("retrieve", lambda: c.responses.retrieve("xyz"), "response_id", "xyz"),
        ("replay", lambda: c.responses.retrieve("xyz", stream=True), "response_id", "xyz"),
        ("delete", lambda: c.responses.delete("gen-1"), "response_id", "gen-1"),
        ("input_items", lambda: c.responses.input_items.list("msg_1"), "response_id", "msg_1"),
        ("cancel", lambda: c.responses.cancel("xyz"), "response_id", "xyz"),
        ("conv get", lambda: c.conversations.retrieve("abc"), "conversation_id", "abc"),
        (
            "conv update",
            lambda: c.conversations.update("abc", metadata={"a": "b"}),
            "conversation_id",
            "abc",
        ),
        ("conv delete", lambda: c.conversations.delete("resp_1"), "conversation_id", "resp_1"),
        ("items list", lambda: c.conversations.items.list("abc"), "conversation_id", "abc"),
        (
            "items add",
            lambda: c.conversations.items.create("abc", items=[{"role": "user", "content": "x"}]),
            "conversation_id",
            "abc",
        ),
        (
            "item get",
            lambda: c.conversations.items.retrieve(item, conversation_id="abc"),
            "conversation_id",
            "abc",
        ),
        (
            "item delete",
            lambda: c.conversations.items.delete(item, conversation_id="abc"),
            "conversation_id",
            "abc",
        ),
    ]


def test_a_path_id_without_its_prefix_is_openais_invalid_value(gw: Harness) -> None:
    """api.openai.com: ``Invalid 'response_id': 'xyz'. Expected an ID that begins with
    'resp'.`` (400 ``invalid_value``), where the gateway said 404; an id of the right form
    that names nothing stays the 404."""
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": "kept"}])
    (item,) = c.conversations.items.list(conv.id).data
    for what, call, param, ident in _calls(c, conv.id, item.id):
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        err = caught.value
        assert (err.status_code, err.param, err.code) == (400, param, "invalid_value"), what
        prefix = "resp" if param == "response_id" else "conv"
        assert isinstance(err.body, dict) and err.body["message"] == (
            f"Invalid '{param}': '{ident}'. Expected an ID that begins with '{prefix}'."
        ), what
    assert [i.id for i in c.conversations.items.list(conv.id).data] == [item.id]
    with pytest.raises(openai.NotFoundError) as missing:
        c.responses.retrieve("resp_0")
    assert missing.value.body == {
        "message": "Response with id 'resp_0' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        c.conversations.items.retrieve("msg_0", conversation_id=conv.id)
