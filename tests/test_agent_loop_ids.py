"""Tool-call ids across providers: ids another provider made (``functions.weather:0``
from an OpenAI-compatible server), an importer's empty id or a very long one, sent to
Anthropic and Bedrock in the forms each accepts (the call and its result mapped alike,
a valid id byte for byte as it is); and the fakes of ``srt.testing`` refusing such ids as
the real APIs do."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic.types as at
import botocore.session
import httpx
import pytest
from botocore.parsers import create_parser
from botocore.validate import ParamValidator

import srt
from srt.testing import ProviderServer
from srt.wire.anthropic.ids import ANTHROPIC_IDS, BEDROCK_IDS
from support import provider_on
from task_support import wire_pairs
from test_agent_loop import KEY, MODELS, WEATHER

_BEDROCK = botocore.session.get_session().get_service_model("bedrock-runtime")
#: The id forms as the providers state them: Anthropic's error text, botocore's model.
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
TOOL_USE_ID = _BEDROCK.shape_for("ToolUseId")
BEDROCK_ID = re.compile(TOOL_USE_ID.metadata["pattern"])
#: What other providers leave in a history (and one id valid everywhere).
ODD_IDS = ["functions.weather:0", "call 7/ü", "x" * 80 + ":1", "toolu_kept-1"]
FORMATS = {"anthropic": "anthropic.messages", "bedrock": "bedrock.converse"}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def _valid(kind: str, i: str) -> bool:
    if kind == "anthropic":
        return bool(ANTHROPIC_ID.match(i))
    return bool(BEDROCK_ID.fullmatch(i)) and TOOL_USE_ID.metadata["min"] <= len(i) <= 64


def test_the_id_forms_are_the_providers() -> None:
    assert (TOOL_USE_ID.metadata["min"], TOOL_USE_ID.metadata["max"]) == (1, 64)
    assert BEDROCK_IDS.valid.pattern == TOOL_USE_ID.metadata["pattern"]
    assert BEDROCK_IDS.limit == TOOL_USE_ID.metadata["max"]
    for form, kind in ((ANTHROPIC_IDS, "anthropic"), (BEDROCK_IDS, "bedrock")):
        for i in ["toolu_01A", "call_abc-DEF_9", "", *ODD_IDS]:
            out = form.wire(i)
            assert _valid(kind, out) and form.wire(i) == out  # valid and deterministic
            assert (out == i) is _valid(kind, i)  # a valid id is kept as it is
        # ids that differ only where they are invalid (or past the limit) stay apart
        alike = ["a.b", "a:b", "a b", "a_b", "y" * 70, "y" * 71, "y" * 63 + ".", "y" * 63 + ":"]
        assert len({form.wire(i) for i in alike}) == len(alike)


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_a_conversation_moves_to_anthropic_or_bedrock_with_other_providers_ids(
    rt: srt.Runtime, srv: ProviderServer, kind: str
) -> None:
    """A turn on an OpenAI-compatible server whose ids Anthropic (or Bedrock) refuses,
    its results, then the next turn on Anthropic (or Bedrock): sent with each call and
    its result under the same valid id; the strict fake would refuse any other."""
    s = rt.session(f"moved-{kind}")
    s.append({"role": "user", "content": "Weather in four cities?"})
    calls = [
        {"id": i, "name": "weather", "arguments": {"city": f"c{n}"}} for n, i in enumerate(ODD_IDS)
    ]
    srv.script("*", [{"tool_calls": calls}, "All sunny."])
    with provider_on("compatible", srv.url, KEY) as first:
        reply = s.send(first, model=MODELS["compatible"], tools=[WEATHER])
    stored = [c["id"] for c in reply.message["tool_calls"]]
    assert stored == ODD_IDS
    s.append(*[{"role": "tool", "tool_call_id": i, "content": "sunny"} for i in stored[::-1]])
    body = s.request(FORMATS[kind], model=MODELS[kind], tools=[WEATHER])
    sent_calls, sent_results = wire_pairs(FORMATS[kind], json.loads(body))
    assert sent_results == sent_calls[::-1]  # each result under its call's id
    assert all(_valid(kind, i) for i in sent_calls)
    assert len(set(sent_calls)) == len(ODD_IDS)
    form = ANTHROPIC_IDS if kind == "anthropic" else BEDROCK_IDS
    assert sent_calls == [form.wire(i) for i in ODD_IDS]
    kept = [i for i in ODD_IDS if _valid(kind, i)]  # Bedrock takes "functions.weather:0"
    assert kept == [i for i in sent_calls if i in ODD_IDS]
    with provider_on(kind, srv.url, KEY) as moved:
        final = s.send(moved, model=MODELS[kind], tools=[WEATHER])
    assert final.message["content"] == "All sunny."
    assert [c["id"] for c in s.messages()[1]["tool_calls"]] == ODD_IDS  # stored as given


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_an_imported_empty_id_is_sent_valid(
    rt: srt.Runtime, srv: ProviderServer, kind: str
) -> None:
    """An importer's call with an empty id (and its result): sent under one valid id."""
    s = rt.session(f"empty-{kind}")
    call = {"id": "", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    s.append(
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "", "content": "sunny"},
    )
    sent = s.request(FORMATS[kind], model=MODELS[kind])
    sent_calls, sent_results = wire_pairs(FORMATS[kind], json.loads(sent))
    assert sent_calls == sent_results and len(sent_calls) == 1 and _valid(kind, sent_calls[0])
    srv.script("*", ["Sunny."])
    with provider_on(kind, srv.url, KEY) as p:
        assert s.send(p, model=MODELS[kind], tools=[WEATHER]).message["content"] == "Sunny."


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_valid_ids_are_sent_as_they_were(rt: srt.Runtime, kind: str) -> None:
    s = rt.session(f"kept-{kind}")
    s.append(
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "ok"},
    )
    body = s.request(FORMATS[kind], model=MODELS[kind])
    if kind == "anthropic":
        assert b'{"type":"tool_use","id":"toolu_01","name":"w","input":{}}' in body
        assert b'{"type":"tool_result","tool_use_id":"toolu_01","content":"ok"}' in body
    else:
        assert b'{"toolUse":{"toolUseId":"toolu_01","name":"w","input":{}}}' in body
        assert b'{"toolResult":{"toolUseId":"toolu_01","content":[{"text":"ok"}]}}' in body


