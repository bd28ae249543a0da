"""Which proxy a request goes through, and the transports that send through one: made on
first need for the sync ``Transport``, given as ``mounts`` to the async one's
``httpx.AsyncClient`` (which then does not read the environment itself).

The settings mean what httpx makes of them, so the sync path, the async path and the
official SDKs agree:

* ``proxy=`` given: every request goes through it and the environment is not read.
* else, when the environment is trusted: ``HTTP_PROXY`` for http:// URLs, ``HTTPS_PROXY``
  for https://, ``ALL_PROXY`` for either when the scheme's own is unset, as
  ``urllib.request.getproxies`` reads them (a lower-case name wins over its upper-case
  one; under CGI, where a client's ``Proxy:`` header becomes ``HTTP_PROXY``, that one is
  ignored; on macOS and Windows the system's settings apply when the environment names
  none). A value without a scheme is an http:// proxy.
* ``NO_PROXY`` (comma-separated) sends matching hosts directly: ``*`` turns every proxy
  off; ``example.com`` the host and its subdomains; ``.example.com`` its subdomains only;
  an IP address or ``localhost`` that host exactly (a CIDR range is not understood, as in
  httpx); ``host:port`` that port as the URL writes it (a default port is not written, so
  ``example.com:443`` does not match ``https://example.com``); ``http://example.com``
  that scheme only. The most specific rule wins: one with a port, then the longer host,
  then the longer scheme.

A proxy URL is http://, https://, socks5:// or socks5h:// (SOCKS needs the ``socksio``
package); the TLS to an https:// proxy is checked with the transport's ``verify``, as the
origin's is. Credentials in it (``http://user:pass@proxy:3128``) are sent as
``Proxy-Authorization`` and never shown: errors name the setting, not its value, and a
proxy's errors name the proxy without them. A proxy that answers 407 raises
``ProxyRefusedError``, which the transport reports as ``ProxyAuthError`` (a
``ProviderAuthError``) without retrying.
"""

from __future__ import annotations

import base64
import importlib.util
import ipaddress
import os
import re
import ssl
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import httpx

from ..errors import ConfigError
from .http1 import tls_context
from .policy import redact

__all__ = ["Proxies", "ProxyRefusedError", "check", "tls_context"]

_SCHEMES = ("http", "https", "socks5", "socks5h")
_VARIABLES = {"http": "HTTP_PROXY", "https": "HTTPS_PROXY", "all": "ALL_PROXY"}
# As srt's pool and sendall's transport: every connection given back is kept.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


class ProxyRefusedError(httpx.ProxyError):
    """The proxy answered 407 (Proxy Authentication Required) to a CONNECT or to a request
    sent through it: retrying cannot help. The transport raises ``ProxyAuthError``."""


class _Via:
    """One proxy, and the httpx transport that sends through it (made on first need)."""

    def __init__(self, proxy: httpx.Proxy, secrets: tuple[str, ...]) -> None:
        self.proxy = proxy
        self.secrets = secrets
        self.transport: _ProxyTransport | None = None
        url = proxy.url  # without its credentials
        port = url.port or {"http": 80, "https": 443}.get(url.scheme, 1080)
        self.where = f"{url.host}:{port}"

    def __repr__(self) -> str:
        return f"<proxy {self.proxy.url}>"  # the URL without its credentials

    def with_tls(self, verify: ssl.SSLContext | str | bool, trust_env: bool) -> httpx.Proxy:
        """This proxy, its own TLS (an https:// proxy) checked as ``verify`` says: the same
        settings as the origin's, in a context of its own (httpcore sets each connection's
        ALPN protocols on its context), unless ``verify`` is a context: that one is used
        for both, as given."""
        if self.proxy.url.scheme != "https":
            return self.proxy  # httpcore refuses a TLS context for any other proxy
        context = tls_context(verify, trust_env)
        return httpx.Proxy(
            self.proxy.url, ssl_context=context, auth=self.proxy.auth, headers=self.proxy.headers
        )

    def told(self, exc: httpx.HTTPError) -> httpx.HTTPError:
        """``exc`` saying which proxy the request went through, without its credentials;
        ``ProxyRefusedError`` for a CONNECT the proxy answered 407."""
        text = redact(str(exc), self.secrets) or type(exc).__name__
        if isinstance(exc, httpx.ProxyError) and text.startswith("407"):
            return self.refused()
        try:
            return type(exc)(f"through the proxy {self.proxy.url}: {text}")
        except TypeError:  # pragma: no cover - httpx's transport errors take a message
            return exc

    def refused(self) -> ProxyRefusedError:
        if self.secrets:
            why = "refused the credentials in the proxy URL"
        else:
            why = "asks for credentials, and the proxy URL gives none"
        text = f"the proxy {self.where} {why} (407 Proxy Authentication Required)"
        return ProxyRefusedError(text)


