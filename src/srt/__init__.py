"""srt: an embedded stateful runtime for LLM conversations.

Sessions live in one store (a SQLite file by default), content-addressed and
prefix-chained; each request is assembled from frozen per-message fragments, so
history is never re-serialized and prefixes stay byte-identical for provider prompt
caches. Every public name is listed, with a line each, in ``docs/api.md``.
"""

from __future__ import annotations

from ._types import BuildStats, Message, Reply, SessionInfo, Usage
from ._version import __version__
from .cache import CachePolicy
from .context import WindowPolicy
from .errors import (
    ConfigError,
    ConflictError,
    ContextOverflowError,
    CorruptionError,
    HistoryIndexError,
    InvalidMessageError,
    InvalidSessionNameError,
    NotAnSrtDatabaseError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    RateLimitError,
    SchemaVersionError,
    SessionError,
    SessionExistsError,
    SessionNotFoundError,
    SrtError,
    StoreBusyError,
    StoreError,
    StreamInterruptedError,
    UnsupportedFeatureError,
)
from .pricing import Pricing
from .providers import Anthropic, Azure, Bedrock, OpenAI, OpenAICompatible, Provider
from .runtime import Runtime, default_path
from .session import Session
from .wire.azure import AzureEndpoint

__all__ = [
    "Anthropic",
    "Azure",
    "AzureEndpoint",
    "Bedrock",
    "BuildStats",
    "CachePolicy",
    "ConfigError",
    "ConflictError",
    "ContextOverflowError",
    "CorruptionError",
    "HistoryIndexError",
    "InvalidMessageError",
    "InvalidSessionNameError",
    "Local",
    "Message",
    "NotAnSrtDatabaseError",
    "OpenAI",
    "OpenAICompatible",
    "Pricing",
    "Provider",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "RateLimitError",
    "Reply",
    "Runtime",
    "SchemaVersionError",
    "Session",
    "SessionError",
    "SessionExistsError",
    "SessionInfo",
    "SessionNotFoundError",
    "SrtError",
    "StoreBusyError",
    "StoreError",
    "StreamInterruptedError",
    "UnsupportedFeatureError",
    "Usage",
    "WindowPolicy",
    "__version__",
    "default_path",
]


def __getattr__(name: str) -> object:
    # ``srt.Local`` loads the local provider (llama.cpp's supervisor) on first use only.
    if name == "Local":
        from .providers.local import LocalProvider

        return LocalProvider
    raise AttributeError(f"module 'srt' has no attribute {name!r}")
