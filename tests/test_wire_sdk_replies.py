"""Every content and output item type the official SDKs define, in a non-streamed reply.

Each item is built from the SDK's own model (a minimal valid instance, see
``test_wire_sdk_build``) and added to a normal reply "Hello world". Expected: what srt
keeps (text, refusals, function calls, reasoning) is parsed; any other type is a
``ProviderResponseError`` naming it (a ``ProviderError``: the call keeps its ledger row),
never a KeyError or TypeError. Bedrock's content block types come from botocore's
``bedrock-runtime`` service model.
"""

from __future__ import annotations

from typing import Any

import anthropic.types as at
import botocore.session
import openai.types.chat as oc
import openai.types.responses as orr
import pytest

import srt
from srt._types import Reply, Usage
from srt.wire import get_format
from test_wire_sdk_build import build, members, type_of

TEXT = "Hello world"


def normal(name: str, model: str) -> dict[str, Any]:
    reply = Reply({"role": "assistant", "content": TEXT}, Usage(5, 2, 0, 0), model, None, None)
    return get_format(name).encode_reply(reply, id="r_1")


# -- OpenAI Responses -------------------------------------------------------------------

OUTPUT_ITEMS = {type_of(m): m for m in members(orr.ResponseOutputItem)}
KEPT_ITEMS = {"message", "function_call", "reasoning"}


@pytest.mark.parametrize("kind", sorted(OUTPUT_ITEMS))
def test_every_responses_output_item_is_kept_or_a_typed_error(kind: str) -> None:
    fmt = get_format("openai.responses")
    data = normal("openai.responses", "gpt-5")
    item = build(OUTPUT_ITEMS[kind])
    if kind == "message":
        item["content"] = [
            build(orr.ResponseOutputText, text="!"),
            build(orr.ResponseOutputRefusal),
        ]
    data["output"].append(item)
    orr.Response.model_validate(data)
    if kind not in KEPT_ITEMS:
        with pytest.raises(srt.ProviderResponseError, match=f"'{kind}' output item"):
            fmt.parse_reply(data)
        return
    msg = fmt.parse_reply(data).message
    if kind == "message":
        assert (msg["content"], msg["refusal"]) == (TEXT + "!", "x")
    elif kind == "function_call":
        assert msg["tool_calls"] == [
            {"id": "x", "type": "function", "function": {"name": "x", "arguments": "x"}}
        ]
    else:
        assert msg["artifacts"] == [
            {"provider": "openai", "model": "gpt-5", "type": "reasoning", "data": item}
        ]


def test_an_unknown_responses_output_part_is_a_typed_error() -> None:
    data = normal("openai.responses", "gpt-5")
    data["output"][0]["content"].append({"type": "output_audio", "data": "QUJD"})
    with pytest.raises(srt.ProviderResponseError, match="'output_audio' output part"):
        get_format("openai.responses").parse_reply(data)


# -- Anthropic Messages -------------------------------------------------------------------

BLOCKS = {type_of(m): m for m in members(at.ContentBlock)}


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_every_anthropic_content_block_is_kept_or_a_typed_error(kind: str) -> None:
    data = normal("anthropic.messages", "claude-sonnet-4-5")
    block = build(BLOCKS[kind])
    data["content"].append(block)
    at.Message.model_validate(data)
    fmt = get_format("anthropic.messages")
    if kind not in {"text", "thinking", "redacted_thinking", "tool_use"}:
        with pytest.raises(srt.ProviderResponseError, match=f"'{kind}' content block"):
            fmt.parse_reply(data)
        return
    msg = fmt.parse_reply(data).message
    if kind == "text":
        assert msg["content"] == TEXT + "x"
    elif kind == "tool_use":
        assert msg["tool_calls"][0]["function"] == {"name": "x", "arguments": "{}"}
    else:
        assert msg["artifacts"] == [
            {"provider": "anthropic", "model": "claude-sonnet-4-5", "type": kind, "data": block}
        ]


def test_a_text_block_with_citations_keeps_its_text() -> None:
    data = normal("anthropic.messages", "claude-sonnet-4-5")
    cite = build(at.CitationCharLocation)
    data["content"][0]["citations"] = [cite]
    at.Message.model_validate(data)
    msg = get_format("anthropic.messages").parse_reply(data).message
    assert msg == {"role": "assistant", "content": TEXT}


# -- OpenAI Chat Completions --------------------------------------------------------------


def _chat(**message: Any) -> dict[str, Any]:
    data = normal("openai.chat", "gpt-5")
    data["choices"][0]["message"].update(message)
    oc.ChatCompletion.model_validate(data)
    return data


def test_a_chat_refusal_is_kept() -> None:
    data = _chat(content=None, refusal="I can't help with that.")
    msg = get_format("openai.chat").parse_reply(data).message
    assert msg == {"role": "assistant", "content": "", "refusal": "I can't help with that."}


