"""audit30: where the careful baseline pays "what srt paid", it pays it at srt's prices,
1-hour cache writes included (``srt.savings``)."""

from __future__ import annotations

from typing import Any

import pytest

from srt.savings import savings


def _row(**kw: Any) -> dict[str, Any]:
    row = {
        "id": 1,
        "status": "ok",
        "session": 1,
        "provider": "anthropic",
        "format": "anthropic.messages",
        "model": "claude-sonnet-4-5",
        "at": 1_760_000_000.0,
        "messages": 3,
        "node": None,
        "input_tokens": 5000,
        "cache_read_tokens": 0,
        "cache_write_tokens": 5000,
        "cache_write_1h_tokens": 5000,  # static_ttl="1h": written at the 1-hour price
        "output_tokens": 10,
    }
    row.update(kw)
    return row


def _no_history(node: int, depth: int) -> list[tuple[int, bytes]]:
    raise AssertionError("a row without a node is not looked up")


@pytest.mark.parametrize(
    "row",
    [
        # A failed request that records the usage the provider reported: no node.
        _row(status="error"),
        # A reply swept by gc: its row keeps its usage, its node is gone.
        _row(),
    ],
    ids=["failed-yet-billed", "node-swept"],
)
def test_careful_pays_what_srt_paid_with_its_1h_writes(row: dict[str, Any]) -> None:
    report = savings([row], history=_no_history)
    careful = report.careful
    assert (careful.cache_read_tokens, careful.cache_write_tokens) == (0, 5000)
    # Sonnet 4.5: 1-hour writes cost $6/M, 5-minute ones $3.75/M; srt paid $0.03.
    assert report.billed_input_usd == pytest.approx(0.03)
    assert careful.input_usd == pytest.approx(report.billed_input_usd)
    assert careful.saved_usd == pytest.approx(0.0)


def test_careful_pays_what_srt_paid_for_a_format_it_does_not_know() -> None:
    report = savings([_row(format="someone.else", node=7)], history=_no_history)
    assert report.careful.input_usd == pytest.approx(report.billed_input_usd)
    assert report.careful.saved_usd == pytest.approx(0.0)
