"""srt: an embedded stateful runtime for LLM conversations.

Sessions live in one SQLite file, content-addressed and prefix-chained; each
request is assembled from frozen per-message fragments, so history is never
re-serialized and prefixes stay byte-identical for provider prompt caches.
"""

from __future__ import annotations

from ._types import BuildStats, Message, Reply, SessionInfo, Usage
from ._version import __version__
from .errors import (
    ConfigError,
    ConflictError,
    ContextOverflowError,
    CorruptionError,
    EncryptionKeyError,
    HashKeyError,
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
    SessionLimitError,
    SessionNotFoundError,
    SrtError,
    StoreBusyError,
    StoreError,
    StreamInterruptedError,
    UnsupportedFeatureError,
)
from .runtime import Runtime, default_path
from .session import Session

__all__ = [
    "BuildStats",
    "ConfigError",
    "ConflictError",
    "ContextOverflowError",
    "CorruptionError",
    "EncryptionKeyError",
    "HashKeyError",
    "HistoryIndexError",
    "InvalidMessageError",
    "InvalidSessionNameError",
    "Message",
    "NotAnSrtDatabaseError",
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
    "SessionLimitError",
    "SessionNotFoundError",
    "SrtError",
    "StoreBusyError",
    "StoreError",
    "StreamInterruptedError",
    "UnsupportedFeatureError",
    "Usage",
    "__version__",
    "default_path",
]
