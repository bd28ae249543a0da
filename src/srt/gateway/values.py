"""Scalar request values checked the way the OpenAI API checks them, in its words:
types, strings, booleans, integers and numbers in range, and ``metadata``'s limits
(shared by ``params``, ``chat`` and ``conversations``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import ApiError, bad_request

__all__ = [
    "INT_MAX",
    "MIN_OUTPUT_TOKENS",
    "above_max",
    "boolean",
    "check_metadata",
    "integer",
    "number",
    "object_id",
    "string",
    "wrong_type",
]

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def wrong_type(param: str, expected: str, value: Any) -> ApiError:
    return bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param,
        "invalid_type",
    )


def string(
    body: Mapping[str, Any],
    key: str,
    *,
    empty: bool = True,
    most: int | None = None,
    param: str | None = None,
) -> str | None:
    """``body[key]``: a string (``empty``: may be ""; ``most``: at most that many
    characters), or None when absent or null; an error names ``param`` (else ``key``)."""
    v = body.get(key)
    param = param or key
    if v is None:
        return None
    if not isinstance(v, str):
        raise wrong_type(param, "a string", v)
    if not empty and not v:
        raise bad_request(f"Invalid '{param}': empty string.", param, "empty_string")
    if most is not None and len(v) > most:
        raise bad_request(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{most}, but got a string with length {len(v)} instead.",
            param,
            "string_above_max_length",
        )
    return v


def object_id(value: str, param: str, prefix: str) -> str:
    """An id a request names (``conversation``, ``previous_response_id``): one that does
    not begin with its kind's ``prefix`` is refused in api.openai.com's words,
    ``Invalid 'conversation': 'x'. Expected an ID that begins with 'conv'.``
    (``invalid_value``), before anything is looked up."""
    if not value.startswith(prefix):
        raise bad_request(
            f"Invalid '{param}': '{value}'. Expected an ID that begins with '{prefix}'.",
            param,
            "invalid_value",
        )
    return value


def boolean(body: Mapping[str, Any], key: str) -> bool | None:
    v = body.get(key)
    if v is not None and not isinstance(v, bool):
        raise wrong_type(key, "a boolean", v)
    return v


#: The largest integer OpenAI's request checks take (a 32-bit signed integer): no model
#: takes more tokens, so a larger count is refused here, never sent upstream.
INT_MAX = 2**31 - 1
#: OpenAI's least ``max_output_tokens``: a smaller value is a 400 there, so here too.
MIN_OUTPUT_TOKENS = 16


def above_max(key: str, v: int) -> ApiError:
    return bad_request(
        f"Invalid '{key}': integer above maximum value. Expected a value <= {INT_MAX}, "
        f"but got {v} instead.",
        key,
        "integer_above_max_value",
    )


def integer(body: Mapping[str, Any], key: str, lo: int, hi: int | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise wrong_type(key, "an integer", v)
    if hi is None and v > INT_MAX:
        raise above_max(key, v)
    if hi is None and v < lo:  # as OpenAI words its minimums (``max_output_tokens``: 16)
        raise bad_request(
            f"Invalid '{key}': integer below minimum value. Expected a value >= {lo}, "
            f"but got {v} instead.",
            key,
            "integer_below_min_value",
        )
    if v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise bad_request(f"Invalid '{key}': must be {bound}, got {v}.", key, "invalid_value")
    return v


def number(body: Mapping[str, Any], key: str, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise wrong_type(key, "a number", v)
    if not math.isfinite(v):  # 1e400 parses as infinity
        raise bad_request(f"Invalid '{key}': must be a finite number.", key, "invalid_value")
    if not lo <= v <= hi:
        raise bad_request(f"Invalid '{key}': must be between {lo} and {hi}.", key, "invalid_value")
    return float(v)


def check_metadata(value: Any, param: str = "metadata") -> dict[str, str] | None:
    """At most 16 string pairs, keys up to 64 and values up to 512 characters."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wrong_type(param, "an object", value)
    if len(value) > 16:
        raise bad_request(
            f"Invalid '{param}': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(value)} properties instead.",
            param,
            "object_above_max_properties",
        )
    for k, v in value.items():
        if not isinstance(v, str):
            raise wrong_type(f"{param}.{k}", "a string", v)
        if len(k) > 64:
            raise bad_request(
                f"Invalid '{param}': a key is too long. Expected keys with at most 64 "
                f"characters, but got a key with {len(k)} characters instead.",
                param,
                "string_above_max_length",
            )
        if len(v) > 512:
            raise bad_request(
                f"Invalid '{param}.{k}': string too long. Expected a string with maximum "
                f"length 512, but got a string with length {len(v)} instead.",
                f"{param}.{k}",
                "string_above_max_length",
            )
    return dict(value)
