"""Azure OpenAI: the OpenAI Chat Completions and Responses bodies, Azure's URLs and auth.

Two formats speak exactly the OpenAI bodies under provider ``"azure"``:

- ``azure.chat`` (``AzureChat``, a subclass of ``OpenAIChat``);
- ``azure.responses`` (``AzureResponses``, a subclass of ``OpenAIResponses``). Its
  reasoning artifacts are kept under provider ``"azure"``, so they are replayed to the
  same Azure model only, never to api.openai.com (and vice versa).

Being provider ``"azure"``, they get no ``prompt_cache_key`` from the session's cache
planner (Azure takes it on GPT-5.6 and later models only): ``Azure(prompt_cache_key=True)``
sends it (``WireFormat.keyed``), or pass one as a parameter. Azure ignores the body's
``model`` on the deployment path and reads it as the deployment name on the v1 path.

For the provider layer, ``AzureEndpoint`` builds the URL and the auth headers::

    ep = AzureEndpoint("my-resource", deployment="gpt-4o", api_version="2024-10-21")
    ep.url("chat")
    # https://my-resource.openai.azure.com/openai/deployments/gpt-4o/chat/completions
    #     ?api-version=2024-10-21
    ep.url("responses")
    # https://my-resource.openai.azure.com/openai/responses?api-version=2024-10-21

    ep = AzureEndpoint("my-resource", use_v1=True)
    ep.url("chat")       # https://my-resource.openai.azure.com/openai/v1/chat/completions
    ep.url("responses")  # https://my-resource.openai.azure.com/openai/v1/responses

    ep.auth_headers(api_key="...")          # {"api-key": "..."}
    ep.auth_headers(bearer_token="...")     # {"Authorization": "Bearer ..."}  (Entra ID)

``resource_or_base_url`` is a resource name (``[A-Za-z0-9-]``, giving
``https://{resource}.openai.azure.com``) or a base URL ``http(s)://host[/path]``
(a custom domain or a gateway); a trailing ``/openai`` or ``/openai/v1`` on it is
ignored, since srt appends those itself. The deployment path needs ``deployment``
(for chat) and ``api_version``; the v1 path needs neither and adds
``?api-version=...`` only when one is given (e.g. ``"preview"``).

The endpoint holds no secret: keys go to ``auth_headers`` only, whose result is a
plain ``dict`` subclass whose ``repr`` hides the values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from ..errors import ConfigError
from .base import CacheRules
from .openai_chat import OpenAIChat
from .openai_responses import OpenAIResponses, model_bytes, to_canonical

__all__ = [
    "CHAT",
    "RESPONSES",
    "AuthHeaders",
    "AzureChat",
    "AzureEndpoint",
    "AzureResponses",
    "to_canonical_responses",
]

_RESOURCE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?")


#: Azure OpenAI caches as OpenAI does; ``prompt_cache_key`` only on newer models (opt-in).
AZURE_CACHE = CacheRules(min_tokens=1024, idle_ttl_s=300.0)


class AzureChat(OpenAIChat):
    name = "azure.chat"
    provider = "azure"
    cache = AZURE_CACHE

    def envelope(
        self, model: str, params: dict[str, Any], system: list[bytes], tools: list[bytes]
    ) -> tuple[bytes, bytes]:
        model_bytes(model)  # a ConfigError (not a UnicodeEncodeError) for a bad model
        return super().envelope(model, params, system, tools)


class AzureResponses(OpenAIResponses):
    name = "azure.responses"
    provider = "azure"
    cache = AZURE_CACHE


def to_canonical_responses(items: Any, model: str | None = None) -> list[dict[str, Any]]:
    """``openai_responses.to_canonical`` for items from Azure (artifacts of provider azure)."""
    return to_canonical(items, model, provider="azure")


class AuthHeaders(dict[str, str]):
    """HTTP headers carrying a credential: a ``dict`` whose ``repr`` never shows the values."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: '***'" for k in self) + "}"

    __str__ = __repr__


@dataclass(frozen=True)
class AzureEndpoint:
    """Where an Azure OpenAI request goes (no credentials here; see ``auth_headers``)."""

    resource_or_base_url: str
    deployment: str | None = None
    api_version: str | None = None
    use_v1: bool = False

    def __post_init__(self) -> None:
        base = self.resource_or_base_url
        if not isinstance(base, str) or not base:
            raise ConfigError("resource_or_base_url must be a non-empty string")
        if "://" in base:
            parts = urlsplit(base)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("an Azure base URL must be http(s)://host[/path]")
            if parts.query or parts.fragment:
                raise ConfigError("an Azure base URL must not have a query or fragment")
        elif not _RESOURCE.fullmatch(base):
            raise ConfigError(
                "an Azure resource name has 1-64 letters, digits and inner hyphens "
                "(or pass a base URL)"
            )
        for field in ("deployment", "api_version"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{field} must be a non-empty string or None")
        if not isinstance(self.use_v1, bool):
            raise ConfigError("use_v1 must be a bool")

    @property
    def base_url(self) -> str:
        """``https://{resource}.openai.azure.com`` or the given base URL, without ``/openai``."""
        base = self.resource_or_base_url
        if "://" not in base:
            return f"https://{base}.openai.azure.com"
        base = base.rstrip("/")
        for suffix in ("/openai/v1", "/openai"):
            if base.endswith(suffix):
                return base[: -len(suffix)]
        return base

    def url(self, kind: Literal["chat", "responses"]) -> str:
        """The request URL for ``kind`` (``"chat"`` or ``"responses"``)."""
        if kind not in ("chat", "responses"):
            raise ConfigError(f"unknown Azure endpoint kind {kind!r}; use 'chat' or 'responses'")
        path = "chat/completions" if kind == "chat" else "responses"
        version = self.api_version
        if self.use_v1:
            url = f"{self.base_url}/openai/v1/{path}"
        else:
            if version is None:
                raise ConfigError("the Azure deployment path needs api_version (or use_v1=True)")
            if kind == "chat":
                if self.deployment is None:
                    raise ConfigError("the Azure deployment path needs deployment (or use_v1=True)")
                dep = quote(self.deployment, safe="")
                url = f"{self.base_url}/openai/deployments/{dep}/chat/completions"
            else:
                url = f"{self.base_url}/openai/responses"
        if version is not None:
            url += "?api-version=" + quote(version, safe="")
        return url

    def auth_headers(
        self, api_key: str | None = None, bearer_token: str | None = None
    ) -> dict[str, str]:
        """``{"api-key": key}`` or ``{"Authorization": "Bearer token"}``: exactly one is needed."""
        given = [(n, v) for n, v in (("api_key", api_key), ("bearer_token", bearer_token)) if v]
        if len(given) != 1:
            raise ConfigError("pass exactly one of api_key and bearer_token")
        name, value = given[0]
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise ConfigError(f"{name} must be a string without line breaks")
        if name == "api_key":
            return AuthHeaders({"api-key": value})
        return AuthHeaders({"Authorization": "Bearer " + value})


CHAT = AzureChat()
RESPONSES = AzureResponses()
