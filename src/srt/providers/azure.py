"""Azure OpenAI: an ``AzureEndpoint`` plus an ``api-key`` or an Entra bearer token."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError
from ..wire.azure import AzureEndpoint
from .base import Options, Provider, check_key

__all__ = ["Azure"]


class Azure(Provider):
    """Azure OpenAI: an ``AzureEndpoint`` plus an ``api-key`` or an Entra bearer token."""

    name = "azure"

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        endpoint = options.base_url or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ConfigError("--provider azure needs --base-url (or $AZURE_OPENAI_ENDPOINT)")
        if not options.model:
            raise ConfigError("--provider azure needs --model, the deployment name")
        version = os.environ.get("OPENAI_API_VERSION")
        ep = AzureEndpoint(
            endpoint, deployment=options.model, api_version=version, use_v1=not version
        )
        key = options.key or os.environ.get("AZURE_OPENAI_API_KEY")
        return cls(ep, api_key=key), options.model

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
        self.__auth = endpoint.auth_headers(
            check_key(api_key, "Azure OpenAI"), check_key(token, "Azure OpenAI")
        )
        self._secrets = tuple(s for s in (api_key, token) if s)

    def stream_params(self) -> dict[str, Any]:
        if self.api == "chat":
            return {"stream": True, "stream_options": {"include_usage": True}}
        return {"stream": True}

    def url(self, model: str, stream: bool) -> str:
        return self.endpoint.url("chat" if self.api == "chat" else "responses")

    def auth_headers(self) -> dict[str, str]:
        return dict(self.__auth)
