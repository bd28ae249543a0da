"""Azure OpenAI through the ``openai`` SDK's ``AzureOpenAI`` and through srt's ``Azure``.

srt.testing annotates Chat Completions as Azure's default content filter does
(``prompt_filter_results`` on the body, ``content_filter_results`` on each choice, a
stream opening with a chunk of no choices that carries the prompt's results) and refuses
a filtered prompt with Azure's 400 (``code`` ``content_filter`` and an ``innererror``).
The SDK parses all of it; srt sends the SDK's URL and auth header, and keeps none of the
annotations as message content.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import openai
import pytest

import srt
from srt.testing import ProviderServer

KEY = "azure-key-wire29-0123456789"
TOKEN = KEY  # (an Entra token as a bearer: the test server takes its one key either way)
VERSION = "2024-10-21"
DEPLOYMENT = "prod-chat"
ASK = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def _sdk(srv: ProviderServer, **auth: Any) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=srv.url,
        azure_deployment=DEPLOYMENT,
        api_version=VERSION,
        max_retries=0,
        **(auth or {"api_key": KEY}),
    )


def _annotated(results: dict[str, Any]) -> None:
    for kind in ("hate", "self_harm", "sexual", "violence"):
        assert results[kind] == {"filtered": False, "severity": "safe"}


def test_the_sdk_parses_a_reply_with_the_filter_results(srv: ProviderServer) -> None:
    srv.script("azure.chat", ["Hello."])
    with closing(_sdk(srv)) as client:
        reply = client.chat.completions.create(model="ignored", messages=ASK)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "Hello."
    extra = reply.model_extra or {}
    assert extra["prompt_filter_results"][0]["prompt_index"] == 0
    _annotated(extra["prompt_filter_results"][0]["content_filter_results"])
    _annotated((reply.choices[0].model_extra or {})["content_filter_results"])
    rec = srv.log[-1]
    assert rec.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"
    assert rec.headers["api-key"] == "<redacted>" and "authorization" not in rec.headers


def test_the_sdk_parses_a_stream_with_the_filter_results(srv: ProviderServer) -> None:
    srv.script("azure.chat", ["Hello there, you."])
    with closing(_sdk(srv, azure_ad_token=TOKEN)) as client:
        chunks = list(
            client.chat.completions.create(
                model="ignored",
                messages=ASK,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    first = chunks[0]
    assert first.choices == [] and first.id == "" and first.model == ""
    _annotated((first.model_extra or {})["prompt_filter_results"][0]["content_filter_results"])
    texts = [c.choices[0].delta.content for c in chunks[1:] if c.choices]
    assert "".join(t or "" for t in texts) == "Hello there, you."
    for c in chunks[1:]:
        for choice in c.choices:
            results = (choice.model_extra or {})["content_filter_results"]
            if choice.delta.content:
                _annotated(results)
            else:
                assert results == {}
    assert chunks[-1].usage is not None
    assert srv.log[-1].headers["authorization"] == "Bearer <redacted>"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("auth", ["api_key", "token"])
def test_srt_sends_what_the_sdk_sends_and_stores_no_annotation(
    srv: ProviderServer, tmp_path: Any, stream: bool, auth: str
) -> None:
    srv.script("azure.chat", ["Hello there.", "Hello there."])
    given = {"api_key": KEY} if auth == "api_key" else {"azure_ad_token": TOKEN}
    with closing(_sdk(srv, **given)) as client:
        client.chat.completions.create(model=DEPLOYMENT, messages=ASK, stream=stream)  # type: ignore[call-overload]
    theirs = srv.log[-1]
    ep = srt.AzureEndpoint(srv.url, deployment=DEPLOYMENT, api_version=VERSION)
    creds = {"api_key": KEY} if auth == "api_key" else {"token": TOKEN}
    with srt.Runtime(str(tmp_path / "a.db")) as rt, closing(srt.Azure(ep, **creds)) as p:
        s = rt.session("azure")
        s.append(*ASK)
        if stream:
            assert s.stream(p, model=DEPLOYMENT).text() == "Hello there."
        else:
            assert s.send(p, model=DEPLOYMENT).message["content"] == "Hello there."
        ours = srv.log[-1]
        assert ours.path == theirs.path
        for h in ("api-key", "authorization"):
            assert ours.headers.get(h) == theirs.headers.get(h)
        assert s.messages()[-1] == {"role": "assistant", "content": "Hello there."}
        assert all(b"filter" not in b for b in s.messages_bytes())


def test_a_prompt_the_filter_refuses_is_azures_400(srv: ProviderServer, tmp_path: Any) -> None:
    srv.fault("azure.chat", "status", count=2, code=400, variant="content_filter")
    with closing(_sdk(srv)) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=DEPLOYMENT, messages=ASK)  # type: ignore[arg-type]
    assert caught.value.code == "content_filter" and caught.value.param == "prompt"
    body: Any = caught.value.body
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert body["innererror"]["content_filter_result"]["sexual"]["filtered"] is True
    ep = srt.AzureEndpoint(srv.url, deployment=DEPLOYMENT, api_version=VERSION)
    with srt.Runtime(str(tmp_path / "a.db")) as rt, closing(srt.Azure(ep, api_key=KEY)) as p:
        s = rt.session("azure")
        s.append(*ASK)
        with pytest.raises(srt.ProviderResponseError) as err:
            s.send(p, model=DEPLOYMENT)
        assert err.value.status == 400
        assert json.loads(err.value.body or "")["error"]["code"] == "content_filter"
        assert KEY not in str(err.value)
        assert len(s.messages()) == 1  # nothing appended
    assert len(srv.log) == 2  # a 400 is not retried


@pytest.mark.parametrize("auth", ["api_key", "token"])
def test_a_wrong_key_gets_azures_401(srv: ProviderServer, tmp_path: Any, auth: str) -> None:
    wrong = "wrong-wire29-key-0123456789"
    given = {"api_key": wrong} if auth == "api_key" else {"azure_ad_token": wrong}
    with closing(_sdk(srv, **given)) as client, pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=DEPLOYMENT, messages=ASK)  # type: ignore[arg-type]
    body: Any = caught.value.body
    assert body["code"] == "401" and caught.value.code == "401"
    word = "subscription key" if auth == "api_key" else "Access token"
    assert word in body["message"]
    ep = srt.AzureEndpoint(srv.url, deployment=DEPLOYMENT, api_version=VERSION)
    creds = {"api_key": wrong} if auth == "api_key" else {"token": wrong}
    with srt.Runtime(str(tmp_path / "a.db")) as rt, closing(srt.Azure(ep, **creds)) as p:
        s = rt.session("azure")
        s.append(*ASK)
        with pytest.raises(srt.ProviderAuthError) as err:
            s.send(p, model=DEPLOYMENT)
        assert word in str(err.value) and wrong not in str(err.value)
    assert len(srv.log) == 2  # a 401 is not retried


def test_no_key_gets_azures_401(srv: ProviderServer) -> None:
    url = f"{srv.url}/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={VERSION}"
    r = httpx.post(url, json={"messages": ASK}, timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "401"
    assert r.json()["error"]["message"].startswith("Access denied due to missing subscription key")
