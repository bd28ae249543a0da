"""Plain frozen records that cross srt's layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BuildStats", "Message", "SessionInfo"]


@dataclass(frozen=True)
class Message:
    """A chat message in srt's canonical model (the OpenAI Chat Completions shape).

    ``content`` is a string or a list of parts (text, image by URL or by bytes).
    ``metadata`` is stored beside the message but never affects its hash or what
    a model sees. A plain OpenAI message dict is accepted wherever a ``Message`` is.
    """

    role: str
    content: Any = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    metadata: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role}
        if self.content is not None or self.tool_calls is None:
            d["content"] = self.content
        for key in ("name", "tool_calls", "tool_call_id", "metadata"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d


@dataclass(frozen=True)
class BuildStats:
    """What one ``Session.request()`` did.

    ``serialized`` counts messages whose wire bytes had to be produced during this
    build (cache misses); ``reused`` counts fragments taken as frozen bytes.
    """

    format: str
    messages: int
    serialized: int
    reused: int
    nbytes: int


@dataclass(frozen=True)
class SessionInfo:
    """One row of ``Runtime.sessions()``."""

    name: str
    messages: int
    created: float
    updated: float
    head_prefix: str | None
