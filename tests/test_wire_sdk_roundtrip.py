"""What srt keeps from a reply, rendered into the next request to the same provider and
model, is a request the official SDK's request types accept (unknown keys refused):
openai's ``ResponseCreateParams`` and ``CompletionCreateParams``, anthropic's
``MessageCreateParams``, and for Bedrock botocore's ``Converse`` input shape. Provider
artifacts go back unchanged: Anthropic thinking blocks with their signatures, Responses
reasoning items with ``encrypted_content``, Converse reasoning (signed or redacted).

Each reply is built from the SDK's own models, parsed by srt, stored in a real session,
and the next request taken with ``Session.request`` (the bytes ``send`` would send).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic.types as at
import botocore.session
import openai.types.responses as orr
import pytest
from botocore.validate import ParamValidator
from openai.types.chat import CompletionCreateParams
from openai.types.responses import ResponseCreateParams
from pydantic import ConfigDict, TypeAdapter

import srt
from srt.wire import get_format
from test_sdk_models import check_body
from test_wire_sdk_build import build

FORBID = ConfigDict(extra="forbid")
# (module-level: a lazily validated ``Iterable`` needs its adapter alive while drained)
RESPONSES = TypeAdapter(ResponseCreateParams, config=FORBID)
CHAT = TypeAdapter(CompletionCreateParams, config=FORBID)
MESSAGES = TypeAdapter(at.MessageCreateParams, config=FORBID)


def check(adapter: TypeAdapter[Any], body: bytes) -> dict[str, Any]:
    check_body(adapter, body)  # (test_sdk_models': every lazily validated item walked)
    data: dict[str, Any] = json.loads(body)
    return data


def next_request(
    rt: srt.Runtime, name: str, reply: dict[str, Any], model: str, **params: Any
) -> bytes:
    """Store the parsed reply between two user turns; the next request's body."""
    parsed = get_format(name).parse_reply(reply, model=model)
    s = rt.session(f"rt-{name}")
    s.append({"role": "user", "content": "hi"}, parsed.message, {"role": "user", "content": "and?"})
    return s.request(name, model=model, **params)


@pytest.fixture
def rt(tmp_path: Any) -> Any:
    with srt.Runtime(str(tmp_path / "rt.db")) as runtime:
        yield runtime


# -- Anthropic ------------------------------------------------------------------------------


def test_anthropic_thinking_and_tool_use_go_back_unchanged(rt: srt.Runtime) -> None:
    model = "claude-sonnet-4-5"
    thinking = build(at.ThinkingBlock, thinking="Let me see.", signature="EqQBCkYIBRgCKkA=")
    redacted = build(at.RedactedThinkingBlock, data="EmwKAhgBEgy3va==")
    text = build(at.TextBlock, text="Calling f.")
    use = build(at.ToolUseBlock, id="toolu_1", name="f", input={"q": 1})
    reply = build(at.Message, model=model, content=[thinking, redacted, text, use])
    reply["stop_reason"] = "tool_use"
    at.Message.model_validate(reply)
    parsed = get_format("anthropic.messages").parse_reply(reply).message
    rt_s = rt.session("tools")
    rt_s.append(
        {"role": "user", "content": "hi"},
        parsed,
        {"role": "tool", "tool_call_id": "toolu_1", "content": "42"},
    )
    body = rt_s.request("anthropic.messages", model=model, max_tokens=1024, cache=False)
    data = check(MESSAGES, body)
    assert data["messages"][1] == {"role": "assistant", "content": [thinking, redacted, text, use]}
    assert data["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"


# -- OpenAI Responses ---------------------------------------------------------------------


def test_responses_reasoning_with_encrypted_content_goes_back_unchanged(rt: srt.Runtime) -> None:
    model = "gpt-5"
    summary = build(orr.response_reasoning_item.Summary, text="Thought about it.")
    reasoning = build(
        orr.ResponseReasoningItem, id="rs_1", summary=[summary], encrypted_content="gAAAAABo=="
    )
    message = build(
        orr.ResponseOutputMessage,
        id="msg_1",
        status="completed",
        content=[build(orr.ResponseOutputText, text="Hi.", annotations=[])],
    )
    call = build(orr.ResponseFunctionToolCall, call_id="call_1", name="f", arguments='{"q":1}')
    reply = build(orr.Response, model=model, output=[reasoning, message, call])
    orr.Response.model_validate(reply)
    data = check(RESPONSES, next_request(rt, "openai.responses", reply, model))
    assert data["input"][1] == reasoning
    assert data["input"][2:4] == [
        {"role": "assistant", "content": "Hi."},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": '{"q":1}'},
    ]


def test_a_responses_refusal_goes_back_as_an_output_message(rt: srt.Runtime) -> None:
    model = "gpt-5"
    refusal = build(orr.ResponseOutputRefusal, refusal="I can't help with that.")
    message = build(orr.ResponseOutputMessage, id="msg_1", status="completed", content=[refusal])
    reply = build(orr.Response, model=model, output=[message])
    data = check(RESPONSES, next_request(rt, "openai.responses", reply, model))
    assert data["input"][1]["content"] == [refusal]


# -- OpenAI Chat Completions ----------------------------------------------------------------


def test_a_chat_refusal_goes_back_as_the_assistant_message_refusal(rt: srt.Runtime) -> None:
    reply = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-5",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
            }
        ],
    }
    data = check(CHAT, next_request(rt, "openai.chat", reply, "gpt-5"))
    assert data["messages"][1] == {"role": "assistant", "content": "", "refusal": "I can't."}


