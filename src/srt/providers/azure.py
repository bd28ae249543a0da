"""Azure OpenAI: an ``AzureEndpoint`` plus an ``api-key`` or an Entra bearer token."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._types import check_flag
from ..errors import ConfigError
from ..wire.azure import AzureEndpoint
from ..wire.notfound import NotFound
from .base import Options, Provider, _quoted, check_key
from .policy import Missing, shown_url

__all__ = ["Azure"]


class Azure(Provider):
    """Azure OpenAI: an ``AzureEndpoint`` plus an ``api-key`` or an Entra bearer token.

    ``deployments`` names the model each deployment runs (``{"prod-chat": "gpt-4o"}``,
    keyed by the deployment name a send passes as ``model``): ``Session.predict`` prices
    a deployment by it, and so does the ledger when a reply names no model (a reply's
    own model wins). Without it, a deployment named for no model is unpriced until a
    reply names the model.

    ``prompt_cache_key=True`` sends srt's prompt-cache key (``CachePolicy(key=...)``) as
    the body's ``prompt_cache_key``, as srt does to OpenAI; Azure takes it on GPT-5.6 and
    later models, so it is off by default."""

    name = "azure"
    label = "Azure OpenAI"

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        """``srt chat --provider azure``: ``--base-url`` (or ``$AZURE_OPENAI_ENDPOINT``),
        ``--model`` the deployment, ``$OPENAI_API_VERSION`` (else the v1 API)."""
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
        prompt_cache_key: bool = False,
        deployments: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if not isinstance(endpoint, AzureEndpoint):
            raise ConfigError(
                "Azure's endpoint must be an srt.AzureEndpoint, e.g. srt.AzureEndpoint("
                "'https://NAME.openai.azure.com', deployment='prod-chat'), got "
                f"{type(endpoint).__name__}"
            )
        if not isinstance(api, str) or api not in ("chat", "responses"):
            raise ConfigError("api must be 'chat' or 'responses'")
        check_flag("prompt_cache_key", prompt_cache_key)
        if prompt_cache_key:  # (GPT-5.6 and later take it; older deployments may refuse it)
            self.cache_key_param = "prompt_cache_key"
        if deployments is not None and not isinstance(deployments, Mapping):
            raise ConfigError("deployments maps deployment names to the models they run")
        self.deployments = dict(deployments or {})
        for name, model in self.deployments.items():
            if not (isinstance(name, str) and name and isinstance(model, str) and model):
                raise ConfigError(
                    f"deployments maps deployment names to model names, got {name!r:.40}: "
                    f"{model!r:.40}"
                )
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
        """Ask for a streamed reply, and (Chat Completions) its usage in the last chunk."""
        if self.api == "chat":
            return {"stream": True, "stream_options": {"include_usage": True}}
        return {"stream": True}

    def url(self, model: str, stream: bool) -> str:
        """The endpoint's URL for this provider's API (``AzureEndpoint.url``)."""
        return self.endpoint.url("chat" if self.api == "chat" else "responses")

    def auth_headers(self) -> dict[str, str]:
        """The ``api-key`` header, or the Entra token as a bearer token."""
        return dict(self.__auth)

    def missing(self, found: NotFound, model: str) -> Missing:
        """Azure's words: a deployment (the URL's on the deployment path, else the body's
        ``model``), an api-version, the endpoint."""
        ep = self.endpoint
        base = shown_url(ep.base_url, self._secrets)
        if found.kind in ("model", "deployment"):
            dep = ep.deployment if self.api == "chat" and not ep.use_v1 else None
            dep = dep or model
            hint = (
                f"Azure OpenAI has no deployment {_quoted(dep)} at {base}; check the "
                "deployment name (not the model name)"
            )
            return Missing(hint, dep, self.name)
        if found.kind == "api_version" and ep.api_version is not None:
            return Missing(
                f"Azure OpenAI at {base} does not serve api-version {_quoted(ep.api_version)} "
                "on this path; check the api-version (and the endpoint)"
            )
        return Missing(
            f"Azure OpenAI at {base} serves no such path; check the endpoint "
            "(https://{resource}.openai.azure.com) and the api-version"
        )

    def served_model(self, model: str) -> str | None:
        """The model deployment ``model`` runs, as ``deployments`` says (if another)."""
        served = self.deployments.get(model)
        return served if served != model else None
