"""Wire formats: canonical message bytes -> per-provider fragments and envelopes.

Each format is a pure module (no I/O) exposing ``FORMAT``, an instance of
``srt.wire.base.WireFormat``. ``build_body`` assembles a whole request directly;
``Session.request`` does the same incrementally, reusing fragments, and both
give identical bytes.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import _core
from ..errors import ConfigError, UnsupportedFeatureError
from ..message import canonical_tool
from ..tokens import GENERIC_ESTIMATE, Tokenizer
from .base import CacheRules, Frag, Target, WireFormat

__all__ = [
    "FORMATS",
    "NAMES",
    "Frag",
    "Target",
    "WireFormat",
    "build_body",
    "cache_rules_for",
    "family",
    "get_format",
    "tokenizer_for",
]

#: Each built-in format's module and the name it has there, in registration order. A
#: module is imported when its format is first used (``get_format``), and every one when
#: ``FORMATS`` is first read: most programs use one format, and the others (with
#: ``urllib``, ``ipaddress``, ``uuid`` and the event-stream decoder) cost ``import srt``.
_BUILTIN = {
    "openai.chat": ("openai_chat", "FORMAT"),
    "openai.responses": ("openai_responses", "FORMAT"),
    "azure.chat": ("azure", "CHAT"),
    "azure.responses": ("azure", "RESPONSES"),
    "anthropic.messages": ("anthropic", "FORMAT"),
    "bedrock.converse": ("bedrock", "FORMAT"),
}
#: The built-in formats' names (what ``srt request --format`` offers).
NAMES = tuple(_BUILTIN)
_MODULES = frozenset(module for module, _ in _BUILTIN.values())

_formats: dict[str, WireFormat] | None = None  # FORMATS, once built


def _builtin(name: str) -> WireFormat:
    module, attr = _BUILTIN[name]
    fmt: WireFormat = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    return fmt


def _all() -> dict[str, WireFormat]:
    global _formats
    if _formats is None:
        _formats = {name: _builtin(name) for name in _BUILTIN}
        globals()["FORMATS"] = _formats  # (looked up once)
    return _formats


if TYPE_CHECKING:
    #: Every registered format by name (built when first read: see ``_BUILTIN``).
    FORMATS: dict[str, WireFormat]
else:

    def __getattr__(name: str) -> object:
        if name == "FORMATS":
            return _all()
        if name in _MODULES:  # (``srt.wire.anthropic`` without importing it first)
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_format(name: str) -> WireFormat:
    """The wire format called ``name``; ``ConfigError`` for an unknown one."""
    if _formats is None and isinstance(name, str) and name in _BUILTIN:
        return _builtin(name)
    formats = _all()
    try:
        return formats[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown wire format {name!r}; known formats: {sorted(formats)}"
        ) from None


def family(provider: str) -> WireFormat | None:
    """The first registered format of provider family ``provider`` (case-insensitive)."""
    want = provider.strip().lower()
    return next((f for f in _all().values() if f.provider == want), None)


def tokenizer_for(provider: str, model: str) -> Tokenizer:
    """The best tokenizer for ``model`` at provider family ``provider``: its formats'
    choice (``WireFormat.tokenizer``), ``GENERIC_ESTIMATE`` for a family none has."""
    fmt = family(provider)
    return fmt.tokenizer(model) if fmt is not None else GENERIC_ESTIMATE


def cache_rules_for(provider: str) -> CacheRules:
    """How provider family ``provider``'s prompt cache works (default rules if unknown)."""
    fmt = family(provider)
    return fmt.cache if fmt is not None else CacheRules()


def layout(fmt: WireFormat, frags: Sequence[Frag]) -> tuple[list[bytes], list[bytes], str | None]:
    """``(system fragments, glued message pieces, last wire role)`` for ``frags`` in order."""
    system: list[bytes] = []
    pieces: list[bytes] = []
    last: str | None = None
    started = False
    for f in frags:
        if f.kind == "system" and not started:
            system.append(f.data)
            continue
        if not f.data:
            continue  # a message with nothing to send (see Frag)
        if f.kind == "system":
            raise UnsupportedFeatureError(
                fmt.name, "a system or developer message after the conversation has started"
            )
        started = True
        pieces.append(fmt.glue(last, f.role))
        pieces.append(f.data)
        last = f.role
    return system, pieces, last


def build_body(
    fmt: WireFormat | str,
    bodies: Sequence[bytes],
    *,
    model: str,
    target: Target | None = None,
    tools: Sequence[dict[str, Any]] = (),
    params: dict[str, Any] | None = None,
) -> bytes:
    """The request body for canonical message ``bodies``, built from scratch."""
    f = get_format(fmt) if isinstance(fmt, str) else fmt
    tgt = target or Target(f.provider, model)
    frags = [f.render(b, tgt) for b in bodies]
    system, pieces, last = layout(f, frags)
    tool_frags = [f.tool_fragment(json.loads(canonical_tool(t))) for t in tools]
    head, tail = f.envelope(model, dict(params or {}), system, tool_frags)
    return _core.assemble(head, pieces, b"", f.close(last) + tail)
