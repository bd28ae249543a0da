"""srt honours HTTP proxies as httpx and the official SDKs do: ``proxy=``, ``trust_env``,
``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY``, on the sync and async paths.

Real providers talk to ``srt.testing`` over loopback, through the forward proxy in
``proxy_support`` (which forwards to loopback only)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trustme

import srt
from gateway_support import harness
from proxy_support import ForwardProxy, _basic
from srt.errors import (
    ConfigError,
    ProviderConnectionError,
    ProviderTimeoutError,
    ProxyAuthError,
)
from srt.providers import Anthropic, Bedrock, OpenAI, Provider
from srt.providers.proxies import Proxies
from srt.providers.sigv4 import AwsCredentials
from srt.providers.transport import AsyncTransport, RetryPolicy, Timeouts, Transport
from srt.testing import ProviderServer
from support import MADE, close_made  # noqa: F401  (close_made: an autouse fixture)

KEY = "sk-CANARY-proxy-test-key-0123456789"
USER = "proxy-user"
PASSWORD = "CANARY p@ss:w/rd"  # needs URL-encoding in a proxy URL


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as p:
        yield p


@pytest.fixture
def rt(db_path: str) -> Iterator[srt.Runtime]:
    with srt.Runtime(db_path) as runtime:
        yield runtime


def openai(srv: ProviderServer, **kw: Any) -> OpenAI:
    p = OpenAI(KEY, base_url=srv.url + "/v1", **kw)
    MADE.append(p)
    return p


def ask(rt: srt.Runtime, p: Provider, name: str = "s", model: str = "gpt-4o") -> str:
    s = rt.session(name)
    s.append({"role": "user", "content": "hello"})
    return str(s.send(p, model=model).message["content"])


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- through the proxy -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "anthropic", "bedrock-sigv4"])
def test_http_proxy_from_the_environment_carries_the_request(
    kind: str,
    srv: ProviderServer,
    proxy: ForwardProxy,
    rt: srt.Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    if kind == "openai":
        p: Provider = openai(srv)
        model, path = "gpt-4o", "/v1/chat/completions"
    elif kind == "anthropic":
        p = Anthropic(KEY, base_url=srv.url)
        model, path = "claude-sonnet-4-6", "/v1/messages"
    else:  # signed with SigV4 over the Host header the origin sees
        creds = AwsCredentials("AKIAIOSFODNN7EXAMPLE", "CANARY-aws-secret-abcdefghijklmnop")
        p = Bedrock(region="us-east-1", credentials=creds, endpoint_url=srv.url)
        model = "anthropic.claude-sonnet-4-6"
        path = f"/model/{model}/converse"
    MADE.append(p)
    srv.script(kind.split("-")[0], ["through the proxy"])
    s = rt.session(kind)
    s.append({"role": "user", "content": "hello"})
    s.send(p, model=model)
    assert "through the proxy" in str(s.messages()[-1]["content"])
    assert [(x.method, x.target) for x in proxy.seen] == [("POST", srv.url + path)]
    assert proxy.seen[0].headers["host"] == f"127.0.0.1:{srv.port}"
    assert len(srv.log) == 1 and srv.log[0].status == 200


def test_streaming_through_the_proxy(
    srv: ProviderServer, proxy: ForwardProxy, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url())
    p = openai(srv)
    srv.script("openai", ["word " * 50])
    s = rt.session("streamed")
    s.append({"role": "user", "content": "hello"})
    stream = s.stream(p, model="gpt-4o")
    assert stream.text() == "word " * 50 and stream.status == "ok"
    assert len(proxy.seen) == 1 and srv.log[-1].stream
    assert proxy.seen[0].headers["accept"] == "text/event-stream"


def test_explicit_proxy_without_the_environment_and_before_it(
    srv: ProviderServer, proxy: ForwardProxy, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv.script("openai", ["one", "two"])
    assert ask(rt, openai(srv, proxy=proxy.url()), "a") == "one"
    assert len(proxy.seen) == 1
    # The explicit setting wins over the environment's (a dead proxy here), and, as in
    # httpx, NO_PROXY does not apply to it.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert ask(rt, openai(srv, proxy=proxy.url()), "b") == "two"
    assert len(proxy.seen) == 2 and len(srv.log) == 2


def test_all_proxy_serves_a_scheme_without_its_own(
    srv: ProviderServer, proxy: ForwardProxy, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url())
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{dead_port()}")  # not for http://
    ask(rt, openai(srv))
    assert len(proxy.seen) == 1 and len(srv.log) == 1


# -- around the proxy: the direct path --------------------------------------------------------


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", "example.com, 127.0.0.1", "localhost,*"])
def test_no_proxy_sends_directly(
    no_proxy: str,
    srv: ProviderServer,
    proxy: ForwardProxy,
    rt: srt.Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    monkeypatch.setenv("NO_PROXY", no_proxy)
    srv.script("openai", ["direct"])
    assert ask(rt, openai(srv)) == "direct"
    assert proxy.seen == [] and proxy.connections == 0 and len(srv.log) == 1


def test_no_proxy_for_another_host_or_port_still_proxies(
    srv: ProviderServer, proxy: ForwardProxy, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    monkeypatch.setenv("no_proxy", f"127.0.0.2,127.0.0.1:{dead_port()},.127.0.0.1,example.com")
    ask(rt, openai(srv))
    assert len(proxy.seen) == 1


def test_trust_env_false_ignores_the_environment(
    srv: ProviderServer, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead_port()}")
    srv.script("openai", ["direct"])
    assert ask(rt, openai(srv, trust_env=False)) == "direct"

    async def go() -> str:
        p = openai(srv, trust_env=False, retry=RetryPolicy(max_retries=0))
        s = rt.session("async")
        s.append({"role": "user", "content": "hello"})
        try:
            return str((await s.asend(p, model="gpt-4o")).message["content"])
        finally:
            await p.aclose()

    srv.script("openai", ["async direct"])
    assert asyncio.run(go()) == "async direct"


def test_without_any_proxy_setting_the_direct_pool_is_used(
    srv: ProviderServer, proxy: ForwardProxy, rt: srt.Runtime
) -> None:
    """No proxy anywhere: ``Transport`` keeps no proxy rules at all (nothing is looked up
    per URL) and the request reaches the server without the proxy seeing it."""
    assert Proxies.of(None, True, True, False) is None
    ask(rt, openai(srv))
    assert proxy.connections == 0 and len(srv.log) == 1


# -- credentials --------------------------------------------------------------------------


def _secret_free(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and quote(PASSWORD, safe="") not in text
        assert _basic(USER, PASSWORD).split()[1] not in text


def _chain(exc: BaseException) -> list[str]:
    out: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return out


def test_proxy_credentials_reach_the_proxy_and_nothing_else(
    srv: ProviderServer, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy(auth=(USER, PASSWORD)) as guarded:
        url = guarded.url(USER, quote(PASSWORD, safe=""))
        srv.script("openai", ["authorized"])
        p = openai(srv, proxy=url)
        assert ask(rt, p) == "authorized"
        assert guarded.seen[0].headers["proxy-authorization"] == _basic(USER, PASSWORD)
        # The origin never sees the proxy's credentials.
        assert "proxy-authorization" not in srv.log[-1].headers
        _secret_free(repr(p), repr(p.transport), repr(p.async_transport))

        # From the environment too, and a wrong password is refused by the proxy (407):
        # the error says so without the password (test_proxy_tls_auth.py has more).
        monkeypatch.setenv("HTTP_PROXY", guarded.url(USER, "wrong" + quote(PASSWORD, safe="")))
        wrong = openai(srv)
        with pytest.raises(ProxyAuthError, match="refused the credentials") as info:
            ask(rt, wrong, "wrong")
        _secret_free(*_chain(info.value), repr(wrong.transport))


def test_a_proxy_that_hangs_up_or_refuses_a_tunnel_leaks_no_credentials(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    url_of = lambda p: p.url(USER, quote(PASSWORD, safe=""))  # noqa: E731
    no_retry = RetryPolicy(max_retries=0)
    with ForwardProxy(hang_up=True) as rude:
        p = openai(srv, proxy=url_of(rude), retry=no_retry)
        with pytest.raises(ProviderConnectionError) as info:
            ask(rt, p, "hung-up")
        _secret_free(*_chain(info.value))
        assert rude.seen[0].headers["proxy-authorization"] == _basic(USER, PASSWORD)
    # An https:// URL goes through a CONNECT tunnel; this proxy refuses it (403: it forwards
    # to loopback only).
    with ForwardProxy() as strict:
        p = OpenAI(
            KEY, base_url="https://api.example.test/v1", proxy=url_of(strict), retry=no_retry
        )
        MADE.append(p)
        with pytest.raises(ProviderConnectionError, match="403") as info:
            ask(rt, p, "tunnel")
        _secret_free(*_chain(info.value))
        assert [(x.method, x.target) for x in strict.seen] == [("CONNECT", "api.example.test:443")]


def test_https_through_a_connect_tunnel_with_the_verify_setting(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """An https:// URL: CONNECT to the proxy, then TLS end to end (here the proxy plays
    the origin's TLS end with a certificate of a test CA, which ``verify`` trusts)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    with ForwardProxy(tls=context) as tunnel, ca.cert_pem.tempfile() as ca_file:
        srv.script("openai", ["secure", "streamed securely"])
        base = f"https://localhost:{srv.port}/v1"
        p = OpenAI(KEY, base_url=base, proxy=tunnel.url(), verify=ca_file)
        MADE.append(p)
        assert ask(rt, p) == "secure"
        s = rt.session("tls-stream")
        s.append({"role": "user", "content": "hello"})
        assert s.stream(p, model="gpt-4o").text() == "streamed securely"
        assert [(x.method, x.target) for x in tunnel.seen] == [
            ("CONNECT", f"localhost:{srv.port}"),
            ("POST", "(tunnel) /v1/chat/completions"),
        ] * 2
        # Without the test CA the certificate is refused: verification is on.
        strict = OpenAI(KEY, base_url=base, proxy=tunnel.url(), retry=RetryPolicy(max_retries=0))
        MADE.append(strict)
        with pytest.raises(ProviderConnectionError, match="CERTIFICATE"):
            ask(rt, strict, "unverified")


