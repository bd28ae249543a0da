"""A route's ``upstream_model``: a fixed name, or ``*`` for the part of the client's model
name the route's own ``*`` matched (``model = "azure/*"`` sends ``gpt-4o`` for
``azure/gpt-4o``); and a route's settings checked when the config is read, not when a
request trips on them (the official SDK as the client, srt.testing as the upstreams)."""

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

KEY = "sk-upstream-routes-0123456789abcdef0123"


def test_a_star_in_upstream_model_sends_what_the_routes_star_matched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRT_GW_RT_KEY", KEY)
    with ProviderServer(api_key=KEY) as srv:
        ups = {
            k: Upstream(k, k, api_key_env="SRT_GW_RT_KEY", base_url=srv.url + tail)
            for k, tail in (("azure", ""), ("anthropic", ""), ("openai", "/v1"))
        }
        routes = (
            Route("azure/*", "azure", upstream_model="*"),
            Route("claude/*-latest", "anthropic", upstream_model="claude-*"),
            Route("*", "openai"),
        )
        config = Config(upstreams=ups, routes=routes, open=True)
        with srt.Runtime(tmp_path / "gw.db") as rt, serving(srt.gateway.app(config, rt)) as url:
            client = openai.OpenAI(base_url=url, api_key="sk-any", max_retries=0)
            with client:
                for model in ("azure/prod-chat", "claude/haiku-4-5-latest", "gpt-4o-mini"):
                    r = client.responses.create(model=model, input="hi")
                    assert r.model == model  # (the client sees the name it asked for)
        assert srv.errors == []
    sent = [(rec.provider, rec.path, rec.body.get("model")) for rec in srv.log]
    assert sent[0] == ("azure", "/openai/v1/chat/completions", "prod-chat")  # (the deployment)
    assert sent[1][0] == "anthropic" and sent[1][2] == "claude-haiku-4-5"
    assert sent[2][0] == "openai" and sent[2][2] == "gpt-4o-mini"


def test_upstream_name_replaces_the_star_and_leaves_a_fixed_name() -> None:
    assert Route("azure/*", "a", upstream_model="*").upstream_name("azure/gpt-4o") == "gpt-4o"
    assert Route("*-x", "a", upstream_model="m-*").upstream_name("abc-x") == "m-abc"
    assert Route("claude-*", "a", upstream_model="fixed").upstream_name("claude-1") == "fixed"
    assert Route("*", "a").upstream_name("gpt-4o") is None


@pytest.mark.parametrize(
    ("route", "says"),
    [
        ('model = "*-*"\nupstream_model = "*"', "exactly one '*'"),
        ('model = "gpt-?/*"\nupstream_model = "*"', "exactly one '*'"),
        ('model = "gpt-4o"\nupstream_model = "*"', "exactly one '*'"),
        ('model = "*"\nupstream_model = 5', "upstream_model must be a model name"),
        ('model = "*"\nupstream_model = ""', "upstream_model must be a model name"),
        ('model = "*"\ncontext_window = "200000"', "context_window must be a positive integer"),
        ('model = "*"\ncontext_window = 0', "context_window must be a positive integer"),
    ],
)
def test_a_bad_route_is_a_config_error_when_the_file_is_read(
    tmp_path: Path, route: str, says: str
) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(
        '[upstreams.up]\nkind = "openai"\napi_key_env = "SRT_GW_RT_KEY"\n'
        f'[[routes]]\n{route}\nupstream = "up"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert says in str(caught.value)