class _ProxyTransport(httpx.HTTPTransport):
    """httpx's transport through one proxy (CONNECT tunnels for https, absolute-form
    requests for http, SOCKS with ``socksio``). Its errors say which proxy the request
    went through and never hold its credentials; a 407 is ``ProxyRefusedError``."""

    def __init__(
        self, via: _Via, verify: ssl.SSLContext | str | bool, http2: bool, limits: httpx.Limits
    ) -> None:
        proxy = via.with_tls(verify, True)
        super().__init__(proxy=proxy, verify=tls_context(verify), http2=http2, limits=limits)
        self._via = via

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.HTTPError as exc:
            raise self._via.told(exc) from None
        if response.status_code == 407:  # an http:// URL's absolute-form request
            response.close()
            raise self._via.refused()
        return response


class _AsyncProxyTransport(httpx.AsyncHTTPTransport):
    """``_ProxyTransport`` for the async client."""

    def __init__(
        self,
        via: _Via,
        verify: ssl.SSLContext | str | bool,
        trust_env: bool,
        http2: bool,
        limits: httpx.Limits,
    ) -> None:
        proxy = via.with_tls(verify, trust_env)
        context = tls_context(verify, trust_env)
        super().__init__(proxy=proxy, verify=context, http2=http2, limits=limits)
        self._via = via

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except httpx.HTTPError as exc:
            raise self._via.told(exc) from None
        if response.status_code == 407:
            await response.aclose()
            raise self._via.refused()
        return response


@dataclass
class _Rule:
    """An httpx mount pattern (``all://*example.com:8080``) and where it sends: a proxy, or
    None (directly)."""

    pattern: str
    scheme: str  # "" for any
    host: str  # "" for any
    port: int | None
    via: _Via | None = field(repr=False)
    regex: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        host = self.host
        if not host:
            self.regex = None
        elif host.startswith("*."):  # subdomains only
            self.regex = re.compile(rf"^.+\.{re.escape(host[2:])}$")
        elif host.startswith("*"):  # the domain and its subdomains
            self.regex = re.compile(rf"^(.+\.)?{re.escape(host[1:])}$")
        else:
            self.regex = re.compile(rf"^{re.escape(host)}$")

    @classmethod
    def of(cls, pattern: str, via: _Via | None) -> _Rule:
        try:
            url = httpx.URL(pattern)
        except httpx.InvalidURL:
            raise ConfigError(f"NO_PROXY: {pattern!r} is not a host or URL") from None
        host = "" if url.host == "*" else url.host
        return cls(pattern, "" if url.scheme == "all" else url.scheme, host, url.port, via)

    def matches(self, scheme: str, host: str, port: int | None) -> bool:
        if self.scheme and self.scheme != scheme:
            return False
        if self.regex is not None and not self.regex.match(host):
            return False
        return self.port is None or self.port == port

    @property
    def priority(self) -> tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))


def _proxy(value: str, where: str) -> _Via:
    """The proxy at ``value``; ``ConfigError`` naming ``where`` (never quoting the value,
    which may hold a password) unless it is one srt can use."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a URL string, got {type(value).__name__}")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        raise ConfigError(f"{where} is not a valid proxy URL") from None
    if url.scheme not in _SCHEMES:
        got = f"{url.scheme[:16]!r}" if url.scheme and "://" in value else "no scheme"
        raise ConfigError(
            f"{where}: a proxy URL starts with http://, https://, socks5:// or socks5h://, "
            f"got {got}"
        )
    if not url.host:
        raise ConfigError(f"{where}: the proxy URL names no host")
    if url.scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise ConfigError(f"{where}: a SOCKS proxy needs the socksio package (pip install socksio)")
    secrets: tuple[str, ...] = ()
    if url.username or url.password:
        token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode("ascii")
        raw = urllib.parse.quote(url.password, safe="")
        secrets = tuple(s for s in (url.password, raw, token) if s)
    return _Via(httpx.Proxy(url), secrets)


def _environment() -> list[_Rule]:
    """The environment's rules, as ``httpx._utils.get_environment_proxies`` reads them."""
    found = urllib.request.getproxies()
    rules: list[_Rule] = []
    for scheme, name in _VARIABLES.items():
        value = found.get(scheme)
        if value:
            if os.environ.get(name.lower()) == value:
                where = name.lower()
            elif os.environ.get(name) == value:
                where = name
            else:
                where = f"the system's {scheme} proxy setting"
            value = value if "://" in value else f"http://{value}"
            rules.append(_Rule.of(f"{scheme}://", _proxy(value, where)))
    for entry in found.get("no", "").split(","):
        host = entry.strip()
        if host == "*":
            return []
        if not host:
            continue
        if "://" in host:
            rules.append(_Rule.of(host, None))
        elif _ip_version(host) == 4 or host.lower() == "localhost":
            rules.append(_Rule.of(f"all://{host}", None))
        elif _ip_version(host) == 6:
            rules.append(_Rule.of(f"all://[{host}]", None))
        else:
            rules.append(_Rule.of(f"all://*{host}", None))
    return rules