@pytest.mark.parametrize("field", ["annotations", "audio", "function_call"])
def test_chat_annotations_audio_and_function_call_are_left_out(field: str) -> None:
    ann = oc.chat_completion_message.Annotation
    values = {
        "annotations": [
            build(ann, url_citation=build(ann.model_fields["url_citation"].annotation))
        ],
        "audio": build(oc.ChatCompletionAudio),
        "function_call": {"name": "f", "arguments": "{}"},
    }
    msg = get_format("openai.chat").parse_reply(_chat(**{field: values[field]})).message
    assert msg == {"role": "assistant", "content": TEXT}


def test_a_chat_custom_tool_call_is_a_typed_error() -> None:
    call = build(oc.ChatCompletionMessageCustomToolCall)
    call["custom"] = {"name": "grep", "input": "x"}
    data = _chat(content=None, tool_calls=[call])
    with pytest.raises(srt.ProviderResponseError, match="'custom' tool call"):
        get_format("openai.chat").parse_reply(data)


# -- Bedrock Converse -----------------------------------------------------------------------

_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
CONVERSE_BLOCKS = sorted(_SERVICE.shape_for("ContentBlock").members)
KEPT_CONVERSE = {"text": "!", "toolUse": {"toolUseId": "t", "name": "f", "input": {}}}
KEPT_CONVERSE["reasoningContent"] = {"reasoningText": {"text": "hm", "signature": "s"}}


@pytest.mark.parametrize("kind", CONVERSE_BLOCKS)
def test_every_converse_content_block_is_kept_or_a_typed_error(kind: str) -> None:
    fmt = get_format("bedrock.converse")
    data = normal("bedrock.converse", "m")
    block = {kind: KEPT_CONVERSE.get(kind, {})}
    data["output"]["message"]["content"].append(block)
    if kind not in KEPT_CONVERSE:
        with pytest.raises(srt.ProviderResponseError, match=f"'{kind}' content block"):
            fmt.parse_reply(data, model="m")
        return
    msg = fmt.parse_reply(data, model="m").message
    if kind == "text":
        assert msg["content"] == TEXT + "!"
    elif kind == "toolUse":
        assert msg["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    else:
        assert msg["artifacts"][0]["data"] == block


# -- malformed replies: typed errors ------------------------------------------------------

MALFORMED = [
    ("openai.chat", {"choices": [{"message": "text"}]}),
    ("openai.chat", {"choices": [{"message": {"content": "a", "tool_calls": "c"}}]}),
    (
        "openai.chat",
        {"choices": [{"message": {"content": "a", "tool_calls": [{"type": "function"}]}}]},
    ),
    ("openai.chat", {"choices": [{"message": {"content": "a", "refusal": 3}}]}),
    ("openai.chat", {"choices": [{"message": {"content": "a"}}], "usage": [1]}),
    ("openai.chat", {"choices": [{"message": {"content": "a"}}], "usage": {"prompt_tokens": "x"}}),
    ("openai.responses", {"output": [], "usage": {"input_tokens": "many"}}),
    ("openai.responses", {"output": [], "usage": {"input_tokens_details": [1]}}),
    ("anthropic.messages", {"content": [], "usage": [1]}),
    ("anthropic.messages", {"content": [], "usage": {"input_tokens": "x"}}),
    ("bedrock.converse", {"output": {"message": {"content": []}}, "usage": "x"}),
    ("bedrock.converse", {"output": {"message": {"content": []}}, "usage": {"outputTokens": [1]}}),
]


@pytest.mark.parametrize(
    ("name", "data"), MALFORMED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MALFORMED)]
)
def test_a_malformed_reply_is_a_provider_response_error(name: str, data: dict[str, Any]) -> None:
    with pytest.raises(srt.ProviderResponseError):
        get_format(name).parse_reply(data, model="m")


# -- through a loopback HTTP call -----------------------------------------------------------


def test_a_responses_reply_srt_cannot_store_keeps_its_ledger_row(tmp_path: Any) -> None:
    """A hosted tool's output item: the call fails with a ``ProviderResponseError`` and
    its ledger row (status ``error``) is written, as for any other reply the
    provider sent that srt refuses (it was an ``UnsupportedFeatureError``, and no row)."""
    from contextlib import closing

    from srt.providers import OpenAI
    from srt.testing import ProviderServer

    data = normal("openai.responses", "gpt-5")
    data["output"].append(build(OUTPUT_ITEMS["web_search_call"]))
    with ProviderServer() as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("ws")
        s.append({"role": "user", "content": "hi"})
        srv.fault("openai.responses", "status", code=200, body=data)
        provider = OpenAI(api="responses", api_key="sk-x", base_url=srv.url + "/v1")
        with closing(provider), pytest.raises(srt.ProviderResponseError, match="web_search_call"):
            s.send(provider, model="gpt-5")
        (row,) = rt.calls()
        assert row["status"] == "error"
        assert [m["role"] for m in s.messages()] == ["user"]
