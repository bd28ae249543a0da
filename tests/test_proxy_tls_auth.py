"""An https:// proxy's own TLS is checked with the transport's ``verify``, and a proxy that
answers 407 is a ``ProxyAuthError`` (a ``ProviderAuthError``) at once (never retried),
naming the proxy and nothing of its credentials: sync and async, absolute-form and CONNECT.

Real providers talk to ``srt.testing`` over loopback through ``proxy_support``'s proxy."""

from __future__ import annotations

import asyncio
import ssl
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trustme

import srt
from proxy_support import ForwardProxy, _basic
from srt.errors import ProviderConnectionError, ProviderError, ProxyAuthError
from srt.providers import OpenAI, Provider
from srt.providers.transport import RetryPolicy, Transport
from srt.testing import ProviderServer
from support import MADE, close_made  # noqa: F401  (close_made: an autouse fixture)

KEY = "sk-CANARY-proxy-tls-key-0123456789"
USER = "proxy-user"
PASSWORD = "CANARY p@ss:w/rd"  # needs URL-encoding in a proxy URL
# Retries that would happen, quickly, if the error were retried.
RETRY = RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.01)


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's CA settings (conftest clears the proxy variables)."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA) -> Iterator[str]:
    with ca.cert_pem.tempfile() as path:
        yield str(path)


@pytest.fixture(scope="module")
def proxy_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The TLS of an https:// proxy whose certificate (for 127.0.0.1) the test CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def tls_proxy(proxy_tls: ssl.SSLContext) -> Iterator[ForwardProxy]:
    with ForwardProxy(listen_tls=proxy_tls) as p:
        yield p


def openai(base_url: str, **kw: Any) -> OpenAI:
    p = OpenAI(KEY, base_url=base_url, **kw)
    MADE.append(p)
    return p


def ask(rt: srt.Runtime, p: Provider, name: str, mode: str = "sync") -> str:
    """One turn of session ``name`` through ``p`` (``mode`` "async": ``asend``)."""
    s = rt.session(name)
    s.append({"role": "user", "content": "hello"})
    if mode == "sync":
        return str(s.send(p, model="gpt-4o").message["content"])

    async def go() -> str:
        try:
            return str((await s.asend(p, model="gpt-4o")).message["content"])
        finally:
            await p.aclose()

    return asyncio.run(go())


def refused(rt: srt.Runtime, p: Provider, name: str, mode: str, kind: type[ProviderError]) -> str:
    """The error ``kind`` a turn through ``p`` raises, as text: its str, repr, every error
    chained to it and its traceback, with no credentials of the proxy in any of them."""
    with pytest.raises(kind) as info:
        ask(rt, p, name, mode)
    assert type(info.value) is kind  # (not a subclass: a proxy's 407 is told apart)
    err: BaseException | None = info.value
    texts = ["".join(traceback.format_exception(info.value))]
    while err is not None:
        texts += [str(err), repr(err)]
        err = err.__cause__ or err.__context__
    text = "\n".join(texts)
    for secret in (PASSWORD, quote(PASSWORD, safe=""), _basic(USER, PASSWORD).split()[1]):
        assert secret not in text
    return str(info.value)


# -- an https:// proxy's TLS ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("verify", ["ca-file", "ca-path", "ssl-context", "off"])
def test_an_https_proxy_is_verified_with_the_verify_setting(
    mode: str,
    verify: str,
    srv: ProviderServer,
    tls_proxy: ForwardProxy,
    ca: trustme.CA,
    ca_file: str,
    rt: srt.Runtime,
) -> None:
    """``verify`` naming the CA that signed the proxy's certificate (a bundle's path or an
    ``ssl.SSLContext``), or ``verify=False``, reaches the proxy over TLS."""
    setting: ssl.SSLContext | str | Path | bool
    if verify == "ssl-context":
        setting = ssl.create_default_context(cafile=ca_file)
    elif verify == "ca-path":  # (a pathlib.Path, as a user holds a file's name)
        setting = Path(ca_file)
    else:
        setting = ca_file if verify == "ca-file" else False
    srv.script("openai", ["through an https proxy"])
    p = openai(srv.url + "/v1", proxy=tls_proxy.url(), verify=setting)
    assert ask(rt, p, "tls", mode) == "through an https proxy"
    assert [(x.method, x.target) for x in tls_proxy.seen] == [
        ("POST", srv.url + "/v1/chat/completions")
    ]
    assert tls_proxy.connections == 1 and len(srv.log) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_https_proxy_from_the_environment_is_verified_too(
    mode: str,
    srv: ProviderServer,
    tls_proxy: ForwardProxy,
    ca_file: str,
    rt: srt.Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tls_proxy.url())
    srv.script("openai", ["from the environment"])
    assert ask(rt, openai(srv.url + "/v1", verify=ca_file), "env", mode) == "from the environment"
    assert len(tls_proxy.seen) == 1 and len(srv.log) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_https_proxy_whose_ca_verify_does_not_name_is_refused(
    mode: str, srv: ProviderServer, tls_proxy: ForwardProxy, rt: srt.Runtime
) -> None:
    """With the default ``verify`` (the system's CAs) the test CA's certificate is refused:
    a ``ProviderConnectionError`` naming the proxy, without its credentials."""
    url = tls_proxy.url(USER, quote(PASSWORD, safe=""))
    p = openai(srv.url + "/v1", proxy=url, retry=RetryPolicy(max_retries=0))
    text = refused(rt, p, "unverified", mode, ProviderConnectionError)
    assert "CERTIFICATE_VERIFY_FAILED" in text
    assert f"through the proxy https://127.0.0.1:{tls_proxy.port}" in text
    assert tls_proxy.seen == [] and srv.log == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_https_through_a_tunnel_inside_an_https_proxy(
    mode: str,
    srv: ProviderServer,
    ca: trustme.CA,
    ca_file: str,
    proxy_tls: ssl.SSLContext,
    rt: srt.Runtime,
) -> None:
    """An https:// URL through an https:// proxy: TLS to the proxy, a CONNECT inside it,
    and the origin's TLS inside that (the proxy plays the origin's end), both checked
    with the one ``verify``."""
    origin_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(origin_tls)
    srv.script("openai", ["tls inside tls"])
    with ForwardProxy(tls=origin_tls, listen_tls=proxy_tls) as both:
        base = f"https://localhost:{srv.port}/v1"
        p = openai(base, proxy=both.url(), verify=ca_file)
        assert ask(rt, p, "tls-in-tls", mode) == "tls inside tls"
        assert [(x.method, x.target) for x in both.seen] == [
            ("CONNECT", f"localhost:{srv.port}"),
            ("POST", "(tunnel) /v1/chat/completions"),
        ]
    assert len(srv.log) == 1


