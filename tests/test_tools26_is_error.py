"""A tool result marked as an error: the canonical tool message's ``"is_error": true``
(``srt.Message.tool_result(call_id, text, is_error=True)``). Anthropic is sent the
``tool_result``'s ``is_error``, Bedrock the ``toolResult``'s ``"status": "error"`` (each
body checked with the official SDK's request model, botocore's service model); OpenAI
Chat and Responses have no such flag: left out, noted, not refused. An unmarked result
keeps the bytes and hash it had before; ``tool_call_id`` stays a tool message's last key
(``srt._tool_pairs``). ``s.run`` marks every result but an ``ok`` one; Anthropic and
Converse input that sets the flag converts to it; srt.testing's servers check it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anthropic.types as at
import botocore.session
import httpx
import pytest
from botocore.validate import ParamValidator
from langchain_core.messages import ToolMessage
from openai.types.responses import ResponseCreateParams
from pydantic import ConfigDict, TypeAdapter

import srt
from srt import _core
from srt._tool_pairs import check
from srt.integrations import _lcmsg
from srt.message import canonicalize
from srt.testing import ProviderServer
from srt.testing.tasks import ScriptedTask
from srt.wire import get_format
from task_support import MODELS, make, server
from test_sdk_models import check_body

FORBID = ConfigDict(extra="forbid")
MESSAGES = TypeAdapter(at.MessageCreateParams, config=FORBID)
RESPONSES = TypeAdapter(ResponseCreateParams, config=FORBID)
_CONVERSE = botocore.session.get_session().get_service_model("bedrock-runtime")

CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ],
}
#: Written by srt before the flag existed, and its XXH3-128 digest (the store's hash).
OLD_BYTES = b'{"role":"tool","content":"Error: boom","tool_call_id":"call_1"}'
OLD_DIGEST = "6b8a74035f70479f8e4de061b8939a98"
MARKED = b'{"role":"tool","content":"Error: boom","is_error":true,"tool_call_id":"call_1"}'


# -- the canonical message ------------------------------------------------------------


def test_an_unmarked_result_keeps_its_bytes_and_hash(rt: srt.Runtime) -> None:
    plain = {"role": "tool", "tool_call_id": "call_1", "content": "Error: boom"}
    for msg in (plain, {**plain, "is_error": False}, {**plain, "is_error": None}):
        assert canonicalize(msg)[0] == OLD_BYTES
    assert _core.digest(OLD_BYTES).hex() == OLD_DIGEST
    assert srt.Message.tool_result("call_1", "Error: boom").to_dict() == plain
    s = rt.session("old")
    s.append({"role": "user", "content": "hi"}, CALL, {**plain, "is_error": False})
    assert s.messages_bytes()[-1] == OLD_BYTES


def test_a_marked_result_puts_the_flag_before_its_call_id(rt: srt.Runtime) -> None:
    msg = srt.Message.tool_result("call_1", "Error: boom", is_error=True)
    assert msg.to_dict()["is_error"] is True
    assert canonicalize(msg)[0] == MARKED
    s = rt.session("marked")
    s.append({"role": "user", "content": "hi"}, CALL, msg)
    assert s.messages_bytes()[-1] == MARKED
    assert s.messages()[-1] == {
        "role": "tool",
        "content": "Error: boom",
        "is_error": True,
        "tool_call_id": "call_1",
    }
    assert rt.store.verify().ok


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        ({"role": "user", "content": "x", "is_error": True}, "only a tool message may carry"),
        ({"role": "assistant", "content": "x", "is_error": True}, "only a tool message"),
        ({"role": "tool", "tool_call_id": "c", "content": "x", "is_error": "yes"}, "True or False"),
        ({"role": "tool", "tool_call_id": "c", "content": "x", "is_error": 1}, "True or False"),
    ],
)
def test_a_bad_flag_is_refused(rt: srt.Runtime, msg: dict[str, Any], match: str) -> None:
    s = rt.session("bad")
    with pytest.raises(srt.InvalidMessageError, match=match):
        s.append({"role": "user", "content": "hi"}, CALL, msg)
    assert s.messages() == []


def test_tool_pairs_read_a_marked_result() -> None:
    """``tool_call_id`` is still the last key: the pair check reads its id."""
    call = canonicalize(CALL)[0]
    check([call, MARKED])
    other = MARKED.replace(b'"call_1"', b'"call_2"')
    with pytest.raises(srt.InvalidMessageError, match="call_2"):
        check([call, other])


# -- each wire format -----------------------------------------------------------------


@pytest.fixture
def marked(rt: srt.Runtime) -> srt.Session:
    s = rt.session("wire")
    s.append(
        {"role": "user", "content": "hi"},
        CALL,
        srt.Message.tool_result("call_1", "Error: boom", is_error=True),
    )
    return s


def test_anthropic_is_sent_is_error(marked: srt.Session) -> None:
    body = marked.request("anthropic.messages", model="claude-sonnet-4-5", cache=False)
    check_body(MESSAGES, body)
    block = json.loads(body)["messages"][-1]["content"][0]
    assert block == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "Error: boom",
        "is_error": True,
    }
    assert marked.last_build.notes == ()


def test_bedrock_is_sent_status_error(marked: srt.Session) -> None:
    model = "anthropic.claude-sonnet-4-5"
    body = json.loads(marked.request("bedrock.converse", model=model, cache=False))
    report = ParamValidator().validate(
        {"modelId": model, **body}, _CONVERSE.operation_model("Converse").input_shape
    )
    assert not report.has_errors(), report.generate_report()
    assert body["messages"][-1]["content"][0] == {
        "toolResult": {
            "toolUseId": "call_1",
            "content": [{"text": "Error: boom"}],
            "status": "error",
        }
    }


@pytest.mark.parametrize("fmt", ["openai.chat", "azure.chat", "openai.responses"])
def test_openai_formats_leave_the_flag_out_and_say_so(marked: srt.Session, fmt: str) -> None:
    body = marked.request(fmt, model="gpt-4o", cache=False)
    assert b"is_error" not in body
    assert b"Error: boom" in body
    if fmt == "openai.responses":
        check_body(RESPONSES, body)
    (note,) = marked.last_build.notes
    assert "'is_error'" in note and fmt in note and "stored before" not in note


def test_converted_input_keeps_the_flag(rt: srt.Runtime) -> None:
    anth = get_format("anthropic.messages").to_canonical(
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": "Error: boom",
                    "is_error": True,
                }
            ],
        }
    )
    conv = get_format("bedrock.converse").to_canonical(
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "call_1",
                        "content": [{"text": "Error: boom"}],
                        "status": "error",
                    }
                }
            ],
        }
    )
    assert canonicalize(anth[0])[0] == canonicalize(conv[0])[0] == MARKED


# -- srt.testing's servers ------------------------------------------------------------


def test_the_anthropic_test_server_checks_the_flag_is_a_boolean() -> None:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "x", "is_error": "yes"}
                ],
            },
        ],
    }
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    with ProviderServer(api_key="k") as srv:
        r = httpx.post(f"{srv.url}/v1/messages", json=body, headers=headers)
        assert r.status_code == 400, r.text
        assert "is_error: Input should be a valid boolean" in r.text
        body["messages"][2]["content"][0]["is_error"] = True
        ok = httpx.post(f"{srv.url}/v1/messages", json=body, headers=headers)
        assert ok.status_code == 200, ok.text


# -- s.run ----------------------------------------------------------------------------


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s
        assert s.errors == []


def _divide(a: int, b: int) -> float:
    """Divide a by b."""
    return a / b


def _marks(kind: str, body: dict[str, Any]) -> list[Any]:
    """Each tool result's error mark in a request body, in order (``None``: none)."""
    if kind in ("openai", "azure"):
        return [m.get("is_error") for m in body["messages"] if m["role"] == "tool"]
    if kind == "responses":
        items = [i for i in body["input"] if i.get("type") == "function_call_output"]
        return [i.get("is_error") for i in items]
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    if kind == "anthropic":
        return [b.get("is_error") for b in blocks if b.get("type") == "tool_result"]
    return [b["toolResult"].get("status") for b in blocks if "toolResult" in b]


