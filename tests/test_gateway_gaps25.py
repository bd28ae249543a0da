"""The gateway's last gaps against OpenAI's Responses API, through the official ``openai``
SDK (srt.testing's server the upstream): ``tool_choice`` ``allowed_tools`` in each
upstream's words; a ``call_id`` over OpenAI's 64 characters; ``input: ""``; ``background``
without ``store``; and the 404 of a response that was not stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import ToolChoiceAllowed

from gateway_support import Harness, harness, last_sent, refused_400


def _fn(name: str) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}


TOOLS = [_fn("a"), _fn("b"), _fn("c")]
CLAUDE = "claude-sonnet-4-5"
BEDROCK = "bedrock/anthropic.claude-3-7-sonnet"
#: Upstreams speaking OpenAI Chat: OpenAI's, an OpenAI-compatible server, Azure.
CHATS = ["gpt-4o-mini", "compat/llama-3", "azure/gpt-4o"]


def _allowed(mode: str, *names: str) -> dict[str, Any]:
    return {
        "type": "allowed_tools",
        "mode": mode,
        "tools": [{"type": "function", "name": n} for n in names],
    }


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


# -- 1. tool_choice: allowed_tools ------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "required"])
def test_allowed_tools_reaches_a_responses_upstream_as_it_is(gw: Harness, mode: str) -> None:
    c = gw.client()
    choice = _allowed(mode, "c", "a")
    r = c.responses.create(model="responses/gpt-5", input="hi", tools=TOOLS, tool_choice=choice)
    assert last_sent(gw)["tool_choice"] == choice
    assert [t["name"] for t in last_sent(gw)["tools"]] == ["a", "b", "c"]  # all of them
    assert isinstance(r.tool_choice, ToolChoiceAllowed) and r.tool_choice.model_dump() == choice
    again = c.responses.retrieve(r.id).tool_choice
    assert isinstance(again, ToolChoiceAllowed) and again.model_dump() == choice


@pytest.mark.parametrize("model", CHATS)
def test_allowed_tools_is_chats_allowed_tools(gw: Harness, model: str) -> None:
    """Chat's form (the SDK's ``ChatCompletionAllowedToolChoiceParam``): the mode and
    the tools under ``allowed_tools``, each tool as ``{"type": "function", "function":
    {"name": ...}}``; every tool still sent, so the cached prefix is the same."""
    c = gw.client()
    r = c.responses.create(
        model=model, input="hi", tools=TOOLS, tool_choice=_allowed("required", "b")
    )
    assert last_sent(gw)["tool_choice"] == {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "b"}}],
        },
    }
    assert [t["function"]["name"] for t in last_sent(gw)["tools"]] == ["a", "b", "c"]
    assert isinstance(r.tool_choice, ToolChoiceAllowed) and r.tool_choice.mode == "required"


@pytest.mark.parametrize(("mode", "sent"), [("auto", "auto"), ("required", "any")])
def test_allowed_tools_to_anthropic_sends_only_those_tools(
    gw: Harness, mode: str, sent: str
) -> None:
    """Anthropic has no allowed-tools form: only the allowed tools are sent (in the
    order of ``tools``), with ``auto`` or ``any``."""
    c = gw.client()
    r = c.responses.create(
        model=CLAUDE, input="hi", tools=TOOLS, tool_choice=_allowed(mode, "c", "a")
    )
    assert [t["name"] for t in last_sent(gw)["tools"]] == ["a", "c"]
    assert last_sent(gw)["tool_choice"] == {"type": sent}
    assert r.tool_choice.model_dump() == _allowed(mode, "c", "a")  # echoed as given
    assert [t.name for t in r.tools] == ["a", "b", "c"]  # type: ignore[union-attr]
    c.responses.create(
        model=CLAUDE,
        input="hi",
        tools=TOOLS,
        tool_choice=_allowed("auto", "b"),
        parallel_tool_calls=False,
    )
    assert [t["name"] for t in last_sent(gw)["tools"]] == ["b"]
    assert last_sent(gw)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert gw.rt.verify_ledger().ok  # the narrowed tools are what the ledger rebuilds


def test_allowed_tools_to_bedrock(gw: Harness) -> None:
    """Bedrock: only the allowed tools are sent, ``auto`` as no ``toolChoice`` (its
    default) and ``required`` as ``toolChoice: {"any": {}}``, after the tools."""
    c = gw.client()
    r = c.responses.create(
        model=BEDROCK, input="hi", tools=TOOLS, tool_choice=_allowed("required", "c", "b")
    )
    sent = last_sent(gw)["toolConfig"]
    assert [t["toolSpec"]["name"] for t in sent["tools"]] == ["b", "c"]
    assert sent["toolChoice"] == {"any": {}}
    assert list(sent) == ["tools", "toolChoice"]
    assert r.tool_choice.model_dump() == _allowed("required", "c", "b")  # echoed as given
    c.responses.create(
        model=BEDROCK, input="hi", tools=TOOLS, tool_choice=_allowed("auto", "b", "c")
    )
    sent = last_sent(gw)["toolConfig"]
    assert [t["toolSpec"]["name"] for t in sent["tools"]] == ["b", "c"]
    assert "toolChoice" not in sent
    assert gw.rt.verify_ledger().ok  # the narrowed tools and the choice rebuild alike


@pytest.mark.parametrize(
    ("choice", "param", "code"),
    [
        (_allowed("auto", "zz"), "tool_choice", "invalid_value"),
        (_allowed("required", "a", "zz"), "tool_choice", "invalid_value"),
        (
            {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "mcp"}]},
            "tool_choice",
            "invalid_value",
        ),
        ({**_allowed("auto", "a"), "mode": "any"}, "tool_choice.mode", "invalid_value"),
        (
            {"type": "allowed_tools", "tools": [{"type": "function", "name": "a"}]},
            "tool_choice.mode",
            "missing_required_parameter",
        ),
        ({**_allowed("auto"), "tools": []}, "tool_choice.tools", "empty_array"),
        ({**_allowed("auto"), "tools": "a"}, "tool_choice.tools", "invalid_type"),
        ({**_allowed("auto", "a"), "extra": 1}, "tool_choice.extra", "unknown_parameter"),
    ],
)
def test_allowed_tools_refusals(gw: Harness, choice: Any, param: str, code: str) -> None:
    """A tool not in ``tools`` is a 400 naming ``tool_choice``; a malformed choice, the
    member at fault; nothing sent or stored."""
    err = refused_400(gw, param, code, tools=TOOLS, tool_choice=choice)
    if param == "tool_choice":
        assert "not in tools" in err.message


# -- 2. call_id over OpenAI's 64 characters --------------------------------------------


def _turn(call_id: str, out_id: str | None = None) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": call_id, "name": "a", "arguments": "{}"},
        {"type": "function_call_output", "call_id": out_id or call_id, "output": "sunny"},
    ]


@pytest.mark.parametrize(
    ("items", "param"),
    [
        (_turn("c" * 65), "input[1].call_id"),  # the call's, the first met
        (_turn("c" * 64, "c" * 65), "input[2].call_id"),  # the output's (OpenAI's bound)
    ],
)
def test_a_call_id_over_64_characters_is_refused(
    gw: Harness, items: list[dict[str, Any]], param: str
) -> None:
    """OpenAI bounds a ``function_call_output``'s ``call_id`` at 64 characters (its
    OpenAPI spec): a longer one is a 400 ``string_above_max_length`` naming it, never
    forwarded; a ``function_call``'s is held to the same bound (no output could answer
    it). 64 is served."""
    err = refused_400(gw, param, "string_above_max_length", input=items, tools=[_fn("a")])
    assert "maximum length 64, but got a string with length 65" in err.message
    r = gw.client().responses.create(model="gpt-4o-mini", input=_turn("c" * 64), tools=[_fn("a")])
    assert r.status == "completed"
    assert last_sent(gw)["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "c" * 64,
        "content": "sunny",
    }


def test_a_conversation_item_call_id_over_64_characters_is_refused(gw: Harness) -> None:
    c = gw.client()
    with pytest.raises(openai.BadRequestError) as caught:
        c.conversations.create(items=_turn("x" * 65, "x" * 65))  # type: ignore[arg-type]
    err = caught.value
    assert (err.param, err.code) == ("items[1].call_id", "string_above_max_length")


# -- 3. input: "" -----------------------------------------------------------------------


def test_an_empty_input_string_is_refused(gw: Harness) -> None:
    """No reference says what OpenAI does with ``input: ""`` (its spec sets no
    ``minLength``): refused as ``empty_string`` naming ``input``, rather than sending an
    empty user message (Anthropic and Bedrock refuse one), even with instructions."""
    err = refused_400(gw, "input", "empty_string", input="")
    assert "leave 'input' out" in err.message
    refused_400(gw, "input", "empty_string", input="", instructions="Be brief.")
    refused_400(gw, "input", "empty_string", input="", model=CLAUDE)
    c = gw.client()  # what the message says to do is served
    r = c.responses.create(model="gpt-4o-mini", instructions="Be brief.")
    assert r.status == "completed"
    assert [m["role"] for m in last_sent(gw)["messages"]] == ["system"]
    more = c.responses.create(model="gpt-4o-mini", input=" ", previous_response_id=r.id)
    assert more.status == "completed"  # a blank, but not empty, text is the client's


# -- 4. background without store ------------------------------------------------------


def test_background_without_store_is_an_invalid_value_naming_background(gw: Harness) -> None:
    """Neither the spec nor the SDK names OpenAI's code: ``invalid_value`` (it had none),
    naming ``background``, the parameter that needs the other; nothing sent or stored."""
    err = refused_400(gw, "background", "invalid_value", background=True, store=False)
    assert "store" in err.message
    r = gw.client().responses.create(model="gpt-4o-mini", input="hi", background=True)
    assert r.background and r.store


# -- 5. a response not stored -----------------------------------------------------------


def test_an_unstored_response_is_a_404_in_openais_words(gw: Harness) -> None:
    """api.openai.com answers the retrieve (or delete) of a response it holds none of with
    ``Response with id '...' not found.``, ``param`` and ``code`` null (its answers as
    SDK tests record them): a ``store: false`` response, a deleted one, an id never
    made, on every route that reads one."""
    c = gw.client()
    unstored = c.responses.create(model="gpt-4o-mini", input="hi", store=False).id
    deleted = c.responses.create(model="gpt-4o-mini", input="hi").id
    c.responses.delete(deleted)
    reads = (
        c.responses.retrieve,
        c.responses.delete,
        c.responses.input_items.list,
        c.responses.cancel,
    )
    for rid in (unstored, deleted, "resp_never"):
        for read in reads:
            with pytest.raises(openai.NotFoundError) as caught:
                read(rid)
            assert caught.value.body == {
                "message": f"Response with id '{rid}' not found.",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
