"""``POST /v1/chat/completions`` with Chat's ``allowed_tools`` tool choice (the SDK's
``ChatCompletionAllowedToolChoiceParam``), through the official ``openai`` SDK: sent in
each upstream's words as ``/v1/responses`` sends its own form, refused by the member at
fault when malformed, and nothing sent upstream then."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness, last_sent


def _fn(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


TOOLS = [_fn("a"), _fn("b"), _fn("c")]
HI = [{"role": "user", "content": "hi"}]


def _allowed(mode: str, *names: str) -> dict[str, Any]:
    return {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": mode,
            "tools": [{"type": "function", "function": {"name": n}} for n in names],
        },
    }


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _create(gw: Harness, model: str, choice: Any) -> Any:
    return gw.client().chat.completions.create(
        model=model, messages=HI, tools=TOOLS, tool_choice=choice
    )


@pytest.mark.parametrize("model", ["gpt-4o-mini", "compat/llama-3", "azure/gpt-4o"])
@pytest.mark.parametrize("mode", ["auto", "required"])
def test_a_chat_upstream_gets_the_choice_as_given_and_every_tool(
    gw: Harness, model: str, mode: str
) -> None:
    _create(gw, model, _allowed(mode, "c", "a"))
    assert last_sent(gw)["tool_choice"] == _allowed(mode, "c", "a")
    assert [t["function"]["name"] for t in last_sent(gw)["tools"]] == ["a", "b", "c"]


def test_a_responses_upstream_gets_its_own_form(gw: Harness) -> None:
    _create(gw, "responses/gpt-5", _allowed("required", "b"))
    assert last_sent(gw)["tool_choice"] == {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "function", "name": "b"}],
    }


@pytest.mark.parametrize(("mode", "sent"), [("auto", "auto"), ("required", "any")])
def test_anthropic_is_offered_only_the_allowed_tools(gw: Harness, mode: str, sent: str) -> None:
    _create(gw, "claude-sonnet-4-5", _allowed(mode, "c", "a"))
    assert [t["name"] for t in last_sent(gw)["tools"]] == ["a", "c"]
    assert last_sent(gw)["tool_choice"] == {"type": sent}


def test_bedrock_auto_is_offered_only_the_allowed_tools(gw: Harness) -> None:
    _create(gw, "bedrock/anthropic.claude-3-7-sonnet", _allowed("auto", "b", "c"))
    sent = last_sent(gw)["toolConfig"]
    assert [t["toolSpec"]["name"] for t in sent["tools"]] == ["b", "c"]


@pytest.mark.parametrize(
    ("choice", "param", "code"),
    [
        (_allowed("auto", "zz"), "tool_choice", "invalid_value"),
        (_allowed("required", "a", "zz"), "tool_choice", "invalid_value"),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": ["a"]}},
            "tool_choice",
            "invalid_value",
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "any", "tools": []}},
            "tool_choice.allowed_tools.mode",
            "invalid_value",
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"tools": [_fn("a")]}},
            "tool_choice.allowed_tools.mode",
            "missing_required_parameter",
        ),
        (_allowed("auto"), "tool_choice.allowed_tools.tools", "empty_array"),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": "a"}},
            "tool_choice.allowed_tools.tools",
            "invalid_type",
        ),
        (
            {"type": "allowed_tools", "allowed_tools": "a"},
            "tool_choice.allowed_tools",
            "invalid_type",
        ),
        ({**_allowed("auto", "a"), "mode": "auto"}, "tool_choice.mode", "unknown_parameter"),
    ],
)
def test_a_malformed_choice_is_refused_naming_the_member_and_nothing_is_sent(
    gw: Harness, choice: Any, param: str, code: str | None
) -> None:
    before = gw.srv.requests.total()
    with pytest.raises(openai.BadRequestError) as caught:
        _create(gw, "gpt-4o-mini", choice)
    err = caught.value
    assert (err.status_code, err.param) == (400, param), err.body
    if code is not None:
        assert err.code == code, err.body
    assert gw.srv.requests.total() == before
