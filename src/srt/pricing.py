"""Prices from a maintained source, a small override hook, and the cost of ledger rows.

Prices come from ``genai-prices`` (pydantic's maintained price data: every provider's
list prices with their start dates, long-context tiers and cache read/write prices).
Each request is priced at the price that applied on its date (the ledger's ``at``) and
in the tier its input tokens fall in. ``source()`` names the data (``genai-prices
0.2.5``); ``srt stats`` prints it. srt never fetches prices: the data is the one the
installed package ships (``pip install -U genai-prices`` brings newer), unless the
user's own process fetched newer data with ``genai_prices.UpdatePrices`` (then that is
used, and ``source()`` says when it was fetched).

A model the data does not know is *unpriced* and reported as such, never guessed. Two
hooks cover the rest:

* ``Pricing({"my-model*": Price(...)})`` (or ``.with_prices({...})``): USD per million
  tokens for model names matching a pattern (``fnmatch``, case-insensitive; the first
  matching pattern wins). Overrides win over the library.
* ``local``: models that run on the user's own machine are free and shown as
  ``local``. Requests of srt's ``local`` provider (llama.cpp) always are; ``Pricing(
  local=("llama*",))`` adds model patterns (e.g. a vLLM on the LAN through
  ``OpenAICompatible``).

What prefix reuse saved, against two labelled baselines, is in ``srt.savings``.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from ._types import token_counts, write_1h_tokens
from .errors import ConfigError

__all__ = [
    "LOCAL",
    "MAX_PRICE",
    "MAX_TOKENS",
    "MIN_PRICE",
    "Price",
    "Pricing",
    "Rates",
    "check_pricing",
    "source",
    "token_counts",
    "write_1h_tokens",
]

#: The ledger's provider names priced as local (free): srt's llama.cpp provider.
LOCAL = frozenset({"local"})
#: Ledger provider -> genai-prices provider id (``None``: found from the model name).
_PROVIDER_IDS: dict[str, str | None] = {
    "openai": "openai",
    "azure": "azure",
    "anthropic": "anthropic",
    "bedrock": "aws",
    "openai_compatible": None,
}
_M = Decimal(1_000_000)


@functools.cache
def _installed() -> str:
    from importlib import metadata  # (here: about 20 ms of ``import srt``)

    return f"genai-prices {metadata.version('genai-prices')}"


def _named(snapshot: Any) -> str:
    """The name of a genai-prices data snapshot: the installed package's, and when the
    user's process fetched newer data (``genai_prices.UpdatePrices``) when it did."""
    if not getattr(snapshot, "from_auto_update", False):
        return _installed()
    at = snapshot.timestamp.astimezone(timezone.utc)  # (naive: the local time it was made)
    return f"{_installed()}, data fetched {at:%Y-%m-%d %H:%M} UTC"


def source() -> str:
    """The price data in use: ``"genai-prices 0.2.5"``, the data that version of the
    package ships, or ``"genai-prices 0.2.5, data fetched 2026-12-06 17:00 UTC"`` when
    the user's process fetched newer data with ``genai_prices.UpdatePrices`` (srt never
    fetches it)."""
    from genai_prices import data_snapshot

    return _named(data_snapshot.get_snapshot())


#: The dearest price a ``Price`` takes: USD per million tokens ($1 a token, over a
#: thousand times any model's list price), and the cheapest one but 0 (a dollar per
#: trillion tokens). With token counts below 2**63 (what the ledger stores), every cost
#: srt computes from such prices, and every share of one cost in another (a saving's
#: share: a cost that is not 0 is at least a millionth of a millionth of a dollar), is a
#: finite number.
MAX_PRICE = 1e6
MIN_PRICE = 1e-6
#: Token counts are whole numbers below this (the ledger's 64-bit integers).
MAX_TOKENS = 2**63


