"""Plain frozen records that cross srt's layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BuildStats", "Message", "Reply", "SessionInfo", "Usage", "UsageSummary"]


@dataclass(frozen=True)
class Message:
    """A chat message in srt's canonical model (the OpenAI Chat Completions shape).

    ``content`` is a string or a list of parts (text, image by URL or by bytes).
    ``metadata`` is stored beside the message but never affects its hash or what
    a model sees. A plain OpenAI message dict is accepted wherever a ``Message`` is.
    """

    role: str
    content: Any = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    metadata: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role}
        if self.content is not None or self.tool_calls is None:
            d["content"] = self.content
        for key in ("name", "tool_calls", "tool_call_id", "metadata"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d


@dataclass(frozen=True, slots=True)
class BuildStats:
    """What one ``Session.request()`` did.

    ``serialized`` counts messages whose wire bytes had to be produced during this
    build (cache misses); ``reused`` counts fragments taken as frozen bytes.
    """

    format: str
    messages: int
    serialized: int
    reused: int
    nbytes: int
    notes: tuple[str, ...] = ()
    cache: Any = None  # srt.cache.CacheExplain for this request
    breakpoints: tuple[Any, ...] = ()  # the srt.cache.Breakpoint markers it placed
    window: tuple[int, ...] | None = None  # the messages a context window kept, if it cut
    cache_key: str | None = None  # the prompt_cache_key the body sent, if any


@dataclass(frozen=True)
class SessionInfo:
    """One row of ``Runtime.sessions()``."""

    name: str
    messages: int
    created: float
    updated: float
    head_prefix: str | None


@dataclass(frozen=True)
class Usage:
    """Token usage of one request, normalised across providers.

    ``input_tokens`` is *all* input tokens of the request, cached or not
    (OpenAI's ``prompt_tokens``; Anthropic's ``input_tokens`` +
    ``cache_read_input_tokens`` + ``cache_creation_input_tokens``; Bedrock's
    ``inputTokens`` + ``cacheReadInputTokens`` + ``cacheWriteInputTokens``).
    ``cache_read_tokens`` of them were read from the provider's prompt cache and
    ``cache_write_tokens`` were written to it. ``uncached_input_tokens`` is the rest.
    ``cache_write_1h_tokens`` of the writes were written with a 1-hour TTL (Anthropic's
    ``cache_creation.ephemeral_1h_input_tokens``, Bedrock's ``cacheDetails``), which is
    priced higher than a 5-minute write. ``reasoning_tokens`` of the output tokens were
    the model's reasoning (OpenAI's ``reasoning_tokens``; they are counted, and billed,
    in ``output_tokens`` already).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        # A count a ledger column (64-bit) holds; a provider's usage that says otherwise
        # is malformed (the wire formats turn this ValueError into ProviderResponseError).
        for v in (self.input_tokens, self.output_tokens, self.cache_read_tokens,
                  self.cache_write_tokens, self.cache_write_1h_tokens,
                  self.reasoning_tokens):  # fmt: skip
            if not 0 <= v < 2**63:
                raise ValueError(f"a token count must be 0 to 2**63-1, got {v}")

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens


@dataclass(frozen=True)
class Reply:
    """A provider's reply, parsed by a wire format into srt's canonical model.

    ``message`` is a canonical assistant message dict (``content``, ``tool_calls``,
    ``artifacts``), ready for ``Session.append``. ``response_id`` is the provider's
    id for server-side state (OpenAI Responses), ``stop_reason`` its finish reason.
    """

    message: dict[str, Any]
    usage: Usage
    model: str | None = None
    response_id: str | None = None
    stop_reason: str | None = None


@dataclass(frozen=True)
class UsageSummary:
    """Totals over usage-ledger rows (``Session.usage()``, ``Runtime.usage()``)."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    body_bytes: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens

    @property
    def cache_hit_share(self) -> float:
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> UsageSummary:
        def total(key: str) -> int:
            return sum(int(r[key] or 0) for r in rows)

        return cls(
            requests=len(rows),
            errors=sum(1 for r in rows if r["status"] != "ok"),
            input_tokens=total("input_tokens"),
            cache_read_tokens=total("cache_read_tokens"),
            cache_write_tokens=total("cache_write_tokens"),
            output_tokens=total("output_tokens"),
            body_bytes=total("body_bytes"),
            cache_write_1h_tokens=sum(int(r.get("cache_write_1h_tokens") or 0) for r in rows),
            reasoning_tokens=sum(int(r.get("reasoning_tokens") or 0) for r in rows),
        )
