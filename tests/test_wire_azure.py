"""Azure OpenAI: ``azure.chat`` and ``azure.responses`` bodies, artifacts under provider
``azure``, and ``AzureEndpoint`` URLs and auth headers (which never show a key)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt.message import canonicalize
from srt.wire import FORMATS, build_body, get_format
from srt.wire.azure import (
    CHAT,
    RESPONSES,
    AzureChat,
    AzureEndpoint,
    AzureResponses,
    to_canonical_responses,
)
from srt.wire.openai_chat import OpenAIChat
from srt.wire.openai_responses import OpenAIResponses
from test_wire_responses import canon, canon_tools, session_check
from test_wire_responses_replies import TOOL_REPLY
from wire_reference_oa import (
    MODELS,
    PARAMS,
    chat_body,
    chat_tail,
    conversation,
    responses_body,
    responses_tail,
    tool_def,
)

KEY = "azk-5ecret-Value-0123456789abcdef"
TOKEN = "eyJ0eXAiOiJKV1Qi.entra-token.sig"


def azure_responses_body(msgs: list[dict[str, Any]], **kw: Any) -> bytes:
    return responses_body(msgs, provider="azure", **kw)


def test_registered() -> None:
    assert get_format("azure.chat") is CHAT and get_format("azure.responses") is RESPONSES
    assert isinstance(CHAT, AzureChat) and isinstance(CHAT, OpenAIChat)
    assert isinstance(RESPONSES, AzureResponses) and isinstance(RESPONSES, OpenAIResponses)
    assert (CHAT.name, CHAT.provider) == ("azure.chat", "azure")
    assert (RESPONSES.name, RESPONSES.provider) == ("azure.responses", "azure")
    assert {"openai.chat", "openai.responses", "azure.chat", "azure.responses"} <= set(FORMATS)


@settings(max_examples=200)
@given(conversation(), st.sampled_from(MODELS), st.lists(tool_def(), max_size=3), PARAMS)
def test_build_body_equals_reference(
    msgs: list[dict[str, Any]], model: str, tools: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    bodies = [canonicalize(m)[0] for m in msgs]
    ctools = canon_tools(tools)
    kw: dict[str, Any] = {"model": model, "tools": ctools, "params": params}
    chat = build_body("azure.chat", bodies, **kw)
    assert chat == chat_body(canon(msgs), **kw)
    assert chat == build_body("openai.chat", bodies, **kw)
    assert build_body("azure.responses", bodies, **kw) == azure_responses_body(canon(msgs), **kw)


@settings(max_examples=30)
@given(conversation(max_turns=6), st.sampled_from(MODELS), st.lists(tool_def(), max_size=2), PARAMS)
def test_session_requests_equal_reference_and_extend(
    msgs: list[dict[str, Any]], model: str, tools: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    session_check("azure.chat", chat_body, chat_tail, msgs, model, tools, params)
    session_check(
        "azure.responses", azure_responses_body, responses_tail, msgs, model, tools, params
    )


def test_no_prompt_cache_key_for_azure(rt: srt.Runtime) -> None:
    s = rt.session("s")
    s.append({"role": "user", "content": "hi"})
    for fmt in ("azure.chat", "azure.responses"):
        assert "prompt_cache_key" not in json.loads(s.request(fmt, model="dep", cache=True))
    assert "prompt_cache_key" in json.loads(s.request("openai.responses", model="dep"))


def test_artifacts_are_kept_per_provider(rt: srt.Runtime) -> None:
    reply = RESPONSES.parse_reply(TOOL_REPLY)
    model = TOOL_REPLY["model"]
    assert reply.message["artifacts"][0]["provider"] == "azure"
    s = rt.session("s")
    s.append({"role": "user", "content": "q"}, reply.message)
    azure_items = json.loads(s.request("azure.responses", model=model, cache=False))["input"]
    assert azure_items[1] == TOOL_REPLY["output"][0]
    assert s.last_build is not None and s.last_build.notes == ()
    # The same model name on api.openai.com must not get Azure's reasoning item.
    openai_items = json.loads(s.request("openai.responses", model=model, cache=False))["input"]
    assert openai_items == [azure_items[0], *azure_items[2:]]
    assert s.last_build.notes[0].startswith(f"stripped 1 artifact(s) from azure/{model}")
    # Items read back from Azure give azure artifacts.
    msgs = to_canonical_responses(azure_items[1:], model)
    assert msgs[0]["artifacts"][0]["provider"] == "azure"
    assert canonicalize(msgs[0]) == canonicalize(reply.message)


def test_bad_model_is_a_config_error() -> None:
    for fmt in ("azure.chat", "azure.responses"):
        for model in ("", "\ud800"):
            with pytest.raises(srt.ConfigError):
                build_body(fmt, [], model=model)


# -- AzureEndpoint --------------------------------------------------------------------


def test_deployment_urls() -> None:
    ep = AzureEndpoint("my-res", deployment="gpt-4o", api_version="2024-10-21")
    assert ep.url("chat") == (
        "https://my-res.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert ep.url("responses") == (
        "https://my-res.openai.azure.com/openai/responses?api-version=2024-10-21"
    )
    odd = AzureEndpoint("r", deployment="a b/c", api_version="2025-04-01-preview")
    assert odd.url("chat") == (
        "https://r.openai.azure.com/openai/deployments/a%20b%2Fc/chat/completions"
        "?api-version=2025-04-01-preview"
    )


def test_v1_urls() -> None:
    ep = AzureEndpoint("my-res", use_v1=True)
    assert ep.url("chat") == "https://my-res.openai.azure.com/openai/v1/chat/completions"
    assert ep.url("responses") == "https://my-res.openai.azure.com/openai/v1/responses"
    preview = AzureEndpoint("my-res", deployment="ignored", api_version="preview", use_v1=True)
    assert preview.url("responses") == (
        "https://my-res.openai.azure.com/openai/v1/responses?api-version=preview"
    )


@pytest.mark.parametrize(
    "base",
    [
        "https://my-res.openai.azure.com",
        "https://my-res.openai.azure.com/",
        "https://my-res.openai.azure.com/openai",
        "https://my-res.openai.azure.com/openai/v1/",
    ],
)
def test_base_urls(base: str) -> None:
    assert AzureEndpoint(base, use_v1=True).url("chat") == (
        "https://my-res.openai.azure.com/openai/v1/chat/completions"
    )
    ep = AzureEndpoint(base, deployment="d", api_version="v")
    assert ep.url("chat") == (
        "https://my-res.openai.azure.com/openai/deployments/d/chat/completions?api-version=v"
    )


def test_gateway_base_url_keeps_its_path() -> None:
    ep = AzureEndpoint("http://127.0.0.1:8080/gw", use_v1=True)
    assert ep.url("responses") == "http://127.0.0.1:8080/gw/openai/v1/responses"


@pytest.mark.parametrize(
    ("kwargs", "kind", "match"),
    [
        ({"resource_or_base_url": "r", "deployment": "d"}, "chat", "api_version"),
        ({"resource_or_base_url": "r"}, "responses", "api_version"),
        ({"resource_or_base_url": "r", "api_version": "v"}, "chat", "deployment"),
        ({"resource_or_base_url": "r", "use_v1": True}, "embeddings", "kind"),
    ],
)
def test_url_config_errors(kwargs: dict[str, Any], kind: str, match: str) -> None:
    with pytest.raises(srt.ConfigError, match=match):
        AzureEndpoint(**kwargs).url(kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"resource_or_base_url": ""},
        {"resource_or_base_url": None},
        {"resource_or_base_url": "my res"},
        {"resource_or_base_url": "-res"},
        {"resource_or_base_url": "res.openai.azure.com"},
        {"resource_or_base_url": "ftp://host"},
        {"resource_or_base_url": "https://"},
        {"resource_or_base_url": "https://h/?api-version=1"},
        {"resource_or_base_url": "r", "deployment": ""},
        {"resource_or_base_url": "r", "api_version": 2024},
        {"resource_or_base_url": "r", "use_v1": "yes"},
    ],
)
def test_endpoint_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(srt.ConfigError):
        AzureEndpoint(**kwargs)


def test_auth_headers() -> None:
    ep = AzureEndpoint("r", use_v1=True)
    assert ep.auth_headers(api_key=KEY) == {"api-key": KEY}
    assert ep.auth_headers(bearer_token=TOKEN) == {"Authorization": "Bearer " + TOKEN}
    assert ep.auth_headers(KEY) == {"api-key": KEY}
    for args in ({}, {"api_key": KEY, "bearer_token": TOKEN}, {"api_key": "", "bearer_token": ""}):
        with pytest.raises(srt.ConfigError, match="exactly one"):
            ep.auth_headers(**args)
    for bad in (KEY + "\r\nX-Evil: 1", KEY + "\n"):
        with pytest.raises(srt.ConfigError) as info:
            ep.auth_headers(api_key=bad)
        assert KEY not in str(info.value)


def test_a_key_never_appears_in_a_repr() -> None:
    ep = AzureEndpoint("r", deployment="d", api_version="v")
    key_headers = ep.auth_headers(api_key=KEY)
    token_headers = ep.auth_headers(bearer_token=TOKEN)
    shown = [
        repr(ep),
        str(ep),
        repr(key_headers),
        str(key_headers),
        f"{token_headers}",
        repr(token_headers),
        repr(CHAT),
        repr(RESPONSES),
        repr([ep, key_headers, token_headers]),
    ]
    for text in shown:
        assert KEY not in text and TOKEN not in text
    assert "api-key" in repr(key_headers)
    # They are still ordinary headers for an HTTP client.
    assert dict(key_headers) == {"api-key": KEY}
    assert isinstance(token_headers, dict)


def test_endpoint_is_frozen_and_holds_no_key() -> None:
    ep = AzureEndpoint("r", use_v1=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ep.deployment = "x"  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(ep)] == [
        "resource_or_base_url",
        "deployment",
        "api_version",
        "use_v1",
    ]
    ep.auth_headers(api_key=KEY)
    assert KEY not in repr(vars(ep))