@dataclass(frozen=True)
class Price:
    """A user's price for a model: USD per million tokens, each 0 or a number from
    ``MIN_PRICE`` to ``MAX_PRICE`` (anything else, ``inf`` and ``nan`` among it, is a
    ``ConfigError``)."""

    input: float
    cached_input: float
    output: float
    cache_write_5m: float | None = None  # None: no write fee (writes cost the input price)
    cache_write_1h: float | None = None  # None: 1-hour writes cost what 5-minute ones do

    def __post_init__(self) -> None:
        for name in ("input", "cached_input", "output", "cache_write_5m", "cache_write_1h"):
            v = getattr(self, name)
            if v is not None and (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not (v == 0 or MIN_PRICE <= v <= MAX_PRICE)
            ):
                raise ConfigError(
                    f"price {name} must be 0 or a number of USD per million tokens from "
                    f"{MIN_PRICE:f} to {MAX_PRICE:,.0f}, got {v!r:.40}"
                )


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for one request: where they came from (``"genai-prices"``,
    ``"override"`` or ``"local"``), and the model the source priced. ``cache_write`` is a
    5-minute cache write's price, ``cache_write_1h`` a 1-hour one's (``None``: the same)."""

    input: float
    cache_read: float
    cache_write: float
    output: float
    source: str
    model: str
    cache_write_1h: float | None = None

    def input_usd(self, total: int, read: int = 0, write: int = 0, write_1h: int = 0) -> float:
        """Input USD of ``total`` input tokens, ``read`` of them cache reads and ``write``
        cache writes, ``write_1h`` of which had a 1-hour TTL (the rest at the input price)."""
        long = self.cache_write if self.cache_write_1h is None else self.cache_write_1h
        return (
            (total - read - write) * self.input
            + read * self.cache_read
            + (write - write_1h) * self.cache_write
            + write_1h * long
        ) / 1e6

    def output_usd(self, tokens: int) -> float:
        return tokens * self.output / 1e6


_FREE = (0.0, 0.0, 0.0, 0.0, "local")


def _timestamp(at: Any) -> datetime:
    """``at`` (Unix seconds) as a UTC date; ``None`` or 0: now. A date that is not one
    (text, NaN, past year 9999) is a ``ConfigError``: no price is guessed for it."""
    if at is None or (isinstance(at, (int, float)) and not isinstance(at, bool) and at == 0):
        return datetime.now(tz=timezone.utc)
    if isinstance(at, (int, float)) and not isinstance(at, bool) and at > 0:
        try:
            return datetime.fromtimestamp(float(at), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    raise ConfigError(f"a request's date must be Unix seconds after 1970, got {at!r:.40}")


class Pricing:
    """Prices by model: the user's overrides, then local models, then genai-prices."""

    def __init__(
        self,
        overrides: Mapping[str, Price] | None = None,
        *,
        local: Iterable[str] = (),
    ) -> None:
        if overrides is not None and not isinstance(overrides, Mapping):
            raise ConfigError(
                "overrides must be a dict of model name (or pattern) to srt.Price, "
                f"got {type(overrides).__name__}"
            )
        self._overrides = dict(overrides or {})
        for pattern, price in self._overrides.items():
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError("a price override's key is a model name or pattern")
            if not isinstance(price, Price):
                raise ConfigError(f"the override for {pattern!r} must be an srt.pricing.Price")
        if isinstance(local, (str, bytes)) or not isinstance(local, Iterable):
            # (a lone string would be read one character at a time: "*" prices all free)
            raise ConfigError(
                "local takes a list of model names or patterns, e.g. local=('llama*',), "
                f"got {type(local).__name__}"
            )
        self._local = tuple(local)
        if not all(isinstance(p, str) and p for p in self._local):
            raise ConfigError("local models are given as model names or patterns")
        # (id of a genai-prices price set, tier) -> (that price set, its rates): the set is
        # kept so that its id is not reused by another after a data update frees it.
        self._rates: dict[tuple[int, int], tuple[Any, tuple[float, ...]]] = {}

    @classmethod
    def default(cls) -> Pricing:
        """genai-prices' prices, with no overrides and no local models (``Pricing()``)."""
        return cls()

    def with_prices(self, prices: Mapping[str, Price]) -> Pricing:
        """These overrides first, then this pricing's."""
        return Pricing({**prices, **self._overrides}, local=self._local)

    # -- lookups -------------------------------------------------------------------------

    def _override(self, model: str) -> Price | None:
        m = model.lower()
        for pattern, price in self._overrides.items():
            if fnmatch.fnmatchcase(m, pattern.lower()):
                return price
        return None

    def is_local(self, model: str, provider: str | None = None) -> bool:
        """Whether ``model`` (through ``provider``, a ledger provider name) runs locally,
        and so costs nothing: srt's local provider, or a model named in ``local=``."""
        _check_request(model, provider)
        m = model.lower()
        return provider in LOCAL or any(fnmatch.fnmatchcase(m, p.lower()) for p in self._local)

    def rates(
        self,
        model: str,
        provider: str | None = None,
        *,
        at: float | None = None,
        input_tokens: int = 0,
    ) -> Rates | None:
        """The rates for a request to ``model`` through srt provider ``provider``
        (``"openai"``, ``"anthropic"``, ``"bedrock"``, ... as the ledger names it; ``None``:
        found from the model name), made at Unix time ``at`` (default now) with
        ``input_tokens`` of input (which selects a long-context tier); ``None`` when
        no source prices the model."""
        _check_request(model, provider, input_tokens=input_tokens)
        p = self._override(model)
        if p is not None:
            write = p.cache_write_5m if p.cache_write_5m is not None else p.input
            return Rates(
                p.input, p.cached_input, write, p.output, "override", model, p.cache_write_1h
            )
        if self.is_local(model, provider):
            return Rates(*_FREE, model)
        return self._library(model, provider, _timestamp(at), input_tokens)

    def _library(self, model: str, provider: str | None, ts: datetime, total: int) -> Rates | None:
        from genai_prices import Usage, data_snapshot, types

        pid = _PROVIDER_IDS.get(provider or "")
        snapshot = data_snapshot.get_snapshot()  # (the user's fetched data, if any)
        try:
            found = snapshot.find_provider_model(model, None, pid, None)
        except LookupError:
            return None
        info = found[1]
        mp = info.get_prices(ts)
        tiers = sorted(
            {
                t.start
                for v in vars(mp).values()
                if isinstance(v, types.TieredPrices)
                for t in v.tiers
            }
        )
        tier = sum(total > start for start in tiers)
        key = (id(mp), tier)
        cached = self._rates.get(key)
        if cached is not None and cached[0] is mp:
            rates = cached[1]
        else:
            # Prices are linear in each kind of token within a tier: probe the source once
            # per (price set, tier) with usages of that tier's size.
            n = max(total, 1)

            def per_million(usd: Decimal) -> float:
                return float(Decimal(usd) * _M / n)

            rates = (
                per_million(mp.calc_price(Usage(input_tokens=n))["input_price"]),
                per_million(
                    mp.calc_price(Usage(input_tokens=n, cache_read_tokens=n))["input_price"]
                ),
                per_million(
                    mp.calc_price(Usage(input_tokens=n, cache_write_tokens=n))["input_price"]
                ),
                per_million(mp.calc_price(Usage(input_tokens=n, output_tokens=n))["output_price"]),
                per_million(
                    mp.calc_price(
                        Usage(input_tokens=n, cache_write_tokens=n, cache_write_1h_tokens=n)
                    )["input_price"]
                ),
            )
            self._rates[key] = (mp, rates)
        inp, read, write, out, write_1h = rates
        return Rates(inp, read, write, out, _named(snapshot), info.id, write_1h)

    # -- costs ---------------------------------------------------------------------------

    def row_rates(self, row: Mapping[str, Any]) -> Rates | None:
        """The rates of one ledger row (its model, provider, date and input tokens).

        A row whose reply named another model (``reply_model``) is priced as either: an
        override or local pattern matching the model asked for wins, then one matching
        the reply's; then the data's price of the reply's model first on Azure (where the
        model asked for is a deployment's name, and the reply names the model it runs),
        of the model asked for first elsewhere (where the reply names a dated snapshot)."""
        model, provider = row.get("model"), row.get("provider")
        named, at = row.get("reply_model"), row.get("at")
        if not isinstance(model, str) or not model:
            raise ConfigError(f"ledger row {row.get('id')!r}: model must be a non-empty string")
        if provider is not None and not isinstance(provider, str):
            raise ConfigError(f"ledger row {row.get('id')!r}: provider must be a string")
        if named is not None and not isinstance(named, str):
            raise ConfigError(f"ledger row {row.get('id')!r}: reply_model must be a string")
        return self._either(model, provider, named, at, token_counts(row)[0])

    def _either(
        self, model: str, provider: str | None, named: str | None, at: Any, total: int
    ) -> Rates | None:
        """The rates of a request to ``model`` that ran ``named`` (``row_rates``' rule)."""
        if not named or named == model:
            return self.rates(model, provider, at=at, input_tokens=total)
        for name in (model, named):
            if self._override(name) is not None or self.is_local(name, provider):
                return self.rates(name, provider, at=at, input_tokens=total)
        ts = _timestamp(at)
        for name in (named, model) if provider == "azure" else (model, named):
            found = self._library(name, provider, ts, total)
            if found is not None:
                return found
        return None

    def request_cost(self, row: Mapping[str, Any]) -> tuple[float, float, float] | None:
        """(billed input USD, input USD without any caching, output USD) of a ledger row."""
        r = self.row_rates(row)
        if r is None:
            return None
        total, read, write, out = token_counts(row)
        for key, n in (("input_tokens", total), ("output_tokens", out)):
            if n >= MAX_TOKENS:  # (reads and writes are parts of the input)
                # (the ledger's counts are 64-bit: a cost of more would not be finite;
                # ``UsageSummary`` adds such counts as whole numbers and takes them)
                raise ConfigError(
                    f"ledger row {row.get('id')!r}: {key} must be a whole number below "
                    f"2**63, got {n!r:.40}"
                )
        billed = r.input_usd(total, read, write, write_1h_tokens(row))
        return billed, r.input_usd(total), r.output_usd(out)

    def predict(
        self,
        model: str,
        total_tokens: int,
        cached_tokens: int,
        provider: str | None = None,
        *,
        served: str | None = None,
    ) -> tuple[float, float] | None:
        """(expected input USD, input USD without caching) for a request of
        ``total_tokens`` of which ``cached_tokens`` are expected from the cache (e.g. from
        the cache explain). Cache writes are not predicted. ``served``: the model the
        request runs when ``model`` names another thing (an Azure deployment's name,
        ``Provider.served_model``), priced as a ledger row whose reply named it
        (``row_rates``); ``None`` when neither is priced."""
        if served is not None and not isinstance(served, str):
            raise ConfigError("served must be a model name")
        _check_request(model, provider, total_tokens=total_tokens, cached_tokens=cached_tokens)
        if cached_tokens > total_tokens:
            raise ConfigError(
                f"cached_tokens ({cached_tokens}) cannot exceed total_tokens ({total_tokens})"
            )
        r = self._either(model, provider, served, None, total_tokens)
        if r is None:
            return None
        return r.input_usd(total_tokens, cached_tokens), r.input_usd(total_tokens)


def _check_request(model: Any, provider: Any, **tokens: Any) -> None:
    """A ``ConfigError`` unless ``model`` is a model name, ``provider`` a provider's name
    (or ``None``) and each of ``tokens`` a whole number of tokens >= 0."""
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model must be a model name, got {type(model).__name__}")
    if provider is not None and not isinstance(provider, str):
        raise ConfigError(
            f"provider must be a provider's name (e.g. 'openai'), got {type(provider).__name__}"
        )
    for name, n in tokens.items():
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < MAX_TOKENS:
            raise ConfigError(
                f"{name} must be a whole number of tokens from 0 to 2**63-1, got {n!r:.40}"
            )


def check_pricing(pricing: Any) -> Pricing:
    """``pricing`` if it is a ``Pricing``, a new default one for ``None``; anything else
    (a model name, a ``Price``, a dict of them) is a ``ConfigError`` saying what to pass."""
    if pricing is None:
        return Pricing()
    if not isinstance(pricing, Pricing):
        raise ConfigError(
            f"pricing must be a srt.Pricing (or None), got {type(pricing).__name__}: "
            "for prices of your own, pass srt.Pricing({'model': srt.Price(...)})"
        )
    return pricing
