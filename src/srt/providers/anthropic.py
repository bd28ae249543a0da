"""Anthropic Messages, with an API key (``$ANTHROPIC_API_KEY``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..wire.notfound import NotFound
from .base import Options, Provider, _quoted, read_key
from .base import base_url as url_of
from .policy import Missing

__all__ = ["Anthropic"]


class Anthropic(Provider):
    """Anthropic Messages (``x-api-key``, ``anthropic-version``).

    ``version`` pins the ``anthropic-version`` header. By default srt sends the current
    version, ``VERSION`` (2026-10-21, as the official SDKs do), except for a request
    that sets ``temperature``, ``top_p`` or ``top_k``: that version rejects them with
    400, so such a request goes out as ``SAMPLING_VERSION`` (2023-06-01), the version
    that accepts them.
    """

    name = "anthropic"
    label = "Anthropic"
    format = "anthropic.messages"
    default_model = "claude-sonnet-4-5"
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
        self.base_url = url_of(base_url, "ANTHROPIC_BASE_URL", "https://api.anthropic.com")
        if version is not None and (not isinstance(version, str) or not version.strip()):
            raise ConfigError("version must be an anthropic-version string such as 2026-10-21")
        self.version = version
        self.__key = read_key(api_key, "ANTHROPIC_API_KEY", "Anthropic")
        self._secrets = tuple(s for s in (self.__key,) if s)

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        """``srt chat --provider anthropic``: ``--key-env``'s key or ``$ANTHROPIC_API_KEY``."""
        return cls(options.key, base_url=options.base_url), options.model or cls.default_model

    def url(self, model: str, stream: bool) -> str:
        """The Messages endpoint under ``base_url``."""
        return f"{self.base_url}/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        """The ``x-api-key`` header."""
        return {"x-api-key": self.__key or ""}

    def missing(self, found: NotFound, model: str) -> Missing:
        """Anthropic's words: the model, else the base URL (is ``/v1`` doubled?)."""
        if found.kind == "model":
            hint = f"Anthropic has no model {_quoted(model)}; check the model name"
            return Missing(hint, model, self.name)
        base = self._shown_base()
        if base.endswith("/v1"):  # (srt adds /v1/messages itself)
            return Missing(f"404 from Anthropic at {base}: is /v1 doubled? srt adds /v1/messages")
        return Missing(f"Anthropic serves no such path under {base}; check the base URL")

    def version_headers(self, params: Mapping[str, Any]) -> dict[str, str]:
        """The ``anthropic-version`` header: ``version``, else as the class says."""
        if self.version is not None:
            return {"anthropic-version": self.version}
        sampling = any(k in params for k in self.SAMPLING_PARAMS)
        return {"anthropic-version": self.SAMPLING_VERSION if sampling else self.VERSION}
