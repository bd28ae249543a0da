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
  ``conversation_id`` (the gateway said 404);
- every streamed event validates as the SDK's ``ResponseStreamEvent`` with no field it
  lacks but ``response.store``: ``response.function_call_arguments.done`` carried a
  ``name`` (the recordings' have none), a response's ``error.code`` was the HTTP error's
  (``upstream_error``, not one ``ResponseError`` takes), and the ``error`` event had the
  error object's ``type`` and no ``sequence_number``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from gateway_support import Harness, harness
from srt.gateway import events as gw_events

MODEL = "gpt-4o-mini"
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "f",
        "parameters": {"type": "object", "properties": {}},
        "strict": False,
    }
]
EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
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


def check_stream(evs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every event is the SDK's model with nothing extra but ``response.store``, the
    sequence numbers run 0, 1, 2..., and every ``output_index``, ``item_id`` and
    ``content_index`` names what the final response holds there; the final response."""
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    for e in evs:
        if e["type"] == "response.cancelled":  # (the SDK's union has no cancelled end:
            # srt's is the envelope of the other ends, ``events.END``)
            assert e is evs[-1] and e["response"]["status"] == "cancelled", e
            strict(ResponseStreamEvent, {**e, "type": "response.incomplete"})
        else:
            strict(ResponseStreamEvent, e)
        if "response" in e:
            as_openai_response(e["response"])
    final = evs[-1]["response"]
    output = final["output"]
    for e in evs[:-1]:
        if "output_index" not in e:
            continue
        item = output[e["output_index"]]
        named = e["item"]["id"] if "item" in e else e["item_id"]
        assert named == item["id"], (e, output)
        if "content_index" in e:
            part = item["content"][e["content_index"]]
            if e["type"].endswith(".done"):
                assert e.get("part", part) == part
                assert e.get("text", part.get("text")) == part.get("text")
    done = [e["item"] for e in evs if e["type"] == "response.output_item.done"]
    assert done == output  # each item announced, in the order the response holds them
    for i, item in enumerate(output):  # and each part of a message, in order
        closed = [
            e["part"]
            for e in evs
            if e["type"] == "response.content_part.done" and e["output_index"] == i
        ]
        assert closed == item.get("content", closed), (i, item)
    return final  # type: ignore[no-any-return]


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
    final = check_stream(streamed(c, input="s"))
    assert final["status"] == "completed"


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


# -- 4. streaming events ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "model"),
    [("openai", MODEL), ("responses", "responses/gpt-4o"), ("anthropic", "claude-x")],
)
def test_a_streamed_reply_with_text_and_function_calls_is_the_sdks_events(
    gw: Harness, target: str, model: str
) -> None:
    c = gw.client()
    calls = [{"name": "f", "arguments": {"a": 1}}, {"name": "f", "arguments": {"b": 2}}]
    gw.srv.script(target, [{"text": "calling", "tool_calls": calls}])
    evs = streamed(c, model=model, input="go", tools=TOOLS)
    final = check_stream(evs)
    assert [i["type"] for i in final["output"]] == ["message", "function_call", "function_call"]
    args = [e for e in evs if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["arguments"]) for e in args] == [
        (1, '{"a":1}'),
        (2, '{"b":2}'),
    ]
    assert all("name" not in e for e in args)  # as api.openai.com sends it
    gw.srv.script(target, [{"tool_calls": calls[:1]}])  # a call alone: it is output 0
    alone = check_stream(streamed(c, model=model, input="again", tools=TOOLS))
    assert [i["type"] for i in alone["output"]] == ["function_call"]
    assert c.responses.retrieve(final["id"]).output[1].id == final["output"][1]["id"]


@pytest.mark.parametrize(
    ("fault", "kind", "status"),
    [
        # (a cut is ``failed``: OpenAI's ``incomplete`` is a token cap or a content
        # filter only; tests/test_gateway30_statuses.py)
        ({"kind": "reset_after_events", "n": 3}, "response.failed", "failed"),
        (
            {"kind": "malformed_sse", "variant": "error_event", "after": 2},
            "response.failed",
            "failed",
        ),
    ],
    ids=["cut", "error-event"],
)
def test_an_upstream_failing_mid_stream_ends_in_an_sdk_valid_event(
    gw: Harness, fault: dict[str, Any], kind: str, status: str
) -> None:
    """The response's ``error.code`` is one the SDK's ``ResponseError`` takes
    (``server_error``; the request's own code was ``upstream_error``), the upstream's
    words kept in its message; the stored response says the same."""
    c = gw.client()
    gw.srv.fault("openai", **fault)
    evs = streamed(c, input="long " * 50)
    final = check_stream(evs)
    assert (evs[-1]["type"], final["status"]) == (kind, status)
    assert final["error"]["code"] == "server_error" and final["error"]["message"]
    stored = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
    assert as_openai_response(stored).error == Response.model_validate(final).error


def test_a_background_stream_and_a_replay_are_the_sdks_events(gw: Harness) -> None:
    c = gw.client()
    final = check_stream(streamed(c, input="bg", background=True))
    assert final["background"] is True and final["status"] == "completed"
    with c.responses.with_streaming_response.retrieve(final["id"], stream=True) as r:
        again = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ")]
    assert check_stream(again) == final


def test_a_failure_after_the_end_was_decided_is_an_sdk_error_event(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's own code failing once the response has ended (here, announcing its
    items): the stream ends with an ``error`` event the SDK's ``ResponseErrorEvent``
    takes, numbered after the events before it (it had the error object's ``type`` in
    place of ``"error"`` and no ``sequence_number``)."""

    def broken(self: Any, response: dict[str, Any]) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(gw_events.Events, "finish", broken)
    evs = streamed(gw.client(), input="x")
    assert evs[-1]["type"] == "error"
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    err = strict(ResponseStreamEvent, evs[-1])
    # the 500's error object, as an HTTP answer would carry it (its ``code`` null)
    assert (err.code, err.param) == (None, None) and "injected" not in err.message
    for e in evs[:-1]:
        strict(ResponseStreamEvent, e)


def _response(output: list[dict[str, Any]]) -> dict[str, Any]:
    """A completed response holding ``output``, as the gateway renders one."""
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "store": True,
        "tool_choice": "auto",
        "tools": [],
        "metadata": {},
        "temperature": None,
        "top_p": None,
    }


def _message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": list(parts),
    }


