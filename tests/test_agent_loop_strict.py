"""The fakes of ``srt.testing`` refuse a request that leaves a tool call without its
result as each real API does (status, error type and message, read by the SDKs' error
models), on all six endpoints; srt refuses such a request itself before sending, so these
send raw requests with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai.types.shared import ErrorObject

from srt.testing import ProviderServer
from test_agent_loop import KEY, MODELS
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
