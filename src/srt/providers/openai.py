"""OpenAI: Chat Completions or Responses, with an API key (``$OPENAI_API_KEY``)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import Options, Provider, read_key
from .base import base_url as url_of

__all__ = ["OpenAI", "responses"]


class OpenAI(Provider):
    """OpenAI: Chat Completions (``api="chat"``) or Responses (``api="responses"``)."""

    name = "openai"
    label = "OpenAI"
    default_model = "gpt-4o-mini"

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        return cls(options.key, base_url=options.base_url), options.model or cls.default_model

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
        self.base_url = url_of(base_url, "OPENAI_BASE_URL", "https://api.openai.com/v1")
        self.__key = read_key(api_key, "OPENAI_API_KEY", "OpenAI", self._key_required())
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


def responses(options: Options) -> tuple[Provider, str | None]:
    """``srt chat --provider responses``: OpenAI's Responses API."""
    provider = OpenAI(options.key, base_url=options.base_url, api="responses")
    return provider, options.model or OpenAI.default_model