def _ip_version(host: str) -> int | None:
    """4 or 6 if ``host`` (before any ``/``) is an IP address."""
    try:
        return ipaddress.ip_address(host.split("/")[0]).version
    except ValueError:
        return None


def check(proxy: str | None, trust_env: bool, where: str = "proxy=") -> None:
    """``ConfigError`` if ``proxy`` (the setting ``where``), or (when trusting it) the
    environment, names a proxy srt cannot use."""
    if proxy is not None:
        _proxy(proxy, where)
    elif trust_env:
        _environment()


class Proxies:
    """The proxy rules of one ``Transport``: where each URL goes (cached per origin), and
    the transports that send through each proxy, closed with it."""

    @classmethod
    def of(
        cls, proxy: str | None, trust_env: bool, verify: ssl.SSLContext | str | bool, http2: bool
    ) -> Proxies | None:
        """The rules ``proxy=`` or the environment set; None if no URL goes through a proxy."""
        if proxy is not None:
            rules = [_Rule.of("all://", _proxy(proxy, "proxy="))]
        else:
            rules = _environment() if trust_env else []
        if not any(rule.via is not None for rule in rules):
            return None
        return cls(rules, verify, http2)

    def __init__(
        self, rules: list[_Rule], verify: ssl.SSLContext | str | bool, http2: bool
    ) -> None:
        self._rules = sorted(rules, key=lambda rule: rule.priority)  # stable, as httpx's
        self._verify = verify
        self._http2 = http2
        self._origins: dict[tuple[str, str, int | None], _Via | None] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<srt Proxies {[r.via for r in self._rules if r.via]}>"

    def _route(self, url: httpx.URL) -> _Via | None:
        """The proxy of ``url``'s origin (None: directly), chosen once per origin."""
        origin = (url.scheme, url.host, url.port)
        try:
            return self._origins[origin]
        except KeyError:
            pass
        via = next((rule.via for rule in self._rules if rule.matches(*origin)), None)
        if len(self._origins) >= 64:
            self._origins.clear()
        self._origins[origin] = via
        return via

    def proxy_for(self, url: httpx.URL) -> httpx.URL | None:
        """The proxy ``url`` goes through (without its credentials); None: directly."""
        via = self._route(url)
        return None if via is None else via.proxy.url

    def transport_for(self, url: httpx.URL) -> httpx.BaseTransport | None:
        """The transport that sends ``url`` through its proxy; None: send it directly."""
        via = self._route(url)
        if via is None:
            return None
        transport = via.transport
        if transport is None:
            with self._lock:
                if self._closed:
                    raise httpx.ConnectError("the transport is closed")
                if via.transport is None:
                    via.transport = _ProxyTransport(via, self._verify, self._http2, _LIMITS)
                transport = via.transport
        return transport

    def mounts(
        self, trust_env: bool, limits: httpx.Limits
    ) -> dict[str, httpx.AsyncBaseTransport | None]:
        """The rules as an ``httpx.AsyncClient``'s ``mounts`` (one transport a proxy; None:
        directly): the client, not trusting the environment itself, chooses as these do."""
        made: dict[int, httpx.AsyncBaseTransport] = {}
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        for rule in self._rules:
            via = rule.via
            if via is not None and id(via) not in made:
                made[id(via)] = _AsyncProxyTransport(
                    via, self._verify, trust_env, self._http2, limits
                )
            mounts[rule.pattern] = None if via is None else made[id(via)]
        return mounts

    def close(self) -> None:
        with self._lock:
            self._closed = True
            vias = {id(rule.via): rule.via for rule in self._rules if rule.via is not None}
            for via in vias.values():
                if via.transport is not None:
                    via.transport.close()
