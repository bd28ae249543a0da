"""Every error srt raises, in one tree.

::

    SrtError
    ├── ConfigError(SrtError, ValueError)
    ├── InvalidMessageError(SrtError, ValueError)
    │   ├── UnsupportedFeatureError     (.format, .feature)
    │   └── ToolArgumentsError
    ├── StoreError
    │   ├── StoreBusyError
    │   ├── StoreUnavailableError       (.retryable)
    │   ├── SchemaVersionError
    │   ├── NotAnSrtDatabaseError
    │   ├── CorruptionError
    │   ├── EncryptionKeyError
    │   └── HashKeyError
    ├── SessionError
    │   ├── InvalidSessionNameError(SessionError, ValueError)
    │   ├── SessionNotFoundError(SessionError, LookupError)
    │   ├── SessionExistsError
    │   ├── HistoryIndexError(SessionError, IndexError)
    │   ├── ConflictError
    │   ├── ContextOverflowError
    │   └── SessionLimitError
    └── ProviderError
        ├── ProviderAuthError
        │   └── ProxyAuthError
        ├── RateLimitError            (.retry_after)
        ├── ProviderTimeoutError
        ├── ProviderConnectionError
        ├── ProviderResponseError     (.status, .body)
        │   ├── ModelNotFoundError      (.model, .provider)
        │   └── ProviderContextOverflowError(ProviderResponseError, ContextOverflowError)
        │                                   (.provider_message, .prompt_tokens, .limit)
        └── StreamInterruptedError

Exceptions from ``apsw`` and ``psycopg`` are translated into ``StoreError``
subclasses at each engine's boundary (``srt.store.sqlite.db.translate``,
``srt.store.postgres.errors.translate``); no database driver's exception reaches the
caller. Messages never contain message content, API keys or auth headers.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConflictError",
    "ContextOverflowError",
    "CorruptionError",
    "EncryptionKeyError",
    "HashKeyError",
    "HistoryIndexError",
    "InvalidMessageError",
    "InvalidSessionNameError",
    "ModelNotFoundError",
    "NotAnSrtDatabaseError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderContextOverflowError",
    "ProviderError",
    "ProviderResponseError",
    "ProviderTimeoutError",
    "ProxyAuthError",
    "RateLimitError",
    "SchemaVersionError",
    "SessionError",
    "SessionExistsError",
    "SessionLimitError",
    "SessionNotFoundError",
    "SrtError",
    "StoreBusyError",
    "StoreError",
    "StoreUnavailableError",
    "StreamInterruptedError",
    "ToolArgumentsError",
    "UnsupportedFeatureError",
]


class SrtError(Exception):
    """Base class of every error srt raises."""


class ConfigError(SrtError, ValueError):
    """A runtime or provider was configured with an invalid value."""


class InvalidMessageError(SrtError, ValueError):
    """A message was rejected before anything was hashed or written."""


class UnsupportedFeatureError(InvalidMessageError):
    """A message uses something the target wire format cannot express.

    srt never drops content silently: converting into a format that cannot hold
    a feature (an image URL for Bedrock, say) raises this, naming both.
    """

    def __init__(self, format: str, feature: str) -> None:
        super().__init__(f"{format} cannot express {feature}")
        self.format = format
        self.feature = feature


class ToolArgumentsError(InvalidMessageError):
    """A model's tool call arguments do not fit the tool's parameters.

    The task loop gives this message to the model as the call's result, so the
    model can correct the call; it reaches the caller only from ``Tool.bind``.
    """


class StoreError(SrtError):
    """The SQLite store failed or refused the file."""


class StoreBusyError(StoreError):
    """The database stayed locked by another writer past the busy timeout."""


class StoreUnavailableError(StoreError):
    """The database server could not be reached, or the connection to it broke (a
    server restart, a killed backend, a network cut).

    Retryable: the engine reconnects on the next call. The operation that failed
    was either not stored or, for an append whose outcome the engine could not
    learn, may have been: ``Session.refresh()`` shows which before a retry.
    """

    retryable = True


class SchemaVersionError(StoreError):
    """The file was written by a newer srt whose schema this version cannot read."""


class NotAnSrtDatabaseError(StoreError):
    """The file is a SQLite database that srt did not create; it is left untouched."""


class CorruptionError(StoreError):
    """The file is damaged, truncated, not a database, or fails a hash check."""


class EncryptionKeyError(StoreError):
    """The file is encrypted and the key is missing or wrong, or a key was given for a
    file that is not encrypted. Found by reading the file; it is left untouched."""


class HashKeyError(StoreError):
    """The store hashes with a keyed BLAKE2b and the hash key is missing or wrong (or a
    key was given for a store that hashes with XXH3); nothing is read or linked."""


class SessionError(SrtError):
    """An operation on a session could not be carried out."""


class InvalidSessionNameError(SessionError, ValueError):
    """A session name is empty, too long or not valid Unicode text."""


class SessionNotFoundError(SessionError, LookupError):
    """No session has that name."""


class SessionExistsError(SessionError):
    """A session with that name already exists."""


class HistoryIndexError(SessionError, IndexError):
    """A position (``at``, ``index``, a rewind count) is outside the session's history."""


