"""Providers: one module per LLM API, found through a registry.

``PROVIDERS`` maps a provider's command-line name (``srt chat --provider NAME``) to
``"module:attr"``: a ``Provider`` subclass (its ``from_options`` builds it), or a
callable ``(Options) -> (provider, model)``. Another package adds a provider without
touching srt, as llm's plugins do, with an entry point in the ``srt.providers`` group::

    [project.entry-points."srt.providers"]
    echo = "srt_echo:Echo"

A provider in srt itself is one module here plus one line in ``PROVIDERS``. The
modules load on first use, so ``import srt`` does not pay for the local provider.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError
from .anthropic import Anthropic
from .azure import Azure
from .base import Options, Provider
from .bedrock import Bedrock
from .compatible import OpenAICompatible
from .openai import OpenAI

__all__ = [
    "PROVIDERS",
    "Anthropic",
    "Azure",
    "Bedrock",
    "OpenAI",
    "OpenAICompatible",
    "Options",
    "Provider",
    "factory",
    "names",
]

#: Command-line name -> ``"module:attr"`` (a Provider subclass, or a factory callable).
PROVIDERS: dict[str, str] = {
    "openai": "srt.providers.openai:OpenAI",
    "responses": "srt.providers.openai:responses",
    "azure": "srt.providers.azure:Azure",
    "anthropic": "srt.providers.anthropic:Anthropic",
    "bedrock": "srt.providers.bedrock:Bedrock",
    "compatible": "srt.providers.compatible:OpenAICompatible",
    "local": "srt.providers.local:LocalProvider",
}

Factory = Callable[[Options], "tuple[Provider, str | None]"]


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="srt.providers")}


def names() -> list[str]:
    """Every provider name: srt's own in their order, then those of plug-ins, sorted."""
    return [*PROVIDERS, *sorted(set(_plugins()) - set(PROVIDERS))]


def factory(name: str) -> Factory:
    """How to build the provider called ``name`` from ``Options``; ``ConfigError`` if no
    provider has that name or its module cannot be loaded."""
    target = PROVIDERS.get(name) or _plugins().get(name)
    if target is None:
        raise ConfigError(f"no provider named {name!r}; known: {', '.join(names())}")
    module, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:  # e.g. the local provider without its extra
        raise ConfigError(f"--provider {name} is not available here ({exc})") from None
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, type) and issubclass(obj, Provider):
        return obj.from_options
    if not callable(obj):
        raise ConfigError(f"the provider {name!r} ({target}) is neither a Provider nor callable")
    return obj  # type: ignore[no-any-return]
