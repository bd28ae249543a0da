"""audit30: ``Pricing.rates`` and ``is_local`` refuse what is not a request with a
``ConfigError`` (``predict`` already did), instead of an AttributeError or TypeError."""

from __future__ import annotations

from typing import Any

import pytest

import srt


@pytest.mark.parametrize(
    ("args", "kw", "says"),
    [
        ((None,), {}, "model"),
        ((5,), {}, "model"),
        ((b"gpt-4o",), {}, "model"),
        (("",), {}, "model"),
        (("gpt-4o", 5), {}, "provider"),
        (("claude-sonnet-4-5", "anthropic"), {"input_tokens": "x"}, "input_tokens"),
        (("claude-sonnet-4-5", "anthropic"), {"input_tokens": None}, "input_tokens"),
        (("claude-sonnet-4-5", "anthropic"), {"input_tokens": 250_000.0}, "input_tokens"),
        (("claude-sonnet-4-5", "anthropic"), {"input_tokens": -1}, "input_tokens"),
    ],
)
def test_rates_of_what_is_not_a_request_is_a_config_error(
    args: tuple[Any, ...], kw: dict[str, Any], says: str
) -> None:
    with pytest.raises(srt.ConfigError, match=says):
        srt.Pricing().rates(*args, **kw)


def test_is_local_of_what_is_not_a_model_is_a_config_error() -> None:
    with pytest.raises(srt.ConfigError, match="model"):
        srt.Pricing(local=("llama*",)).is_local(None)  # type: ignore[arg-type]


def test_good_requests_are_still_priced() -> None:
    rates = srt.Pricing().rates("claude-sonnet-4-5", "anthropic", input_tokens=250_000)
    assert rates is not None and rates.input == pytest.approx(6.0)  # the long-context tier
    assert srt.Pricing(local=("llama*",)).is_local("llama-3")