# -- failures ----------------------------------------------------------------------------


def _failure(transport: Transport, rt: srt.Runtime, url: str, name: str) -> str:
    p = OpenAI(KEY, base_url=url, transport=transport)
    MADE.append(p)
    with pytest.raises(ProviderConnectionError) as info:
        ask(rt, p, name)
    return str(info.value)


def test_retries_and_timeouts_apply_through_the_proxy(
    srv: ProviderServer, proxy: ForwardProxy, rt: srt.Runtime
) -> None:
    # A 503 from the origin, carried by the proxy, is retried; the retry goes through it too.
    srv.fault("openai", "status", code=503)
    srv.script("openai", ["after a retry"])
    p = openai(srv, proxy=proxy.url(), retry=RetryPolicy(initial_delay=0.01, max_delay=0.01))
    assert ask(rt, p, "retried") == "after a retry"
    assert len(proxy.seen) == 2 and [r.status for r in srv.log] == [503, 200]
    # The idle timeout of each read, and the total cap's watchdog (which shuts the socket
    # httpx's proxy connection exposes), end a stream that stalls behind the proxy.
    limits = {"idle": Timeouts(connect=2.0, idle=1.0, total=30.0)}
    limits["total"] = Timeouts(connect=2.0, idle=5.0, total=2.0)
    srv.fault("openai", "slow", count=1, interval=30)
    srv.fault("openai", "endless", count=1, interval=0.2)
    # Each ends by its own limit, named in the error: the idle one (not the 30 s cap,
    # long before the slow stream's next byte), and the total cap (the endless stream
    # never pauses long enough for the 5 s idle timeout).
    ended_by = {"idle": "no data for 1.0 s", "total": "total time cap"}
    for which, timeouts in limits.items():
        slow = openai(srv, proxy=proxy.url(), timeouts=timeouts)
        s = rt.session(which)
        s.append({"role": "user", "content": "hi"})
        with pytest.raises(ProviderTimeoutError, match=ended_by[which]):
            s.stream(slow, model="gpt-4o").text()
        assert s.calls()[-1]["status"] == "incomplete"
    assert len(proxy.seen) == 4


