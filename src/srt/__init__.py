"""srt: an embedded stateful runtime for LLM conversations.

Sessions live in one store (a SQLite file by default), content-addressed and
prefix-chained; each request is assembled from frozen per-message fragments, so
history is never re-serialized and prefixes stay byte-identical for provider prompt
caches. Every public name is listed, with a line each, in ``docs/api.md``.
"""

from __future__ import annotations

import typing as _typing

from ._types import BuildStats, Message, Reply, SessionInfo, Usage
from ._version import __version__
from .cache import CachePolicy
from .context import WindowPolicy
from .entries import Entry
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
    ModelNotFoundError,
    NotAnSrtDatabaseError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderContextOverflowError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProxyAuthError,
    RateLimitError,
    SchemaVersionError,
    SessionError,
    SessionExistsError,
    SessionLimitError,
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
from .runtime import Runtime, default_path
from .session import Session

if _typing.TYPE_CHECKING:
    from .pricing import Price, Pricing
    from .providers import Anthropic, Azure, Bedrock, OpenAI, OpenAICompatible, Provider
    from .providers.local import Local, LocalProvider
    from .providers.policy import RetryPolicy, Timeouts
    from .providers.sigv4 import AwsCredentials
    from .savings import Baseline, Savings
    from .tasks import TaskEvent, TaskResult, ToolCall, ToolRun
    from .tools import Tool, tool
    from .wire.azure import AzureEndpoint

#: Names loaded when first named (``srt.OpenAI``), with their modules. The providers
#: bring httpx, httpcore and asyncio, about 90 ms of ``import srt`` that the store, the
#: CLI's reads and request building never use; the rest are for some programs only: the
#: tool loop (with ``docstring_parser``, ``concurrent.futures`` and ``logging``), prices
#: and savings (``datetime``, ``decimal``), a provider's options (``urllib``,
#: ``ipaddress``, the Azure and Responses formats). ``tests/test_exports.py`` checks that
#: ``import srt`` leaves them unloaded.
_LAZY = {
    "Anthropic": "srt.providers",
    "Azure": "srt.providers",
    "Bedrock": "srt.providers",
    "OpenAI": "srt.providers",
    "OpenAICompatible": "srt.providers",
    "Provider": "srt.providers",
    "Local": "srt.providers.local",
    "LocalProvider": "srt.providers.local",
    "RetryPolicy": "srt.providers.policy",
    "Timeouts": "srt.providers.policy",
    "AwsCredentials": "srt.providers.sigv4",
    "AzureEndpoint": "srt.wire.azure",
    "Price": "srt.pricing",
    "Pricing": "srt.pricing",
    "Baseline": "srt.savings",
    "Savings": "srt.savings",
    "TaskEvent": "srt.tasks",
    "TaskResult": "srt.tasks",
    "ToolCall": "srt.tasks",
    "ToolRun": "srt.tasks",
    "Tool": "srt.tools",
    "tool": "srt.tools",
}
#: The submodules ``import srt`` used to load, and no longer does: ``srt.tasks`` after a
#: bare ``import srt`` still finds them (importing one sets the attribute itself).
_SUBMODULES = frozenset({"ledger", "pricing", "providers", "savings", "tasks", "tools"})


if not _typing.TYPE_CHECKING:  # (type checkers see the imports above, and no __getattr__)

    def __getattr__(name: str) -> object:
        import importlib

        if name in _SUBMODULES:
            return importlib.import_module(f"{__name__}.{name}")
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # (looked up once)
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


__all__ = [
    "Anthropic",
    "AwsCredentials",
    "Azure",
    "AzureEndpoint",
    "Baseline",
    "Bedrock",
    "BuildStats",
    "CachePolicy",
    "ConfigError",
    "ConflictError",
    "ContextOverflowError",
    "CorruptionError",
    "EncryptionKeyError",
    "Entry",
    "HashKeyError",
    "HeadRecord",
    "HistoryIndexError",
    "InvalidMessageError",
    "InvalidSessionNameError",
    "Local",
    "LocalProvider",
    "Message",
    "ModelNotFoundError",
    "NotAnSrtDatabaseError",
    "OpenAI",
    "OpenAICompatible",
    "Price",
    "Pricing",
    "Provider",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderContextOverflowError",
    "ProviderError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "ProxyAuthError",
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
    "SessionLimitError",
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
    "WindowPolicy",
    "__version__",
    "default_path",
    "tool",
]