# -- Bedrock Converse -----------------------------------------------------------------------

_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
REASONING = [
    {"reasoningContent": {"reasoningText": {"text": "Let me see.", "signature": "c2ln"}}},
    {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
]


@pytest.mark.parametrize("block", REASONING, ids=["signed", "redacted"])
def test_converse_reasoning_goes_back_unchanged(rt: srt.Runtime, block: dict[str, Any]) -> None:
    model = "anthropic.claude-sonnet-4-5"
    content = [block, {"text": "4"}, {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]
    reply = {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
    }
    body = json.loads(next_request(rt, "bedrock.converse", reply, model, cache=False))
    assert body["messages"][1] == {"role": "assistant", "content": content}
    body.pop("modelId", None)
    request = {"modelId": model, **body}
    report = ParamValidator().validate(request, _SERVICE.operation_model("Converse").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_a_streamed_converse_reasoning_reply_is_kept_for_the_model_asked() -> None:
    """A ConverseStream reply does not name its model: the decoder is given the model
    asked (``stream_decoder(model)``), so its reasoning becomes that model's artifact
    (``reply()`` raised ``UnsupportedFeatureError`` for every reply with reasoning)."""
    from srt.wire.bedrock import event_frame

    model = "anthropic.claude-sonnet-4-5"
    dec = get_format("bedrock.converse").stream_decoder(model)
    frames = [
        event_frame("messageStart", {"role": "assistant"}),
        event_frame(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hm"}}},
        ),
        event_frame(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "c2ln"}}},
        ),
        event_frame("contentBlockStop", {"contentBlockIndex": 0}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "4"}}),
        event_frame("contentBlockStop", {"contentBlockIndex": 1}),
        event_frame("messageStop", {"stopReason": "end_turn"}),
        event_frame("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}),
    ]
    for f in frames:
        dec.feed(f)
    reply = dec.reply()
    assert reply.model == model
    assert reply.message == {
        "role": "assistant",
        "content": "4",
        "artifacts": [
            {
                "provider": "bedrock",
                "model": model,
                "type": "reasoningContent",
                "data": {
                    "reasoningContent": {"reasoningText": {"text": "hm", "signature": "c2ln"}}
                },
            }
        ],
    }


@pytest.mark.parametrize("stream", [False, True])
def test_a_converse_reply_with_reasoning_through_a_real_call(rt: srt.Runtime, stream: bool) -> None:
    from contextlib import closing

    from srt.providers import Bedrock
    from srt.testing import ProviderServer
    from srt.wire.bedrock import event_frame

    model = "anthropic.claude-sonnet-4-5"
    content = [REASONING[0], {"text": "4"}]
    usage = {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}
    if stream:
        rc = REASONING[0]["reasoningContent"]["reasoningText"]
        body = b"".join(
            [
                event_frame("messageStart", {"role": "assistant"}),
                event_frame(
                    "contentBlockDelta",
                    {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": rc["text"]}}},
                ),
                event_frame(
                    "contentBlockDelta",
                    {
                        "contentBlockIndex": 0,
                        "delta": {"reasoningContent": {"signature": rc["signature"]}},
                    },
                ),
                event_frame("contentBlockStop", {"contentBlockIndex": 0}),
                event_frame("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "4"}}),
                event_frame("contentBlockStop", {"contentBlockIndex": 1}),
                event_frame("messageStop", {"stopReason": "end_turn"}),
                event_frame("metadata", {"usage": usage}),
            ]
        )
        target, headers = (
            "bedrock.converse_stream",
            {"Content-Type": "application/vnd.amazon.eventstream"},
        )
    else:
        reply = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "end_turn",
            "usage": usage,
        }
        body, target, headers = json.dumps(reply).encode(), "bedrock.converse", {}
    s = rt.session(f"reasoning-{stream}")
    s.append({"role": "user", "content": "2+2?"})
    with ProviderServer() as srv:
        srv.fault(target, "status", code=200, body=body, headers=headers)
        with closing(Bedrock(region="us-east-1", api_key="k", endpoint_url=srv.url)) as provider:
            if stream:
                assert "".join(s.stream(provider, model=model)) == "4"
            else:
                s.send(provider, model=model)
    assert s.messages()[-1]["artifacts"][0]["data"] == REASONING[0]
