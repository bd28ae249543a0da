"""Shared pieces of the fake providers: errors, the tokenizer, replies and the prompt caches.

The tokenizer is deliberately simple and documented, so tests can reason about it:

* A request's prompt is a list of *units*, in render order: tool definitions, then the
  system part, then the conversation. Each unit is rendered as compact JSON
  (``json.dumps(x, ensure_ascii=False, separators=(",", ":"))``, keys in the order received)
  with cache markers removed (``cache_control`` keys; Bedrock ``cachePoint`` blocks), so a
  marker never changes tokens.
* A unit's tokens are ``ceil(len(utf8 bytes) / 4)``; a token is the unit's next 4 bytes, so
  token boundaries restart at every unit.
* What a unit is depends on the provider (see each provider module): a message (OpenAI chat),
  an input item (Responses), a content block (Anthropic, Bedrock).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "STOPS",
    "ApiError",
    "BreakpointCache",
    "CacheUsage",
    "Clock",
    "OpenAICache",
    "Prepared",
    "Reply",
    "RequestRecord",
    "ToolCall",
    "cache_minimum",
    "dumps",
    "ntokens",
    "strip_markers",
]

JSON = dict[str, Any]


def dumps(obj: Any) -> str:
    """Compact JSON, non-ASCII kept, keys in the order given."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def ntokens(text: str) -> int:
    """Tokens of one unit: 1 token per 4 UTF-8 bytes, rounded up."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // 4)


def strip_markers(obj: Any) -> Any:
    """``obj`` without ``cache_control`` keys and without ``{"cachePoint": ...}`` list items."""
    if isinstance(obj, dict):
        return {k: strip_markers(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [
            strip_markers(v)
            for v in obj
            if not (isinstance(v, dict) and len(v) == 1 and "cachePoint" in v)
        ]
    return obj


class ApiError(Exception):
    """A request the provider rejects; each provider module renders it in its own format."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        etype: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.etype = etype
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        #: The whole error body, where the server answering is not the provider whose
        #: shape the endpoint otherwise gives (an OpenAI-compatible server's own).
        self.body = dict(body) if body is not None else None


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""


#: A reply's ``stop`` (a content filter stopped it) as each API's stop reason: OpenAI
#: Chat's ``finish_reason``, Anthropic's ``stop_reason``, Bedrock's ``stopReason`` (its
#: two words: ``guardrail_intervened`` a guardrail's, else ``content_filtered``); the
#: Responses API's is its response ``incomplete`` for ``content_filter``.
STOPS: dict[str, dict[str, str]] = {
    stop: {"openai": "content_filter", "anthropic": "refusal", "bedrock": bedrock}
    for stop, bedrock in [
        ("content_filter", "content_filtered"),
        ("guardrail_intervened", "guardrail_intervened"),
    ]
}
#: A reply cut off where the model's context window ends (Anthropic's and Bedrock's own
#: stop reason; OpenAI Chat says ``length``, the Responses API ``max_output_tokens``).
STOPS["model_context_window_exceeded"] = {
    "openai": "length",
    "anthropic": "model_context_window_exceeded",
    "bedrock": "model_context_window_exceeded",
}


