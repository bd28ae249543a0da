"""``srt.testing``'s "not found" replies, read by the official SDKs as they read the real
services': an unknown model (OpenAI's ``model_not_found``, Anthropic's
``not_found_error``, Bedrock's ``ValidationException`` / ``ResourceNotFoundException``),
an Azure deployment the resource does not have (``DeploymentNotFound``), an api-version
Azure does not serve, and a path no provider serves (a base URL without ``/v1``). Each
SDK raises its own typed error with the provider's status, type and code. Before, the
server served any model, deployment and api-version, and answered every unknown path in
one OpenAI-ish shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import anthropic
import anthropic.types as at
import botocore.session
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator
from openai.types.shared import ErrorObject

from srt.testing import ProviderServer

KEY = "sk-CANARY-notfound-server-0123"
GOOD = {"gpt-4o", "claude-sonnet-4-6", "anthropic.claude-sonnet-4-6"}
HI = [{"role": "user", "content": "hi"}]
_BEDROCK = botocore.session.get_session().get_service_model("bedrock-runtime")


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(
        api_key=KEY,
        models=GOOD,
        azure_deployments={"prod-chat": "gpt-4o-2024-08-06"},
        azure_strict=True,
    ) as server:
        yield server
        assert server.errors == []


def _openai(srv: ProviderServer, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=srv.url + base, max_retries=0)


def _azure(srv: ProviderServer, version: str = "2024-10-21") -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=srv.url, api_key=KEY, api_version=version, max_retries=0
    )


def test_openai_chat_unknown_model_is_the_sdks_not_found(srv: ProviderServer) -> None:
    with _openai(srv) as c, pytest.raises(openai.NotFoundError) as caught:
        c.chat.completions.create(model="gpt-5o-typo", messages=HI)  # type: ignore[arg-type]
    err = caught.value
    assert err.status_code == 404 and err.code == "model_not_found"
    assert err.type == "invalid_request_error" and err.param is None
    assert "The model `gpt-5o-typo` does not exist" in err.message
    ErrorObject.model_validate(err.response.json()["error"])
    with _openai(srv) as c:  # a model it serves is answered
        assert c.chat.completions.create(model="gpt-4o", messages=HI).model == "gpt-4o"  # type: ignore[arg-type]


def test_openai_responses_unknown_model_is_a_400_naming_the_param(srv: ProviderServer) -> None:
    with _openai(srv) as c, pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="gpt-5o-typo", input="hi")
    err = caught.value
    assert (err.status_code, err.code, err.param) == (400, "model_not_found", "model")
    assert "The requested model 'gpt-5o-typo' does not exist." in err.message
    ErrorObject.model_validate(err.response.json()["error"])


@pytest.mark.parametrize("v1", [False, True])
def test_azure_unknown_deployment_is_deployment_not_found(srv: ProviderServer, v1: bool) -> None:
    c: openai.OpenAI = _openai(srv, "/openai/v1") if v1 else _azure(srv)
    with pytest.raises(openai.NotFoundError) as caught:
        c.chat.completions.create(model="gpt4o", messages=HI)  # type: ignore[arg-type]
    err = caught.value
    assert err.status_code == 404 and err.code == "DeploymentNotFound"
    assert err.response.json() == {
        "error": {
            "code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist. If you created "
            "the deployment within the last 5 minutes, please wait a moment and try again.",
        }
    }
    assert err.response.headers["apim-request-id"]
    with c:
        r = c.chat.completions.create(model="prod-chat", messages=HI)  # type: ignore[arg-type]
    assert r.model == "gpt-4o-2024-08-06"


def test_azure_without_the_strict_switch_any_deployment_runs() -> None:
    """Today's behaviour stays the default: a deployment not in the map runs the model
    it is named for."""
    with ProviderServer(azure_deployments={"prod-chat": "gpt-4o"}) as srv, _azure(srv) as c:
        assert c.chat.completions.create(model="gpt4o", messages=HI).model == "gpt4o"  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["2024-13-45", "2024-10-21x", "v", "2019-01-01"])
def test_azure_unsupported_api_version_is_resource_not_found(
    srv: ProviderServer, version: str
) -> None:
    with _azure(srv, version) as c, pytest.raises(openai.NotFoundError) as caught:
        c.chat.completions.create(model="prod-chat", messages=HI)  # type: ignore[arg-type]
    err = caught.value
    assert err.status_code == 404 and err.code == "404"
    assert err.response.json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_azure_api_versions_can_be_listed_and_v1_refuses_a_dated_one() -> None:
    with ProviderServer(azure_api_versions={"2024-10-21"}) as srv:
        with _azure(srv, "2024-10-21") as c:
            c.chat.completions.create(model="d", messages=HI)  # type: ignore[arg-type]
        with _azure(srv, "2024-10-22") as c, pytest.raises(openai.NotFoundError):
            c.chat.completions.create(model="d", messages=HI)  # type: ignore[arg-type]
        v1 = openai.OpenAI(
            api_key=KEY,
            base_url=srv.url + "/openai/v1",
            default_query={"api-version": "2024-10-21"},
            max_retries=0,
        )
        with v1, pytest.raises(openai.BadRequestError) as caught:
            v1.chat.completions.create(model="d", messages=HI)  # type: ignore[arg-type]
        assert caught.value.code == "BadRequest"
        assert caught.value.response.json()["error"]["message"] == "API version not supported"


@pytest.mark.parametrize("count", [False, True])
def test_anthropic_unknown_model_is_not_found_error(srv: ProviderServer, count: bool) -> None:
    with (
        anthropic.Anthropic(api_key=KEY, base_url=srv.url, max_retries=0) as c,
        pytest.raises(anthropic.NotFoundError) as caught,
    ):
        if count:
            c.messages.count_tokens(model="claude-nope-4", messages=HI)  # type: ignore[arg-type]
        else:
            c.messages.create(model="claude-nope-4", max_tokens=8, messages=HI)  # type: ignore[arg-type]
    err = caught.value
    assert err.status_code == 404
    body = at.ErrorResponse.model_validate(err.body)
    assert (body.error.type, body.error.message) == ("not_found_error", "model: claude-nope-4")
    assert err.response.headers["request-id"] == body.request_id


def _bedrock(srv: ProviderServer) -> Any:
    return botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=srv.url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-real-secret",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.mark.parametrize(
    ("model_id", "status", "code", "message"),
    [
        ("anthropic.nope", 400, "ValidationException", "The provided model identifier is invalid."),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.nope",
            404,
            "ResourceNotFoundException",
            "The specified resource ARN was not found.",
        ),
    ],
)
def test_bedrock_unknown_model_is_botocores_own_exception(
    srv: ProviderServer, model_id: str, status: int, code: str, message: str
) -> None:
    client = _bedrock(srv)
    exc = getattr(client.exceptions, code)
    with pytest.raises(exc) as caught:
        client.converse(modelId=model_id, messages=[{"role": "user", "content": [{"text": "hi"}]}])
    resp = caught.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == status
    assert resp["Error"] == {"Code": code, "Message": message}
    assert resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
    r = httpx.post(
        f"{srv.url}/model/{quote(model_id, safe='')}/converse-stream",
        json={"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == status and r.headers["x-amzn-ErrorType"] == code
    report = ParamValidator().validate(r.json(), _BEDROCK.shape_for(code))
    assert not report.has_errors(), report.generate_report()


def test_a_path_without_v1_is_openais_invalid_url(srv: ProviderServer) -> None:
    with _openai(srv, "") as c, pytest.raises(openai.NotFoundError) as caught:
        c.chat.completions.create(model="gpt-4o", messages=HI)  # type: ignore[arg-type]
    err = caught.value
    assert err.status_code == 404 and err.code is None
    assert err.response.json() == {
        "error": {
            "message": "Invalid URL (POST /chat/completions)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_a_doubled_v1_is_anthropics_not_found(srv: ProviderServer) -> None:
    with (
        anthropic.Anthropic(api_key=KEY, base_url=srv.url + "/v1", max_retries=0) as c,
        pytest.raises(anthropic.NotFoundError) as caught,
    ):
        c.messages.create(model="claude-sonnet-4-6", max_tokens=8, messages=HI)  # type: ignore[arg-type]
    body = at.ErrorResponse.model_validate(caught.value.body)
    assert (body.error.type, body.error.message) == ("not_found_error", "Not Found")


def test_wrong_azure_and_bedrock_paths(srv: ProviderServer) -> None:
    with _azure(srv) as c, pytest.raises(openai.NotFoundError) as caught:
        c.embeddings.create(model="prod-chat", input="hi")
    assert caught.value.response.json() == {
        "error": {"code": "404", "message": "Resource not found"}
    }
    client = _bedrock(srv)
    client.meta.events.register(
        "before-send.bedrock-runtime.Converse",
        lambda request, **kw: setattr(request, "url", request.url.replace("/model/", "/x/model/")),
    )
    with pytest.raises(ClientError) as err:
        client.converse(modelId="anthropic.claude-sonnet-4-6", messages=[])
    resp = err.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert resp["Error"]["Code"] == "UnknownOperationException"
