"""Test doubles that play the remote side: a local LLM-provider server (``ProviderServer``).

Self-contained: it imports only the standard library, never the rest of srt, so tests see
the real wire protocol and not srt's own idea of it. See ``srt.testing.server``.

The server module is imported lazily, so ``python -m srt.testing.server`` runs it once
(``python -m srt.testing`` is the same command line: ``srt.testing._cli``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._common import ApiError, CacheUsage, Prepared, Reply, ToolCall, cache_minimum, ntokens
from ._http import Fault
from ._replies import count_tokens, encode_event_frame, render

if TYPE_CHECKING:
    from .server import ENDPOINTS, ProviderServer, RequestRecord

__all__ = [
    "ENDPOINTS",
    "ApiError",
    "CacheUsage",
    "Fault",
    "Prepared",
    "ProviderServer",
    "Reply",
    "RequestRecord",
    "ToolCall",
    "cache_minimum",
    "count_tokens",
    "encode_event_frame",
    "ntokens",
    "render",
]

_LAZY = frozenset({"ENDPOINTS", "ProviderServer", "RequestRecord"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
