"""Which genai-prices data prices the ledger, and that srt never fetches any (brief
usage19).

genai-prices can fetch newer data itself (``genai_prices.UpdatePrices``: a background
thread reading GitHub). srt never starts it: the data is the installed package's, or
what the user's own process fetched, and ``source()`` (printed by ``srt stats``) says
which. Before, it named the installed version even for data fetched later. No test here
reaches beyond loopback: the "fetched" data is made in the process.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from importlib import metadata

import pytest
from genai_prices import data_snapshot, types

from srt.pricing import Pricing, source
from srt.savings import savings, usage_figures

INSTALLED = f"genai-prices {metadata.version('genai-prices')}"


@pytest.fixture
def fetched() -> Iterator[data_snapshot.DataSnapshot]:
    """Data as ``UpdatePrices`` leaves it, made here: the bundled OpenAI provider with
    gpt-4o at $7 input and $9 output per million tokens, fetched at a known time."""
    openai = copy.deepcopy(
        data_snapshot.find_provider_by_id(data_snapshot.get_snapshot().providers, "openai")
    )
    assert openai is not None
    (info,) = [m for m in openai.models if m.id == "gpt-4o"]
    info.prices = types.ModelPrice(input_mtok=Decimal(7), output_mtok=Decimal(9))
    snap = data_snapshot.DataSnapshot(
        [openai], from_auto_update=True, timestamp=datetime.fromtimestamp(1_796_000_000.0)
    )
    data_snapshot.set_custom_snapshot(snap)
    try:
        yield snap
    finally:
        data_snapshot.set_custom_snapshot(None)


def _row() -> dict[str, object]:
    return {"id": 1, "status": "ok", "provider": "openai", "format": "openai.chat",
            "model": "gpt-4o", "at": None, "messages": 2, "node": None, "session": 1,
            "input_tokens": 1_000_000, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "output_tokens": 1_000_000}  # fmt: skip


def test_data_the_user_fetched_is_used_and_named(fetched: data_snapshot.DataSnapshot) -> None:
    pricing = Pricing()
    r = pricing.rates("gpt-4o", "openai")
    assert r is not None and (r.input, r.output) == (7.0, 9.0)
    when = datetime.fromtimestamp(1_796_000_000.0, timezone.utc)
    assert source() == r.source == f"{INSTALLED}, data fetched {when:%Y-%m-%d %H:%M} UTC"
    report = savings([_row()], pricing)
    assert report.sources == (source(),) and report.billed_input_usd == pytest.approx(7.0)
    assert usage_figures([_row()])["cost"]["source"] == source()


def test_the_installed_data_is_named_by_its_version_alone() -> None:
    assert source() == INSTALLED
    r = Pricing().rates("gpt-4o", "openai")
    assert r is not None and r.source == INSTALLED


def test_switching_data_reprices_a_pricing_already_used(
    fetched: data_snapshot.DataSnapshot,
) -> None:
    """One ``Pricing`` prices gpt-4o from the fetched data, then from the bundled data
    once the user drops it: its memo of each price set's rates follows the data."""
    pricing = Pricing()
    first = pricing.rates("gpt-4o", "openai")
    data_snapshot.set_custom_snapshot(None)
    second = pricing.rates("gpt-4o", "openai")
    assert first is not None and second is not None
    assert first.input == 7.0 and second.input != 7.0 and second.source == INSTALLED


def test_pricing_and_reports_never_start_the_price_fetcher() -> None:
    """genai-prices fetches in a thread named ``genai_prices:update``: none runs after
    pricing, a savings report and the usage figures."""
    savings([_row()], Pricing())
    usage_figures([_row()])
    names = [t.name for t in threading.enumerate()]
    assert "genai_prices:update" not in names
