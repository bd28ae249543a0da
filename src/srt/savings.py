"""What srt saved, in input tokens and USD, against two labelled baselines.

From the ledger of real requests (``Session.calls()``, ``Runtime.calls()``, or any
rows of that shape, e.g. one tenant's), srt's billed input is compared with:

* **careful** (``Savings.careful``): a careful stateless client that sends the same
  prompts, byte-stable, under the same provider's caching rules. Where caching is
  automatic (OpenAI, Azure OpenAI, OpenAI-compatible servers such as llama.cpp) such a
  client sends the very bytes srt sends, so the provider serves it the same cache reads
  and writes srt was billed for: against it srt saves no input money there (its gains
  are bytes, time and the ledger). Where caching needs markers (Anthropic,
  Bedrock), the careful client puts one 5-minute marker on the last message of every
  request, the most a client without state can place. A request reads an earlier
  request's whole prompt (from any session: a fork or an imported copy shares it) when
  that prompt is a prefix of this one, was sent or read at most 5 minutes earlier,
  reached the model's minimum cacheable length and ends at most 20 content blocks
  before this prompt's end (the marker's lookback; a round of 12 tool calls and their
  results adds 24 blocks); it writes the rest when the prompt reaches the minimum.
* **no_cache** (``Savings.no_cache``): a client whose provider caches nothing: every
  input token at the full input price.

The rows counted are the billed ones (``srt._types.billed``): every request a reply (or
part of one) came for, and a failed request that records the usage the provider
reported (a reply srt could not keep): that is money spent, in srt's cost and in both
baselines' alike (such a row stored no node, so the careful client pays for it what srt
paid). A request that failed with no usage was not billed and is not counted. A billed
request whose provider never reported its usage (a stream cut off before its usage
event) records none: it is counted in ``unmetered_requests``, and its cost, unknown, is
in no figure.

Output is the same for all three and is reported, not compared. Prices are
``srt.pricing``'s (each request at its date's price); unpriced models are counted and
named, local models cost nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._types import TOKEN_COLUMNS, UsageSummary, billed
from .cache import min_cacheable_tokens
from .errors import ConfigError
from .pricing import Pricing, Rates, check_pricing, source, token_counts, write_1h_tokens
from .wire import get_format

if TYPE_CHECKING:
    from .store.base import Store

__all__ = [
    "AUTOMATIC",
    "MARKER_LOOKBACK",
    "MARKER_TTL_S",
    "Baseline",
    "History",
    "Savings",
    "of_store",
    "savings",
    "usage_figures",
]

#: Formats whose provider caches prefixes automatically (no markers).
AUTOMATIC = frozenset({"openai.chat", "openai.responses", "azure.chat", "azure.responses"})
#: The careful client's marker: its lifetime (renewed by each read) and how far back a
#: marker finds an earlier entry (Anthropic's and Bedrock's 20-block lookback).
MARKER_TTL_S = 300.0
MARKER_LOOKBACK = 20

#: ``history(node, depth)``: the ``(node id, canonical body)`` of ``node``'s chain deeper
#: than ``depth``, oldest first (``Store.tail``).
History = Callable[[int, int], "list[tuple[int, bytes]]"]


@dataclass(frozen=True)
class Baseline:
    """A baseline client's input bill for the same requests, against srt's."""

    name: str
    label: str
    input_usd: float
    cache_read_tokens: int
    cache_write_tokens: int
    billed_input_usd: float

    @property
    def saved_usd(self) -> float:
        """What srt's requests cost less in input than this client's (negative: more)."""
        return self.input_usd - self.billed_input_usd

    @property
    def saved_share(self) -> float:
        """``saved_usd`` as a share of this baseline's input cost (0 when it cost nothing)."""
        return self.saved_usd / self.input_usd if self.input_usd else 0.0


