"""Audit 27, the gateway's input: a ``tool_choice`` naming its function with a JSON object
or an array instead of a string (through the official ``openai`` SDK, which passes the
dict as given).

Before: ``TypeError: unhashable type`` from the name's lookup among the tools' names
(``params._check_allowed`` and ``_check_tool_choice``, ``chat._allowed_choice``, the
allowed-tools checks of 23b88c5), a 500 "server_error" and a traceback in the log. Now an
OpenAI-shaped 400 naming ``tool_choice``, nothing sent upstream or stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, count, harness, refused_400

TOOLS = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]
CHAT_TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
HOSTILE = [{"a": 1}, ["f"]]


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize(
    "choice",
    [
        lambda n: {"type": "function", "name": n},
        lambda n: {
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": n}],
        },
    ],
    ids=["function", "allowed_tools"],
)
def test_responses_tool_choice_naming_a_function_by_a_non_string(
    gw: Harness, choice: Any, name: Any
) -> None:
    err = refused_400(gw, "tool_choice", "invalid_value", tools=TOOLS, tool_choice=choice(name))
    assert "not in tools" in err.message


@pytest.mark.parametrize("name", HOSTILE)
def test_chat_allowed_tools_naming_a_function_by_a_non_string(gw: Harness, name: Any) -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "auto",
            "tools": [{"type": "function", "function": {"name": name}}],
        },
    }
    before = gw.srv.requests.total()
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            tools=CHAT_TOOLS,  # type: ignore[arg-type]
            tool_choice=choice,  # type: ignore[arg-type]
        )
    err = caught.value
    assert (err.status_code, err.param, err.code) == (400, "tool_choice", "invalid_value")
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    assert "names no function of 'tools'" in err.message
    assert gw.srv.requests.total() == before and count(gw.rt.path, "messages") == 0


# An input item whose type, message role or content part type is an object or an array:
# before, ``x not in _ITEM_KEYS`` (and ``_ROLES``, ``_PARTS[role]``) raised TypeError and
# both endpoints that take items answered 500 (``params._check_item``, ``_check_part``).
ITEMS = [
    ({"type": {"a": 1}}, "input[0].type"),
    ({"type": ["message"]}, "input[0].type"),
    ({"type": "message", "role": {"a": 1}, "content": "x"}, "input[0].role"),
    ({"type": "message", "role": ["user"], "content": "x"}, "input[0].role"),
    ({"role": "user", "content": [{"type": {"a": 1}}]}, "input[0].content[0].type"),
    (
        {"role": "user", "content": [{"type": ["input_text"], "text": "x"}]},
        "input[0].content[0].type",
    ),
]


@pytest.mark.parametrize(("item", "param"), ITEMS)
def test_an_input_item_typed_by_a_non_string(gw: Harness, item: Any, param: str) -> None:
    refused_400(gw, param, "invalid_value", input=[item])


@pytest.mark.parametrize(("item", "param"), ITEMS)
def test_a_conversation_item_typed_by_a_non_string(gw: Harness, item: Any, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().conversations.create(items=[item])
    err = caught.value
    assert (err.status_code, err.param, err.code) == (
        400,
        param.replace("input", "items"),
        "invalid_value",
    )
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    assert count(gw.rt.path, "messages") == 0
