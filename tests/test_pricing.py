"""Prices from genai-prices (issue 14, item 3): srt's cost of a ledger row equals the
library's own ``calc_price`` for the same usage, model, provider and date; overrides and
local models; nothing is guessed for an unknown model."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from genai_prices import Usage, calc_price, data_snapshot, types
from hypothesis import example, given, settings
from hypothesis import strategies as st

import srt
from srt.pricing import Price, Pricing, source
from srt.savings import savings

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()
# (ledger provider, genai-prices provider id, model as a request names it)
MODELS = [
    ("anthropic", "anthropic", "claude-opus-4-5"),
    ("anthropic", "anthropic", "claude-opus-4-5-20251101"),
    ("anthropic", "anthropic", "claude-sonnet-4-5"),
    ("anthropic", "anthropic", "claude-haiku-4-5"),
    ("openai", "openai", "gpt-5.2"),
    ("openai", "openai", "gpt-4o-mini"),
    ("openai", "openai", "gpt-4.1"),
    ("azure", "azure", "gpt-4o"),
    ("bedrock", "aws", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
    ("bedrock", "aws", "global.anthropic.claude-opus-4-5-20251101-v1:0"),
]


def row(provider: str, model: str, total: int, read: int = 0, write: int = 0, out: int = 0,
        at: float = NOW) -> dict[str, Any]:  # fmt: skip
    return {
        "provider": provider,
        "model": model,
        "at": at,
        "input_tokens": total,
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "output_tokens": out,
    }


def library(pid: str, model: str, total: int, read: int, write: int, out: int, at: float) -> Any:
    usage = Usage(
        input_tokens=total, cache_read_tokens=read, cache_write_tokens=write, output_tokens=out
    )
    when = dt.datetime.fromtimestamp(at, tz=UTC)
    return calc_price(usage, model, provider_id=pid, genai_request_timestamp=when)


def test_opus_4_5_is_priced_as_the_maintained_source_prices_it() -> None:
    """The old table's prefix match charged claude-opus-4-5 as Opus 4 ($15/$75)."""
    rates = Pricing().rates("claude-opus-4-5", "anthropic", at=NOW)
    assert rates is not None and rates.source == source() == f"genai-prices {_version()}"
    lib = library("anthropic", "claude-opus-4-5", 1_000_000, 0, 0, 1_000_000, NOW)
    assert (rates.input, rates.output) == (float(lib.input_price), float(lib.output_price))
    assert lib.model.id == rates.model == "claude-opus-4-5"
    assert (rates.input, rates.output) != (15.0, 75.0)
    print(f"claude-opus-4-5 per MTok: {rates}")


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("genai-prices")


@settings(max_examples=300)
@given(
    st.sampled_from(MODELS),
    st.integers(0, 1_200_000),
    st.data(),
    st.integers(0, 100_000),
    st.floats(dt.datetime(2024, 1, 1, tzinfo=UTC).timestamp(), NOW),
)
def test_every_row_costs_what_the_library_says(
    m: tuple[str, str, str], total: int, data: Any, out: int, at: float
) -> None:
    provider, pid, model = m
    read = data.draw(st.integers(0, total))
    write = data.draw(st.integers(0, total - read))
    cost = Pricing().request_cost(row(provider, model, total, read, write, out, at))
    lib = library(pid, model, total, read, write, out, at)
    no_cache = library(pid, model, total, 0, 0, 0, at)
    assert cost is not None
    assert cost[0] == pytest.approx(float(lib.input_price), rel=1e-9, abs=1e-12)
    assert cost[1] == pytest.approx(float(no_cache.input_price), rel=1e-9, abs=1e-12)
    assert cost[2] == pytest.approx(float(lib.output_price), rel=1e-9, abs=1e-12)


