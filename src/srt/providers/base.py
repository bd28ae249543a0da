"""The provider contract: where a request goes, how it is authenticated, how it streams.

A provider turns an assembled body (bytes, never re-serialized) into an
``HTTPRequest`` and owns a pooled sync and async transport. Credentials come from
arguments or the provider's usual environment variables; they are held privately,
never shown by ``repr()``, and scrubbed from error text. Each provider is one module
of this package, found through the registry in ``srt.providers``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .._core import Body
from .._types import check_flag, unknown_keyword
from ..errors import ConfigError, ProviderError
from ..wire import get_format
from ..wire.notfound import RULES as NOT_FOUND_RULES
from ..wire.notfound import NotFound
from ..wire.overflow import Overflow
from .policy import Missing, shown_url
from .proxies import check as check_proxy
from .transport import AsyncTransport, HTTPRequest, RetryPolicy, Timeouts, Transport, redact

__all__ = ["Options", "Provider", "check_key", "header_value", "read_key"]


@dataclass(frozen=True)
class Options:
    """A provider as the command line and the environment describe it (``srt chat``).

    ``model`` is ``--model`` or ``$SRT_MODEL``; ``model_flag`` only ``--model``. ``key``
    is the key read from ``--key-env``'s variable, or ``None``: the provider reads its
    usual variable itself. A key is never a command-line argument.
    """

    model: str | None = None
    model_flag: str | None = None
    key: str | None = None
    base_url: str | None = None
    region: str | None = None


class Provider:
    """Base class. ``format`` is the wire format of the bodies this provider sends.

    ``proxy`` (``http://[user:pass@]host:port``, ``https://`` or ``socks5://``) sends every
    request through that proxy; without it, ``trust_env`` (default True) honours
    ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY`` as httpx and the official
    SDKs do. Both apply to the sync and the async transport.
    """

    #: The name in the usage ledger.
    name = "provider"
    #: The provider as error messages name it.
    label = "the provider"
    format = "openai.chat"
    #: The model ``srt chat`` uses when neither ``--model`` nor ``$SRT_MODEL`` names one.
    default_model: str | None = None
    #: Whether the server keeps stored responses to chain from (``previous_response_id``,
    #: where the format has it): a send after a stored reply then carries only what is
    #: new. A server that refuses ``previous_response_id`` (llama.cpp) turns it off
    #: for its provider at the first refusal (srt resends that request in full).
    server_state = True
    #: The body parameter this provider takes srt's prompt-cache key in when its format's
    #: rules name none (``Azure(prompt_cache_key=True)``); ``None``: the format's rules.
    cache_key_param: str | None = None

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        """This provider as ``options`` describe it, and the model to use (``None``: the
        user must name one). The registry calls it for ``srt chat --provider NAME``."""
        raise ConfigError(f"{cls.__name__} cannot be set up from the command line")

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        verify: ssl.SSLContext | str | os.PathLike[str] | bool = True,
        http2: bool | None = None,
        transport: Transport | None = None,
        async_transport: AsyncTransport | None = None,
        proxy: str | None = None,
        trust_env: bool = True,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise _unknown(type(self), next(iter(unknown)))
        if isinstance(verify, os.PathLike):  # (a pathlib.Path to a CA bundle)
            verify = os.fspath(verify)
        _check_options(timeouts, retry, verify, http2, transport, async_transport, trust_env)
        if proxy is not None:
            check_proxy(proxy, False)  # (now, not at the first send; never quoting it)
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._verify = verify
        self._http2 = http2
        self._proxy = proxy  # may hold credentials: never shown
        self._trust_env = trust_env
        self._transport = transport
        self._async_transport = async_transport
        self._secrets: tuple[str, ...] = ()
        self._closed = False

    # -- transports ----------------------------------------------------------------

    def _transport_options(self) -> dict[str, Any]:
        """What the sync and the async transport this provider makes are given."""
        return {
            "timeouts": self.timeouts,
            "retry": self.retry,
            "verify": self._verify,
            "http2": self._http2,
            "proxy": self._proxy,
            "trust_env": self._trust_env,
        }

    @property
    def transport(self) -> Transport:
        """The pooled sync HTTP transport this provider sends through (made on first
        use with its timeouts, retry policy, TLS and proxy settings, or the one given)."""
        if self._closed:
            raise self._closed_error()
        if self._transport is None:
            self._transport = Transport(**self._transport_options())
        return self._transport

    @property
    def async_transport(self) -> AsyncTransport:
        """The asyncio twin of ``transport``."""
        if self._closed:
            raise self._closed_error()
        if self._async_transport is None:
            self._async_transport = AsyncTransport(**self._transport_options())
        return self._async_transport

    def _closed_error(self) -> ProviderError:
        return ProviderError(
            f"this {type(self).__name__} provider was closed (close() or aclose()): nothing "
            "was sent; make a new provider to send again"
        )

    def close(self) -> None:
        """Close the provider's connections, sync and asyncio (those of srt's asyncio pool
        are plain sockets, closed here too; a proxy's or HTTP/2's asyncio connections
        need ``aclose()``). A closed provider sends nothing: ``ProviderError``."""
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        if self._async_transport is not None:
            self._async_transport.close()

    async def aclose(self) -> None:
        """``close()``, with the asyncio connections of every kind closed on the loop."""
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        if self._async_transport is not None:
            await self._async_transport.aclose()

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving a ``with`` block closes the provider (``close()``)."""
        self.close()

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Leaving an ``async with`` block closes the provider (``aclose()``)."""
        await self.aclose()

    def redact(self, text: str) -> str:
        """``text`` without this provider's secrets (or anything shaped like an API key)."""
        return redact(text, self._secrets)

    # -- requests ------------------------------------------------------------------

    def served_model(self, model: str) -> str | None:
        """The model a request naming ``model`` runs, when this provider knows it and it
        is another (an Azure deployment's, ``Azure(deployments=...)``); else ``None``.
        Prices a prediction, and a ledger row whose reply names no model."""
        return None

    def stream_params(self) -> dict[str, Any]:
        """Body parameters that ask for a streamed reply."""
        return {"stream": True}

    def url(self, model: str, stream: bool) -> str:
        """The URL a request for ``model`` (streamed or not) is sent to."""
        raise ConfigError(f"{type(self).__name__} has no endpoint")

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate a request (they carry the key: never logged)."""
        return {}

    def request(
        self,
        model: str,
        body: bytes | Body,
        stream: bool,
        params: Mapping[str, Any] | None = None,
    ) -> HTTPRequest:
        """The HTTP request for ``body``; ``params`` are the body parameters it carries
        (a provider may choose a header by them)."""
        headers = {"content-type": "application/json", "accept": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        headers.update(self.auth_headers())
        headers.update(self.version_headers(params or {}))
        return HTTPRequest(
            "POST",
            self.url(model, stream),
            headers,
            body,
            stream=stream,
            secrets=self._secrets,
            not_found=self.not_found(model),
        )

    def context_overflow(
        self, status: int, body: str, headers: Mapping[str, str]
    ) -> Overflow | None:
        """Whether an error answer (``status``, its body's text, its headers) refuses the
        prompt as longer than the model's context window: the provider's error shape, as
        its wire format knows it (``srt.wire.overflow``). The transport then raises
        ``ProviderContextOverflowError`` instead of ``ProviderResponseError``. A provider
        whose server words it otherwise overrides this."""
        return get_format(self.format).context_overflow(status, body, headers)

    def not_found(self, model: str) -> Callable[[int, str, Mapping[str, str]], Missing | None]:
        """Tells an error answer (``status``, its body's text, its headers) to a request
        naming ``model`` that says the model (or deployment, api-version, path) does not
        exist, by its wire format's provider family (``srt.wire.notfound``), and says
        what to check (``missing``)."""

        def tell(status: int, body: str, headers: Mapping[str, str]) -> Missing | None:
            # (looked up here, on an error answer: not on every request's way out)
            rule = NOT_FOUND_RULES.get(get_format(self.format).provider)
            found = rule(status, body, headers) if rule is not None else None
            return None if found is None else self.missing(found, model)

        return tell

    def missing(self, found: NotFound, model: str) -> Missing:
        """What to check when the provider says ``found.kind`` does not exist, for a
        request naming ``model``: OpenAI's and the OpenAI-compatible servers' words
        (the other providers override it)."""
        if found.kind == "model":
            hint = f"{self.label} has no model {_quoted(model)} (or this key may not use it)"
            return Missing(hint + "; check the model name", model, self.name)
        base = self._shown_base()
        if base.endswith("/v1"):
            return Missing(f"{self.label} serves no such path under {base}; check the base URL")
        return Missing(f"404 from {self.label} at {base}: is the base URL missing /v1?")

    def _shown_base(self) -> str:
        """The base URL requests go under, as error text shows it."""
        return shown_url(str(getattr(self, "base_url", "")), self._secrets)

    def version_headers(self, params: Mapping[str, Any]) -> dict[str, str]:
        """API-version headers for a request with body parameters ``params``."""
        return {}

    def __repr__(self) -> str:
        return f"<srt {type(self).__name__} provider format={self.format}>"


#: What the official SDKs' options are in srt (``OpenAI(timeout=20, max_retries=3)``).
_SDK_OPTIONS = {
    "timeout": "timeouts=srt.Timeouts(connect=5, idle=60, total=600) (seconds)",
    "max_retries": "retry=srt.RetryPolicy(max_retries=3)",
}


def _unknown(cls: type, name: str) -> ConfigError:
    """The error for keyword ``name`` that ``cls``'s constructor does not take, with
    what to pass instead when it is an SDK's option or a misspelling of srt's."""
    hint = f"srt's is {_SDK_OPTIONS[name]}" if name in _SDK_OPTIONS else ""
    return unknown_keyword(cls, name, hint)


def _check_options(
    timeouts: Any,
    retry: Any,
    verify: Any,
    http2: Any,
    transport: Any,
    async_transport: Any,
    trust_env: Any,
) -> None:
    """``ConfigError``, naming the argument and what it takes, for a provider's
    transport options of the wrong kind (``timeouts=5``, ``retry=3``), which would
    otherwise fail at the first send or be taken for a truth value."""
    if timeouts is not None and not isinstance(timeouts, Timeouts):
        raise ConfigError(
            "timeouts must be an srt.Timeouts, e.g. timeouts=srt.Timeouts(connect=5, "
            f"idle=60, total=600) (seconds), got {type(timeouts).__name__}"
        )
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigError(
            "retry must be an srt.RetryPolicy, e.g. retry=srt.RetryPolicy(max_retries=3), "
            f"got {type(retry).__name__}"
        )
    if not isinstance(verify, (bool, str, ssl.SSLContext)):
        raise ConfigError(
            "verify must be True, False, a CA bundle's path (a str or pathlib.Path) or an "
            f"ssl.SSLContext, got {type(verify).__name__}"
        )
    if http2 is not None and not isinstance(http2, bool):
        raise ConfigError(f"http2 must be True, False or None, got {type(http2).__name__}")
    check_flag("trust_env", trust_env)
    if transport is not None and not isinstance(transport, Transport):
        raise ConfigError(f"transport must be an srt Transport, got {type(transport).__name__}")
    if async_transport is not None and not isinstance(async_transport, AsyncTransport):
        raise ConfigError(
            f"async_transport must be an srt AsyncTransport, got {type(async_transport).__name__}"
        )


def _quoted(name: str) -> str:
    """A model or deployment name as a message shows it (its first 200 characters)."""
    return "'" + (name if len(name) <= 200 else name[:200] + "...") + "'"


def base_url(given: Any, env: str | None, default: str, what: str = "base_url") -> str:
    """The endpoint a provider sends to: ``given``, else ``$env``, else ``default``,
    without a trailing slash; ``ConfigError`` unless it is an http(s) URL."""
    url = given or (os.environ.get(env) if env else None) or default
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be a URL string, got {type(url).__name__}")
    if not url.startswith(("http://", "https://")):
        # The value is not quoted: a key pasted into the wrong argument must not reach
        # the message.
        scheme = url.partition("://")[0] if "://" in url else ""
        got = f"a {scheme[:16]!r} URL" if scheme else "a value with no scheme"
        raise ConfigError(f"{what} must be an http:// or https:// URL, got {got}")
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL as exc:  # its text quotes the part at fault: not shown
        raise ConfigError(f"{what} is not a valid URL ({type(exc).__name__})") from None
    if not host:
        raise ConfigError(f"{what} has no host")
    return url.rstrip("/")


def read_key(value: str | None, env: str, what: str, required: bool = True) -> str | None:
    """``value``, else environment variable ``env``; ``ConfigError`` if ``required`` and unset."""
    key = value if value is not None else os.environ.get(env)
    if required and not key:
        raise ConfigError(f"{what} needs an API key: pass api_key= or set {env}")
    return check_key(key, what) or None


def header_value(value: Any, what: str) -> str:
    """``value``, a setting sent as an HTTP header (``organization=``), or ``ConfigError``
    naming ``what`` unless it is a str a header can carry (the value is not shown)."""
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a str, got {type(value).__name__}")
    if not (value.isascii() and value.isprintable()):
        raise ConfigError(
            f"{what} holds a character an HTTP header cannot carry (a line break, a "
            "control character or one that is not ASCII)"
        )
    return value


def check_key(key: str | None, what: str) -> str | None:
    """``key``, or ``ConfigError`` if an HTTP header cannot carry it (a character that
    is not printable ASCII: a line break, a typo'd letter). The key is not shown."""
    if key is not None and not isinstance(key, str):
        hint = " (decode it: api_key=key.decode())" if isinstance(key, bytes) else ""
        raise ConfigError(f"{what}'s API key must be a str, got {type(key).__name__}{hint}")
    if key and not (key.isascii() and key.isprintable()):
        raise ConfigError(
            f"{what}'s API key holds a character an HTTP header cannot carry "
            "(a line break, a control character or one that is not ASCII)"
        )
    return key
