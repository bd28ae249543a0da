"""A request's body as JSON, refused with 400 before anything else looks at it.

``parse_json`` takes the bytes of a POST body (every route's: responses, conversations,
their items, chat completions) and returns its object, or raises an ``ApiError`` (400):
for what is not JSON, for what nests too deep for the gateway to walk, and for lone
surrogates, which JSON can spell (``"\\ud83d"``) but UTF-8 cannot hold, so nothing
could store, send upstream or echo them. Nothing is written or sent before this check.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..message import LONE_SURROGATE, MAX_DEPTH
from .errors import ApiError, bad_request

__all__ = ["MAX_DEPTH", "parse_json"]


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


# A body nests arrays and objects at most ``MAX_DEPTH`` levels (its object is level 1):
# as deep as srt lets a stored message or tool definition nest (``srt.message``), so a
# tool's JSON schema that passes here passes there, and far from the depth where
# Python's JSON parser or encoder would run out of stack.
_WS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace (it always matches)


def _invalid_json() -> ApiError:
    return bad_request(
        "We could not parse the JSON body of your request. (HINT: This likely means "
        "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
        "payload.)",
        code="invalid_json",
    )


def _too_deep(param: str | None) -> ApiError:
    where = f"Invalid '{param}': the" if param else "The"
    return bad_request(
        f"{where} request body nests arrays and objects more than {MAX_DEPTH} levels deep.",
        param,
        "nested_too_deeply",
    )


def _printable(key: str) -> str:
    """A key for an error message: lone surrogates as ``\\udXXX`` (they cannot be encoded)."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400: for what is not JSON (``NaN`` and
    ``Infinity`` too, which Python's parser takes but JSON has not: echoed back, they
    could not be encoded), for arrays and objects nested more than ``MAX_DEPTH`` levels,
    and for a lone surrogate (``"\\ud83d"``, which JSON's escapes can spell but no UTF-8
    text holds) in any string or key. All of it is refused here, before anything is
    stored or sent upstream."""
    try:
        data = json.loads(raw, parse_constant=_not_json)
    except RecursionError:  # nested deeper than the parser's stack: far past MAX_DEPTH
        raise _too_deep(_deep_member(raw)) from None
    except (ValueError, UnicodeDecodeError):
        raise _invalid_json() from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_type")
    _check_tree(data)
    return data


def _check_tree(body: dict[str, Any]) -> None:
    """400 for a body nested more than ``MAX_DEPTH`` levels (naming its member) or
    holding a lone surrogate (naming where: ``input[0].content[0].text``). A walk
    without recursion: each open container is (value, depth, where), ``where`` a
    (parent's where, key) chain that becomes a path only for an error. About as long as
    parsing the body took (a millisecond for 500 input items and 50 tools)."""
    stack: list[tuple[Any, int, Any]] = [(body, 1, None)]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(_path(where, top=True))
        pairs = value.items() if type(value) is dict else enumerate(value)
        for k, v in pairs:
            if type(k) is str and not k.isascii() and LONE_SURROGATE.search(k):
                raise _surrogate(_path((where, k)), key=True)
            t = type(v)
            if t is str:
                if not v.isascii() and LONE_SURROGATE.search(v):
                    raise _surrogate(_path((where, k)), key=False)
            elif t is dict or t is list:
                stack.append((v, depth + 1, (where, k)))


def _path(where: Any, *, top: bool = False) -> str:
    """``(((None, "input"), 0), "content")`` as ``input[0].content`` (``top``: only the
    body's member, ``input``)."""
    parts: list[str] = []
    while where is not None:
        where, k = where
        parts.append(f"[{k}]" if isinstance(k, int) else "." + _printable(k))
    if top:
        del parts[:-1]
    path = "".join(reversed(parts))
    return path[1:]  # the body's member has no "." before it (its own leading dots stay)


def _surrogate(param: str, *, key: bool) -> ApiError:
    what = "the key" if key else "the string"
    return bad_request(
        f"Invalid '{param}': {what} holds a lone surrogate (half of a UTF-16 pair), "
        "which is not valid Unicode.",
        param,
        "invalid_value",
    )


def _skip(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not whitespace."""
    m = _WS.match(text, i)
    return m.end() if m is not None else i


def _deep_member(raw: bytes) -> str | None:
    """The body's member whose value nests past the parser's stack, found by parsing
    the body's object one member at a time (None: the body is no object, or not JSON)."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        return None
    dec = json.JSONDecoder(parse_constant=_not_json)
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    i += 1
    while True:
        i = _skip(text, i)
        if text[i : i + 1] != '"':
            return None
        try:
            key, i = dec.raw_decode(text, i)
        except ValueError:
            return None
        i = _skip(text, i)
        if text[i : i + 1] != ":":
            return None
        try:
            _, i = dec.raw_decode(text, _skip(text, i + 1))
        except RecursionError:
            return _printable(key)
        except ValueError:
            return None
        i = _skip(text, i)
        if text[i : i + 1] != ",":
            return None
        i += 1