@dataclass
class Reply:
    """What the fake model says: text and/or tool calls, after ``reasoning_tokens`` of
    hidden reasoning (counted in its output tokens, and reported apart by the OpenAI and
    Azure endpoints as theirs do). ``stop="content_filter"``: a content filter stopped it,
    each API saying so in its own words (``STOPS``). ``reasoning``: the summary of its
    reasoning, a ``reasoning`` item before its output on the Responses endpoints, a
    signed ``thinking`` block on Anthropic's, a ``reasoningContent`` block on Bedrock's."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning_tokens: int = 0
    stop: str | None = None
    reasoning: str = ""

    @property
    def output_tokens(self) -> int:
        n = ntokens(self.text)
        for call in self.tool_calls:
            n += ntokens(call.name) + ntokens(dumps(call.arguments))
        return max(n, 1) + self.reasoning_tokens

    @classmethod
    def coerce(cls, value: Any) -> Reply:
        if isinstance(value, Reply):
            return value
        if isinstance(value, str):
            return cls(text=value)
        if isinstance(value, dict):
            unknown = set(value) - {"text", "tool_calls", "reasoning_tokens", "stop", "reasoning"}
            if unknown:
                raise ValueError(f"unknown reply keys: {sorted(unknown)}")
            calls = []
            for c in value.get("tool_calls") or []:
                args = c.get("arguments", {})
                if isinstance(args, str):
                    args = json.loads(args)
                calls.append(
                    ToolCall(name=str(c["name"]), arguments=dict(args), id=c.get("id", ""))
                )
            thought = value.get("reasoning_tokens", 0)
            if isinstance(thought, bool) or not isinstance(thought, int) or thought < 0:
                raise ValueError("reasoning_tokens must be a whole number, 0 or more")
            stop = value.get("stop")
            if stop is not None and stop not in STOPS:
                raise ValueError(f"stop must be one of {sorted(STOPS)}")
            said = str(value.get("text") or "")
            return cls(said, calls, thought, stop, str(value.get("reasoning") or ""))
        raise TypeError(f"a reply is a str or a dict, not {type(value).__name__}")

    def cut(self, limit: int) -> Reply:
        """The text's longest run of whole words within ``limit`` tokens (what a model
        stopped by an output cap said); tool calls and reasoning are left out."""
        kept: list[str] = []
        for word in self.text.split(" "):
            if ntokens(" ".join([*kept, word])) > limit:
                break
            kept.append(word)
        return Reply(text=" ".join(kept))

    def chunks(self, size: int = 12) -> list[str]:
        """The text cut into word-aligned deltas of about ``size`` characters."""
        out: list[str] = []
        cur = ""
        for word in self.text.split(" "):
            piece = word if not cur and not out else " " + word
            if cur and len(cur) + len(piece) > size:
                out.append(cur)
                cur = piece
            else:
                cur += piece
        if cur:
            out.append(cur)
        return out


@dataclass
class Prepared:
    """A validated request, rendered for the tokenizer and the cache."""

    model: str
    stream: bool
    units: list[str]
    labels: list[str]
    breakpoints: list[tuple[int, str]] = field(default_factory=list)
    last_user_text: str = ""
    cache_key: str | None = None
    cache_ttl_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def boundaries(self) -> list[int]:
        """Cumulative token counts after each unit."""
        out, total = [], 0
        for u in self.units:
            total += ntokens(u)
            out.append(total)
        return out

    @property
    def total_tokens(self) -> int:
        return sum(ntokens(u) for u in self.units)


@dataclass
class CacheUsage:
    total: int
    read: int = 0
    written: int = 0
    written_1h: int = 0

    @property
    def uncached(self) -> int:
        return self.total - self.read - self.written


class Clock:
    """``time.monotonic()`` plus an offset that ``advance()`` moves: every TTL uses it."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


def cache_minimum(
    model: str, default: int = 1024, overrides: Mapping[str, int] | None = None
) -> int:
    """The smallest cacheable prefix for ``model`` (Anthropic and Bedrock rules)."""
    for needle, n in (overrides or {}).items():
        if needle in model:
            return n
    low = model.lower()
    if "haiku-4" in low:
        return 4096
    if "haiku" in low:
        return 2048
    return default


