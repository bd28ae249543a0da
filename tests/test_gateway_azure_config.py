"""An Azure upstream's ``deployments``, ``prompt_cache_key`` and ``api`` in the gateway's
config: the ledger prices a deployment as the model it runs, the cache key reaches Azure
only when the upstream opts in, and ``api = "responses"`` sends to Azure's Responses API
(the official SDK as the client, srt.testing as Azure)."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

import srt
import srt.gateway
from gateway_support import serving
from srt.errors import ConfigError
from srt.gateway.config import Config, Route, Upstream, load_config
from srt.testing import ProviderServer

KEY = "sk-upstream-azure-0123456789abcdef0123"


def _toml(tmp_path: Path, extra: str, kind: str = "azure") -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(
        f'[upstreams.az]\nkind = "{kind}"\nbase_url = "http://127.0.0.1:9"\n'
        f'api_key_env = "SRT_GW_AZ_KEY"\n{extra}\n'
        '[[routes]]\nmodel = "*"\nupstream = "az"\n'
    )
    return path


def _turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **azure: object) -> tuple:
    """Two turns through the gateway to an Azure deployment named ``prod-chat``: what
    the upstream received and the gateway's ledger rows."""
    monkeypatch.setenv("SRT_GW_AZ_KEY", KEY)
    with ProviderServer(api_key=KEY) as srv:
        up = Upstream("az", "azure", api_key_env="SRT_GW_AZ_KEY", base_url=srv.url, **azure)
        config = Config(upstreams={"az": up}, routes=(Route("*", "az"),), open=True)
        with srt.Runtime(tmp_path / "gw.db") as rt, serving(srt.gateway.app(config, rt)) as url:
            client = openai.OpenAI(base_url=url, api_key="sk-any", max_retries=0)
            first = client.responses.create(model="prod-chat", input="Hello there")
            client.responses.create(
                model="prod-chat", input="And again?", previous_response_id=first.id
            )
            client.close()
            calls = rt.calls()
        received = [r.body.get("prompt_cache_key") for r in srv.log]
        assert srv.errors == []
    return received, calls


def test_an_azure_upstream_sends_the_cache_key_only_when_it_opts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received, _ = _turns(tmp_path / "on", monkeypatch, prompt_cache_key=True)
    assert len(received) == 2 and received[0] and received[0] == received[1]
    received, _ = _turns(tmp_path / "off", monkeypatch)
    assert received == [None, None]


def test_an_azure_upstreams_deployments_name_the_model_it_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # srt.testing's Azure, told nothing of prod-chat, runs a model of that name, which
    # says nothing of the model it runs: the map does, and the rows are priced as that model
    from srt.pricing import Pricing

    _, calls = _turns(tmp_path / "map", monkeypatch, deployments={"prod-chat": "gpt-4o"})
    assert [(c["model"], c["reply_model"]) for c in calls] == [("prod-chat", "gpt-4o")] * 2
    assert all(Pricing().request_cost(c) is not None for c in calls)
    _, calls = _turns(tmp_path / "plain", monkeypatch)
    assert [c["reply_model"] for c in calls] == [None, None]
    assert all(Pricing().request_cost(c) is None for c in calls)


def test_the_config_file_takes_deployments_and_prompt_cache_key(tmp_path: Path) -> None:
    cfg = load_config(
        _toml(tmp_path, 'deployments = { prod-chat = "gpt-4o" }\nprompt_cache_key = true')
    )
    up = cfg.upstreams["az"]
    assert dict(up.deployments or {}) == {"prod-chat": "gpt-4o"} and up.prompt_cache_key is True
    default = load_config(_toml(tmp_path, "")).upstreams["az"]
    assert default.deployments is None and default.prompt_cache_key is False


@pytest.mark.parametrize(
    ("extra", "kind", "says"),
    [
        ('prompt_cache_key = "yes"', "azure", "prompt_cache_key must be true or false"),
        ('deployments = "gpt-4o"', "azure", "deployments must be a table"),
        ("deployments = { prod-chat = 4 }", "azure", "deployments must be a table"),
        ("prompt_cache_key = true", "openai", "for kind azure only"),
        ('api = "responses"', "openai", "api is for kind azure only"),
        ('api = "completions"', "azure", 'api must be "chat" or "responses"'),
        ("api = 1", "azure", 'api must be "chat" or "responses"'),
        ('api = "responses"\ndeployment = "prod"', "azure", 'deployment is for api "chat"'),
        ('deployments = { a = "gpt-4o" }', "anthropic", "for kind azure only"),
    ],
)
def test_bad_azure_settings_are_config_errors(
    tmp_path: Path, extra: str, kind: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as e:
        load_config(_toml(tmp_path, extra, kind))
    assert "[upstreams.az]" in str(e.value)


SERVED = "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize("api_version", [None, "2025-04-01-preview"])
def test_an_azure_responses_upstream_serves_the_responses_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api_version: str | None
) -> None:
    """``api = "responses"``: the gateway's Responses API, plain and streamed, goes to
    Azure's ``/openai/responses?api-version=`` (``/openai/v1/responses`` without one), the
    body naming the deployment; the ledger keeps each call, priced as the model the
    deployment runs."""
    from srt.pricing import Pricing

    monkeypatch.setenv("SRT_GW_AZ_KEY", KEY)
    with ProviderServer(api_key=KEY, azure_deployments={"prod-chat": SERVED}) as srv:
        up = Upstream(
            "az", "azure", api_key_env="SRT_GW_AZ_KEY", base_url=srv.url,
            api_version=api_version, api="responses",
        )  # fmt: skip
        config = Config(upstreams={"az": up}, routes=(Route("*", "az"),), open=True)
        with srt.Runtime(tmp_path / "gw.db") as rt, serving(srt.gateway.app(config, rt)) as url:
            client = openai.OpenAI(base_url=url, api_key="sk-any", max_retries=0)
            first = client.responses.create(model="prod-chat", input="Hello there")
            events = list(
                client.responses.create(
                    model="prod-chat",
                    input="And again?",
                    previous_response_id=first.id,
                    stream=True,
                )
            )
            client.close()
            calls = rt.calls()
        assert srv.errors == []
        log = list(srv.log)
    assert first.status == "completed" and first.output_text.startswith("reply 1 to Hello")
    done = events[-1]
    assert done.type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == done.response.output_text and text.startswith("reply 2 to And again")
    want = "/openai/v1/responses" if api_version is None else (
        f"/openai/responses?api-version={api_version}"
    )  # fmt: skip
    assert [(r.endpoint, r.path, r.deployment, r.status) for r in log] == [
        ("azure.responses", want, "prod-chat", 200)
    ] * 2
    assert [r.stream for r in log] == [False, True]
    assert log[0].headers["api-key"] == "<redacted>"
    assert [(c["provider"], c["model"], c["reply_model"]) for c in calls] == [
        ("azure", "prod-chat", SERVED)
    ] * 2
    assert [c["input_tokens"] for c in calls] == [r.prompt_tokens for r in log]
    assert [c["output_tokens"] for c in calls] == [r.usage["output_tokens"] for r in log]
    assert all(Pricing().request_cost(c) is not None for c in calls)
