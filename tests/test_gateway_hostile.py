"""``srt serve`` against a hostile client: every field of a request with a wrong type is
an OpenAI 400 naming it, before anything reaches the upstream or the store (never a 500,
never passed on for the upstream to refuse, never dropped in silence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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
    (
        {"input": [{"type": "reasoning", "summary": [], "encrypted_content": 5}]},
        "input[0].encrypted_content",
        "invalid_type",
    ),
    ({"input": [{"role": "user", "content": "x", "id": 5}]}, "input[0].id", "invalid_type"),
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
