"""The fakes of ``srt.testing`` refuse a request that leaves a tool call without its
result as each real API does (status, error type and message, read by the SDKs' error
models), on all six endpoints; srt refuses such a request itself before sending, so these
send raw requests with httpx. And OpenAI Chat's tool message, which takes text parts
only: srt refuses an image in one before anything is sent."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai.types.shared import ErrorObject

import srt
from srt.testing import ProviderServer
from support import provider_on
from test_agent_loop import KEY, MODELS, WEATHER
from test_agent_loop_ids import anthropic_refusal, bedrock_refusal

BEARER = {"authorization": f"Bearer {KEY}"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
CALL2 = {**CALL, "id": "call_2"}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def _chat_urls(srv: ProviderServer) -> dict[str, str]:
    """The Chat Completions endpoints: OpenAI's, an OpenAI-compatible server's (the same
    path under its base URL) and Azure's v1 and deployment paths."""
    return {
        "openai": srv.url + "/v1/chat/completions",
        "azure": srv.url + "/openai/v1/chat/completions",
        "azure-deployment": srv.url
        + "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
    }


def _openai_refusal(r: httpx.Response) -> ErrorObject:
    assert r.status_code == 400, r.text
    err = ErrorObject.model_validate(r.json()["error"])
    assert err.type == "invalid_request_error" and err.code is None
    return err


def _chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}, *messages]}


@pytest.mark.parametrize("where", ["openai", "azure", "azure-deployment"])
def test_chat_fakes_refuse_a_call_left_without_its_result(srv: ProviderServer, where: str) -> None:
    url = _chat_urls(srv)[where]
    headers = {**BEARER, "api-key": KEY}
    calls = {"role": "assistant", "content": None, "tool_calls": [CALL, CALL2]}
    answer = {"role": "tool", "tool_call_id": "call_2", "content": "ok"}
    with httpx.Client() as http:
        for body, param in (
            (_chat(calls), "messages.[1].role"),  # the request ends: the assistant's
            (_chat(calls, answer), "messages.[1].role"),
            # else the message where a tool message was due
            (_chat(calls, answer, {"role": "user", "content": "?"}), "messages.[3].role"),
        ):
            err = _openai_refusal(http.post(url, json=body, headers=headers))
            assert err.message == (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {'call_1, call_2' if len(body['messages']) == 2 else 'call_1'}"
            )
            assert err.param == param
        both = _chat(calls, answer, {**answer, "tool_call_id": "call_1"})
        assert http.post(url, json=both, headers=headers).status_code == 200


