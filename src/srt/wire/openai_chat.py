"""OpenAI Chat Completions: ``POST /v1/chat/completions``.

The canonical message bytes are already a valid Chat Completions message, so a
fragment is the stored body itself and building a request serializes nothing
but the small envelope. The body equals ``json.dumps({"model": ..., "messages":
[...], **params}, ensure_ascii=False, separators=(",", ":"))``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..message import dumps

NAME = "openai.chat"
IDENTITY = True
_RESERVED = frozenset({"model", "messages"})


def fragment(body: bytes) -> bytes:
    """A message's Chat Completions fragment: its canonical bytes, unchanged."""
    return body


def envelope(model: str, params: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """``(head, sep, tail)`` around the message fragments for ``model`` and ``params``."""
    if not isinstance(model, str) or not model:
        raise ConfigError("model must be a non-empty string")
    clash = _RESERVED.intersection(params)
    if clash:
        raise ConfigError(f"request parameters may not set {sorted(clash)}")
    head = b'{"model":' + dumps(model) + b',"messages":['
    try:
        tail = b"]" + b"".join(b"," + dumps(k) + b":" + dumps(v) for k, v in params.items())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"request parameters are not valid JSON: {exc}") from None
    return head, b",", tail + b"}"
