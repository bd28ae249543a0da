"""A wrong model, deployment, api-version or base URL says so, on every provider.

srt's providers against ``srt.testing`` answering as the real services do: an unknown
model (or Azure deployment) is ``srt.ModelNotFoundError`` (a ``ProviderResponseError``)
whose message names the name as sent, the provider and what to check, with ``.model``
and ``.provider``; an api-version or a path the server does not serve is a
``ProviderResponseError`` whose message says what to check ("is the base URL missing
/v1?"). Sent once (a 404 is never retried), nothing appended, no key in the text or
the repr. Before, each was a bare ``POST <url> answered 404: <body>``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import srt
from srt.providers import Anthropic, Azure, Bedrock, OpenAI, Provider
from srt.testing import ProviderServer
from srt.wire import notfound
from srt.wire.azure import AzureEndpoint
from support import (  # noqa: F401  (close_made: an autouse fixture)
    call_in,
    close_made,
    made,
    provider_on,
)

KEY = "sk-CANARY-notfound-0123456789"
SERVED = {"gpt-4o", "claude-sonnet-4-6", "anthropic.claude-sonnet-4-6", "prod-chat"}
#: kind -> (the wrong name sent, what the message says of it)
WRONG = {
    "openai": ("gpt-5o-typo", "OpenAI has no model 'gpt-5o-typo'"),
    "responses": ("gpt-5o-typo", "OpenAI has no model 'gpt-5o-typo'"),
    "azure": ("gpt4o", "Azure OpenAI has no deployment 'gpt4o' at http://127.0.0.1:"),
    "anthropic": ("claude-nope-4", "Anthropic has no model 'claude-nope-4'"),
    "bedrock": ("anthropic.nope", "Bedrock has no model 'anthropic.nope' in us-east-1"),
}  # fmt: skip
RIGHT = {
    "openai": "gpt-4o",
    "responses": "gpt-4o",
    "azure": "prod-chat",
    "anthropic": "claude-sonnet-4-6",
    "bedrock": "anthropic.claude-sonnet-4-6",
}
HINTS = {
    "azure": "check the deployment name (not the model name)",
    "bedrock": "check the model id (or the inference profile id",
}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(
        api_key=KEY,
        models=SERVED,
        azure_deployments={"prod-chat": "gpt-4o-2024-08-06"},
        azure_strict=True,
    ) as server:
        yield server
        assert server.errors == []


def _check_secret_free(err: BaseException) -> None:
    assert KEY not in str(err) and KEY not in repr(err) and KEY not in repr(err.args)


@pytest.mark.parametrize("how", ["send", "stream", "asend", "astream"])
@pytest.mark.parametrize("kind", sorted(WRONG))
def test_an_unknown_model_is_model_not_found_naming_it(
    srv: ProviderServer, rt: srt.Runtime, kind: str, how: str
) -> None:
    name, says = WRONG[kind]
    p = made(provider_on(kind, srv.url, KEY))
    s = rt.session("wrong-model")
    s.append({"role": "system", "content": "Be brief."})
    before = s.messages()
    with pytest.raises(srt.ModelNotFoundError) as caught:
        call_in(how, s, p, model=name, append={"role": "user", "content": "hi"})
    err = caught.value
    assert isinstance(err, srt.ProviderResponseError)
    assert (err.model, err.provider) == (name, p.name)
    assert says in str(err) and HINTS.get(kind, "check the model name") in str(err)
    assert err.status == (400 if kind in ("responses", "bedrock") else 404)
    assert len(srv.log) == 1  # never retried: the same name would be refused again
    assert s.messages() == before
    (row,) = s.calls()
    assert row["status"] == "error"
    _check_secret_free(err)
    assert KEY not in (row["error"] or "")
    p = made(provider_on(kind, srv.url, KEY))  # (an asyncio call closed the last one)
    s.send(p, model=RIGHT[kind], append={"role": "user", "content": "hi"})  # the right name
    assert s.messages()[-1]["role"] == "assistant"


def test_the_azure_deployment_path_names_the_urls_deployment(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """On the deployment path the URL names the deployment (the send's ``model`` is not
    read): the error names the deployment."""
    ep = AzureEndpoint(srv.url, deployment="gpt4o", api_version="2024-10-21")
    p = made(Azure(ep, api_key=KEY))
    with pytest.raises(srt.ModelNotFoundError) as caught:
        rt.session("dep").send(p, model="gpt-4o", append={"role": "user", "content": "hi"})
    err = caught.value
    assert err.model == "gpt4o" and err.provider == "azure"
    assert str(err).startswith(
        f"Azure OpenAI has no deployment 'gpt4o' at {srv.url}; check the deployment name "
        "(not the model name). POST "
    )
    assert "api-version" not in str(err)  # (the URL is shown without its query)
    _check_secret_free(err)


def test_an_unsupported_azure_api_version_says_so(srv: ProviderServer, rt: srt.Runtime) -> None:
    ep = AzureEndpoint(srv.url, deployment="prod-chat", api_version="2024-13-01")
    p = made(Azure(ep, api_key=KEY))
    with pytest.raises(srt.ProviderResponseError) as caught:
        rt.session("ver").send(p, model="prod-chat", append={"role": "user", "content": "hi"})
    err = caught.value
    assert not isinstance(err, srt.ModelNotFoundError) and err.status == 404
    assert str(err).startswith(
        f"Azure OpenAI at {srv.url} does not serve api-version '2024-13-01' on this path; "
        "check the api-version (and the endpoint). POST "
    )
    assert len(srv.log) == 1
    _check_secret_free(err)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("openai", "404 from OpenAI at {url}: is the base URL missing /v1? POST {url}/chat/"),
        ("compatible", "404 from the OpenAI-compatible server at {url}: is the base URL missing"),
        ("anthropic", "404 from Anthropic at {url}/v1: is /v1 doubled? srt adds /v1/messages"),
        ("azure", "Azure OpenAI at {url}/x serves no such path; check the endpoint"),
        ("bedrock", "Bedrock at {url}/x serves no such path; check endpoint_url"),
    ],
)
def test_a_wrong_base_url_says_what_to_check(
    srv: ProviderServer, rt: srt.Runtime, kind: str, says: str
) -> None:
    p: Provider
    if kind == "openai":
        p = OpenAI(KEY, base_url=srv.url)
    elif kind == "compatible":
        p = srt.OpenAICompatible(srv.url, api_key=KEY)
    elif kind == "anthropic":
        p = Anthropic(KEY, base_url=srv.url + "/v1")
    elif kind == "azure":
        p = Azure(AzureEndpoint(srv.url + "/x", use_v1=True), api_key=KEY)
    else:
        p = Bedrock(region="us-east-1", api_key=KEY, endpoint_url=srv.url + "/x")
    made(p)
    model = {"anthropic": "claude-sonnet-4-6", "bedrock": "anthropic.claude-sonnet-4-6"}
    with pytest.raises(srt.ProviderResponseError) as caught:
        rt.session("url").send(
            p, model=model.get(kind, "gpt-4o"), append={"role": "user", "content": "hi"}
        )
    err = caught.value
    assert not isinstance(err, srt.ModelNotFoundError) and err.status == 404
    assert str(err).startswith(says.format(url=srv.url)), str(err)
    _check_secret_free(err)


def test_a_compatible_servers_unknown_model_is_model_not_found(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """vLLM's and Ollama's own 404s for a model they do not serve."""
    p = made(srt.OpenAICompatible(srv.url + "/v1", api_key=KEY))
    bodies = [
        {"error": {"message": "The model `llama-4` does not exist.", "type": "NotFoundError",
                   "param": None, "code": 404}},
        {"object": "error", "message": "The model `llama-4` does not exist.",
         "type": "NotFoundError", "param": None, "code": 404},
        {"error": {"message": 'model "llama-4" not found, try pulling it first',
                   "type": "api_error", "param": None, "code": None}},
    ]  # fmt: skip
    for body in bodies:
        srv.fault("openai.chat", "status", code=404, body=body)
        with pytest.raises(srt.ModelNotFoundError) as caught:
            rt.session("c").send(p, model="llama-4", append={"role": "user", "content": "hi"})
        assert caught.value.model == "llama-4"
        assert str(caught.value).startswith(
            "the OpenAI-compatible server has no model 'llama-4' (or this key may not use "
            "it); check the model name. POST "
        )


def test_a_key_sent_as_the_model_name_is_not_shown(srv: ProviderServer, rt: srt.Runtime) -> None:
    p = made(provider_on("anthropic", srv.url, KEY))
    with pytest.raises(srt.ModelNotFoundError) as caught:
        rt.session("k").send(p, model=KEY, append={"role": "user", "content": "hi"})
    _check_secret_free(caught.value)
    assert "Anthropic has no model '[redacted]'" in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "status", "body", "headers"),
    [
        # OpenAI: a stored response or a conversation that does not exist.
        ("openai", 400, '{"error": {"message": "Previous response with id \'resp_1\' not found.",'
         ' "type": "invalid_request_error", "param": "previous_response_id",'
         ' "code": "previous_response_not_found"}}', {}),
        ("openai", 404, '{"error": {"message": "Response with id \'resp_1\' not found.",'
         ' "type": "invalid_request_error", "param": null, "code": null}}', {}),
        ("openai", 404, '{"error": {"message": "Conversation with id \'conv_1\' not found.",'
         ' "type": "invalid_request_error", "param": null, "code": null}}', {}),
        ("openai", 400, '{"error": {"message": "Invalid value for \'model\'.", "code": null}}', {}),
        ("anthropic", 404, '{"type": "error", "error": {"type": "not_found_error",'
         ' "message": "File not found: file_011"}}', {}),
        ("azure", 404, '{"error": {"code": "NotFound", "message": "Batch not found"}}', {}),
        ("bedrock", 400, '{"message": "Input is too long for requested model."}',
         {"x-amzn-ErrorType": "ValidationException"}),
        ("bedrock", 404, '{"message": "x"}', {"x-amzn-ErrorType": "ThrottlingException"}),
    ],
)  # fmt: skip
def test_other_refusals_are_not_not_found(
    rule: str, status: int, body: str, headers: dict[str, str]
) -> None:
    assert notfound.RULES[rule](status, body, headers) is None


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (404, '{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}', "path"),
        (404, '{"detail":"Not Found"}', "path"),
        (404, "404 page not found", "path"),
        (404, "<html><body>Not Found</body></html>", "path"),
    ],
)
def test_compatible_servers_no_such_path(status: int, body: str, kind: str) -> None:
    """llama.cpp's, FastAPI's (vLLM's), Go's (Ollama's) and a plain web server's 404."""
    found = notfound.openai(status, body, {})
    assert found is not None and found.kind == kind
