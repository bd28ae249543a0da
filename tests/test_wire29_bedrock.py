"""Bedrock Converse bodies checked against botocore's own ``bedrock-runtime`` model.

A body srt builds is read as boto3 would be handed it (each ``blob`` member, such as an
image's ``source.bytes``, decoded from its base64 into bytes), validated with botocore's
``ParamValidator`` and serialized again with botocore's rest-json serializer: the JSON
botocore would send must equal srt's. A tool whose description is empty goes without
one (``ToolSpecification.description`` is a ``NonEmptyString``: AWS refuses ``""``), and
srt.testing refuses ``""`` as AWS does.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

import srt
from srt.testing import ProviderServer
from srt.wire import get_format

_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
CONVERSE = _SERVICE.operation_model("Converse")
MODEL = "anthropic.claude-sonnet-4-5"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)


def _as_boto(value: Any, shape: Any) -> Any:
    """``value`` (a JSON body's member) as a boto3 caller writes it: blobs as bytes."""
    kind = shape.type_name
    if kind == "structure" and shape.name != "Document":
        return {
            k: _as_boto(v, shape.members[k]) if k in shape.members else v for k, v in value.items()
        }
    if kind == "list":
        return [_as_boto(v, shape.member) for v in value]
    if kind == "map":
        return {k: _as_boto(v, shape.value) for k, v in value.items()}
    if kind == "blob":
        return base64.b64decode(value, validate=True)
    return value


def botocore_checks(body: bytes) -> dict[str, Any]:
    """``body`` validated by botocore; it must serialize to the same JSON."""
    ours = json.loads(body)
    params = _as_boto({"modelId": MODEL, **ours}, CONVERSE.input_shape)
    report = ParamValidator().validate(params, CONVERSE.input_shape)
    assert not report.has_errors(), report.generate_report()
    request = create_serializer("rest-json").serialize_to_request(params, CONVERSE)
    assert json.loads(request["body"]) == ours
    return ours


def _tool(description: str | None) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": "weather", "parameters": {"type": "object", "properties": {}}}
    if description is not None:
        fn["description"] = description
    return {"type": "function", "function": fn}


@pytest.fixture
def rt(tmp_path: Any) -> Any:
    runtime = srt.Runtime(str(tmp_path / "w.db"))
    yield runtime
    runtime.close()


def test_a_whole_conversation_is_what_botocore_would_send(rt: srt.Runtime) -> None:
    """System, an image, text and a tool call, an error result, cache points (system and
    last message), a tool choice, inferenceConfig and additionalModelRequestFields."""
    s = rt.session("all")
    call = {"id": "call_1", "type": "function"}
    call["function"] = {"name": "weather", "arguments": '{"city":"Paris"}'}
    s.append(
        {"role": "system", "content": "Be brief. " * 300},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
            ],
        },
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "boom", "is_error": True},
        {"role": "user", "content": "And now?"},
    )
    body = s.request(
        "bedrock.converse",
        model=MODEL,
        tools=[_tool("The weather.")],
        toolChoice={"tool": {"name": "weather"}},
        inferenceConfig={"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["X"]},
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    sent = botocore_checks(body)
    assert sent["system"][-1] == {"cachePoint": {"type": "default"}}
    assert sent["messages"][-1]["content"][-1] == {"cachePoint": {"type": "default"}}
    assert sent["messages"][0]["content"][1]["image"]["source"]["bytes"] == PNG
    assert sent["messages"][2]["content"][0]["toolResult"]["status"] == "error"


@pytest.mark.parametrize("description", ["", None])
def test_a_tool_without_a_description_is_sent_without_one(
    rt: srt.Runtime, description: str | None
) -> None:
    s = rt.session("tools")
    s.append({"role": "user", "content": "Weather?"})
    body = s.request("bedrock.converse", model=MODEL, tools=[_tool(description)], cache=False)
    spec = botocore_checks(body)["toolConfig"]["tools"][0]["toolSpec"]
    assert spec == {
        "name": "weather",
        "inputSchema": {"json": {"type": "object", "properties": {}}},
    }


def test_a_tool_with_a_description_keeps_it(rt: srt.Runtime) -> None:
    s = rt.session("tools")
    s.append({"role": "user", "content": "Weather?"})
    body = s.request("bedrock.converse", model=MODEL, tools=[_tool(" ")], cache=False)
    assert botocore_checks(body)["toolConfig"]["tools"][0]["toolSpec"]["description"] == " "


def _converse(tools: list[dict[str, Any]]) -> httpx.Response:
    body = {
        "toolConfig": {"tools": tools},
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
    }
    with ProviderServer(api_key="k") as srv, httpx.Client(timeout=30) as http:
        return http.post(
            f"{srv.url}/model/{MODEL}/converse", json=body, headers={"authorization": "Bearer k"}
        )


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("w" * 65, "Member must have length less than or equal to 64"),
        ("get.weather", "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"),
    ],
)
def test_srt_testing_refuses_a_tool_name_as_aws_does(name: str, rule: str) -> None:
    spec = {"name": name, "inputSchema": {"json": {"type": "object"}}}
    ok = {"toolSpec": {**spec, "name": "w" * 64}}
    r = _converse([ok, {"toolSpec": spec}])
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"] == "ValidationException"
    assert r.json()["message"] == (
        f"1 validation error detected: Value '{name}' at 'toolConfig.tools.2.member.toolSpec."
        f"name' failed to satisfy constraint: {rule}"
    )


def test_srt_testing_refuses_an_empty_tool_description_as_aws_does() -> None:
    spec = {"name": "weather", "description": "", "inputSchema": {"json": {"type": "object"}}}
    r = _converse([{"toolSpec": spec}])
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"] == "ValidationException"
    assert r.json()["message"] == (
        "1 validation error detected: Value '' at 'toolConfig.tools.1.member.toolSpec."
        "description' failed to satisfy constraint: Member must have length greater than or "
        "equal to 1"
    )


def test_a_reply_over_max_tokens_stops_there() -> None:
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    body = {
        "messages": [{"role": "user", "content": [{"text": "Count."}]}],
        "inferenceConfig": {"maxTokens": 5},
    }
    with ProviderServer(api_key="k") as srv, httpx.Client(timeout=30) as http:
        srv.script("bedrock.converse", [long])
        r = http.post(
            f"{srv.url}/model/{MODEL}/converse", json=body, headers={"authorization": "Bearer k"}
        )
    report = ParamValidator().validate(r.json(), CONVERSE.output_shape)
    assert not report.has_errors(), report.generate_report()
    assert r.json()["stopReason"] == "max_tokens"
    reply = get_format("bedrock.converse").parse_reply(r.json(), MODEL)
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 5
    assert long.startswith(reply.message["content"]) and reply.message["content"] != long