def test_a_proxy_that_is_down_fails_like_an_origin_that_is_down(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    retry = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.01)
    down = dead_port()
    waits: list[float] = []
    through = Transport(
        retry=retry, sleep=waits.append, proxy=f"http://{USER}:secret-pw@127.0.0.1:{down}"
    )
    via_proxy = _failure(through, rt, srv.url + "/v1", "proxy-down")
    assert len(waits) == 2  # retried as the policy says
    direct_waits: list[float] = []
    direct = Transport(retry=retry, sleep=direct_waits.append)
    to_origin = _failure(direct, rt, f"http://127.0.0.1:{down}/v1", "origin-down")
    assert len(direct_waits) == 2
    # The same shape: "POST <url>: ConnectError: <reason>", no credentials.
    assert via_proxy.startswith(
        f"POST {srv.url}/v1/chat/completions: ConnectError: "
        f"through the proxy http://127.0.0.1:{down}: "
    )
    assert to_origin.startswith(f"POST http://127.0.0.1:{down}/v1/chat/completions: ConnectError: ")
    assert "secret-pw" not in via_proxy


# -- async ---------------------------------------------------------------------------------


def _asend(rt: srt.Runtime, p: Provider, name: str) -> str:
    async def go() -> str:
        s = rt.session(name)
        s.append({"role": "user", "content": "hello"})
        try:
            return str((await s.asend(p, model="gpt-4o")).message["content"])
        finally:
            await p.aclose()

    return asyncio.run(go())


