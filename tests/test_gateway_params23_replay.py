"""The GET endpoints' query parameters the gateway used to ignore: a stored response's
events streamed again (``responses.retrieve(id, stream=True)``, from ``starting_after``),
and ``include`` on the Conversations items list and a response's input items (served
as ``POST /v1/responses`` serves it, a 400 for the rest). The official ``openai`` SDK is
the client (its stream parsing and models), srt.testing's server the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
IMAGE = "https://example.com/cat.png"


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _plain(response: Any) -> dict[str, Any]:
    """A response as JSON data, without ``output_text`` (a field of the gateway's JSON
    that its streamed events do not carry)."""
    data: dict[str, Any] = response.model_dump()
    data.pop("output_text", None)
    return data


def _collapsed(events: list[Any]) -> list[str]:
    """The events' types, a run of text deltas as one (the replay keeps no delta cuts)."""
    kinds: list[str] = []
    for e in events:
        if not (e.type == "response.output_text.delta" and kinds and kinds[-1] == e.type):
            kinds.append(e.type)
    return kinds


def _data(e: Any) -> dict[str, Any]:
    """An event as JSON data, without what cuts a text into deltas differently."""
    data: dict[str, Any] = e.model_dump()
    data.pop("sequence_number")
    if e.type == "response.output_text.delta":
        data.pop("delta")
    return data


def _same_but_deltas(live: list[Any], again: list[Any]) -> None:
    """``again`` is ``live`` with each run of text deltas as one, numbered from 0."""
    assert _collapsed(live) == [e.type for e in again]
    assert [e.sequence_number for e in again] == list(range(len(again)))
    kept = [e for i, e in enumerate(live) if _collapsed(live[: i + 1]) != _collapsed(live[:i])]
    assert [_data(e) for e in kept] == [_data(e) for e in again]
    text = "".join(e.delta for e in live if e.type == "response.output_text.delta")
    assert text == "".join(e.delta for e in again if e.type == "response.output_text.delta")


def test_a_streamed_response_streams_again_as_it_did(gw: Harness) -> None:
    c = gw.client()
    live = list(c.responses.create(model="claude-sonnet-4-5", input="stream please", stream=True))
    assert sum(e.type == "response.output_text.delta" for e in live) > 1
    final = live[-1].response
    again = list(c.responses.retrieve(final.id, stream=True))
    _same_but_deltas(live, again)
    assert again[0].type == "response.created" and again[-1].type == "response.completed"
    assert _plain(again[-1].response) == _plain(final)
    assert _plain(final) == _plain(c.responses.retrieve(final.id))


def test_a_function_call_streams_again(gw: Harness) -> None:
    c = gw.client()
    gw.srv.script("*", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}])
    live = list(c.responses.create(model="gpt-4o-mini", input="weather?", tools=TOOLS, stream=True))
    final = live[-1].response
    again = list(c.responses.retrieve(final.id, stream=True))
    _same_but_deltas(live, again)
    assert [e.type for e in again][-4:] == [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = again[-2]
    assert done.item.type == "function_call" and done.item.arguments == '{"city":"Rome"}'


def test_a_response_made_whole_streams_as_a_streamed_one_would(gw: Harness) -> None:
    """A response created without ``stream`` has the events its streamed create would
    have sent: the same kinds, its message's id, its retrieved self at the end."""
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="hi", metadata={"k": "v"})
    again = list(c.responses.retrieve(r.id, stream=True))
    assert [e.type for e in again] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    started = again[0].response
    assert (started.status, started.output, started.usage, started.completed_at) == (
        "in_progress",
        [],
        None,
        None,
    )
    assert started.id == r.id and started.metadata == {"k": "v"}
    assert again[2].item.id == r.output[0].id
    assert again[4].delta == r.output_text
    assert _plain(again[-1].response) == _plain(c.responses.retrieve(r.id))


def test_starting_after_skips_events_by_sequence_number(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="hi")
    whole = list(c.responses.retrieve(r.id, stream=True))
    for after in (0, 3, len(whole) - 2):
        tail = list(c.responses.retrieve(r.id, stream=True, starting_after=after))
        assert [e.sequence_number for e in tail] == list(range(after + 1, len(whole)))
        assert [e.model_dump() for e in tail] == [e.model_dump() for e in whole[after + 1 :]]
    assert list(c.responses.retrieve(r.id, stream=True, starting_after=len(whole) + 5)) == []


