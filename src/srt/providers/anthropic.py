"""Anthropic Messages, with an API key (``$ANTHROPIC_API_KEY``)."""

from __future__ import annotations

import os
from typing import Any

from .base import Options, Provider, read_key

__all__ = ["Anthropic"]


class Anthropic(Provider):
    """Anthropic Messages (``x-api-key``, ``anthropic-version: 2023-06-01``)."""

    name = "anthropic"
    format = "anthropic.messages"
    default_model = "claude-sonnet-4-5"
    VERSION = "2023-06-01"

    def __init__(
        self, api_key: str | None = None, *, base_url: str | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.base_url = (
            base_url or os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        ).rstrip("/")
        self.__key = read_key(api_key, "ANTHROPIC_API_KEY", "Anthropic")
        self._secrets = tuple(s for s in (self.__key,) if s)

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        return cls(options.key, base_url=options.base_url), options.model or cls.default_model

    def url(self, model: str, stream: bool) -> str:
        return f"{self.base_url}/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.__key or "", "anthropic-version": self.VERSION}
