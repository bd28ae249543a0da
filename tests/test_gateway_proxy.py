"""``srt serve``'s upstreams take ``proxy`` and ``trust_env``: the upstream calls go
through the proxy (seen by ``proxy_support``'s loopback proxy), a bad setting is a
``ConfigError`` at startup naming the key, and the proxy's credentials never show.

The gateway's client is the official ``openai`` SDK, as in the other gateway tests."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openai
import pytest

import srt
import srt.gateway
from gateway_support import serving
from proxy_support import ForwardProxy, _basic
from srt.cli import main
from srt.errors import ConfigError
from srt.gateway.config import Config, Route, Upstream, load_config
from srt.testing import ProviderServer

KEY = "sk-upstream-proxy-0123456789abcdef0123"
USER = "gw-proxy-user"
PASSWORD = "CANARY gw p@ss:w/rd"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    """(conftest clears the proxy variables)"""
    monkeypatch.setenv("SRT_GW_PROXY_UP_KEY", KEY)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gateway(db_path: str, upstream: Upstream) -> Iterator[openai.OpenAI]:
    """The gateway with ``upstream`` as its one route, and an SDK client that reaches it
    directly (never through the environment's proxy)."""
    routes = (Route("*", upstream.name),)
    config = Config(upstreams={upstream.name: upstream}, routes=routes, open=True)
    with srt.Runtime(db_path) as rt, serving(srt.gateway.app(config, rt)) as url:
        client = openai.OpenAI(
            base_url=url, api_key="sk-any", max_retries=0, http_client=httpx.Client(trust_env=False)
        )
        try:
            yield client
        finally:
            client.close()


def upstream(srv: ProviderServer, **kw: Any) -> Upstream:
    base = srv.url + "/v1"
    return Upstream("corp", "openai", api_key_env="SRT_GW_PROXY_UP_KEY", base_url=base, **kw)


def test_an_upstream_with_a_proxy_is_called_through_it(
    db_path: str, srv: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment names another proxy (down): the upstream's own setting wins.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    srv.script("openai", ["through the corporate proxy", "streamed through it", "passed on"])
    with ForwardProxy(auth=(USER, PASSWORD)) as proxy:
        up = upstream(srv, proxy=proxy.url(USER, quote(PASSWORD, safe="")))
        assert PASSWORD not in repr(up) and quote(PASSWORD, safe="") not in repr(up)
        with gateway(db_path, up) as client:
            reply = client.responses.create(model="gpt-4o-mini", input="hi")
            assert reply.output_text == "through the corporate proxy"
            with client.responses.stream(model="gpt-4o-mini", input="again") as events:
                assert events.get_final_response().output_text == "streamed through it"
            chat = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert chat.choices[0].message.content == "passed on"
        path = srv.url + "/v1/chat/completions"
        assert [(x.method, x.target) for x in proxy.seen] == [("POST", path)] * 3
        assert {x.headers["proxy-authorization"] for x in proxy.seen} == {_basic(USER, PASSWORD)}
    assert len(srv.log) == 3
    assert all("proxy-authorization" not in r.headers for r in srv.log)


def test_an_upstream_that_does_not_trust_the_environment_ignores_its_proxy(
    db_path: str, srv: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv.script("openai", ["direct"])
    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url())
        with gateway(db_path, upstream(srv, trust_env=False)) as client:
            assert client.responses.create(model="m", input="hi").output_text == "direct"
        assert proxy.seen == [] and proxy.connections == 0
    assert len(srv.log) == 1


def test_an_upstream_refusing_the_key_is_told_apart_from_a_proxy_refusing_the_gateway(
    db_path: str, srv: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upstream's own 401 is a 502 ``upstream_auth`` that names no proxy."""
    monkeypatch.setenv("SRT_GW_PROXY_UP_KEY", "sk-not-the-upstreams-key")
    with gateway(db_path, upstream(srv)) as client, pytest.raises(openai.APIStatusError) as info:
        client.responses.create(model="m", input="hi")
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_auth"  # type: ignore[index]
    assert "proxy" not in info.value.body["message"]  # type: ignore[index]
    assert "sk-not-the-upstreams-key" not in info.value.response.text
    assert len(srv.log) == 1  # tried once


def test_a_proxy_refusing_the_gateway_is_an_upstream_error_tried_once(
    db_path: str, srv: ProviderServer
) -> None:
    """The proxy's 407 reaches the client as the gateway's 502 for a proxy on the way
    upstream that refused its credentials, after one attempt, without the proxy's
    password."""
    with ForwardProxy(auth=(USER, "another")) as proxy:
        up = upstream(srv, proxy=proxy.url(USER, quote(PASSWORD, safe="")))
        with gateway(db_path, up) as client, pytest.raises(openai.APIStatusError) as info:
            client.responses.create(model="m", input="hi")
        assert info.value.status_code == 502
        assert info.value.body["code"] == "upstream_proxy_auth"  # type: ignore[index]
        assert "proxy" in info.value.body["message"]  # type: ignore[index]
        assert PASSWORD not in info.value.response.text
        assert len(proxy.seen) == 1
    assert srv.log == []


# -- the config ------------------------------------------------------------------------


def _toml(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[upstreams.corp]\nkind = "openai"\napi_key_env = "SRT_GW_PROXY_UP_KEY"\n'
        f'{extra}\n[[routes]]\nmodel = "*"\nupstream = "corp"\n'
    )
    return path


def test_the_config_file_takes_proxy_and_trust_env(tmp_path: Path) -> None:
    url = f"http://{USER}:{quote(PASSWORD, safe='')}@proxy.corp:3128"
    cfg = load_config(_toml(tmp_path, f'proxy = "{url}"\ntrust_env = false'))
    up = cfg.upstreams["corp"]
    assert up.proxy == url and up.trust_env is False
    for text in (repr(cfg), repr(up), str(cfg)):
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
    assert load_config(_toml(tmp_path, "")).upstreams["corp"].trust_env is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            f'proxy = "ftp://{USER}:CANARY-pw@proxy.corp:21"',
            "[upstreams.corp] proxy: a proxy URL starts with http://, https://, socks5:// or "
            "socks5h://, got 'ftp'",
        ),
        (f'proxy = "http://{USER}:CANARY-pw@proxy.corp:port"', "[upstreams.corp] proxy is not"),
        (f'proxy = "{USER}:CANARY-pw@proxy.corp:3128"', "[upstreams.corp] proxy: a proxy URL"),
        (f'proxy = "http://{USER}:CANARY-pw@:3128"', "[upstreams.corp] proxy: the proxy URL names"),
        ("proxy = 3128", "[upstreams.corp] proxy must be a URL string, got int"),
        ('trust_env = "no"', "[upstreams.corp] trust_env must be true or false"),
    ],
)
def test_a_bad_proxy_setting_stops_srt_serve_at_startup(
    extra: str,
    message: str,
    tmp_path: Path,
    db_path: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _toml(tmp_path, extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(message)
    assert "CANARY" not in str(info.value) and info.value.__cause__ is None
    # ``srt serve`` stops before serving, saying which key, never its value.
    assert main(["--db", db_path, "serve", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "CANARY" not in err


def test_a_bad_proxy_in_the_environment_stops_srt_serve_at_startup_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unless the upstream does not trust the environment, or names its own proxy."""
    monkeypatch.setenv("HTTPS_PROXY", f"ftp://{USER}:CANARY-pw@proxy.corp:21")
    with pytest.raises(ConfigError, match=r"^HTTPS_PROXY: a proxy URL starts") as info:
        load_config(_toml(tmp_path, ""))
    assert "CANARY" not in str(info.value)
    assert load_config(_toml(tmp_path, "trust_env = false")).upstreams["corp"].proxy is None
    assert load_config(_toml(tmp_path, 'proxy = "http://proxy.corp:3128"'))


def test_the_local_upstream_takes_no_proxy() -> None:
    with pytest.raises(ConfigError, match=r"^\[upstreams.llm\] proxy: the local model is never"):
        Upstream("llm", "local", proxy="http://127.0.0.1:3128")