@dataclass(frozen=True)
class Savings:
    """srt's billed input and output, and the two baselines, over some ledger rows."""

    requests: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    billed_input_usd: float
    output_usd: float
    careful: Baseline
    no_cache: Baseline
    priced_requests: int
    local_requests: int = 0
    unpriced_models: tuple[str, ...] = field(default=())
    sources: tuple[str, ...] = field(default=())
    #: Billed requests that record no usage (the provider never reported it): their
    #: tokens and cost are in no figure here.
    unmetered_requests: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens not read from the provider's cache (cache writes among them)."""
        return self.input_tokens - self.cache_read_tokens

    @property
    def baselines(self) -> tuple[Baseline, Baseline]:
        """The two baselines: the careful stateless client, then the one with no caching."""
        return self.careful, self.no_cache


def _blocks(body: bytes) -> int:
    """Content blocks of a canonical message as Anthropic and Bedrock render it."""
    msg = json.loads(body)
    content = msg.get("content")
    n = len(content) if isinstance(content, list) else int(bool(content))
    return max(1, n + len(msg.get("tool_calls") or ()) + len(msg.get("artifacts") or ()))


class _Careful:
    """The careful client's cache reads and writes, request by request.

    Its cache holds one entry per request it sent to a marker provider: the prompt, keyed
    by the prompt's last node (nodes are shared by every session with that history), its
    input tokens, and when it expires. A request reads the newest live entry on its own
    prompt within the lookback, and writes its own prompt's entry.
    """

    def __init__(self, history: History | None) -> None:
        self.history = history
        self.entries: dict[tuple[Any, ...], list[float]] = {}  # key -> [tokens, expires]

    def _prompt(self, row: Mapping[str, Any]) -> list[tuple[Any, int]]:
        """The last messages of ``row``'s prompt, newest first, as (key, blocks), as far as
        the lookback can reach (a request's prompt is its reply node's chain without the
        reply: ``messages`` long)."""
        n = int(row["messages"])
        node = row.get("node")
        if self.history is None or node is None:
            # No stored history (rows without a store): the session's own earlier
            # prompts, one block a message.
            return [
                ((row.get("session"), k), 1) for k in range(n, max(0, n - MARKER_LOOKBACK - 1), -1)
            ]
        tail = self.history(int(node), max(0, n - MARKER_LOOKBACK - 1))[:-1]  # not the reply
        return [(("node", nid), _blocks(body)) for nid, body in reversed(tail)]

    def account(self, row: Mapping[str, Any]) -> tuple[int, int, int]:
        """The careful client's (cache reads, cache writes, 1-hour writes among them) for
        ``row``; where it is taken to pay what srt paid, srt's own, at srt's TTLs."""
        fmt = str(row["format"])
        total, read, write, _ = token_counts(row)
        as_billed = read, write, write_1h_tokens(row)
        provider = row.get("provider")
        if fmt in AUTOMATIC or provider in ("local", "openai_compatible"):
            return as_billed  # the same bytes get the same automatic cache
        if self.history is not None and row.get("node") is None:
            # Its reply was swept by gc (or never stored): which prompt it sent is gone
            # with it, so the careful client is taken to pay what srt paid. Keying it by
            # its session instead would never meet the entries of the rows around it,
            # and the report would credit srt with savings the gc made up.
            return as_billed
        try:
            minimum = min_cacheable_tokens(get_format(fmt).cache, str(row["model"]))
        except ConfigError:
            return as_billed  # a format this srt does not know: as billed
        now = float(row["at"])
        space = (fmt, row["model"])
        prompt = self._prompt(row)
        hit, behind = 0, 0
        for key, blocks in prompt:
            entry = self.entries.get((*space, key))
            if entry is not None and entry[1] >= now:
                hit = min(int(entry[0]), total)
                entry[1] = now + MARKER_TTL_S  # a read renews the entry
                break
            behind += blocks
            if behind > MARKER_LOOKBACK:
                break
        if total < minimum or not prompt:
            return hit, 0, 0
        own = self.entries.setdefault((*space, prompt[0][0]), [total, now])
        own[0], own[1] = max(own[0], total), now + MARKER_TTL_S
        return hit, total - hit, 0  # (its marker's writes are 5-minute ones)


