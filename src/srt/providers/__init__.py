"""Providers: one module per LLM API, found through a registry.

``PROVIDERS`` maps a provider's command-line name (``srt chat --provider NAME``) to
``"module:attr"``: a ``Provider`` subclass (its ``from_options`` builds it), or a
callable ``(Options) -> (provider, model)``. Another package adds a provider without
touching srt, as llm's plugins do, with an entry point in the ``srt.providers`` group::

    [project.entry-points."srt.providers"]
    echo = "srt_echo:Echo"

A provider in srt itself is one module here plus one line in ``PROVIDERS``. The
modules load on first use (``srt.OpenAI``, ``srt.providers.Anthropic`` and the rest are
looked up when first named), so ``import srt`` pays for no provider and none of httpx,
httpcore or asyncio.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
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

#: The names above, each from its module, loaded when first asked for (``__getattr__``).
_LAZY = {
    "Anthropic": "anthropic",
    "Azure": "azure",
    "Bedrock": "bedrock",
    "OpenAI": "openai",
    "OpenAICompatible": "compatible",
    "Options": "base",
    "Provider": "base",
}

Factory = Callable[["Options"], "tuple[Provider, str | None]"]


if not TYPE_CHECKING:  # (type checkers see the imports above, and no __getattr__)

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # (looked up once)
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


def _plugins() -> dict[str, str]:
    from importlib.metadata import entry_points  # (here: about 20 ms of ``import srt``)

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
    from .base import Provider

    if isinstance(obj, type) and issubclass(obj, Provider):
        return obj.from_options
    if not callable(obj):
        raise ConfigError(f"the provider {name!r} ({target}) is neither a Provider nor callable")
    return obj  # type: ignore[no-any-return]
