"""Plain frozen records that cross srt's layers."""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = [
    "BILLED",
    "BuildStats",
    "Message",
    "Reply",
    "SessionInfo",
    "Usage",
    "UsageSummary",
    "billed",
    "check_flag",
    "check_provider",
    "token_counts",
    "unknown_keyword",
    "write_1h_tokens",
]

C = TypeVar("C", bound=type)

#: Ledger statuses of requests whose body reached the provider and whose reply (or part
#: of it) was read or cut off: billed, whether or not the provider's usage arrived.
BILLED = ("ok", "incomplete", "cancelled")
#: A ledger row's token columns.
TOKEN_COLUMNS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)


def check_provider(provider: Any, what: str = "provider") -> None:
    """Refuse what is not an srt provider instance (a model name, a provider class not
    called, ``None``) with a ``ConfigError`` that says what to pass."""
    if isinstance(provider, type):
        raise ConfigError(
            f"{what} must be an srt provider instance, got the class {provider.__name__}: "
            f"create one first, e.g. {what}=srt.{provider.__name__}(...)"
        )
    if not isinstance(getattr(provider, "format", None), str) or not callable(
        getattr(provider, "request", None)
    ):
        hint = " (the model name goes in model=)" if isinstance(provider, str) else ""
        raise ConfigError(
            f"{what} must be an srt provider, e.g. srt.OpenAI(), "
            f"got {type(provider).__name__}{hint}"
        )


def _did_you_mean(name: str, own: Iterable[str]) -> str:
    """``did you mean X=?`` for the nearest of ``own`` to keyword ``name``, if one is near."""
    import difflib  # (here: on a mistake only)

    near = difflib.get_close_matches(name, list(own), 1, 0.6)
    return f"did you mean {near[0]}=?" if near else ""


def _takes_no(what: str, name: str, hint: str) -> ConfigError:
    return ConfigError(f"{what} takes no {name[:40]}= option{'; ' if hint else ''}{hint}")


def unknown_keyword(cls: type, name: str, hint: str = "") -> ConfigError:
    """The error for keyword ``name`` that ``cls``'s constructor does not take: ``hint``
    if given (what to pass instead), else the nearest of its keywords, if one is near
    (``memory_budjet=``: "did you mean memory_budget=?")."""
    if not hint:
        own = [
            p.name
            for c in cls.__mro__
            if "__init__" in vars(c)
            for p in inspect.signature(vars(c)["__init__"]).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]
        hint = _did_you_mean(name, own)
    return _takes_no(f"{cls.__name__}()", name, hint)


def binding_errors_typed(cls: C) -> C:
    """``cls`` with its constructor's and each public method's own argument errors (a
    misspelled keyword, a missing or extra argument: Python's ``TypeError`` raised at
    the call itself) turned into a ``ConfigError`` naming the call and, for a keyword,
    the nearest it takes (``Runtime(path, memory_budjet=1)``: "did you mean
    memory_budget=?"), raised before the call's body runs. A ``TypeError`` raised inside
    the body is left as it is. A call that fits costs one frame (``inspect.signature``
    follows ``__wrapped__``: the signatures stay the methods' own)."""
    for name, f in list(vars(cls).items()):
        if (name.startswith("_") and name != "__init__") or not inspect.isfunction(f):
            continue
        setattr(cls, name, _bound_typed(f))
    return cls


