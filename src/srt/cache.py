"""The prompt-cache planner and the cache explain.

**Planner.** For formats with explicit cache markers (Anthropic ``cache_control``,
Bedrock ``cachePoint``) it chooses at most four breakpoints:

1. *static*: the end of the tools and system prompt, which every turn shares
   (TTL ``static_ttl``, default 5 minutes; ``"1h"`` keeps it warm across pauses);
2. *read*: the end of the previous request built for the same format, model and
   cache key, when it is still a prefix of this one, so this request reads the
   entry that request wrote (needed when a turn adds more than 20 blocks, which
   is as far back as a breakpoint looks for an entry);
3. *write*: the last message, so the next turn can read everything up to here.

A breakpoint whose estimated prefix is below three quarters of the model's minimum
cacheable length is dropped (``MIN_SLACK``). The estimate (bytes / 4) can fall short
of the provider's own count; a marker on a prefix that turns out too short is simply
ignored by the provider and costs nothing, while a missing write marker loses the
next turn's cache, so markers are kept down to that margin. TTLs never increase along the
render order (a 1-hour breakpoint always precedes a 5-minute one). Between two
consecutive turns of a session the only bytes that change are these markers: the
previous read marker is removed and a new write marker is added.

For OpenAI formats the planner adds ``prompt_cache_key`` (unless the caller passed
one), in the scope ``CachePolicy(key=...)`` names: ``"root"`` (the default), derived
from the conversation's first message, so every session and fork that starts alike
routes to the same cache; ``"session"``, a key of the session's own, derived from the
root's and the session's id in the store (a fork, being a session of its own, gets its
own); or ``None``, no key at all.

**Explain.** Before anything is sent, ``Session.explain()`` (and every
``Session.request()``, in ``last_build.cache``) compares the request with the
previous one built for the same format, model and cache key (the key the request
sends; where it sends none, the root's), and predicts the
cached prefix (messages, bytes, estimated tokens) or names the first diverging
message and why: ``edited``, ``reordered``, ``truncated``, ``tools_changed``,
``model_switched``, ``ttl_elapsed``, ``below_minimum`` or ``cold``.

Token counts here are estimates: each fragment costs ceil(UTF-8 bytes / 4), summed
message by message, until a tokenizer is plugged in.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from ._core import HashSeq, common_prefix
from ._types import check_flag
from .errors import ConfigError
from .wire import cache_rules_for
from .wire.base import CacheRules

__all__ = [
    "Breakpoint",
    "CacheExplain",
    "CachePolicy",
    "Record",
    "estimate_tokens",
    "explain",
    "min_cacheable_tokens",
    "plan",
]

T_co = TypeVar("T_co", covariant=True)


class Indexed(Protocol[T_co]):
    """Anything with ``len()`` and integer indexing (lists, lazy views)."""

    def __len__(self) -> int: ...
    def __getitem__(self, i: int, /) -> T_co: ...


TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
#: The scopes of ``CachePolicy.key`` besides ``None`` (no key sent).
KEY_SCOPES = ("root", "session")
#: How long OpenAI keeps an idle prefix, by ``prompt_cache_retention`` (``in_memory``:
#: the format's own ``idle_ttl_s``).
RETENTION_SECONDS = {"24h": 86400.0}
LOOKBACK_BLOCKS = 20
MAX_BREAKPOINTS = 4
#: Breakpoints are placed from this share of the model's minimum (see the docstring).
MIN_SLACK = 0.75
OPENAI_MIN_TOKENS = 1024
OPENAI_STEP = 128

# Minimum cacheable prefix per model family (tokens), from the providers' docs;
# the first matching substring wins. Override with CachePolicy(min_tokens=...).
_MINIMUMS: tuple[tuple[str, int], ...] = (
    ("haiku-4", 4096),
    ("opus-4-5", 4096),
    ("opus-4.5", 4096),
    ("haiku", 2048),
    ("claude", 1024),
)


def estimate_tokens(nbytes: int) -> int:
    """Approximate tokens for ``nbytes`` of UTF-8 JSON (about 4 bytes per token)."""
    return (nbytes + 3) // 4


def min_cacheable_tokens(provider: str | CacheRules, model: str) -> int:
    """The smallest prefix, in tokens, that the provider (a family name, or its format's
    ``CacheRules``) caches for ``model``."""
    rules = cache_rules_for(provider) if isinstance(provider, str) else provider
    if rules.min_tokens is not None:
        return rules.min_tokens
    m = model.lower()
    for key, n in _MINIMUMS:
        if key in m:
            return n
    return 1024


@dataclass(frozen=True)
class CachePolicy:
    """How the planner places breakpoints; pass as ``request(..., cache=CachePolicy(...))``.

    ``static_ttl`` and ``ttl`` are ``"5m"`` or ``"1h"``; ``static_ttl`` may not be
    shorter than ``ttl``. ``min_tokens`` overrides the model's minimum. ``read``
    and ``write`` switch those breakpoints off. ``key`` is the scope of the
    ``prompt_cache_key`` sent to formats that take one: ``"root"`` (one key for every
    session that starts with the same message), ``"session"`` (one per session, a
    fork's its own) or ``None`` (none sent); a ``prompt_cache_key`` request parameter
    is sent instead of any.
    """

    static_ttl: str = "5m"
    ttl: str = "5m"
    min_tokens: int | None = None
    static: bool = True
    read: bool = True
    write: bool = True
    key: str | None = "root"

    def __post_init__(self) -> None:
        if self.key is not None and (type(self.key) is not str or self.key not in KEY_SCOPES):
            # (a string is not echoed: it may be a key meant for ``prompt_cache_key=``)
            got = "any other str" if isinstance(self.key, str) else f"a {type(self.key).__name__}"
            raise ConfigError(
                f"CachePolicy key must be 'root', 'session' or None, not {got} (to send a "
                "key of your own, pass prompt_cache_key= as a request parameter)"
            )
        for name in ("static", "read", "write"):  # (not truth values: read="no" reads)
            check_flag(f"CachePolicy {name}", getattr(self, name))
        m = self.min_tokens
        if m is not None and (type(m) is not int or m < 0):
            raise ConfigError(
                f"CachePolicy min_tokens must be a whole number of tokens or None, got {m!r}"
            )
        for t in (self.static_ttl, self.ttl):
            if not isinstance(t, str) or t not in TTL_SECONDS:
                raise ConfigError(f"cache TTL must be '5m' or '1h', got {t!r}")
        if TTL_SECONDS[self.static_ttl] < TTL_SECONDS[self.ttl]:
            raise ConfigError("a longer-TTL breakpoint must come before a shorter one")


#: The policy of ``cache=True`` unless ``Runtime(cache=...)`` says otherwise.
DEFAULT_POLICY = CachePolicy()


@dataclass(frozen=True)
class Breakpoint:
    """A cache marker: ``where`` is ``"tools"``, ``"system"`` or ``"message"``;
    ``index`` is the tool, system fragment or message position."""

    where: str
    index: int
    ttl: str
    tokens: int  # estimated prefix tokens up to and including this point
    reason: str  # "static", "read" or "write"


@dataclass
class Layout:
    """What the planner and explain need to know about one assembled request."""

    tool_bytes: int
    tool_tokens: int
    tool_count: int
    system_count: int  # messages rendered into the system area (all leading)
    cum_bytes: Indexed[int]  # bytes of tools+system+messages up to message i
    cum_tokens: Indexed[int]  # estimated tokens of tools+system+messages up to message i
    cum_blocks: Indexed[int]  # blocks up to message i


def plan(
    layout: Layout, previous_end: int | None, min_tokens: int, policy: CachePolicy
) -> list[Breakpoint]:
    """Breakpoints for a request (see the module docstring); at most four."""
    n = len(layout.cum_bytes)
    s = layout.system_count
    out: list[Breakpoint] = []

    def tokens_at(i: int) -> int:
        return layout.cum_tokens[i]

    if policy.static and (s or layout.tool_count):
        if s:
            tok = tokens_at(s - 1)
            out.append(Breakpoint("system", s - 1, policy.static_ttl, tok, "static"))
        else:
            tok = layout.tool_tokens
            bp = Breakpoint("tools", layout.tool_count - 1, policy.static_ttl, tok, "static")
            out.append(bp)
    if policy.read and previous_end is not None and s < previous_end < n:
        i = previous_end - 1
        if i >= s:
            out.append(Breakpoint("message", i, policy.ttl, tokens_at(i), "read"))
    if policy.write and n > s:
        out.append(Breakpoint("message", n - 1, policy.ttl, tokens_at(n - 1), "write"))
    out = [b for b in out if b.tokens >= min_tokens * MIN_SLACK]
    # Deduplicate positions, keep render order, and cap at four (drop the oldest reads).
    seen: set[tuple[str, int]] = set()
    uniq = []
    for b in out:
        if (b.where, b.index) not in seen:
            seen.add((b.where, b.index))
            uniq.append(b)
    while len(uniq) > MAX_BREAKPOINTS:
        uniq.pop(1)
    return uniq


@dataclass
class Record:
    """The last request built for one (format, model, cache key).

    Its message hashes are the first ``n`` items of ``seq``, a list that its owner
    only ever appends to (a session starts a new list when it drops messages), so
    recording a request copies nothing however long the conversation is.
    """

    seq: Sequence[bytes]  # a list, or a session's HashSeq
    n: int
    tools: tuple[bytes, ...]
    breakpoints: list[Breakpoint]
    at: float = field(default_factory=time.monotonic)
    #: How long its cached prefix lives idle when the request set it (OpenAI's
    #: ``prompt_cache_retention="24h"``); ``None``: the format's rules say.
    idle_ttl_s: float | None = None

    @property
    def hashes(self) -> list[bytes]:
        return list(self.seq[: self.n])

    def shared(self, hashes: Sequence[bytes]) -> int:
        """How many leading messages ``hashes`` shares with this request."""
        seq = self.seq
        if hashes is seq:  # the same sequence, only appended to since
            return min(self.n, len(hashes))
        if isinstance(seq, HashSeq) and isinstance(hashes, HashSeq):
            return seq.common(hashes, self.n)
        return common_prefix(_listed(seq), _listed(hashes), self.n)


def _listed(hashes: Sequence[bytes]) -> list[bytes]:
    return hashes if isinstance(hashes, list) else list(hashes)


@dataclass(frozen=True, slots=True)
class CacheExplain:
    """A prediction of what the provider's prompt cache will serve for a request."""

    format: str
    model: str
    reason: str
    cached_messages: int
    cached_bytes: int
    cached_tokens: int
    total_messages: int
    total_bytes: int
    total_tokens: int
    diverged_at: int | None = None
    diverged_role: str | None = None
    detail: str = ""
    breakpoints: tuple[Breakpoint, ...] = ()

    @property
    def hit(self) -> bool:
        return self.cached_tokens > 0


def explain(
    *,
    format: str,
    provider: str,
    rules: CacheRules,
    model: str,
    hashes: Sequence[bytes],
    roles: Indexed[str],
    tools: tuple[bytes, ...],
    layout: Layout,
    previous: Record | None,
    other_model: str | None,
    min_tokens: int,
    marker: bool,
    breakpoints: Sequence[Breakpoint],
    now: float | None = None,
    shared: int | None = None,
) -> CacheExplain:
    """Compare a prospective request with ``previous`` and predict the cached prefix.

    ``shared`` is ``previous.shared(hashes)`` when the caller has computed it already.
    """
    n = len(hashes)
    total_bytes = layout.cum_bytes[-1] if n else layout.tool_bytes
    total_tokens = layout.cum_tokens[-1] if n else layout.tool_tokens
    marked = tuple(breakpoints)
    if previous is None:
        if other_model is not None:
            reason, at, detail = "model_switched", 0, f"the previous request was for {other_model}"
        else:
            reason, at = "cold", None
            detail = "no earlier request for this format, model and cache key"
        return _miss(format, model, reason, at, detail, roles, n, total_bytes, total_tokens, marked)
    if rules.idle_ttl_s is not None:
        # e.g. OpenAI's in-memory retention, 5-10 minutes idle, unless the request asked
        # for longer (``prompt_cache_retention="24h"``)
        ttl = previous.idle_ttl_s or rules.idle_ttl_s
    else:
        ttl = max((TTL_SECONDS[b.ttl] for b in previous.breakpoints), default=300.0)
    elapsed = (now if now is not None else time.monotonic()) - previous.at
    if elapsed > ttl:
        detail = f"more than {ttl:.0f} s since the previous request"
        return _miss(
            format, model, "ttl_elapsed", None, detail, roles, n, total_bytes, total_tokens, marked
        )
    if tools != previous.tools:
        detail = "the tool definitions differ from the previous request"
        return _miss(
            format, model, "tools_changed", 0, detail, roles, n, total_bytes, total_tokens, marked
        )
    k = previous.shared(hashes) if shared is None else shared
    reason, at, detail = "hit", None, ""
    if k < previous.n:
        at = k
        # Only what follows the divergence is compared: O(changed), not O(history).
        after = previous.seq[k + 1 : previous.n]
        if k == n:
            reason = "truncated"
            detail = f"this request ends at message {n}; the previous had {previous.n}"
        elif hashes[k] in after or previous.seq[k] in hashes[k + 1 :]:
            reason = "reordered"
            detail = f"message {k} is in a different position than in the previous request"
        else:
            reason = "edited"
            # Interned: sessions that build alike keep one explanation between them.
            detail = sys.intern(f"message {k} differs from the previous request's message {k}")
    # The cached prefix: k shared messages, as the provider's rules allow.
    # ``end`` is the number of messages covered (-1: the tools only, -2: nothing).
    end = k if k else (-1 if layout.tool_count else -2)
    if marker:
        # Only entries written at the previous request's breakpoints can be read.
        end = -2
        for b in previous.breakpoints:
            if TTL_SECONDS[b.ttl] < elapsed:
                continue  # its entry expired (a 5-minute one past a 1-hour one still alive)
            covered = b.index < k if b.where == "message" else b.index < min(k, n)
            if b.where in ("message", "system") and covered:
                end = max(end, b.index + 1)
            elif b.where == "tools":
                end = max(end, -1)
    if end >= 1:
        cached_msgs, cached_bytes, tok = end, layout.cum_bytes[end - 1], layout.cum_tokens[end - 1]
    elif end == -1:
        cached_msgs, cached_bytes, tok = 0, layout.tool_bytes, layout.tool_tokens
    else:
        cached_msgs, cached_bytes, tok = 0, 0, 0
    if not marker:  # OpenAI: automatic, in 128-token steps from the minimum on
        tok = tok - tok % OPENAI_STEP if tok >= min_tokens else 0
    cached_tokens = tok
    if cached_tokens < min_tokens:
        if reason == "hit":
            reason = "below_minimum"
            detail = f"the shared prefix is under the model's minimum of {min_tokens} tokens"
        cached_tokens = 0
        cached_bytes = 0
        cached_msgs = 0
    return CacheExplain(
        format,
        model,
        reason,
        cached_msgs,
        cached_bytes,
        cached_tokens,
        n,
        total_bytes,
        total_tokens,
        at,
        roles[at] if at is not None and at < n else None,
        detail,
        marked,
    )


def _miss(
    format: str,
    model: str,
    reason: str,
    at: int | None,
    detail: str,
    roles: Indexed[str],
    n: int,
    total_bytes: int,
    total_tokens: int,
    breakpoints: tuple[Breakpoint, ...],
) -> CacheExplain:
    """``explain``'s answer when nothing is cached: ``reason``, diverging at ``at``."""
    role = roles[at] if at is not None and at < n else None
    return CacheExplain(
        format, model, reason, 0, 0, 0, n, total_bytes, total_tokens, at, role, detail, breakpoints
    )