def test_long_context_tiers_apply() -> None:
    p = Pricing()
    small, large = (p.rates("claude-sonnet-4-5", "anthropic", input_tokens=n) for n in (1, 300_000))
    assert small is not None and large is not None
    lib = library("anthropic", "claude-sonnet-4-5", 300_000, 0, 0, 0, NOW)
    assert large.input == pytest.approx(float(lib.input_price) * 1e6 / 300_000)
    assert large.input > small.input  # the library's tier above 200k input tokens


def test_prices_follow_each_requests_date() -> None:
    """A model whose price changed on a date: a request before it and one after are
    priced as the library prices them on their own dates (found in the data, not typed in)."""
    snap = data_snapshot.get_snapshot()
    changed = []
    for provider in snap.providers:
        if provider.id not in ("openai", "anthropic"):
            continue
        for model in provider.models:
            for cp in model.prices if isinstance(model.prices, list) else ():
                if isinstance(cp.constraint, types.StartDateConstraint):
                    day = dt.datetime.combine(cp.constraint.start_date, dt.time(12), UTC)
                    before, after = day - dt.timedelta(days=2), day
                    b = library(provider.id, model.id, 250_000, 0, 0, 0, before.timestamp())
                    a = library(provider.id, model.id, 250_000, 0, 0, 0, after.timestamp())
                    if b.input_price != a.input_price:
                        changed.append((provider.id, model.id, before, after, b, a))
    assert changed, "genai-prices holds no dated price change for OpenAI or Anthropic"
    p = Pricing()
    for pid, model, before, after, b, a in changed:
        for when, lib in ((before, b), (after, a)):
            cost = p.request_cost(row(pid, model, 250_000, at=when.timestamp()))
            assert cost is not None
            assert cost[0] == pytest.approx(float(lib.input_price), rel=1e-9), (model, when)


def test_overrides_win_and_unknown_models_stay_unpriced() -> None:
    mine = Price(input=1.0, cached_input=0.1, output=2.0)
    p = Pricing({"my-model*": mine})
    r = p.rates("My-Model-7b", "openai_compatible")
    assert r is not None and r.source == "override" and r.cache_write == 1.0  # no write fee
    assert p.rates("not-a-model-anyone-prices", "openai_compatible") is None
    assert p.request_cost(row("openai_compatible", "nobody-prices-this", 10)) is None
    both = Pricing().with_prices({"gpt-4o-mini": Price(9.0, 9.0, 9.0, 9.0)})
    r = both.rates("gpt-4o-mini", "openai")
    assert r is not None and (r.input, r.source) == (9.0, "override")
    unknown = {**row("openai", "nobody-prices-this", 10), "status": "ok", "messages": 1}
    report = savings([{**unknown, "format": "openai.chat", "session": 1}])
    assert report.unpriced_models == ("nobody-prices-this",) and report.priced_requests == 0


def test_bad_prices_are_config_errors() -> None:
    with pytest.raises(srt.ConfigError):
        Price(-1.0, 0.0, 0.0)
    with pytest.raises(srt.ConfigError):
        Price(1.0, float("nan"), 0.0)
    with pytest.raises(srt.ConfigError):
        Pricing({"x": (1.0, 0.1, 2.0)})  # type: ignore[dict-item]
    with pytest.raises(srt.ConfigError):
        Pricing(local=[""])


def test_local_models_are_free_and_shown_as_local() -> None:
    p = Pricing(local=("llama-*",))
    for provider, model in (("local", "SmolLM2-135M-Instruct"), ("openai_compatible", "llama-3")):
        r = p.rates(model, provider)
        assert r is not None and r.source == "local" and r.input_usd(10_000) == 0.0
    local = {**row("local", "SmolLM2-135M-Instruct", 5_000, 4_000, out=20), "status": "ok"}
    report = savings([{**local, "format": "openai.chat", "session": 1, "messages": 3}], p)
    assert report.local_requests == report.priced_requests == 1
    assert report.billed_input_usd == report.no_cache.input_usd == 0.0
    assert report.unpriced_models == ()