class ConflictError(SessionError):
    """The session head moved since this handle last saw it (a concurrent append).

    Nothing was written. Call ``Session.refresh()`` and retry, or append with
    ``rebase=True`` to put the new messages on top of the new head.
    """


class ContextOverflowError(SessionError):
    """The assembled context does not fit the model's window under the chosen policy."""


class SessionLimitError(SessionError):
    """The store holds its maximum number of sessions (``Runtime(max_sessions=...)``);
    nothing was written."""


class ProviderError(SrtError):
    """A provider call failed."""


class ProviderAuthError(ProviderError):
    """The provider refused the credentials (401/403)."""


class ProxyAuthError(ProviderAuthError):
    """A proxy on the way to the provider refused its own credentials (407), to a CONNECT
    or to a request sent through it: never retried."""


class RateLimitError(ProviderError):
    """The provider rate-limited the request (429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderTimeoutError(ProviderError):
    """Connecting, waiting for a chunk, or the whole call took too long."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached, or dropped the connection before replying."""


class ProviderResponseError(ProviderError):
    """The provider answered with an error status or a body srt cannot parse."""

    def __init__(self, message: str, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ModelNotFoundError(ProviderResponseError):
    """The provider has no model (or Azure deployment) by the name the request sent:
    OpenAI's ``model_not_found``, Azure's ``DeploymentNotFound``, Anthropic's
    ``not_found_error`` for a model, Bedrock's "The provided model identifier is invalid."
    or ``ResourceNotFoundException``, an OpenAI-compatible server's "model ... does not
    exist".

    ``model`` is the name as sent (for Azure, the deployment's), ``provider`` the
    provider's name (``"openai"``, ``"azure"``...). The message names both and what to
    check. Never retried: the same name would be refused again. Nothing is appended to
    the session.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        body: str | None = None,
        *,
        model: str = "",
        provider: str = "",
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.model = model
        self.provider = provider


class ProviderContextOverflowError(ProviderResponseError, ContextOverflowError):
    """The provider refused the request because the prompt does not fit the model's
    context window (OpenAI's ``context_length_exceeded``, Anthropic's "prompt is too
    long", Bedrock's "Input is too long", llama.cpp's ``exceed_context_size_error``...).

    Both ``except ContextOverflowError`` (srt's own window policy raises that) and
    ``except ProviderResponseError`` catch it. ``provider_message`` is the provider's own
    text; ``prompt_tokens`` and ``limit`` are the prompt's size and the model's window in
    tokens where the provider states them, else ``None``. Never retried: the same
    request would be refused again. Nothing is appended to the session.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        body: str | None = None,
        *,
        provider_message: str = "",
        prompt_tokens: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.provider_message = provider_message
        self.prompt_tokens = prompt_tokens
        self.limit = limit


class StreamInterruptedError(ProviderError):
    """A streamed reply stopped before its end; the partial reply is kept."""