# -- the fakes refuse the ids the real APIs refuse ------------------------------------------


def _anthropic_turns(call_id: str, result_id: str) -> dict[str, Any]:
    return {
        "model": MODELS["anthropic"],
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call_id, "name": "w", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": result_id, "content": "ok"}],
            },
        ],
    }


def _converse_turns(call_id: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": [{"text": "hi"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": call_id, "name": "w", "input": {}}}],
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": call_id, "content": [{"text": "ok"}]}}],
            },
        ]
    }


def anthropic_refusal(r: httpx.Response) -> str:
    """The message of an Anthropic 400 ``invalid_request_error``, checked by the SDK's model."""
    assert r.status_code == 400, r.text
    body = at.ErrorResponse.model_validate(r.json())
    assert body.error.type == "invalid_request_error"
    return body.error.message


def bedrock_refusal(r: httpx.Response, op: str = "Converse") -> str:
    """The message of a Bedrock ``ValidationException``, as botocore's parser reads it."""
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "ValidationException"
    parsed = create_parser("rest-json").parse(
        {"status_code": 400, "headers": dict(r.headers), "body": r.content},
        _BEDROCK.operation_model(op).output_shape,
    )
    assert parsed["Error"]["Code"] == "ValidationException"
    report = ParamValidator().validate(r.json(), _BEDROCK.shape_for("ValidationException"))
    assert not report.has_errors(), report.generate_report()
    return str(parsed["Error"]["Message"])


def test_the_anthropic_fake_refuses_ids_out_of_the_pattern(srv: ProviderServer) -> None:
    url, headers = srv.url + "/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    with httpx.Client() as http:
        r = http.post(url, json=_anthropic_turns("functions.w:0", "x"), headers=headers)
        assert anthropic_refusal(r) == (
            "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
        )
        r = http.post(url, json=_anthropic_turns("", "x"), headers=headers)
        assert anthropic_refusal(r).startswith("messages.1.content.0.tool_use.id: String")
        r = http.post(url, json=_anthropic_turns("toolu_1", "toolu.1"), headers=headers)
        assert anthropic_refusal(r) == (
            "messages.2.content.0.tool_result.tool_use_id: String should match pattern "
            "'^[a-zA-Z0-9_-]+$'"
        )
        ok = http.post(url, json=_anthropic_turns("toolu_1-x", "toolu_1-x"), headers=headers)
        assert ok.status_code == 200, ok.text


def test_the_bedrock_fake_refuses_ids_out_of_the_pattern(srv: ProviderServer) -> None:
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client() as http:
        for op in ("converse", "converse-stream"):
            url = f"{srv.url}/model/{MODELS['bedrock']}/{op}"
            name = "Converse" if op == "converse" else "ConverseStream"
            cases = {
                "call 7": "Member must satisfy regular expression pattern: [a-zA-Z0-9_.:-]+",
                "": "Member must have length greater than or equal to 1",
                "x" * 65: "Member must have length less than or equal to 64",
            }
            for bad, rule in cases.items():
                r = http.post(url, json=_converse_turns(bad), headers=headers)
                assert bedrock_refusal(r, name) == (
                    f"1 validation error detected: Value '{bad}' at 'messages.2.member."
                    f"content.1.member.toolUse.toolUseId' failed to satisfy constraint: {rule}"
                )
            for good in ("functions.w:0", "x" * 64):
                ok = http.post(url, json=_converse_turns(good), headers=headers)
                assert ok.status_code == 200, ok.text
