"""Bedrock's ``toolConfig.toolChoice``: ``tool_choice`` ``required`` is ``{"any": {}}``, a
named function ``{"tool": {"name": ...}}``, an ``allowed_tools`` choice its mode with only
the tools it allows; ``none`` and ``parallel_tool_calls: false`` stay refused. The choice
goes into ``toolConfig`` after the tools (their bytes stay the body's prefix), a body the
botocore service model's ``Converse`` input shape accepts; a choice with no tools is a
``ConfigError`` before anything is sent. Through the gateway, the official ``openai`` SDK
and srt.testing's Bedrock server, which validates the member as Bedrock does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.validate import ParamValidator

import srt
from gateway_support import Harness, harness, last_sent, refused_400
from srt.errors import ConfigError, UnsupportedFeatureError
from srt.testing import ProviderServer
from srt.wire import get_format
from srt.wire.params import CommonParams, translate
from support import provider_on

BEDROCK = get_format("bedrock.converse")
MODEL = "anthropic.claude-3-7-sonnet"
GW_MODEL = f"bedrock/{MODEL}"
_CONVERSE = botocore.session.get_session().get_service_model("bedrock-runtime")


def _fn(name: str) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}}


TOOLS = [_fn("a"), _fn("b")]


def _valid_converse(body: bytes) -> dict[str, Any]:
    """``body`` as botocore's own ``Converse`` validator takes it (unknown members and
    wrong types refused)."""
    data: dict[str, Any] = json.loads(body)
    request = {"modelId": MODEL, **data}
    shape = _CONVERSE.operation_model("Converse").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    return data


# -- translate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("required", {"any": {}}),
        ({"type": "function", "name": "b"}, {"tool": {"name": "b"}}),
        (
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "a"}],
            },
            {"any": {}},
        ),
    ],
)
def test_tool_choice_is_converse_tool_choice(choice: Any, sent: dict[str, Any]) -> None:
    assert translate(BEDROCK, CommonParams(tool_choice=choice)) == {"toolChoice": sent}


@pytest.mark.parametrize(
    "choice", [None, "auto", {"type": "allowed_tools", "mode": "auto", "tools": []}]
)
def test_auto_sends_no_tool_choice(choice: Any) -> None:
    """``auto`` is Converse's default: not sent, so a model without tool choice (Llama's)
    still takes the request."""
    assert translate(BEDROCK, CommonParams(tool_choice=choice, max_output_tokens=5)) == {
        "inferenceConfig": {"maxTokens": 5}
    }


def test_none_and_parallel_off_stay_refused() -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        translate(BEDROCK, CommonParams(tool_choice="none"))
    assert caught.value.feature.startswith("tool_choice 'none'")
    assert "Converse has no 'none'" in str(caught.value)
    with pytest.raises(UnsupportedFeatureError, match="parallel_tool_calls False"):
        translate(BEDROCK, CommonParams(tool_choice="required", parallel_tool_calls=False))


# -- the body -------------------------------------------------------------------------


def test_the_choice_follows_the_tools_in_tool_config(rt: srt.Runtime) -> None:
    s = rt.session("choice")
    s.append({"role": "user", "content": "hi"})
    plain = s.request("bedrock.converse", model=MODEL, tools=TOOLS, cache=False)
    forced = s.request(
        "bedrock.converse", model=MODEL, tools=TOOLS, cache=False, toolChoice={"any": {}}
    )
    named = s.request(
        "bedrock.converse",
        model=MODEL,
        tools=TOOLS,
        cache=False,
        toolChoice={"tool": {"name": "b"}},
    )
    for body in (plain, forced, named):
        _valid_converse(body)
    data = json.loads(forced)
    assert list(data) == ["toolConfig", "messages"]
    assert list(data["toolConfig"]) == ["tools", "toolChoice"]
    assert data["toolConfig"]["toolChoice"] == {"any": {}}
    assert json.loads(named)["toolConfig"]["toolChoice"] == {"tool": {"name": "b"}}
    # the tools' bytes are the prefix of every one of these bodies
    tools_end = plain.index(b']},"messages":') + 1
    assert forced[:tools_end] == plain[:tools_end] == named[:tools_end]
    again = s.request(
        "bedrock.converse", model=MODEL, tools=TOOLS, cache=False, toolChoice={"any": {}}
    )
    assert again == forced  # byte-stable turn to turn


def test_the_choice_after_the_tools_cache_point(rt: srt.Runtime) -> None:
    """With caching on, the tools' ``cachePoint`` stays inside ``tools``, before the
    choice (a body botocore accepts)."""
    s = rt.session("cached")
    s.append({"role": "user", "content": "hi " * 3000})
    tools = [{**_fn(n), "description": "d" * 4000, "parameters": {"type": "object"}} for n in "ab"]
    body = s.request("bedrock.converse", model=MODEL, tools=tools, toolChoice={"any": {}})
    data = _valid_converse(body)
    config = data["toolConfig"]
    assert list(config) == ["tools", "toolChoice"]
    assert any("cachePoint" in t for t in config["tools"])


def test_a_choice_without_tools_is_refused_before_sending(rt: srt.Runtime) -> None:
    with ProviderServer(api_key="k") as srv:
        p = provider_on("bedrock", srv.url, "k")
        try:
            s = rt.session("no-tools")
            with pytest.raises(ConfigError, match="toolChoice needs tools"):
                s.send(
                    p,
                    model=MODEL,
                    append=[{"role": "user", "content": "hi"}],
                    toolChoice={"any": {}},
                )
            assert srv.requests.total() == 0
            assert s.messages() == []
        finally:
            p.close()


# -- srt.testing's Bedrock server -----------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "why"),
    [
        ({"tool": {"name": "zz"}}, "toolConfig.toolChoice.tool.name"),
        ({"any": {"x": 1}}, "toolConfig.toolChoice.any"),
        ({"none": {}}, "toolConfig.toolChoice"),
        ({"auto": {}, "any": {}}, "toolConfig.toolChoice"),
    ],
)
def test_the_test_server_validates_tool_choice(choice: Any, why: str) -> None:
    body = {
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "a", "inputSchema": {"json": {"type": "object"}}}}],
            "toolChoice": choice,
        },
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
    }
    auth = {"Authorization": "Bearer k"}
    with ProviderServer(api_key="k") as srv:
        r = httpx.post(f"{srv.url}/model/{MODEL}/converse", json=body, headers=auth)
        assert r.status_code == 400, r.text
        assert why in r.json()["message"]
        body["toolConfig"]["toolChoice"] = {"tool": {"name": "a"}}
        ok = httpx.post(f"{srv.url}/model/{MODEL}/converse", json=body, headers=auth)
        assert ok.status_code == 200, ok.text


# -- the gateway ----------------------------------------------------------------------


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


@pytest.mark.parametrize(
    ("choice", "sent"),
    [("required", {"any": {}}), ({"type": "function", "name": "b"}, {"tool": {"name": "b"}})],
)
def test_the_gateway_sends_bedrock_its_tool_choice(
    gw: Harness, choice: Any, sent: dict[str, Any]
) -> None:
    c = gw.client()
    r = c.responses.create(model=GW_MODEL, input="hi", tools=TOOLS, tool_choice=choice)
    assert r.status == "completed"
    config = last_sent(gw)["toolConfig"]
    assert config["toolChoice"] == sent
    assert [t["toolSpec"]["name"] for t in config["tools"]] == ["a", "b"]
    chat = c.chat.completions.create(
        model=GW_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}],
        tool_choice="required",
    )
    assert chat.choices[0].message is not None
    assert last_sent(gw)["toolConfig"]["toolChoice"] == {"any": {}}
    assert gw.rt.verify_ledger().ok


def test_the_gateway_refuses_none_to_bedrock_saying_why(gw: Harness) -> None:
    err = refused_400(
        gw, "tool_choice", "unsupported_parameter", model=GW_MODEL, tools=TOOLS, tool_choice="none"
    )
    assert "Converse has no 'none'" in err.message
