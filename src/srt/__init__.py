"""srt: an embedded stateful runtime for LLM conversations.

Sessions live in one SQLite file, content-addressed and prefix-chained; each
request is assembled from frozen per-message fragments, so history is never
re-serialized and prefixes stay byte-identical for provider prompt caches.
"""

from __future__ import annotations

from ._types import BuildStats, Message, Reply, SessionInfo, Usage
from ._version import __version__
from .entries import Entry
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
    StoreUnavailableError,
    StreamInterruptedError,
    ToolArgumentsError,
    UnsupportedFeatureError,
)
from .history import HeadRecord
from .pricing import Price, Pricing
from .providers.base import Anthropic, Azure, Bedrock, OpenAI, OpenAICompatible, Provider
from .providers.local import LocalProvider
from .providers.sigv4 import AwsCredentials
from .providers.transport import RetryPolicy, Timeouts
from .runtime import Runtime, default_path
from .savings import Baseline, Savings
from .session import Session
from .tasks import TaskEvent, TaskResult, ToolCall, ToolRun
from .tools import Tool, tool
from .wire.azure import AzureEndpoint

__all__ = [
    "Anthropic",
    "AwsCredentials",
    "Azure",
    "AzureEndpoint",
    "Baseline",
    "Bedrock",
    "BuildStats",
    "ConfigError",
    "ConflictError",
    "ContextOverflowError",
    "CorruptionError",
    "Entry",
    "HeadRecord",
    "HistoryIndexError",
    "InvalidMessageError",
    "InvalidSessionNameError",
    "LocalProvider",
    "Message",
    "NotAnSrtDatabaseError",
    "OpenAI",
    "OpenAICompatible",
    "Price",
    "Pricing",
    "Provider",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "RateLimitError",
    "Reply",
    "RetryPolicy",
    "Runtime",
    "Savings",
    "SchemaVersionError",
    "Session",
    "SessionError",
    "SessionExistsError",
    "SessionInfo",
    "SessionNotFoundError",
    "SrtError",
    "StoreBusyError",
    "StoreError",
    "StoreUnavailableError",
    "StreamInterruptedError",
    "TaskEvent",
    "TaskResult",
    "Timeouts",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolRun",
    "UnsupportedFeatureError",
    "Usage",
    "__version__",
    "default_path",
    "tool",
]