# -- chat30: every cost is a finite number, and JSON output never holds Infinity or NaN --


@pytest.mark.parametrize(
    "bad",
    [
        float("inf"),
        float("-inf"),
        float("nan"),
        -0.5,
        1e308,
        pytest.param(10**400, id="10**400"),
        1e-7,
        2.2e-311,
    ],
)
@pytest.mark.parametrize(
    "field", ["input", "cached_input", "output", "cache_write_5m", "cache_write_1h"]
)
def test_a_price_that_is_not_a_finite_sane_number_is_refused_naming_its_field(
    bad: Any, field: str
) -> None:
    rates: dict[str, Any] = {"input": 1.0, "cached_input": 0.1, "output": 2.0, field: bad}
    with pytest.raises(srt.ConfigError, match=f"price {field} must be 0 or a number of USD"):
        Price(**rates)


def test_the_dearest_price_with_the_most_tokens_costs_a_finite_number() -> None:
    top = Price(*(srt.pricing.MAX_PRICE,) * 5)
    most = 2**63 - 1
    p = Pricing({"m": top})
    costs = p.request_cost({**row("openai", "m", most, out=most), "cache_write_1h_tokens": 0})
    assert costs is not None and all(math.isfinite(c) for c in costs)
    predicted = p.predict("m", most, 0)
    assert predicted is not None and all(math.isfinite(c) for c in predicted)


@pytest.mark.parametrize("tokens", [2**63, pytest.param(10**400, id="10**400")])
def test_token_counts_past_the_ledgers_integers_are_config_errors(tokens: int) -> None:
    # (before: predict and request_cost raised a bare OverflowError, or gave inf)
    p = Pricing({"m": Price(1.0, 0.1, 2.0)})
    with pytest.raises(srt.ConfigError, match="total_tokens"):
        p.predict("m", tokens, 0)
    with pytest.raises(srt.ConfigError, match="input_tokens"):
        p.rates("m", input_tokens=tokens)
    with pytest.raises(srt.ConfigError, match="input_tokens must be a whole number"):
        p.request_cost(row("openai", "m", tokens))
    with pytest.raises(srt.ConfigError, match="output_tokens must be a whole number"):
        p.request_cost(row("openai", "m", 10, out=tokens))


@settings(max_examples=300, deadline=None)
@example(rates=[1e-6, 1e6, 0.0, 0.0, 0.0], counts=[1, 1, 0, 0])  # a read dearer than input
@example(rates=[1e-6, 1e6, 1e6, 1e6, 1e6], counts=[2**63 - 1] * 4)
@given(
    rates=st.lists(st.just(0.0) | st.floats(1e-6, 1e6), min_size=5, max_size=5),
    counts=st.lists(st.integers(0, 2**63 - 1), min_size=4, max_size=4),
)
def test_costs_are_finite_for_any_accepted_price(rates: list[float], counts: list[int]) -> None:
    p = Pricing({"m": Price(*rates)})
    total, read, write, out = counts
    r = {**row("openai", "m", total, read, write, out), "cache_write_1h_tokens": write}
    report = savings([{**r, "status": "ok", "format": "openai.chat", "session": 1}], p)
    figures = [report.billed_input_usd, report.output_usd]
    figures += [x for b in report.baselines for x in (b.input_usd, b.saved_usd, b.saved_share)]
    assert all(math.isfinite(x) for x in figures), figures


def test_json_output_never_holds_infinity_or_nan(capsys: pytest.CaptureFixture[str]) -> None:
    from srt.cli._common import CommandError, print_json

    for bad in (float("inf"), float("nan")):
        with pytest.raises(CommandError, match="cannot print this as JSON"):
            print_json({"cost": {"total_usd": bad}})
    assert capsys.readouterr().out == ""  # nothing half-printed
    print_json({"cost": {"total_usd": 1.5}})
    assert json.loads(capsys.readouterr().out) == {"cost": {"total_usd": 1.5}}