def test_the_responses_fake_refuses_a_call_left_without_its_output(srv: ProviderServer) -> None:
    url = srv.url + "/v1/responses"
    call = {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": "{}"}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "ok"}
    user = {"role": "user", "content": "hi"}
    with httpx.Client() as http:
        r = http.post(url, json={"model": "gpt-4o", "input": [user, call]}, headers=BEARER)
        err = _openai_refusal(r)
        assert (err.message, err.param) == (
            "No tool output found for function call call_1.",
            "input",
        )
        ok = {"model": "gpt-4o", "input": [user, call, output], "store": True}
        first = http.post(url, json=ok, headers=BEARER)
        assert first.status_code == 200
        # a stored response's calls need their outputs in the next request too
        srv.script("*", [{"tool_calls": [{"id": "call_9", "name": "w", "arguments": {}}]}])
        asked = http.post(url, json={"model": "gpt-4o", "input": [user]}, headers=BEARER)
        follow = {"model": "gpt-4o", "previous_response_id": asked.json()["id"], "input": "and?"}
        err = _openai_refusal(http.post(url, json=follow, headers=BEARER))
        assert err.message == "No tool output found for function call call_9."
        follow["input"] = [{**output, "call_id": "call_9"}]
        assert http.post(url, json=follow, headers=BEARER).status_code == 200


def test_the_anthropic_fake_refuses_a_call_left_without_its_result(srv: ProviderServer) -> None:
    url, headers = srv.url + "/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    uses = [{"type": "tool_use", "id": f"toolu_{n}", "name": "w", "input": {}} for n in (1, 2)]
    result = {"type": "tool_result", "tool_use_id": "toolu_2", "content": "ok"}
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": uses},
    ]
    with httpx.Client() as http:
        for after, missing in (
            ([], "toolu_1, toolu_2"),  # the request ends
            ([{"role": "user", "content": [result]}], "toolu_1"),
            ([{"role": "user", "content": "and?"}], "toolu_1, toolu_2"),
        ):
            body = {"model": MODELS["anthropic"], "max_tokens": 64, "messages": turns + after}
            assert anthropic_refusal(http.post(url, json=body, headers=headers)) == (
                "messages.1: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {missing}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )
        both = [result, {**result, "tool_use_id": "toolu_1"}]
        body = {"model": MODELS["anthropic"], "max_tokens": 64, "messages": turns}
        body["messages"] = [*turns, {"role": "user", "content": both}]
        assert http.post(url, json=body, headers=headers).status_code == 200


@pytest.mark.parametrize("op", ["converse", "converse-stream"])
def test_the_bedrock_fake_refuses_a_call_left_without_its_result(
    srv: ProviderServer, op: str
) -> None:
    url = f"{srv.url}/model/{MODELS['bedrock']}/{op}"
    name = "Converse" if op == "converse" else "ConverseStream"
    uses = [{"toolUse": {"toolUseId": f"tooluse_{n}", "name": "w", "input": {}}} for n in (1, 2)]
    result = {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "ok"}]}}
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": [{"text": "hi"}]},
        {"role": "assistant", "content": uses},
    ]
    with httpx.Client() as http:
        for after, missing in (
            ([], "tooluse_1, tooluse_2"),
            ([{"role": "user", "content": [result]}], "tooluse_1"),
            ([{"role": "user", "content": [{"text": "and?"}]}], "tooluse_1, tooluse_2"),
        ):
            r = http.post(url, json={"messages": turns + after}, headers=BEARER)
            assert bedrock_refusal(r, name) == (
                f"Expected toolResult blocks at messages.2.content for the following Ids: {missing}"
            )
        both = [result, {"toolResult": {**result["toolResult"], "toolUseId": "tooluse_1"}}]
        r = http.post(
            url, json={"messages": [*turns, {"role": "user", "content": both}]}, headers=BEARER
        )
        assert r.status_code == 200


# -- OpenAI Chat's tool message takes text parts only ------------------------------------

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(24)).decode()
IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}


@pytest.mark.parametrize("kind", ["openai", "azure", "compatible"])
def test_an_image_in_a_chat_tool_message_is_refused_before_sending(
    rt: srt.Runtime, srv: ProviderServer, kind: str
) -> None:
    s = rt.session(f"image-{kind}")
    s.append(
        {"role": "user", "content": "Look"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
    )
    shown = {"role": "tool", "tool_call_id": "call_1", "content": [IMAGE]}
    with provider_on(kind, srv.url, KEY) as p:
        for stream in (False, True):
            with pytest.raises(srt.UnsupportedFeatureError) as info:
                if stream:
                    list(s.stream(p, model=MODELS[kind], tools=[WEATHER], append=shown))
                else:
                    s.send(p, model=MODELS[kind], tools=[WEATHER], append=shown)
            assert str(info.value) == (
                f"{info.value.format} cannot express image_url parts in a tool message (the "
                "result for call 'call_1'): its content takes text parts only"
            )
            assert info.value.format in ("openai.chat", "azure.chat")
            assert sum(srv.requests.values()) == 0 and len(s) == 2  # nothing sent or written
        # text parts are what Chat's tool message takes: sent as stored, byte for byte
        texts = {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        }
        srv.script("*", ["Seen."])
        assert s.send(p, model=MODELS[kind], append=texts).message["content"] == "Seen."
    assert s.messages_bytes()[2] in s.request("openai.chat", model="m")


def test_a_chat_tool_message_with_an_image_is_refused_in_a_long_history(rt: srt.Runtime) -> None:
    """Loaded with a long history at once (the builder's path for a whole chain), the
    image in an earlier tool message is refused as well, and a text-only tool history
    is sent as stored."""
    s = rt.session("long")
    steps: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for n in range(12):
        call = {**CALL, "id": f"call_{n}"}
        content: Any = [IMAGE] if n == 3 else f"r{n}"
        steps += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{n}", "content": content},
        ]
    s.append(*steps)
    with pytest.raises(srt.UnsupportedFeatureError, match="'call_3'"):
        rt.session("long").request("openai.chat", model="m")
    plain = rt.session("plain")
    steps[8]["content"] = [{"type": "text", "text": "r3"}]
    plain.append(*steps)
    body = rt.session("plain").request("openai.chat", model="m")
    assert body.count(b'"role":"tool"') == 12
    assert all(b in body for b in plain.messages_bytes())
