"""``srt.testing``'s refusal of a prompt over a model's context window, read by the
official SDKs as they read the real services': the ``openai`` and ``anthropic`` clients
raise their own typed errors with the provider's code and message, the bodies validate
against the SDKs' error models, and botocore's ``bedrock-runtime`` parser reads a
``ValidationException``. The OpenAI-compatible servers' shapes (llama.cpp, vLLM) reach
the ``openai`` client as a ``BadRequestError`` carrying their members."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import anthropic.types as at
import botocore.session
import httpx
import openai
import pytest
from botocore.parsers import create_parser
from botocore.validate import ParamValidator
from openai.types.responses import ResponseStreamEvent
from openai.types.shared import ErrorObject
from pydantic import TypeAdapter

from srt.testing import ProviderServer
from srt.wire import overflow

KEY = "sk-CANARY-sdk-overflow-0123"
WINDOW = 40
LONG = "a long question about prefix caches " * 30
_BEDROCK = botocore.session.get_session().get_service_model("bedrock-runtime")
EVENT = TypeAdapter(ResponseStreamEvent)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY, context_window=WINDOW) as server:
        yield server
        assert server.errors == []


def _openai(srv: ProviderServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=srv.url + "/v1", max_retries=0)


def test_openai_chat_refusal_is_the_sdks_bad_request(srv: ProviderServer) -> None:
    with _openai(srv) as c, pytest.raises(openai.BadRequestError) as caught:
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": LONG}])
    err = caught.value
    assert err.status_code == 400 and err.code == "context_length_exceeded"
    assert err.param == "messages" and err.type == "invalid_request_error"
    body = err.response.json()
    ErrorObject.model_validate(body["error"])
    got = overflow.openai(400, err.response.text, err.response.headers)
    assert got is not None and (got.prompt_tokens, got.limit) == (srv.log[-1].prompt_tokens, WINDOW)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_responses_refusal_as_the_sdk_reads_it(srv: ProviderServer, stream: bool) -> None:
    """Not streamed: a 400. Streamed: a 200 whose ``response.created`` and
    ``response.in_progress`` validate, then an ``error`` event holding the error object,
    which the SDK raises as an ``APIError`` with the same code."""
    with _openai(srv) as c:
        if not stream:
            with pytest.raises(openai.BadRequestError) as bad:
                c.responses.create(model="gpt-4o", input=LONG)
            assert bad.value.code == "context_length_exceeded" and bad.value.param == "input"
            ErrorObject.model_validate(bad.value.response.json()["error"])
            return
        seen: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            for ev in c.responses.create(model="gpt-4o", input=LONG, stream=True):
                seen.append(ev.type)
    assert seen == ["response.created", "response.in_progress"]
    assert caught.value.code == "context_length_exceeded"
    assert isinstance(caught.value.body, dict)
    ErrorObject.model_validate(caught.value.body)
    r = httpx.post(
        srv.url + "/v1/responses",
        json={"model": "gpt-4o", "input": LONG, "stream": True},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 200
    frames = [b for b in r.content.split(b"\n\n") if b.strip()]
    first = [json.loads(f.split(b"data: ", 1)[1]) for f in frames[:2]]
    for data in first:
        EVENT.validate_python(data)


def test_anthropic_refusal_is_the_sdks_bad_request(srv: ProviderServer) -> None:
    with (
        anthropic.Anthropic(api_key=KEY, base_url=srv.url, max_retries=0) as c,
        pytest.raises(anthropic.BadRequestError) as caught,
    ):
        c.messages.create(
            model="claude-sonnet-4-6", max_tokens=8, messages=[{"role": "user", "content": LONG}]
        )
    body = at.ErrorResponse.model_validate(caught.value.body)
    assert body.error.type == "invalid_request_error"
    total = srv.log[-1].prompt_tokens
    assert body.error.message == f"prompt is too long: {total} tokens > {WINDOW} maximum"


def test_bedrock_refusal_is_a_validation_exception_to_botocore(srv: ProviderServer) -> None:
    for op in ("converse", "converse-stream"):
        r = httpx.post(
            f"{srv.url}/model/anthropic.claude-sonnet-4-6/{op}",
            json={"messages": [{"role": "user", "content": [{"text": LONG}]}]},
            headers={"authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "ValidationException"
        model = _BEDROCK.operation_model("Converse" if op == "converse" else "ConverseStream")
        parsed = create_parser("rest-json").parse(
            {"status_code": 400, "headers": dict(r.headers), "body": r.content}, model.output_shape
        )
        assert parsed["Error"]["Code"] == "ValidationException"
        assert parsed["Error"]["Message"] == "Input is too long for requested model."
        report = ParamValidator().validate(r.json(), _BEDROCK.shape_for("ValidationException"))
        assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("imitate", ["llama.cpp", "vllm"])
def test_compatible_servers_refusals_reach_the_openai_client(imitate: str) -> None:
    with (
        ProviderServer(api_key=KEY, context_window=WINDOW, imitate=imitate) as srv,
        _openai(srv) as c,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": LONG}])
    err: Any = caught.value.body
    total = srv.log[-1].prompt_tokens
    if imitate == "llama.cpp":
        assert err["type"] == "exceed_context_size_error" and err["code"] == 400
        assert (err["n_prompt_tokens"], err["n_ctx"]) == (total, WINDOW)
    else:
        assert err["type"] == "BadRequestError" and err["param"] is None
        assert f"maximum context length is {WINDOW} tokens" in err["message"]