TEXT = {"type": "output_text", "text": "partly", "annotations": [], "logprobs": []}
REFUSAL = {"type": "refusal", "refusal": "I can't help with that."}


@pytest.mark.parametrize("parts", [[REFUSAL], [TEXT, REFUSAL]], ids=["refusal", "both"])
def test_a_refusal_streams_as_refusal_events(parts: list[dict[str, Any]]) -> None:
    """A reply with a refusal (an upstream's ``refusal``: srt.testing's server sends
    none, so the event builder is driven directly): ``response.refusal.delta`` and
    ``...done`` in its own content part, announced, whether the message streamed text
    first (a live stream) or is announced whole (a replay). Before, the refusal part
    after streamed text was never announced, and one announced whole got an
    ``output_text`` event and a ``text`` member."""
    final = _response([_message(*parts)])
    replayed = b"".join(gw_events.replay(final)).decode()
    check_stream([json.loads(x[6:]) for x in replayed.splitlines() if x.startswith("data: ")])
    live: list[dict[str, Any]] = []
    ev = gw_events.Events(lambda kind, data: live.append(data))
    ev.start({**final, "status": "in_progress", "output": []})
    if parts[0] is TEXT:
        ev.delta("part", "msg_1")
        ev.delta("ly", "msg_1")
    ev.finish(final)
    check_stream(live)
    kinds = [e["type"] for e in live]
    assert kinds.count("response.refusal.done") == 1
    (done,) = [e for e in live if e["type"] == "response.refusal.done"]
    assert (done["content_index"], done["refusal"]) == (len(parts) - 1, REFUSAL["refusal"])
