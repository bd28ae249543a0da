"""audit30: ``srt stats`` names the models it has no price for, also beside local ones
(``srt.cli._stats.usage_summary``)."""

from __future__ import annotations

from typing import Any

from srt.cli._stats import usage_summary


def _row(rid: int, provider: str, model: str) -> dict[str, Any]:
    return {
        "id": rid,
        "status": "ok",
        "session": 1,
        "provider": provider,
        "format": "openai.chat",
        "model": model,
        "at": 1_760_000_000.0,
        "messages": 1,
        "node": None,
        "input_tokens": 100,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 10,
    }


def _lines(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition("  ") for line in usage_summary(rows))}


def test_an_unpriced_model_beside_a_local_one_is_named_not_costed_at_zero() -> None:
    rows = [_row(1, "local", "smollm2"), _row(2, "openai", "my-unknown-model")]
    lines = _lines(rows)
    assert lines["unpriced"] == "my-unknown-model"
    # Not "$0 (local: the model runs on this machine)": one request's cost is unknown.
    assert "local" in lines["cost"] and "no price" in lines["cost"]
    assert not lines["cost"].startswith("$0 (local")


def test_only_local_requests_still_cost_zero() -> None:
    lines = _lines([_row(1, "local", "smollm2")])
    assert lines["cost"] == "$0 (local: the model runs on this machine)"
    assert "unpriced" not in lines
