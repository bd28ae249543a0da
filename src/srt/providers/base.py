"""Providers: where a request goes, how it is authenticated, and how its reply streams.

A provider turns an assembled body (bytes, never re-serialized) into an
``HTTPRequest`` and owns a pooled sync and async transport. Credentials come from
arguments or the provider's usual environment variables; they are held privately,
never shown by ``repr()``, and scrubbed from error text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError
from ..wire.azure import AzureEndpoint
from .sigv4 import AwsCredentials, sign
from .transport import AsyncTransport, HTTPRequest, RetryPolicy, Timeouts, Transport

__all__ = ["Anthropic", "Azure", "Bedrock", "OpenAI", "OpenAICompatible", "Provider"]


class Provider:
    """Base class. ``format`` is the wire format of the bodies this provider sends."""

    name = "provider"
    format = "openai.chat"

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        http2: bool | None = None,
        transport: Transport | None = None,
        async_transport: AsyncTransport | None = None,
    ) -> None:
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._verify = verify
        self._http2 = http2
        self._transport = transport
        self._async_transport = async_transport
        self._secrets: tuple[str, ...] = ()

    # -- transports ----------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = Transport(
                timeouts=self.timeouts, retry=self.retry, verify=self._verify, http2=self._http2
            )
        return self._transport

    @property
    def async_transport(self) -> AsyncTransport:
        if self._async_transport is None:
            self._async_transport = AsyncTransport(
                timeouts=self.timeouts, retry=self.retry, verify=self._verify, http2=self._http2
            )
        return self._async_transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        if self._async_transport is not None:
            await self._async_transport.aclose()

    # -- requests ------------------------------------------------------------------

    def stream_params(self) -> dict[str, Any]:
        """Body parameters that ask for a streamed reply."""
        return {"stream": True}

    def url(self, model: str, stream: bool) -> str:
        raise ConfigError(f"{type(self).__name__} has no endpoint")

    def auth_headers(self) -> dict[str, str]:
        return {}

    def request(
        self,
        model: str,
        body: bytes,
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
            "POST", self.url(model, stream), headers, body, stream=stream, secrets=self._secrets
        )

    def version_headers(self, params: Mapping[str, Any]) -> dict[str, str]:
        """API-version headers for a request with body parameters ``params``."""
        return {}

    def __repr__(self) -> str:
        return f"<srt {type(self).__name__} provider format={self.format}>"


def _key(value: str | None, env: str, what: str, required: bool = True) -> str | None:
    key = value if value is not None else os.environ.get(env)
    if required and not key:
        raise ConfigError(f"{what} needs an API key: pass api_key= or set {env}")
    return key or None


class OpenAI(Provider):
    """OpenAI: Chat Completions (``api="chat"``) or Responses (``api="responses"``)."""

    name = "openai"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        api: str = "chat",
        organization: str | None = None,
        project: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if api not in ("chat", "responses"):
            raise ConfigError("api must be 'chat' or 'responses'")
        self.api = api
        self.format = f"openai.{api}"
        self.base_url = (
            base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        self.__key = _key(api_key, "OPENAI_API_KEY", "OpenAI", self._key_required())
        self._secrets = tuple(s for s in (self.__key,) if s)
        self._extra = {
            k: v
            for k, v in (("openai-organization", organization), ("openai-project", project))
            if v
        }

    def _key_required(self) -> bool:
        return True

    def stream_params(self) -> dict[str, Any]:
        if self.api == "chat":
            return {"stream": True, "stream_options": {"include_usage": True}}
        return {"stream": True}

    def url(self, model: str, stream: bool) -> str:
        return f"{self.base_url}/{'chat/completions' if self.api == 'chat' else 'responses'}"

    def auth_headers(self) -> dict[str, str]:
        out = dict(self._extra)
        if self.__key:
            out["authorization"] = f"Bearer {self.__key}"
        return out


class OpenAICompatible(OpenAI):
    """An OpenAI-compatible server at ``base_url`` (llama.cpp, vLLM, Ollama's ``/v1``).

    ``extra_params`` are added to every body, e.g. ``{"cache_prompt": True}`` for
    llama.cpp. The key is optional.
    """

    name = "openai_compatible"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api: str = "chat",
        extra_params: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        if not base_url:
            raise ConfigError("OpenAICompatible needs a base_url")
        super().__init__(api_key or "", base_url=base_url, api=api, **kw)
        self.extra_params = dict(extra_params or {})

    def _key_required(self) -> bool:
        return False


class Azure(Provider):
    """Azure OpenAI: an ``AzureEndpoint`` plus an ``api-key`` or an Entra bearer token."""

    name = "azure"

    def __init__(
        self,
        endpoint: AzureEndpoint,
        *,
        api_key: str | None = None,
        token: str | None = None,
        api: str = "chat",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if api not in ("chat", "responses"):
            raise ConfigError("api must be 'chat' or 'responses'")
        self.api = api
        self.format = f"azure.{api}"
        self.endpoint = endpoint
        if api_key is None and token is None:
            api_key = os.environ.get("AZURE_OPENAI_API_KEY")
        self.__auth = endpoint.auth_headers(api_key, token)
        self._secrets = tuple(s for s in (api_key, token) if s)

    def stream_params(self) -> dict[str, Any]:
        if self.api == "chat":
            return {"stream": True, "stream_options": {"include_usage": True}}
        return {"stream": True}

    def url(self, model: str, stream: bool) -> str:
        return self.endpoint.url("chat" if self.api == "chat" else "responses")

    def auth_headers(self) -> dict[str, str]:
        return dict(self.__auth)


class Anthropic(Provider):
    """Anthropic Messages (``x-api-key``, ``anthropic-version``).

    ``version`` pins the ``anthropic-version`` header. By default srt sends the current
    version, ``VERSION`` (2026-10-21, as the official SDKs do), except for a request
    that sets ``temperature``, ``top_p`` or ``top_k``: that version rejects them with
    400, so such a request goes out as ``SAMPLING_VERSION`` (2023-06-01), the version
    that accepts them.
    """

    name = "anthropic"
    format = "anthropic.messages"
    VERSION = "2026-10-21"
    SAMPLING_VERSION = "2023-06-01"
    SAMPLING_PARAMS = ("temperature", "top_p", "top_k")

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        version: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.base_url = (
            base_url or os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        ).rstrip("/")
        if version is not None and (not isinstance(version, str) or not version.strip()):
            raise ConfigError("version must be an anthropic-version string such as 2026-10-21")
        self.version = version
        self.__key = _key(api_key, "ANTHROPIC_API_KEY", "Anthropic")
        self._secrets = tuple(s for s in (self.__key,) if s)

    def url(self, model: str, stream: bool) -> str:
        return f"{self.base_url}/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.__key or ""}

    def version_headers(self, params: Mapping[str, Any]) -> dict[str, str]:
        if self.version is not None:
            return {"anthropic-version": self.version}
        sampling = any(k in params for k in self.SAMPLING_PARAMS)
        return {"anthropic-version": self.SAMPLING_VERSION if sampling else self.VERSION}


class Bedrock(Provider):
    """Amazon Bedrock Converse / ConverseStream.

    Auth: a Bedrock API key as a bearer token (``api_key=`` or
    ``AWS_BEARER_TOKEN_BEDROCK``), else SigV4 with ``credentials=`` or the standard
    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``.
    """

    name = "bedrock"
    format = "bedrock.converse"

    def __init__(
        self,
        *,
        region: str | None = None,
        api_key: str | None = None,
        credentials: AwsCredentials | None = None,
        endpoint_url: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not self.region:
            raise ConfigError("Bedrock needs a region: pass region= or set AWS_REGION")
        self.endpoint_url = (
            endpoint_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"
        ).rstrip("/")
        self.__key = api_key if api_key is not None else os.environ.get("AWS_BEARER_TOKEN_BEDROCK")
        self.__creds = None if self.__key else (credentials or AwsCredentials.from_env())
        if not self.__key and self.__creds is None:
            raise ConfigError(
                "Bedrock needs an API key (api_key= or AWS_BEARER_TOKEN_BEDROCK) "
                "or AWS credentials (credentials= or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
            )
        secrets = [self.__key]
        if self.__creds is not None:
            secrets += [self.__creds.secret_access_key, self.__creds.session_token]
        self._secrets = tuple(s for s in secrets if s)

    def stream_params(self) -> dict[str, Any]:
        return {}

    def url(self, model: str, stream: bool) -> str:
        op = "converse-stream" if stream else "converse"
        return f"{self.endpoint_url}/model/{quote(model, safe='')}/{op}"

    def request(
        self,
        model: str,
        body: bytes,
        stream: bool,
        params: Mapping[str, Any] | None = None,
    ) -> HTTPRequest:
        url = self.url(model, stream)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if stream:
            headers["accept"] = "application/vnd.amazon.eventstream"
        if self.__key:
            headers["authorization"] = f"Bearer {self.__key}"
        else:
            assert self.__creds is not None
            headers.update(sign("POST", url, headers, body, self.__creds, self.region or ""))
        return HTTPRequest("POST", url, headers, body, stream=stream, secrets=self._secrets)
