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