def _bound_typed(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def method(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except TypeError as exc:
            tb = exc.__traceback__
            if tb is None or tb.tb_next is not None:
                raise  # raised inside the method: not the call's arguments
            raise _binding_error(f, args, kwargs, exc) from None

    return method


def _binding_error(
    f: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], exc: TypeError
) -> ConfigError:
    """What ``f(*args, **kwargs)`` (``args[0]``: the instance) got wrong, said as a
    ``ConfigError`` naming ``Class()`` (the constructor) or ``Class.method()``."""
    owner = type(args[0]).__name__ if args else f.__qualname__.rpartition(".")[0]
    what = f"{owner}()" if f.__name__ == "__init__" else f"{owner}.{f.__name__}()"
    sig = inspect.signature(f)
    params = list(sig.parameters.values())[1:]  # (self)
    kinds = {p.kind for p in params}
    unknown = [k for k in kwargs if k not in sig.parameters]
    if unknown and inspect.Parameter.VAR_KEYWORD not in kinds:
        own = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return _takes_no(what, unknown[0], _did_you_mean(unknown[0], own))
    n = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    if len(args) - 1 > n and inspect.Parameter.VAR_POSITIONAL not in kinds:
        return ConfigError(
            f"{what} takes {n} positional argument{'s' if n != 1 else ''}, got "
            f"{len(args) - 1}: the others are keywords (name=value)"
        )
    try:
        sig.bind(*args, **kwargs)
    except TypeError as bound:
        return ConfigError(f"{what}: {bound}")
    return ConfigError(f"{what}: {exc}")


def check_flag(name: str, value: Any) -> bool:
    """``value``, a keyword option that is ``True`` or ``False`` (``dry_run=``,
    ``create=``...); anything else (``"no"``, ``None``, ``0``) is a ``ConfigError`` naming
    the option, not a truth value guessed from it (``dry_run="no"`` would collect)."""
    if value is True or value is False:
        return value
    raise ConfigError(f"{name} must be True or False, got {type(value).__name__}")


def billed(row: Mapping[str, Any]) -> bool:
    """Whether a ledger row's request was billed: a reply (or part of one) came
    (``ok``, ``incomplete``, ``cancelled``), or it failed yet records the usage the
    provider reported (an ``error`` row of a reply that could not be kept). A request
    that failed with no usage (refused, unreachable) was not."""
    if row.get("status") in BILLED:
        return True
    return any(row.get(k) is not None for k in TOKEN_COLUMNS)


def _count(row: Mapping[str, Any], key: str) -> int:
    v = row.get(key)
    if type(v) is int:  # (the common case first: a summary reads six a row)
        return v if v > 0 else 0
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(
            f"ledger row {row.get('id')!r}: {key} must be a whole number, got {v!r:.40}"
        )
    return max(v, 0)


def token_counts(row: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(input, cache read, cache write, output) tokens of a ledger row as reported and
    priced: a missing count is 0, and so is a negative one; reads and writes are parts of
    the input, so together they are at most the input (a provider that reports more cache
    than input is not billed below zero, nor shown a cache hit share above 100%). A count
    that is not a whole number is a ``ConfigError``."""
    total = _count(row, "input_tokens")
    read = min(_count(row, "cache_read_tokens"), total)
    write = min(_count(row, "cache_write_tokens"), total - read)
    return total, read, write, _count(row, "output_tokens")


def write_1h_tokens(row: Mapping[str, Any]) -> int:
    """Of a ledger row's cache writes as counted (``token_counts``), those written with a
    1-hour TTL (``cache_write_1h_tokens``; missing or negative: 0), at most all of them."""
    return min(_count(row, "cache_write_1h_tokens"), token_counts(row)[2])


def reasoning_tokens(row: Mapping[str, Any]) -> int:
    """Of a ledger row's output tokens as counted, those of reasoning, at most all."""
    return min(_count(row, "reasoning_tokens"), token_counts(row)[3])


@dataclass(frozen=True)
class Message:
    """A chat message in srt's canonical model (the OpenAI Chat Completions shape).

    ``content`` is a string or a list of parts (text, image by URL or by bytes).
    ``metadata`` is stored beside the message but never affects its hash or what
    a model sees. ``is_error`` marks a tool result as an error (``tool_result``).
    A plain OpenAI message dict is accepted wherever a ``Message`` is.
    """

    role: str
    content: Any = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    metadata: dict[str, Any] | None = field(default=None, compare=False)
    is_error: bool = False

    @classmethod
    def tool_result(
        cls,
        call_id: str,
        content: Any,
        *,
        is_error: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """The result of tool call ``call_id``; ``is_error=True`` marks it as an error
        (Anthropic's ``is_error``, Bedrock's ``"status": "error"``; the OpenAI formats
        have no such flag: there the text alone says so)."""
        return cls("tool", content, tool_call_id=call_id, metadata=metadata, is_error=is_error)

    def to_dict(self) -> dict[str, Any]:
        """The message as an OpenAI Chat Completions dict (what ``append`` reads), with
        ``is_error`` only when set."""
        d: dict[str, Any] = {"role": self.role}
        if self.content is not None or self.tool_calls is None:
            d["content"] = self.content
        for key in ("name", "tool_calls", "tool_call_id", "metadata"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.is_error:
            d["is_error"] = self.is_error
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
    the model's reasoning (OpenAI's ``reasoning_tokens``, Anthropic's ``thinking_tokens``;
    they are counted, and billed, in ``output_tokens`` already).
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
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**63:
                raise ConfigError(f"a token count must be an int 0 to 2**63-1, got {v!r:.40}")

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens not read from the provider's cache (cache writes among them)."""
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
    """Totals over usage-ledger rows (``Session.usage()``, ``Runtime.usage()``).

    ``requests`` is ``billed`` + ``errors``. ``billed`` requests are the ones the
    provider billed (``billed``: a reply or part of one came, ``ok``, ``incomplete`` or
    ``cancelled``, or a failed request records the usage the provider reported); the
    token totals and the cost (``srt.savings``) are theirs. ``errors`` failed with
    nothing billed (refused, unreachable). ``statuses`` counts the rows by ledger
    status. Tokens are counted as priced (``token_counts``): a provider's cache reads
    and writes count at most its input, a negative count as 0. ``unmetered`` of the
    billed requests record no usage: the provider never reported it (a stream cut off
    before its usage event, a request cancelled after its body went out), so their
    tokens and cost are in no total.
    """

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    body_bytes: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    billed: int = 0
    statuses: tuple[tuple[str, int], ...] = ()
    unmetered: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens not read from the provider's cache (cache writes among them)."""
        return self.input_tokens - self.cache_read_tokens

    @property
    def cache_hit_share(self) -> float:
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else 0.0

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> UsageSummary:
        """The totals of ``rows``, a list of ledger rows (``rt.calls()``)."""
        if not isinstance(rows, list):
            raise ConfigError(
                f"rows must be a list of ledger rows (rt.calls()), got {type(rows).__name__}"
            )
        try:
            try:
                t = _tally(rows, map(_COUNTS, rows))
            except KeyError:  # a row without every column (made by hand): missing is None
                t = _tally(rows, (tuple(r.get(k) for k in _COUNT_KEYS) for r in rows))
        except (TypeError, AttributeError):
            raise ConfigError(
                "rows must be a list of ledger rows (dicts, as rt.calls() returns)"
            ) from None
        paid = t[0]
        return cls(
            requests=len(rows),
            errors=len(rows) - paid,
            input_tokens=t[1],
            cache_read_tokens=t[2],
            cache_write_tokens=t[3],
            output_tokens=t[4],
            body_bytes=t[5],
            cache_write_1h_tokens=t[6],
            reasoning_tokens=t[7],
            billed=paid,
            statuses=tuple(sorted(_statuses(rows).items())),
            unmetered=t[8],
        )


#: The columns ``_tally`` reads, in its order.
_COUNT_KEYS = ("body_bytes", "input_tokens", "cache_read_tokens", "cache_write_tokens",
               "output_tokens", "cache_write_1h_tokens", "reasoning_tokens")  # fmt: skip
_COUNTS = itemgetter(*_COUNT_KEYS)
_STATUS = itemgetter("status")


def _tally(rows: list[dict[str, Any]], values: Iterable[tuple[Any, ...]]) -> tuple[int, ...]:
    """(billed, input, cache read, cache write, output, body bytes, 1-hour writes,
    reasoning, billed with no usage) of ledger rows, each counted as ``billed``, ``token_counts``,
    ``write_1h_tokens`` and ``reasoning_tokens`` count it; ``values`` are each row's
    ``_COUNT_KEYS`` columns. One pass: a row as srt records it (plain ints, its cache
    within its input, or no usage at all) is added as it is, and only another one goes
    through those functions (through them all, 200,000 rows took 1,037 ms, and 265 ms
    through ``_count`` alone; ``bench/usage_summary.py``)."""
    tot = read = write = out = write_1h = thought = size = paid = unmetered = 0
    for r, (bb, t, cr, cw, o, w1, rs) in zip(rows, values, strict=True):
        if type(bb) is int and bb >= 0:
            size += bb
        elif bb is not None:
            size += _count(r, "body_bytes")
        if (type(t) is type(cr) is type(cw) is type(o) is int
                and cr >= 0 and cw >= 0 and cr + cw <= t and o >= 0):  # fmt: skip
            pass  # counted as reported
        elif t is None and cr is None and cw is None and o is None and w1 is None and rs is None:
            if r.get("status") in BILLED:  # no usage: billed by its status alone
                paid += 1
                unmetered += 1
            continue
        else:
            t, cr, cw, o = token_counts(r)  # (a count that is no whole number: ConfigError)
        paid += 1
        tot, read, write, out = tot + t, read + cr, write + cw, out + o
        if type(w1) is int and 0 <= w1 <= cw:
            write_1h += w1
        elif w1 is not None:
            write_1h += min(_count(r, "cache_write_1h_tokens"), cw)
        if type(rs) is int and 0 <= rs <= o:
            thought += rs
        elif rs is not None:
            thought += min(_count(r, "reasoning_tokens"), o)
    return paid, tot, read, write, out, size, write_1h, thought, unmetered


def _statuses(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Ledger rows counted by their status's text."""
    try:
        counts = Counter(map(_STATUS, rows))
        if all(type(k) is str for k in counts):
            return counts
    except (KeyError, TypeError):  # a row without one, or with one no dict key can be
        pass
    return Counter(str(r.get("status")) for r in rows)  # (1 and True apart, as shown)
