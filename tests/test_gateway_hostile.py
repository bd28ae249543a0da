"""``srt serve`` against a hostile client: every field of a request with a wrong type is
an OpenAI 400 naming it, before anything reaches the upstream or the store (never a 500,
never passed on for the upstream to refuse, never dropped in silence)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway_support import Harness, count, harness

HI: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _nothing_sent(gw: Harness) -> None:
    assert gw.srv.requests.total() == 0
    assert count(gw.rt.path, "calls") == 0


CHAT_WRONG_TYPES = [
    # (the body's fields, the param named, the code)
    ({"stream": True, "stream_options": "yes"}, "stream_options", "invalid_type"),
    ({"stream_options": [1]}, "stream_options", "invalid_type"),
    # OpenAI takes stream_options only with stream: true
    ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    ({"stream": False, "stream_options": {}}, "stream_options", "invalid_value"),
    # no model takes more tokens than a 32-bit integer holds: refused, never sent upstream
    ({"max_tokens": 10**30}, "max_tokens", "integer_above_max_value"),
    ({"max_completion_tokens": 2**31}, "max_completion_tokens", "integer_above_max_value"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage", "invalid_type"),
    ({"response_format": [1]}, "response_format", "invalid_type"),
    ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
    (
        {"response_format": {"type": "json_schema", "json_schema": "x"}},
        "response_format.json_schema",
        "invalid_type",
    ),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "invalid_type"),
    ({"reasoning_effort": {"effort": "low"}}, "reasoning_effort", "invalid_type"),
    ({"service_tier": 5}, "service_tier", "invalid_type"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls", "invalid_type"),
    ({"metadata": "x"}, "metadata", "invalid_type"),
    ({"metadata": {"k": 5}}, "metadata.k", "invalid_type"),
    ({"user": 5}, "user", "invalid_type"),
    ({"store": "yes"}, "store", "invalid_type"),
    (
        {"tools": [{"type": "function", "function": {"description": "no name"}}]},
        "tools[0].function.name",
        "invalid_type",
    ),
    (
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
        "tools[0].function.parameters",
        "invalid_type",
    ),
]


@pytest.mark.parametrize(("fields", "param", "code"), CHAT_WRONG_TYPES)
def test_chat_fields_of_the_wrong_type_are_a_400_naming_them(
    gw: Harness, fields: dict[str, Any], param: str, code: str
) -> None:
    c = gw.client()
    with pytest.raises(openai.BadRequestError) as caught:
        c.chat.completions.create(model="gpt-4o-mini", messages=HI, extra_body=fields)
    err = caught.value
    assert err.status_code == 400 and err.code == code and err.param == param
    assert err.type == "invalid_request_error"
    _nothing_sent(gw)
    ok = c.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert ok.choices[0].message.content


def test_the_largest_token_count_goes_upstream(gw: Harness) -> None:
    c = gw.client()
    c.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=2**31 - 1)
    assert gw.srv.log[-1].body["max_completion_tokens"] == 2**31 - 1
    r = c.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=2**31 - 1)
    assert r.max_output_tokens == 2**31 - 1
    streamed = c.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    assert [ch for ch in streamed][-1].usage is not None


def test_responses_take_stream_options_with_stream(gw: Harness) -> None:
    c = gw.client()
    events = list(
        c.responses.create(
            model="gpt-4o-mini",
            input="hi",
            stream=True,
            background=True,
            stream_options={"include_obfuscation": False},
        )
    )
    assert events[-1].type == "response.completed"


RESPONSES_WRONG_TYPES = [
    ({"reasoning": {"effort": 5}}, "reasoning.effort", "invalid_type"),
    ({"reasoning": {"effort": {"level": "low"}}}, "reasoning.effort", "invalid_type"),
    ({"reasoning": {"summary": 5}}, "reasoning.summary", "invalid_type"),
    ({"reasoning": {"budget": 5}}, "reasoning.budget", "unknown_parameter"),
    ({"text": {"verbosity": 5}}, "text.verbosity", "invalid_type"),
    ({"text": {"colour": "red"}}, "text.colour", "unknown_parameter"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type", "invalid_value"),
    ({"text": {"format": {"type": ["text"]}}}, "text.format.type", "invalid_value"),
    (
        {"text": {"format": {"type": "json_schema", "name": "x"}}},
        "text.format.schema",
        "missing_required_parameter",
    ),
    (
        {"text": {"format": {"type": "json_schema", "name": "x", "schema": "{}"}}},
        "text.format.schema",
        "invalid_type",
    ),
    (
        {"text": {"format": {"type": "json_schema", "name": 5, "schema": {}}}},
        "text.format.name",
        "invalid_type",
    ),
    (
        {"text": {"format": {"type": "json_object", "schema": {}}}},
        "text.format.schema",
        "unknown_parameter",
    ),
    (
        {"stream_options": {"include_obfuscation": "no"}},
        "stream_options.include_obfuscation",
        "invalid_type",
    ),
    # OpenAI takes stream_options only with stream: true, as for Chat
    ({"stream_options": {"include_obfuscation": False}}, "stream_options", "invalid_value"),
    ({"stream": False, "stream_options": {}}, "stream_options", "invalid_value"),
    ({"background": True, "stream_options": {}}, "stream_options", "invalid_value"),
    (
        {"input": [{"type": "reasoning", "summary": [], "encrypted_content": 5}]},
        "input[0].encrypted_content",
        "invalid_type",
    ),
    ({"input": [{"role": "user", "content": "x", "id": 5}]}, "input[0].id", "invalid_type"),
    ({"max_output_tokens": 10**30}, "max_output_tokens", "integer_above_max_value"),
    ({"max_output_tokens": 2**31}, "max_output_tokens", "integer_above_max_value"),
    ({"max_tool_calls": 2**63}, "max_tool_calls", "integer_above_max_value"),
    (
        {"input": [{"role": "user", "content": "x", "status": "done"}]},
        "input[0].status",
        "invalid_value",
    ),
]


@pytest.mark.parametrize(("fields", "param", "code"), RESPONSES_WRONG_TYPES)
def test_responses_members_of_the_wrong_type_are_a_400_naming_them(
    gw: Harness, fields: dict[str, Any], param: str, code: str
) -> None:
    c = gw.client()
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="gpt-4o-mini", input="hi", extra_body=fields)
    err = caught.value
    assert err.status_code == 400 and err.code == code and err.param == param
    _nothing_sent(gw)
    assert count(gw.rt.path, "messages") == 0
    ok = c.responses.create(
        model="gpt-4o-mini",
        input="hi",
        reasoning={"effort": None, "summary": None},
        text={"format": {"type": "text"}, "verbosity": None},
    )
    assert ok.status == "completed"


@pytest.mark.parametrize("items", ["hi", 5, {"role": "user", "content": "hi"}, False])
def test_conversation_items_must_be_an_array(gw: Harness, items: Any) -> None:
    """The Conversations API takes ``items`` as an array only (a string is not one user
    message there, as it is for a response's ``input``)."""
    c = gw.client()
    with pytest.raises(openai.BadRequestError) as caught:
        c.conversations.create(extra_body={"items": items})
    assert caught.value.param == "items" and caught.value.code == "invalid_type"
    conv = c.conversations.create()
    with pytest.raises(openai.BadRequestError) as caught:
        c.conversations.items.create(conv.id, items=items)
    assert caught.value.param == "items" and caught.value.code == "invalid_type"
    assert list(c.conversations.items.list(conv.id)) == []
    assert count(gw.rt.path, "messages") == 0


#: A reply long enough that, sent a byte every millisecond, it outlasts any test.
SLOW_REPLY = "word " * 400


def _await(condition: Any, deadline_s: float = 20.0) -> Any:
    """``condition()`` once it is truthy (polled; ``None`` past the deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        got = condition()
        if got:
            return got
        time.sleep(0.05)
    return None


def _cancelled_row(gw: Harness, prefix: str) -> dict[str, Any] | None:
    rows = [r for r in gw.rt.calls() if str(r["session_name"]).startswith(prefix)]
    return rows[-1] if rows and rows[-1]["status"] == "cancelled" else None


def test_a_chat_client_that_goes_away_mid_stream_stops_the_upstream(gw: Harness) -> None:
    """The worker stops once the client is gone: the upstream's stream
    is closed and the ledger row says ``cancelled``, rather than a pool thread reading
    the rest of a reply no one will get (minutes here, forever from a stuck upstream)."""
    gw.srv.script("openai.chat", [SLOW_REPLY])
    gw.srv.fault("openai.chat", "slow", interval=0.001)
    c = gw.client()
    stream = c.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    got = [chunk for _, chunk in zip(range(3), stream, strict=False)]
    stream.close()
    assert got[0].choices[0].delta.role == "assistant" and got[1].choices[0].delta.content
    row = _await(lambda: _cancelled_row(gw, "gw/default/chat"))
    assert row is not None, "the upstream's stream was not stopped"
    assert row["model"] == "gpt-4o-mini" and count(gw.rt.path, "calls") == 1
    assert gw.rt.session("gw/default/chat").messages() == []  # stateless: nothing kept
    after = c.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert after.choices[0].finish_reason == "stop"


def test_a_responses_client_that_goes_away_mid_stream_keeps_the_partial_reply(
    gw: Harness,
) -> None:
    """The same for a streamed response: it ends ``cancelled`` with the text that came,
    stored as a partial reply, one ledger row ``cancelled``, and it can be continued."""
    gw.srv.script("openai.chat", [SLOW_REPLY])
    gw.srv.fault("openai.chat", "slow", interval=0.001)
    c = gw.client()
    stream = c.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    events = [e for _, e in zip(range(6), stream, strict=False)]
    stream.close()
    rid = events[0].response.id  # type: ignore[union-attr]
    done = _await(lambda: (r := c.responses.retrieve(rid)).status != "in_progress" and r)
    assert done and done.status == "cancelled"
    assert done.output_text and SLOW_REPLY.startswith(done.output_text)
    assert done.output[0].status == "incomplete"
    row = _cancelled_row(gw, "gw/default/")
    assert row is not None and count(gw.rt.path, "calls") == 1
    more = c.responses.create(model="gpt-4o-mini", input="go on", previous_response_id=rid)
    assert more.status == "completed"
    items = list(c.responses.input_items.list(more.id, order="asc"))
    assert [i.type for i in items] == ["message", "message", "message"]


@pytest.mark.parametrize("background", [False, True])
def test_a_response_deleted_while_it_runs_stays_deleted(gw: Harness, background: bool) -> None:
    """Its run's later checkpoints and its end are not written over the deletion (they
    made it again, ``completed``, once the stream ended)."""
    gw.srv.script("openai.chat", ["word " * 60])
    gw.srv.fault("openai.chat", "slow", interval=0.0005)
    c = gw.client()
    stream = c.responses.create(model="gpt-4o-mini", input="hi", stream=True, background=background)
    kinds = []
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.created":
            rid = event.response.id
            c.responses.delete(rid)
    assert kinds[-1] == "response.completed"  # the client that streams it sees it end
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(rid)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="gpt-4o-mini", input="more", previous_response_id=rid)
    assert caught.value.code == "previous_response_not_found"
    assert count(gw.rt.path, "calls") == 1  # its one upstream call, in the ledger


@pytest.mark.parametrize("limit", ["5_0", " 5", "+5", "\u0665", "5.0", "1e1", "--5", ""])
def test_a_limit_that_is_not_plain_digits_is_a_400(gw: Harness, limit: str) -> None:
    c = gw.client()
    conv = c.conversations.create(items=HI)
    r = c.responses.create(model="gpt-4o-mini", input="hi")
    for path in (f"/conversations/{conv.id}/items", f"/responses/{r.id}/input_items"):
        got = httpx.get(
            gw.url + path, params={"limit": limit}, headers={"authorization": "Bearer sk-any"}
        )
        assert got.status_code == 400, (path, got.text)
        err = got.json()["error"]
        assert (err["param"], err["code"]) == ("limit", "invalid_type")
        ok = httpx.get(
            gw.url + path, params={"limit": "5"}, headers={"authorization": "Bearer sk-any"}
        )
        assert ok.status_code == 200 and ok.json()["data"]
