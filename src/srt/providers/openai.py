"""OpenAI: Chat Completions or Responses, with an API key (``$OPENAI_API_KEY``)."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import Options, Provider, header_value, read_key
from .base import base_url as url_of

__all__ = ["OpenAI", "responses"]


class OpenAI(Provider):
    """OpenAI: Chat Completions (``api="chat"``) or Responses (``api="responses"``)."""

    name = "openai"
    label = "OpenAI"
    default_model = "gpt-4o-mini"

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        """``srt chat --provider openai``: ``--key-env``'s key or ``$OPENAI_API_KEY``."""
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
        if not isinstance(api, str) or api not in ("chat", "responses"):
            raise ConfigError("api must be 'chat' or 'responses'")
        self.api = api
        self.format = f"openai.{api}"
        self.base_url = url_of(base_url, "OPENAI_BASE_URL", "https://api.openai.com/v1")
        self.__key = read_key(api_key, "OPENAI_API_KEY", type(self).__name__, self._key_required())
        self._secrets = tuple(s for s in (self.__key,) if s)
        self._extra = {
            k: header_value(v, arg)
            for k, v, arg in (
                ("openai-organization", organization, "organization"),
                ("openai-project", project, "project"),
            )
            if v is not None and v != ""
        }

    def _key_required(self) -> bool:
        """Whether a key must be given (an OpenAI-compatible server may take none)."""
        return True

    def stream_params(self) -> dict[str, Any]:
        """Ask for a streamed reply, and (Chat Completions) its usage in the last chunk."""
        if self.api == "chat":
            return {"stream": True, "stream_options": {"include_usage": True}}
        return {"stream": True}

    def url(self, model: str, stream: bool) -> str:
        """The endpoint of this provider's API under ``base_url``."""
        return f"{self.base_url}/{'chat/completions' if self.api == 'chat' else 'responses'}"

    def auth_headers(self) -> dict[str, str]:
        """The bearer key, and the organization and project headers, if given."""
        out = dict(self._extra)
        if self.__key:
            out["authorization"] = f"Bearer {self.__key}"
        return out


def responses(options: Options) -> tuple[Provider, str | None]:
    """``srt chat --provider responses``: OpenAI's Responses API."""
    provider = OpenAI(options.key, base_url=options.base_url, api="responses")
    return provider, options.model or OpenAI.default_model