def _check(row: Mapping[str, Any]) -> None:
    """A billed row has what the baselines read: ``ConfigError`` naming what it lacks (a
    request to a marker provider needs its date and message count)."""
    if not isinstance(row, Mapping):
        raise ConfigError(f"a ledger row is a mapping (Session.calls()), not {type(row).__name__}")
    at, n, fmt = row.get("at"), row.get("messages"), row.get("format")
    marker = fmt not in AUTOMATIC and row.get("provider") not in ("local", "openai_compatible")
    for key, ok, what in (
        ("model", isinstance(row.get("model"), str) and bool(row.get("model")), "model name"),
        ("format", isinstance(fmt, str), "wire format name"),
        (
            "messages",
            (n is None and not marker)
            or (isinstance(n, int) and not isinstance(n, bool) and n >= 0),
            "message count",
        ),
        (
            "at",
            (at is None and not marker)
            or (isinstance(at, (int, float)) and not isinstance(at, bool) and 0 <= at < 1e11),
            "date (Unix seconds)",
        ),
    ):
        if not ok:
            raise ConfigError(
                f"ledger row {row.get('id')!r}: {key} is {row.get(key)!r:.40}, not a {what}"
            )


def _billed(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The billed rows of ``rows`` (``srt._types.billed``: a failed request that records
    the usage the provider reported was billed too), checked, in the order of their
    dates."""
    out = []
    for row in rows:
        if isinstance(row, Mapping) and not billed(row):
            continue
        _check(row)
        out.append(row)
    out.sort(key=lambda r: float(r.get("at") or 0))  # stable: rows of one date keep their order
    return out


def savings(
    rows: Iterable[Mapping[str, Any]],
    pricing: Pricing | None = None,
    *,
    history: History | None = None,
    context: Iterable[Mapping[str, Any]] | None = None,
) -> Savings:
    """The savings report for ledger ``rows``, under ``pricing``.

    ``history`` reads the stored chains (``Session.savings`` and ``Runtime.savings``
    pass the store's), so the careful client's prefix and lookback checks follow the
    real messages; without it a request's prompt is taken to extend the same session's
    earlier prompts, one block a message.

    ``context`` is every ledger row the careful client saw, ``rows`` among them
    (matched by ``id``; ``Session.savings`` passes the whole ledger): its cache then
    holds what the other requests wrote, as a real client's on the same account would
    (a fork reads its parent's prefix), while the totals are those of ``rows``. Rows
    are taken in the order of their dates (``at``).
    """
    pricing = check_pricing(pricing)
    careful = _Careful(history)
    n = priced = local = unmetered = 0
    tot = read = write = out = c_read = c_write = 0
    billed = careful_usd = no_cache_usd = out_usd = 0.0
    unpriced: set[str] = set()
    sources: set[str] = set()
    chosen = _billed(rows)
    wanted: set[Any] | None = None
    if context is not None:
        wanted = {row.get("id") for row in chosen}
        seen = _billed(context)
        missing = wanted - {row.get("id") for row in seen}
        if None in wanted or missing:
            raise ConfigError(
                "rows reported within a context are rows of it, named by their id; "
                f"{sorted(map(repr, missing))[:3]} are not"
            )
        # Other rows change the careful client's cache for the chosen ones only when
        # they came no later and went to a marker provider under the same format and
        # model (the cache's space); the rest are left out (each costs a history read).
        spaces = {(r["format"], r["model"]) for r in chosen}
        last = max((float(r.get("at") or 0) for r in chosen), default=0.0)
        chosen = [
            r
            for r in seen
            if r.get("id") in wanted
            or ((r["format"], r["model"]) in spaces and float(r.get("at") or 0) <= last)
        ]
    for row in chosen:
        cr, cw, cw_1h = careful.account(row)
        if wanted is not None and row.get("id") not in wanted:
            continue
        n += 1
        unmetered += all(row.get(k) is None for k in TOKEN_COLUMNS)
        t, r, w, o = token_counts(row)
        tot, read, write, out = tot + t, read + r, write + w, out + o
        c_read, c_write = c_read + cr, c_write + cw
        rates: Rates | None = pricing.row_rates(row)
        if rates is None:
            unpriced.add(row["model"])
            continue
        priced += 1
        local += rates.source == "local"
        sources.add(rates.source)
        billed += rates.input_usd(t, r, w, write_1h_tokens(row))
        careful_usd += rates.input_usd(t, cr, cw, cw_1h)
        no_cache_usd += rates.input_usd(t)
        out_usd += rates.output_usd(o)
    return Savings(
        requests=n,
        input_tokens=tot,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=out,
        billed_input_usd=billed,
        output_usd=out_usd,
        careful=Baseline(
            "careful",
            "a careful stateless client under the same provider's caching rules",
            careful_usd,
            c_read,
            c_write,
            billed,
        ),
        no_cache=Baseline(
            "no_cache", "a client with no prompt caching", no_cache_usd, 0, 0, billed
        ),
        priced_requests=priced,
        local_requests=local,
        unpriced_models=tuple(sorted(unpriced)),
        sources=tuple(sorted(sources)),
        unmetered_requests=unmetered,
    )


def of_store(
    store: Store, rows: Iterable[Mapping[str, Any]] | None, pricing: Pricing | None = None
) -> Savings:
    """``savings`` of ``rows`` of ``store``'s ledger (``None``: all of it), the careful
    client following the store's history and seeing every request of the ledger, as a
    client on the same account would (a fork reads its parent's prefix there too)."""
    every = [c.as_dict() for c in store.calls()]
    if rows is None:
        return savings(every, pricing, history=store.tail)
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Iterable):
        raise ConfigError(
            f"rows must be rows of this store's ledger (e.g. rt.calls() as dicts), "
            f"got {type(rows).__name__}"
        )
    rows = list(rows)
    ids = {c["id"] for c in every}
    for row in rows:
        rid = row.get("id") if isinstance(row, Mapping) else None
        if rid not in ids:
            shown = f"id {rid!r}" if isinstance(row, Mapping) else type(row).__name__
            raise ConfigError(
                f"rows must be rows of this store's ledger, named by their id: no ledger "
                f"row has {shown} (for rows from elsewhere: srt.savings.savings(rows, pricing))"
            )
    return savings(rows, pricing, history=store.tail, context=every)


def _baseline(b: Baseline) -> dict[str, Any]:
    return {
        "label": b.label,
        "input_usd": round(b.input_usd, 6),
        "cache_read_tokens": b.cache_read_tokens,
        "cache_write_tokens": b.cache_write_tokens,
        "saved_usd": round(b.saved_usd, 6),
        "saved_share": round(b.saved_share, 4),
    }


def usage_figures(
    rows: Sequence[Mapping[str, Any]],
    *,
    history: History | None = None,
    context: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Totals of ledger rows, with cost and savings when the models have prices (for
    ``srt stats`` and the gateway's usage endpoint); ``history`` and ``context`` as for
    ``savings``."""
    u = UsageSummary.of([dict(r) for r in rows])
    out: dict[str, Any] = {
        "requests": u.requests,
        "billed": u.billed,
        "errors": u.errors,
        "unmetered": u.unmetered,
        "statuses": dict(u.statuses),
        "input_tokens": u.input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cache_write_1h_tokens": u.cache_write_1h_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "cache_hit_share": round(u.cache_hit_share, 4),
    }
    s = savings(rows, history=history, context=context)
    out["cost"] = {
        "source": source(),
        "priced_requests": s.priced_requests,
        "local_requests": s.local_requests,
        "unpriced_models": list(s.unpriced_models),
        "unmetered_requests": s.unmetered_requests,
        "input_usd": round(s.billed_input_usd, 6),
        "output_usd": round(s.output_usd, 6),
        "total_usd": round(s.billed_input_usd + s.output_usd, 6),
        "baselines": {b.name: _baseline(b) for b in s.baselines},
    }
    return out