@pytest.mark.parametrize(
    ("kind", "error", "ok"),
    [
        ("anthropic", True, None),
        ("bedrock", "error", None),
        ("openai", None, None),
        ("responses", None, None),
    ],
)
def test_run_sends_a_raising_tools_result_marked(
    srv: ProviderServer, rt: srt.Runtime, kind: str, error: Any, ok: Any
) -> None:
    """A tool that raised, and a call to no such tool, are sent marked; a result that
    came back is not. The stored messages carry the mark whatever the provider."""
    srv.respond(
        "*",
        ScriptedTask(
            [[("_divide", {"a": 1, "b": 0}), ("nope", {})], [("_divide", {"a": 4, "b": 2})]]
        ),
    )
    p = make(kind, srv.url)
    try:
        s = rt.session(f"run-{kind}")
        s.append({"role": "user", "content": "divide"})
        result = s.run(p, model=MODELS[kind], tools=[_divide])
    finally:
        p.close()
    assert result.stopped == "done", result
    assert sorted(r.status for r in result.tool_runs) == ["error", "invalid", "ok"]
    assert len(srv.log) == 3
    assert _marks(kind, srv.log[1].body) == [error, error]  # the failed calls' results
    assert _marks(kind, srv.log[2].body)[-1] == ok  # the result that came back
    tools = [m for m in s.messages() if m["role"] == "tool"]
    by_id = {m["tool_call_id"]: m.get("is_error", False) for m in tools}
    runs = {r.call.id: r.status for r in result.tool_runs}
    assert {cid: by_id[cid] for cid in runs} == {cid: st != "ok" for cid, st in runs.items()}


# -- integrations ---------------------------------------------------------------------


def test_a_langchain_tool_message_with_error_status_is_marked() -> None:
    failed = ToolMessage("Error: boom", tool_call_id="call_1", status="error")
    msg = _lcmsg.canonical(failed)
    assert canonicalize(msg)[0] == MARKED
    assert _lcmsg.load(_lcmsg.base(msg)).status == "error"  # type: ignore[attr-defined]
    fine = _lcmsg.canonical(ToolMessage("Error: boom", tool_call_id="call_1"))
    assert canonicalize(fine)[0] == OLD_BYTES


def test_an_llm_tool_result_with_an_exception_is_marked() -> None:
    from llm.parts import Message, ToolResultPart

    from srt.integrations.importers import _llm_message

    failed = ToolResultPart(name="f", output="Error: boom", tool_call_id="call_1", exception="boom")
    (msg,) = _llm_message(Message("tool", [failed]), Counter())
    assert canonicalize(msg)[0] == MARKED
    fine = ToolResultPart(name="f", output="Error: boom", tool_call_id="call_1")
    (msg,) = _llm_message(Message("tool", [fine]), Counter())
    assert canonicalize(msg)[0] == OLD_BYTES
