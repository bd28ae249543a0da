"""An OpenAI-compatible server (llama.cpp, vLLM, Ollama's ``/v1``) at a base URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._types import check_flag
from ..errors import ConfigError
from .base import Options, Provider
from .openai import OpenAI

__all__ = ["OpenAICompatible"]


class OpenAICompatible(OpenAI):
    """An OpenAI-compatible server at ``base_url`` (llama.cpp, vLLM, Ollama's ``/v1``).

    ``extra_params`` are added to every body, e.g. ``{"cache_prompt": True}`` for
    llama.cpp. The key is optional. With ``api="responses"``, ``server_state=True``
    chains each request from the previous stored response (``previous_response_id``)
    as with OpenAI; off by default, since llama.cpp refuses it and Ollama keeps none.
    """

    name = "openai_compatible"
    label = "the OpenAI-compatible server"
    #: Images go as they are stored (``srt.wire.images.any_image``): a compatible server may
    #: take a media type or URL scheme OpenAI refuses (a BMP, vLLM's ``file://``).
    any_image = True

    @classmethod
    def from_options(cls, options: Options) -> tuple[Provider, str | None]:
        """``srt chat --provider compatible``: ``--base-url`` (or ``$OPENAI_BASE_URL``),
        the key (optional) from ``--key-env`` or ``$OPENAI_API_KEY``."""
        base_url = options.base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise ConfigError("--provider compatible needs --base-url (or $OPENAI_BASE_URL)")
        key = options.key or os.environ.get("OPENAI_API_KEY")
        return cls(base_url, api_key=key), options.model

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api: str = "chat",
        extra_params: Mapping[str, Any] | None = None,
        server_state: bool = False,
        **kw: Any,
    ) -> None:
        if not base_url:
            raise ConfigError("OpenAICompatible needs a base_url")
        if extra_params is not None and not isinstance(extra_params, Mapping):
            raise ConfigError(
                "extra_params must be a dict of body parameters, e.g. "
                f"{{'cache_prompt': True}}, got {type(extra_params).__name__}"
            )
        check_flag("server_state", server_state)
        super().__init__(api_key or "", base_url=base_url, api=api, **kw)
        self.extra_params = dict(extra_params or {})
        self.server_state = server_state

    def _key_required(self) -> bool:
        """No: an OpenAI-compatible server may take no key."""
        return False