def test_async_send_honours_the_explicit_proxy_and_the_environment(
    srv: ProviderServer, proxy: ForwardProxy, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv.script("openai", ["async through the proxy", "async from the environment"])
    assert _asend(rt, openai(srv, proxy=proxy.url()), "explicit") == "async through the proxy"
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    assert _asend(rt, openai(srv), "env") == "async from the environment"
    assert [(x.method, x.target) for x in proxy.seen] == [
        ("POST", srv.url + "/v1/chat/completions")
    ] * 2


def test_the_gateway_calls_its_upstream_through_the_proxy(
    db_path: str, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``srt serve``'s providers are made on the first request for their route, so the
    environment then in force applies to their upstream calls."""
    with harness(db_path, monkeypatch) as gw:
        monkeypatch.setenv("HTTP_PROXY", proxy.url())
        client = gw.client(http_client=httpx.Client(trust_env=False))  # to the gateway: direct
        reply = client.responses.create(model="gpt-4o-mini", input="hi")
        assert reply.output_text.startswith("reply")
        assert [(x.method, x.target) for x in proxy.seen] == [
            ("POST", gw.srv.url + "/v1/chat/completions")
        ]


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HTTPS_PROXY", f"ftp://{USER}:CANARY-pw@proxy:21", "HTTPS_PROXY: a proxy URL starts"),
        ("https_proxy", f"ftp://{USER}:CANARY-pw@proxy:21", "https_proxy: a proxy URL starts"),
        ("ALL_PROXY", f"http://{USER}:CANARY-pw@:3128", "ALL_PROXY: the proxy URL names no host"),
        ("HTTP_PROXY", f"http://{USER}:CANARY-pw@proxy:port", "HTTP_PROXY is not a valid"),
    ],
)
def test_an_unusable_proxy_setting_is_a_config_error_naming_it(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    for make in (Transport, AsyncTransport):
        with pytest.raises(ConfigError) as info:
            make()
        assert str(info.value).startswith(message)
        assert "CANARY" not in str(info.value) and info.value.__cause__ is None
    # Not read at all when the environment is not trusted.
    Transport(trust_env=False).close()


def test_explicit_proxy_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"^proxy=: a proxy URL starts .* got no scheme"):
        Transport(proxy="proxy.corp:3128")  # as in httpx, only the environment's may omit it
    with pytest.raises(ConfigError, match="client or a proxy"):
        Transport(client=httpx.Client(), proxy="http://proxy:3128")
    with pytest.raises(ConfigError, match="must be a URL string"):
        OpenAI(KEY, proxy=3128).transport  # type: ignore[arg-type]  # noqa: B018


def test_the_local_provider_takes_no_proxy() -> None:
    with pytest.raises(ConfigError, match="never behind a proxy"):
        srt.LocalProvider(proxy="http://127.0.0.1:3128")


def test_a_socks_proxy_needs_socksio(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed here")
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    for make in (Transport, AsyncTransport):
        with pytest.raises(ConfigError, match=r"^ALL_PROXY: a SOCKS proxy needs the socksio"):
            make()


# -- the same choice as httpx -------------------------------------------------------------

_URLS = [
    "http://api.example.com/v1",
    "https://api.example.com/v1",
    "https://example.com",
    "https://www.example.com",
    "https://wwwexample.com",
    "https://corp.internal:8443/x",
    "https://corp.internal/x",
    "http://10.1.2.3:8000",
    "http://192.168.0.1",
    "http://[::1]:8000",
    "http://localhost:11434",
    "https://sub.localhost",
    "http://plain.test",
    "https://plain.test",
]
_ENVS: list[dict[str, str]] = [
    {"HTTPS_PROXY": "http://p1:3128"},
    {"HTTP_PROXY": "p2:8080", "HTTPS_PROXY": "https://p1:3128"},
    {"ALL_PROXY": "http://all:1", "https_proxy": "http://lower:2", "HTTPS_PROXY": "http://up:3"},
    {"ALL_PROXY": "http://all:1", "NO_PROXY": "example.com"},
    {"ALL_PROXY": "http://all:1", "NO_PROXY": ".example.com, corp.internal:8443"},
    {"ALL_PROXY": "http://all:1", "no_proxy": "10.1.2.3,::1,localhost,192.168.0.0/16"},
    {"ALL_PROXY": "http://all:1", "NO_PROXY": "http://plain.test"},
    {"HTTP_PROXY": "http://h:1", "NO_PROXY": "*"},
    {"HTTP_PROXY": "http://h:1", "REQUEST_METHOD": "GET"},  # CGI: HTTP_PROXY is not trusted
]


@pytest.mark.parametrize("env", _ENVS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_the_choice_is_httpx_own(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """For each URL, the proxy srt's sync transport picks is the one an
    ``httpx.Client(trust_env=True)`` (the official SDKs') picks, and so is the one srt's
    async client (given srt's choice as its mounts) sends through."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proxies = Proxies.of(None, True, True, False)
    async_transport = AsyncTransport(http2=False)
    mounted = async_transport._client
    with httpx.Client(trust_env=True) as client:
        for url in _URLS:
            u = httpx.URL(url)
            theirs = client._transport_for_url(u)
            expected = None
            if theirs is not client._transport:
                at = theirs._pool._proxy_url  # type: ignore[attr-defined]
                expected = (at.scheme.decode(), at.host.decode(), at.port)
            ours = None if proxies is None else proxies.proxy_for(u)
            got = None if ours is None else (ours.scheme, ours.host, ours.port)
            assert got == expected, (env, url)
            via = getattr(mounted._transport_for_url(u), "_via", None)
            at = None if via is None else via.proxy.url
            assert (None if at is None else (at.scheme, at.host, at.port)) == expected
    if proxies is not None:
        proxies.close()
    asyncio.run(async_transport.aclose())