def test_a_cancelled_background_response_streams_to_its_end(gw: Harness) -> None:
    """One still running is a 400 naming ``stream`` (its events are not replayed while
    they are being made); once cancelled, its stream ends as its status says."""
    c = gw.client()
    gw.srv.fault("*", "endless", interval=0.05)
    r = c.responses.create(model="gpt-4o-mini", input="slowly", background=True)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.retrieve(r.id, stream=True)
    assert (caught.value.param, caught.value.code) == ("stream", "invalid_value")
    assert c.responses.cancel(r.id).status == "cancelled"
    again = list(c.responses.retrieve(r.id, stream=True))
    assert again[0].type == "response.created" and again[-1].type == "response.cancelled"
    assert again[-1].response["status"] == "cancelled"  # type: ignore[index]  # (no SDK model)


def test_retrieve_query_parameters_are_checked(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="hi")
    streamed = {"stream": True}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"starting_after": 2}, "starting_after", "invalid_value"),  # without stream
        (streamed | {"extra_query": {"starting_after": "two"}}, "starting_after", "invalid_type"),
        (streamed | {"extra_query": {"starting_after": "-1"}}, "starting_after", "invalid_value"),
        ({"extra_query": {"stream": "yes"}}, "stream", "invalid_type"),
        ({"extra_query": {"streaming": "true"}}, "streaming", "unknown_parameter"),
        ({"include": ["message.output_text.logprobs"]}, "include", "unsupported_parameter"),
        ({"include": ["file_search_call.results"]}, "include", "invalid_value"),
    ]
    for kw, param, code in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            c.responses.retrieve(r.id, **kw)
        assert (caught.value.param, caught.value.code) == (param, code), kw
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve("resp_missing", stream=True)
    got = c.responses.retrieve(
        r.id, include=["reasoning.encrypted_content"], include_obfuscation=False
    )
    assert got.model_dump() == c.responses.retrieve(r.id).model_dump()


# -- 3. include on the items lists -------------------------------------------------------


def _with_image(c: openai.OpenAI) -> str:
    content = [{"type": "input_text", "text": "what is it?"}]
    content.append({"type": "input_image", "image_url": IMAGE, "detail": "auto"})
    conv = c.conversations.create(items=[{"type": "message", "role": "user", "content": content}])
    return conv.id


def test_conversation_items_include_image_urls(gw: Harness) -> None:
    c = gw.client()
    cid = _with_image(c)
    for include in (["message.input_image.image_url"], ["reasoning.encrypted_content"]):
        page = c.conversations.items.list(cid, include=include)
        (item,) = page.data
        assert item.type == "message"
        assert item.content[1].type == "input_image" and item.content[1].image_url == IMAGE
        assert page.model_dump() == c.conversations.items.list(cid).model_dump()


@pytest.mark.parametrize(
    ("include", "code"),
    [
        (["message.output_text.logprobs"], "unsupported_parameter"),
        (["file_search_call.results"], "invalid_value"),
        (["message.input_image.image_url", "web_search_call.action.sources"], "invalid_value"),
    ],
)
def test_an_include_not_served_is_a_400_on_the_lists(
    gw: Harness, include: list[str], code: str
) -> None:
    c = gw.client()
    cid = _with_image(c)
    r = c.responses.create(model="gpt-4o-mini", input="hi", conversation=cid)
    for listing in (
        lambda: c.conversations.items.list(cid, include=include),
        lambda: c.responses.input_items.list(r.id, include=include),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            listing()
        assert (caught.value.param, caught.value.code) == ("include", code)


def test_input_items_include_image_urls(gw: Harness) -> None:
    c = gw.client()
    content = [
        {"type": "input_text", "text": "what is it?"},
        {"type": "input_image", "image_url": IMAGE, "detail": "auto"},
    ]
    r = c.responses.create(
        model="gpt-4o-mini",
        input=[{"type": "message", "role": "user", "content": content}],
    )
    page = c.responses.input_items.list(r.id, include=["message.input_image.image_url"])
    (item,) = page.data
    assert item.content[1].image_url == IMAGE
