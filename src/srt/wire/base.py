"""The contract every wire format implements, and the helpers they share.

A request body is assembled as::

    head + glue(None, r0) + frag(m0) + glue(r0, r1) + frag(m1) + ... + close(r_last) + tail

where ``frag(m)`` is one message's fragment (serialized once per message hash and
format, then reused as frozen bytes), ``glue`` depends only on the wire roles of
two neighbouring messages (so it is stable as history grows), and ``head``/``tail``
come from the envelope (model, system area, tools, parameters). Formats that put
system messages outside the message list (Anthropic, Bedrock) receive the leading
system and developer messages as ``system`` fragments in the envelope instead.

Everything here is pure: no I/O, no SQL.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from .._types import Reply
from ..errors import ConfigError, UnsupportedFeatureError
from ..message import dumps

__all__ = [
    "Frag",
    "Target",
    "WireFormat",
    "check_model",
    "dumps",
    "loads_arguments",
    "params_tail",
    "text_of",
]


@dataclass(frozen=True)
class Target:
    """Who a request is for: decides which provider artifacts are replayed."""

    provider: str
    model: str


def loads_arguments(arguments: str, fmt: str) -> Any:
    """A tool call's JSON ``arguments`` string as a value, for formats that send objects."""
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        raise UnsupportedFeatureError(
            fmt, "tool call arguments that are not valid JSON (this format sends an object)"
        ) from None


def text_of(content: Any, fmt: str, what: str) -> str:
    """Content that must be plain text in ``fmt`` (e.g. a system prompt in Bedrock)."""
    if isinstance(content, str):
        return content
    parts = []
    for p in content or []:
        if p.get("type") != "text":
            raise UnsupportedFeatureError(fmt, f"{p.get('type')} parts in {what}")
        parts.append(p["text"])
    return "".join(parts)


def params_tail(params: dict[str, Any], reserved: frozenset[str]) -> bytes:
    """``,"k":v`` for each request parameter, in the caller's order."""
    clash = reserved.intersection(params)
    if clash:
        raise ConfigError(f"request parameters may not set {sorted(clash)}")
    try:
        return b"".join(b"," + dumps(k) + b":" + dumps(v) for k, v in params.items())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"request parameters are not valid JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Frag:
    """One message rendered for one format and target.

    ``kind`` is ``"system"`` for a message that goes to the envelope's system area
    (formats with ``splits_system``), else ``"message"``. ``note`` records anything
    the rendering left out on purpose (e.g. provider artifacts for another model).
    """

    kind: str
    role: str
    data: bytes
    note: str | None = None
    #: Content blocks in ``data`` (what Anthropic's 20-block lookback counts).
    blocks: int = 1


class WireFormat(ABC):
    """Base class of the wire formats. Subclasses override what differs."""

    #: Name used in ``Session.request(name, ...)``.
    name: str = ""
    #: Provider family, for artifacts and the cache planner.
    provider: str = ""
    #: Leading system/developer messages go to the envelope, not the message list.
    splits_system: bool = False
    #: The cache marker style: None, "cache_control" (Anthropic) or "cachePoint" (Bedrock).
    marker: str | None = None

    #: The fragment is usually the canonical body itself (no per-message cache needed).
    identity: bool = False

    def plain(self, body: bytes) -> bool:
        """For ``identity`` formats: true when ``body`` is its own fragment, unchanged."""
        return False

    def plain_all(self, bodies: list[bytes]) -> bool:
        """``plain`` of every body (formats override it with one C-level pass)."""
        return all(map(self.plain, bodies))

    @abstractmethod
    def render(self, body: bytes, target: Target) -> Frag:
        """One message (canonical bytes ``body``) in this format, for ``target``."""

    def glue(self, prev: str | None, role: str) -> bytes:
        """The bytes between the previous message (wire role ``prev``) and this one."""
        return b"" if prev is None else b","

    def close(self, last: str | None) -> bytes:
        """The bytes after the last message fragment."""
        return b""

    def tool_fragment(self, tool: dict[str, Any]) -> bytes:
        """One tool definition (canonical OpenAI function shape) in this format."""
        raise UnsupportedFeatureError(self.name, "tool definitions")

    def to_canonical(self, msg: Any, model: str | None = None) -> list[dict[str, Any]]:
        """A message (or items) in this format's own shape -> canonical messages."""
        raise UnsupportedFeatureError(self.name, "input in its own message shape")

    @abstractmethod
    def envelope(
        self,
        model: str,
        params: dict[str, Any],
        system: list[bytes],
        tools: list[bytes],
    ) -> tuple[bytes, bytes]:
        """``(head, tail)`` around the glued message fragments and ``close()``."""

    @abstractmethod
    def parse_reply(self, data: dict[str, Any], model: str | None = None) -> Reply:
        """A complete (non-streamed) response body -> canonical reply and usage.

        ``model`` names the model when the response does not (Bedrock)."""

    def mark(self, fragment: bytes, ttl: str | None) -> bytes:
        """``fragment`` carrying a cache breakpoint (for formats with markers)."""
        raise UnsupportedFeatureError(self.name, "cache breakpoints")

    def __repr__(self) -> str:
        return f"<srt wire format {self.name}>"


def check_model(model: Any) -> str:
    if not isinstance(model, str) or not model:
        raise ConfigError("model must be a non-empty string")
    try:
        model.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("model must be valid Unicode text") from None
    return model
