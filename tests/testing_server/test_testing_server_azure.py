"""The local provider server's Azure OpenAI routes against the official ``openai`` SDK
(``openai.AzureOpenAI``): a reply names the model the deployment runs, as Azure's do (a
deployment ``prod-chat`` running ``gpt-4o-2024-08-06`` answers ``"model":
"gpt-4o-2024-08-06"``), on Chat Completions and Responses, streamed or not, on the
deployment path and the v1 path; a deployment named for a model runs that model."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from testing_server_support import CHAT, kept

from srt.testing import ProviderServer

SERVED = "gpt-4o-2024-08-06"
KEY = "az-secret"


@pytest.fixture
def azure() -> Any:
    with ProviderServer(azure_deployments={"prod-chat": SERVED}) as s:
        yield s
    assert s.errors == [] and s.active_handlers == 0


def client(srv: ProviderServer, **kw: Any) -> openai.OpenAI:
    """``AzureOpenAI`` on the deployment path (``api_version``), or on the v1 path the
    plain ``OpenAI`` client at ``{endpoint}/openai/v1``, as Azure documents it."""
    if kw.pop("v1", False):
        return kept(openai.OpenAI(base_url=srv.url + "/openai/v1", api_key=KEY, max_retries=0))
    kw.setdefault("api_version", "2024-10-21")
    return kept(openai.AzureOpenAI(azure_endpoint=srv.url, api_key=KEY, max_retries=0, **kw))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("v1", [False, True])
def test_chat_names_the_model_the_deployment_runs(
    azure: ProviderServer, stream: bool, v1: bool
) -> None:
    az = client(azure, v1=v1)
    msgs = [{"role": "user", "content": "hi azure"}]
    if stream:
        chunks = list(
            az.chat.completions.create(
                model="prod-chat",
                messages=msgs,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        # Azure opens with its content filter's prompt results: no choices, no model.
        first = chunks.pop(0)
        assert (first.choices, first.id, first.model, first.object) == ([], "", "", "")
        assert (first.model_extra or {})["prompt_filter_results"][0]["prompt_index"] == 0
        assert {c.model for c in chunks} == {SERVED}
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    else:
        r = az.chat.completions.create(model="prod-chat", messages=msgs)  # type: ignore[arg-type]
        assert r.model == SERVED
        text = r.choices[0].message.content or ""
    assert text.startswith("reply 1 to hi azure")
    rec = azure.log[-1]
    assert (rec.endpoint, rec.deployment, rec.model, rec.stream) == (
        "azure.chat", "prod-chat", SERVED, stream,
    )  # fmt: skip
    path = "/openai/v1/chat/completions" if v1 else "/openai/deployments/prod-chat/chat/completions"
    assert rec.path.split("?")[0] == path
    assert rec.headers[("authorization" if v1 else "api-key")].endswith("<redacted>")
    assert KEY not in repr(azure.log)


def test_the_deployment_path_ignores_the_body_model(azure: ProviderServer) -> None:
    """On the deployment path the URL names the deployment: the body's ``model`` is not
    read (``azure_deployment=`` sends the SDK there whatever ``model`` says)."""
    az = client(azure, azure_deployment="prod-chat")
    r = az.chat.completions.create(model="gpt-3.5-turbo", messages=CHAT["messages"])  # type: ignore[arg-type]
    assert r.model == SERVED and azure.log[-1].deployment == "prod-chat"
    # A deployment named for a model runs that model.
    r = client(azure).chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])  # type: ignore[arg-type]
    assert r.model == "gpt-4o-mini" and azure.log[-1].model == "gpt-4o-mini"
    azure.azure_deployments["gpt-4o-mini"] = "gpt-4o-mini-2024-07-18"  # a test may change it
    r = client(azure).chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])  # type: ignore[arg-type]
    assert r.model == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("v1", [False, True])
def test_responses_name_the_model_the_deployment_runs(
    azure: ProviderServer, stream: bool, v1: bool
) -> None:
    """Responses go to ``/openai/responses?api-version=`` (or ``/openai/v1/responses``),
    the body's ``model`` naming the deployment; a chain carries on by
    ``previous_response_id``."""
    az = client(azure, v1=v1)
    if stream:
        events = list(az.responses.create(model="prod-chat", input="first", stream=True))
        done = events[-1]
        assert done.type == "response.completed"
        first = done.response
        assert {e.response.model for e in events if hasattr(e, "response")} == {SERVED}
    else:
        first = az.responses.create(model="prod-chat", input="first")
    assert first.model == SERVED and first.output_text.startswith("reply 1 to first")
    r2 = az.responses.create(model="prod-chat", input="second", previous_response_id=first.id)
    assert r2.model == SERVED and r2.usage is not None
    assert r2.usage.input_tokens > first.usage.input_tokens  # type: ignore[union-attr]
    rec = azure.log[-1]
    assert (rec.endpoint, rec.deployment, rec.model) == ("azure.responses", "prod-chat", SERVED)
    want = "/openai/v1/responses" if v1 else "/openai/responses?api-version=2024-10-21"
    assert rec.path == want


def test_raw_routes(azure: ProviderServer, http: httpx.Client) -> None:
    """The deployment path needs ``api-version``; the v1 paths take a body ``model``."""
    url = azure.url + "/openai/deployments/d/chat/completions"
    assert http.post(url, json=CHAT, headers={"api-key": "k"}).status_code == 404
    r = http.post(azure.url + "/openai/v1/chat/completions", json=CHAT, headers={"api-key": "k"})
    assert r.status_code == 200 and r.json()["model"] == "gpt-4o"
    r = http.post(
        azure.url + "/openai/v1/responses",
        json={"model": "prod-chat", "input": "x"},
        headers={"api-key": "k"},
    )
    assert r.status_code == 200 and r.json()["object"] == "response"
    assert r.json()["model"] == SERVED and azure.requests["azure.chat"] == 1


@pytest.mark.parametrize("bad", [{"prod": ""}, {"": "gpt-4o"}, {"prod": 5}])
def test_a_deployment_map_is_names_to_names(bad: Any) -> None:
    with pytest.raises(ValueError, match="azure_deployments maps deployment names"):
        ProviderServer(azure_deployments=bad)