def _lcp_tokens(a: Sequence[bytes], b: Sequence[bytes]) -> int:
    """Tokens in the longest common token prefix of two unit lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x == y:
            n += -(-len(x) // 4)
            continue
        i = 0
        for cx, cy in zip(x, y, strict=False):
            if cx != cy:
                break
            i += 1
        return n + i // 4
    return n


@dataclass
class _Prompt:
    units: list[bytes]
    tokens: int
    ttl: float
    last_used: float


class OpenAICache:
    """Automatic prefix caching: hits of >= ``minimum`` tokens, in steps of ``step``.

    A prompt of at least ``minimum`` tokens writes its prefix, in whole steps, to the
    cache: ``written`` is that prefix less what was read (OpenAI reports it as
    ``cache_write_tokens`` and charges no fee for it)."""

    MAX_ENTRIES = 64

    def __init__(self, clock: Clock, ttl_s: float, minimum: int = 1024, step: int = 128) -> None:
        self.clock, self.ttl_s, self.minimum, self.step = clock, ttl_s, minimum, step
        self._spaces: dict[tuple[str, ...], list[_Prompt]] = {}

    def account(self, namespace: tuple[str, ...], prep: Prepared) -> CacheUsage:
        now = self.clock.now()
        units = [u.encode("utf-8") for u in prep.units]
        total = prep.total_tokens
        entries = [e for e in self._spaces.get(namespace, []) if e.last_used + e.ttl > now]
        best, best_entry = 0, None
        for e in entries:
            n = _lcp_tokens(units, e.units)
            if n > best:
                best, best_entry = n, e
        cached = written = 0
        if total >= self.minimum and best >= self.minimum:
            cached = best // self.step * self.step
            assert best_entry is not None
            best_entry.last_used = now
        if total >= self.minimum:
            # The prompt's prefix in whole steps is now cached: what was not is written.
            written = max(0, total // self.step * self.step - cached)
        ttl = prep.cache_ttl_s or self.ttl_s
        # A stored prompt that is a prefix of this one adds nothing: drop it.
        entries = [e for e in entries if _lcp_tokens(units, e.units) < e.tokens]
        entries.append(_Prompt(units, total, ttl, now))
        self._spaces[namespace] = entries[-self.MAX_ENTRIES :]
        return CacheUsage(total=total, read=cached, written=written)


@dataclass
class _Entry:
    tokens: int
    ttl: float
    expires: float


_TTL = {"5m": 300.0, "1h": 3600.0}


class BreakpointCache:
    """Explicit breakpoints (Anthropic ``cache_control``, Bedrock ``cachePoint``).

    An entry is the prefix of units up to and including a breakpoint's unit, keyed by a
    hash chain over the units. Reads look back from each breakpoint over at most
    ``lookback`` earlier units for the longest live entry; writes store each breakpoint's
    prefix of at least the model's minimum that is not cached yet.
    """

    def __init__(self, clock: Clock, lookback: int = 20) -> None:
        self.clock, self.lookback = clock, lookback
        self._entries: dict[tuple[tuple[str, ...], bytes], _Entry] = {}

    def account(self, namespace: tuple[str, ...], prep: Prepared, minimum: int) -> CacheUsage:
        now = self.clock.now()
        total = prep.total_tokens
        bounds = prep.boundaries
        chain: list[bytes] = []
        h = b""
        for u in prep.units:
            h = hashlib.sha256(h + u.encode("utf-8")).digest()
            chain.append(h)

        def live(i: int) -> _Entry | None:
            e = self._entries.get((namespace, chain[i]))
            if e is None or e.expires <= now:
                return None
            return e

        read = 0
        for b, _ttl in prep.breakpoints:
            for j in range(b, max(-1, b - self.lookback - 1), -1):
                e = live(j)
                if e is not None:
                    e.expires = now + e.ttl
                    read = max(read, bounds[j])
                    break
        top, top_1h = read, read
        for b, ttl in prep.breakpoints:
            seconds = _TTL[ttl]
            hit = live(b)
            if hit is not None:  # already cached: a longer TTL lifts the entry's
                hit.ttl = max(hit.ttl, seconds)
                hit.expires = now + hit.ttl
                continue
            if bounds[b] < minimum:
                continue
            self._entries[(namespace, chain[b])] = _Entry(bounds[b], seconds, now + seconds)
            top = max(top, bounds[b])
            if ttl == "1h":
                top_1h = max(top_1h, bounds[b])
        written = top - read
        self._expire(now)
        return CacheUsage(total=total, read=read, written=written, written_1h=top_1h - read)

    def _expire(self, now: float) -> None:
        if len(self._entries) > 4096:
            for k in [k for k, e in self._entries.items() if e.expires <= now]:
                del self._entries[k]


@dataclass
class RequestRecord:
    """One request as the server saw it, appended to ``ProviderServer.log`` on arrival.

    ``headers`` are lower-cased, with the values of ``authorization``, ``x-api-key``,
    ``api-key`` and ``x-amz-security-token`` redacted (``"Bearer <redacted>"``). ``fault`` is
    the fault applied (``"status:429"``, ``"malformed_sse:crlf"``, ...). ``usage`` is the
    provider-shaped usage the server computed (reported in the body or final event; for a
    chat stream without ``include_usage`` it is what it would have reported). ``cache`` has
    the raw figures (total, read, written, written_1h). ``boundaries[i]`` is the cumulative
    token count after tokenizer unit ``i``, ``labels[i]`` names the unit (``tool:0``,
    ``system:0``, ``instructions``, ``message:3`` or ``message:3.1`` for block 1 of message 3,
    ``item:5``), ``breakpoints`` the ``(unit index, ttl)`` cache breakpoints. ``model`` is
    the model that served the request: for Azure, the one its ``deployment`` runs.
    """

    seq: int
    endpoint: str
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    time: float
    fault: str | None = None
    body: Any = None
    model: str | None = None
    deployment: str | None = None
    stream: bool = False
    status: int | None = None
    error: str | None = None
    usage: JSON | None = None
    cache: CacheUsage | None = None
    reply: Reply | None = None
    response_id: str | None = None
    boundaries: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    breakpoints: list[tuple[int, str]] = field(default_factory=list)

    @property
    def prompt_tokens(self) -> int:
        return self.boundaries[-1] if self.boundaries else 0
