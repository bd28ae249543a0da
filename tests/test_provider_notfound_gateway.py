"""``srt serve`` when the upstream has no such model, deployment or path, seen by the
official ``openai`` client: an upstream's unknown model (``srt.ModelNotFoundError``) is
an OpenAI-shaped 404 ``model_not_found`` naming the model and the upstream provider (as
OpenAI answers a model it does not have); a wrong upstream base URL or api-version is a
502 ``upstream_not_found`` that says to check the gateway's upstream configuration. Never
the upstream's URL or key. Before, each was a 502 ``upstream_error`` ("The upstream
provider failed: ..."), the client's SDK raising ``InternalServerError``."""

from __future__ import annotations

import openai
import pytest

import srt
import srt.gateway
from gateway_support import UPSTREAM_KEY, harness, serving
from srt.gateway.config import Config, Route, Upstream
from srt.testing import ProviderServer

# (model the client names, and the upstream provider its route sends it to, by that name)
UPSTREAMS = {
    "chat": ("gpt-4o-mini", "openai"),
    "responses": ("responses/gpt-4o", "openai"),
    "azure": ("azure/gpt4o", "azure"),
    "anthropic": ("claude-nope-4", "anthropic"),
    "bedrock": ("bedrock/anthropic.nope", "bedrock"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["responses", "chat"])
@pytest.mark.parametrize("upstream", sorted(UPSTREAMS))
def test_an_upstreams_unknown_model_is_a_404_model_not_found(
    db_path: str, monkeypatch: pytest.MonkeyPatch, upstream: str, api: str, stream: bool
) -> None:
    model, provider = UPSTREAMS[upstream]
    with harness(db_path, monkeypatch) as h:
        h.srv.models = {"some-other-model"}
        h.srv.azure_strict = True  # (its deployment map is empty: no deployment exists)
        c = h.client()
        with pytest.raises(openai.NotFoundError) as caught:
            if api == "responses":
                r = c.responses.create(model=model, input="hi", stream=stream)
            else:
                msgs = [{"role": "user", "content": "hi"}]
                r = c.chat.completions.create(model=model, messages=msgs, stream=stream)  # type: ignore[call-overload]
            if stream:
                list(r)
        err = caught.value
        assert err.status_code == 404 and err.code == "model_not_found"
        assert err.type == "invalid_request_error" and err.param == "model"
        what = "deployment" if provider == "azure" else "model"
        message = err.body["message"]  # type: ignore[index]
        assert message.startswith(f"The upstream provider ({provider}) has no {what} '{model}'")
        assert "127.0.0.1" not in message and UPSTREAM_KEY not in message
        assert len(h.srv.log) == 1  # not retried


@pytest.mark.parametrize("kind", ["openai", "azure"])
def test_a_wrong_upstream_base_url_is_a_502_that_says_so(
    db_path: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv, srt.Runtime(db_path) as rt:
        if kind == "openai":  # the base URL without /v1
            up = Upstream("up", "openai", api_key_env="SRT_GW_UP_KEY", base_url=srv.url)
        else:  # an api-version Azure does not serve
            up = Upstream(
                "up", "azure", api_key_env="SRT_GW_UP_KEY", base_url=srv.url,
                api_version="2024-13-01",
            )  # fmt: skip
        cfg = Config(upstreams={"up": up}, routes=(Route("*", "up"),), open=True)
        with serving(srt.gateway.app(cfg, rt)) as url:
            c = openai.OpenAI(base_url=url, api_key="sk-any", max_retries=0)
            with c, pytest.raises(openai.InternalServerError) as caught:
                c.responses.create(model="gpt-4o", input="hi")
    err = caught.value
    assert err.status_code == 502 and err.code == "upstream_not_found"
    message = err.body["message"]  # type: ignore[index]
    assert message.startswith(
        "The upstream provider answered 404 (no such path, api-version or deployment): "
    )
    assert message.endswith("; check the gateway's upstream base URL, api_version and deployment")
    assert srv.url not in message and UPSTREAM_KEY not in message
