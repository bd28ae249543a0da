"""Prices as data, and what prefix reuse saved, in tokens and money.

``PRICES`` maps a model-name prefix to USD per million tokens: input, cached
input (a cache read), 5-minute and 1-hour cache writes, and output. The table is
dated (``PRICES_AS_OF``): these are list prices as the providers published them;
check them before relying on the money figures, and override any entry with
``Pricing({...})`` or ``Pricing.default().with_prices({...})``.

Savings are computed from the ledger of real requests: what the session was
actually billed for input (uncached input at the input price, cache reads at the
cached price, cache writes at the write price) against what a stateless client
without prefix reuse would have paid for the same turns (every input token at the
full input price). Output is the same for both and is reported, not compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["PRICES", "PRICES_AS_OF", "Price", "Pricing", "Savings"]

PRICES_AS_OF = "2025-11-01"


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float
    cache_write_5m: float | None = None  # None: no write fee (OpenAI)
    cache_write_1h: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "cached_input", "output", "cache_write_5m", "cache_write_1h"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or v < 0 or v != v):
                raise ConfigError(f"price {name} must be a non-negative number")


def _anthropic(base: float, output: float) -> Price:
    # Anthropic's documented multipliers on base input: read 0.1x, 5m write 1.25x, 1h write 2x.
    return Price(base, base * 0.1, output, base * 1.25, base * 2.0)


# Longest matching prefix wins (Bedrock ids such as "anthropic.claude-sonnet-4-..." and
# "us.anthropic..." are matched after stripping the region and vendor prefixes).
PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5": Price(1.25, 0.125, 10.00),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "o3": Price(2.00, 0.50, 8.00),
    "claude-opus-4-1": _anthropic(15.0, 75.0),
    "claude-opus-4": _anthropic(15.0, 75.0),
    "claude-sonnet-4": _anthropic(3.0, 15.0),
    "claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "claude-haiku-4": _anthropic(1.0, 5.0),
    "claude-3-5-haiku": _anthropic(0.80, 4.0),
}


def _normalise(model: str) -> str:
    m = model.lower()
    for prefix in ("us.", "eu.", "apac.", "global."):
        if m.startswith(prefix):
            m = m[len(prefix) :]
    if m.startswith("anthropic."):
        m = m[len("anthropic.") :]
    return m


@dataclass(frozen=True)
class Savings:
    """Input tokens and USD billed by srt's requests against a stateless client."""

    requests: int
    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    output_tokens: int
    billed_input_usd: float
    stateless_input_usd: float
    output_usd: float
    priced_requests: int
    unpriced_models: tuple[str, ...] = field(default=())

    @property
    def saved_usd(self) -> float:
        return self.stateless_input_usd - self.billed_input_usd

    @property
    def saved_share(self) -> float:
        s = self.stateless_input_usd
        return self.saved_usd / s if s else 0.0

    @property
    def uncached_input_tokens(self) -> int:
        return self.input_tokens - self.cache_read_tokens


class Pricing:
    """A price table: ``PRICES`` by default, overridable per model prefix."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices = dict(PRICES if prices is None else prices)

    @classmethod
    def default(cls) -> Pricing:
        return cls()

    def with_prices(self, prices: Mapping[str, Price]) -> Pricing:
        return Pricing({**self._prices, **prices})

    def price(self, model: str) -> Price | None:
        m = _normalise(model)
        best = None
        for prefix in self._prices:
            if m.startswith(prefix.lower()) and (best is None or len(prefix) > len(best)):
                best = prefix
        return self._prices[best] if best is not None else None

    def request_cost(self, row: Mapping[str, Any]) -> tuple[float, float, float] | None:
        """(billed input USD, stateless input USD, output USD) of one ledger row."""
        p = self.price(str(row["model"]))
        if p is None:
            return None
        total = int(row.get("input_tokens") or 0)
        read = int(row.get("cache_read_tokens") or 0)
        write = int(row.get("cache_write_tokens") or 0)
        out = int(row.get("output_tokens") or 0)
        write_price = p.cache_write_5m if p.cache_write_5m is not None else p.input
        uncached = total - read - write
        billed = (uncached * p.input + read * p.cached_input + write * write_price) / 1e6
        return billed, total * p.input / 1e6, out * p.output / 1e6

    def predict(
        self, model: str, total_tokens: int, cached_tokens: int
    ) -> tuple[float, float] | None:
        """(expected input USD, stateless input USD) for a request of ``total_tokens``
        of which ``cached_tokens`` are expected from the cache (e.g. from the cache
        explain). Cache writes are not predicted."""
        p = self.price(model)
        if p is None:
            return None
        billed = ((total_tokens - cached_tokens) * p.input + cached_tokens * p.cached_input) / 1e6
        return billed, total_tokens * p.input / 1e6

    def savings(self, rows: Iterable[Mapping[str, Any]]) -> Savings:
        """The savings report for ledger rows (``Session.calls()``, ``Runtime.calls()``)."""
        n = priced = 0
        tot = read = write = out = 0
        billed = stateless = out_usd = 0.0
        unpriced: set[str] = set()
        for row in rows:
            if row.get("status") not in ("ok", "incomplete", "cancelled"):
                continue
            n += 1
            tot += int(row.get("input_tokens") or 0)
            read += int(row.get("cache_read_tokens") or 0)
            write += int(row.get("cache_write_tokens") or 0)
            out += int(row.get("output_tokens") or 0)
            cost = self.request_cost(row)
            if cost is None:
                unpriced.add(str(row["model"]))
                continue
            priced += 1
            billed += cost[0]
            stateless += cost[1]
            out_usd += cost[2]
        return Savings(
            n, tot, read, write, out, billed, stateless, out_usd, priced, tuple(sorted(unpriced))
        )
