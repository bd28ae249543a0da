"""Wire formats: canonical message bytes -> per-provider fragments and envelopes.

Each format is a pure module (no I/O) exposing ``FORMAT``, an instance of
``srt.wire.base.WireFormat``. ``build_body`` assembles a whole request directly;
``Session.request`` does the same incrementally, reusing fragments, and both
give identical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import _core
from ..errors import ConfigError, UnsupportedFeatureError
from ..message import canonical_tool
from ..tokens import GENERIC_ESTIMATE, Tokenizer
from . import anthropic, azure, bedrock, openai_chat, openai_responses
from .base import CacheRules, Frag, Target, WireFormat

__all__ = [
    "FORMATS",
    "Frag",
    "Target",
    "WireFormat",
    "build_body",
    "cache_rules_for",
    "family",
    "get_format",
    "tokenizer_for",
]

FORMATS: dict[str, WireFormat] = {
    f.name: f
    for f in (
        openai_chat.FORMAT,
        openai_responses.FORMAT,
        azure.CHAT,
        azure.RESPONSES,
        anthropic.FORMAT,
        bedrock.FORMAT,
    )
}


def get_format(name: str) -> WireFormat:
    """The wire format called ``name``; ``ConfigError`` for an unknown one."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown wire format {name!r}; known formats: {sorted(FORMATS)}"
        ) from None


def family(provider: str) -> WireFormat | None:
    """The first registered format of provider family ``provider`` (case-insensitive)."""
    want = provider.strip().lower()
    return next((f for f in FORMATS.values() if f.provider == want), None)


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
