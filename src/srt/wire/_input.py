"""Typed errors for messages given in a provider's own shape (``to_canonical``).

A converter reads fields where the provider's documents put them. ``need`` checks
one field, so a missing or mistyped one names itself; ``typed_input`` wraps a whole
converter, so that a shape nobody foresaw (a list where an object belongs, a
missing field deep inside, nesting too deep for Python) is still an
``InvalidMessageError`` naming the format, never a bare ``KeyError``,
``TypeError``, ``AttributeError``, ``ValueError`` or ``RecursionError``. Error text
names fields and types only, never values: they may be message content.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from ..errors import InvalidMessageError, SrtError

__all__ = ["need", "typed_input"]

F = TypeVar("F", bound=Callable[..., Any])

_SHAPE_ERRORS = (LookupError, TypeError, AttributeError, ValueError, RecursionError)
_KINDS: dict[type, str] = {str: "a string", list: "a list", Mapping: "an object"}


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    key = exc.args[0] if isinstance(exc, KeyError) and exc.args else None
    if isinstance(key, str) and key.isidentifier() and len(key) <= 40:
        return f"its {key!r} field is missing"
    return f"a field is missing or of the wrong type ({type(exc).__name__})"


def typed_input(label: str) -> Callable[[F], F]:
    """Make any shape error raised by the decorated converter an ``InvalidMessageError``
    (``label``, e.g. ``"an Anthropic message"``, starts its text)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def converter(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except SrtError:
                raise
            except _SHAPE_ERRORS as exc:
                raise InvalidMessageError(f"{label} is malformed: {_why(exc)}") from None

        return cast(F, converter)

    return wrap


def need(block: Any, key: str, kind: type, what: str) -> Any:
    """``block[key]``, which must be of ``kind`` (``str``, ``Mapping``...); else an
    ``InvalidMessageError`` saying that ``what`` (e.g. "an Anthropic tool_use block")
    needs it."""
    value = block.get(key) if isinstance(block, Mapping) else None
    if not isinstance(value, kind):
        raise InvalidMessageError(
            f"{what} needs a {key!r} field that is {_KINDS.get(kind, kind.__name__)}"
        )
    return value
