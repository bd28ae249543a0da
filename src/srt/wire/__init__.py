"""Wire formats: canonical message bytes -> per-provider fragment bytes and envelopes.

Each format is a pure module (no I/O) that provides:

* ``NAME``: the format's name, e.g. ``"openai.chat"``;
* ``IDENTITY``: true when a message's fragment *is* its canonical bytes;
* ``fragment(body) -> bytes``: one message's fragment, from its canonical bytes;
* ``envelope(model, params) -> (head, sep, tail)``: the request around the
  fragments, so that ``head + sep.join(fragments) + tail`` is the request body.

Fragments are produced once per (message hash, format) and then reused as frozen
bytes; the Cython core copies them into the request in one allocation.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import ConfigError
from . import openai_chat

__all__ = ["FORMATS", "get_format"]

FORMATS: dict[str, ModuleType] = {openai_chat.NAME: openai_chat}


def get_format(name: str) -> ModuleType:
    """The wire-format module called ``name``; ``ConfigError`` for an unknown one."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown wire format {name!r}; known formats: {sorted(FORMATS)}"
        ) from None
