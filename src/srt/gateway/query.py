"""The query strings of the GET endpoints, checked the way ``params`` checks bodies.

A query is taken as its ``(key, value)`` pairs (``QueryParams.multi_items()``): an
array comes as repeated keys, ``include[]=a&include[]=b`` as the ``openai`` SDK writes
it or ``include=a&include=b``; a key given twice otherwise counts by its last value.
An unknown key is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ApiError, bad_request
from .params import check_include

__all__ = [
    "ListParams",
    "RetrieveParams",
    "parse_include",
    "parse_list",
    "parse_none",
    "parse_retrieve",
]

_INCLUDE = ("include", "include[]")


def _take(pairs: Iterable[tuple[str, str]], known: set[str]) -> tuple[dict[str, str], list[str]]:
    """The query's single values (the last of a repeated key), and its ``include``
    values; an unknown key is refused."""
    single: dict[str, str] = {}
    include: list[str] = []
    for k, v in pairs:
        if k in _INCLUDE:
            include.append(v)
        elif k in known:
            single[k] = v
        else:
            raise bad_request(f"Unrecognized query parameter: {k}", k, "unknown_parameter")
    return single, include


def _integer(query: dict[str, str], key: str, default: str) -> int:
    raw = query.get(key, default)
    # (``int`` takes "5_0", " 5" and other scripts' digits)
    if not raw.isascii() or not raw.lstrip("-").isdigit() or raw.count("-") > 1:
        raise bad_request(f"Invalid '{key}': expected an integer.", key, "invalid_type")
    return int(raw)


def _boolean(query: dict[str, str], key: str) -> bool:
    raw = query.get(key, "false")
    if raw not in ("true", "false"):
        raise bad_request(f"Invalid '{key}': expected true or false.", key, "invalid_type")
    return raw == "true"


def parse_none(pairs: Iterable[tuple[str, str]]) -> None:
    """An endpoint that takes no query parameter: any key is refused by name."""
    _take(pairs, set())


def parse_include(pairs: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """``include`` alone, checked as a list's: the ``openai`` SDK sends it in the query of
    ``conversations.items.create`` and ``conversations.items.retrieve``."""
    return check_include(_take(pairs, set())[1])


@dataclass(frozen=True)
class ListParams:
    after: str | None
    limit: int
    order: str
    include: tuple[str, ...] = ()


def parse_list(pairs: Iterable[tuple[str, str]], default_order: str = "desc") -> ListParams:
    """``after``, ``limit`` (1-100, default 20), ``order`` (``asc``/``desc``) and
    ``include`` (the values ``POST /v1/responses`` serves: the list shows them)."""
    query, include = _take(pairs, {"after", "limit", "order"})
    limit = _integer(query, "limit", "20")
    if not 1 <= limit <= 100:
        raise bad_request("Invalid 'limit': must be between 1 and 100.", "limit", "invalid_value")
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        raise bad_request("Invalid 'order': 'asc' or 'desc'.", "order", "invalid_value")
    after = query.get("after") or None
    return ListParams(after, limit, order, check_include(include))


@dataclass(frozen=True)
class RetrieveParams:
    """``GET /v1/responses/{id}``: ``stream`` replays a finished response's events,
    after the sequence number ``starting_after`` when given."""

    stream: bool = False
    starting_after: int | None = None
    include: tuple[str, ...] = ()


def parse_retrieve(pairs: Iterable[tuple[str, str]]) -> RetrieveParams:
    """``stream``, ``starting_after`` (only with ``stream``), ``include`` and
    ``include_obfuscation`` (taken: the gateway's events carry no padding)."""
    query, include = _take(pairs, {"stream", "starting_after", "include_obfuscation"})
    stream = _boolean(query, "stream")
    _boolean(query, "include_obfuscation")
    after = None
    if "starting_after" in query:
        after = _integer(query, "starting_after", "0")
        if after < 0:
            raise _invalid("starting_after", "must be at least 0")
        if not stream:
            raise _invalid("starting_after", "only allowed when 'stream' is true")
    return RetrieveParams(stream, after, check_include(include))


def _invalid(key: str, why: str) -> ApiError:
    return bad_request(f"Invalid '{key}': {why}.", key, "invalid_value")