# -- a proxy's 407 ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path", ["absolute-form", "connect"])
def test_a_proxy_refusing_the_credentials_is_an_auth_error_tried_once(
    path: str, mode: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """407 to an http:// URL's request (absolute form) or to an https:// URL's CONNECT:
    ``ProxyAuthError`` naming the proxy's host:port, after one attempt."""
    base = srv.url + "/v1" if path == "absolute-form" else "https://api.example.test/v1"
    with ForwardProxy(auth=(USER, "another")) as strict:
        url = strict.url(USER, quote(PASSWORD, safe=""))
        p = openai(base, proxy=url, retry=RETRY)
        text = refused(rt, p, f"{path}-{mode}", mode, ProxyAuthError)
        assert text == (
            f"POST {base}/chat/completions: the proxy 127.0.0.1:{strict.port} refused the "
            "credentials in the proxy URL (407 Proxy Authentication Required)"
        )
        want = "POST" if path == "absolute-form" else "CONNECT"
        assert [x.method for x in strict.seen] == [want] and strict.connections == 1
        assert strict.seen[0].headers["proxy-authorization"] == _basic(USER, PASSWORD)
    assert srv.log == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_proxy_asking_for_credentials_none_were_given_for(
    mode: str, srv: ProviderServer, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy(auth=(USER, PASSWORD)) as strict:
        monkeypatch.setenv("HTTP_PROXY", strict.url())
        p = openai(srv.url + "/v1", retry=RETRY)
        text = refused(rt, p, f"none-{mode}", mode, ProxyAuthError)
        assert text.endswith(
            f": the proxy 127.0.0.1:{strict.port} asks for credentials, and the proxy URL "
            "gives none (407 Proxy Authentication Required)"
        )
        assert len(strict.seen) == 1 and strict.connections == 1
        assert "proxy-authorization" not in strict.seen[0].headers
    assert srv.log == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_https_proxy_refusing_a_tunnel_over_its_tls(
    mode: str, ca_file: str, proxy_tls: ssl.SSLContext, rt: srt.Runtime
) -> None:
    """The CONNECT of an https:// URL, sent over the proxy's own TLS (checked with
    ``verify``), refused with 407: one attempt, the auth error."""
    with ForwardProxy(auth=(USER, "another"), listen_tls=proxy_tls) as strict:
        url = strict.url(USER, quote(PASSWORD, safe=""))
        p = openai("https://api.example.test/v1", proxy=url, verify=ca_file, retry=RETRY)
        text = refused(rt, p, f"tls-407-{mode}", mode, ProxyAuthError)
        assert f"the proxy 127.0.0.1:{strict.port} refused the credentials" in text
        assert [(x.method, x.target) for x in strict.seen] == [("CONNECT", "api.example.test:443")]
        assert strict.connections == 1


@pytest.mark.parametrize("path", ["absolute-form", "connect"])
def test_a_407_through_a_callers_own_client_is_an_auth_error_too(
    path: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """A caller's ``httpx.Client`` with its own proxy: the 407 answer (absolute form) or
    httpx's ``ProxyError`` (CONNECT) is the same ``ProxyAuthError``, tried once."""
    base = srv.url + "/v1" if path == "absolute-form" else "https://api.example.test/v1"
    with ForwardProxy(auth=(USER, "another")) as strict:
        url = strict.url(USER, quote(PASSWORD, safe=""))
        client = httpx.Client(proxy=url, trust_env=False)
        p = openai(base, transport=Transport(client=client, retry=RETRY))
        text = refused(rt, p, f"client-{path}", "sync", ProxyAuthError)
        assert text.startswith(f"POST {base}/chat/completions")
        assert "407" in text
        assert len(strict.seen) == 1 and strict.connections == 1
    assert srv.log == []
