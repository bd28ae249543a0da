"""OpenAI Chat Completions: ``POST /v1/chat/completions`` (also Azure OpenAI and
OpenAI-compatible servers).

The canonical message bytes are already a valid Chat Completions message, so a
message's fragment is its stored body itself: building a request serializes
nothing but the small envelope. The one exception is an assistant message that
carries provider artifacts (reasoning state for another API), which is
re-serialized without them and noted.

The body equals ``json.dumps({"model": ..., "messages": [...], "tools": [...],
**params}, ensure_ascii=False, separators=(",", ":"))``.
"""

from __future__ import annotations

import json
from typing import Any

from .._core import find_in_any
from .._types import Reply, Usage
from ..errors import ProviderResponseError
from .base import Frag, Target, WireFormat, check_model, dumps, params_tail

_RESERVED = frozenset({"model", "messages", "tools"})
_ARTIFACTS = b',"artifacts":'


class OpenAIChat(WireFormat):
    name = "openai.chat"
    provider = "openai"
    identity = True

    def plain(self, body: bytes) -> bool:
        return _ARTIFACTS not in body  # a JSON string cannot contain this byte sequence

    def plain_all(self, bodies: list[bytes]) -> bool:
        return find_in_any(bodies, _ARTIFACTS) < 0

    def render(self, body: bytes, target: Target) -> Frag:
        if self.plain(body):
            return Frag("message", "", body)
        msg = json.loads(body)
        arts = msg.pop("artifacts", None)
        if not arts:
            return Frag("message", "", body)
        return Frag(
            "message",
            "",
            dumps(msg),
            f"left out {len(arts)} provider artifact(s): Chat Completions cannot carry them",
        )

    def tool_fragment(self, tool: dict[str, Any]) -> bytes:
        return dumps(tool)

    def envelope(
        self, model: str, params: dict[str, Any], system: list[bytes], tools: list[bytes]
    ) -> tuple[bytes, bytes]:
        head = b'{"model":' + dumps(check_model(model)) + b',"messages":['
        tail = b"]"
        if tools:
            tail += b',"tools":[' + b",".join(tools) + b"]"
        return head, tail + params_tail(params, _RESERVED) + b"}"

    def parse_reply(self, data: dict[str, Any], model: str | None = None) -> Reply:
        """A Chat Completions response object -> canonical assistant message and usage."""
        try:
            choice = data["choices"][0]
            msg = dict(choice["message"])
        except (KeyError, IndexError, TypeError):
            raise ProviderResponseError("a chat completion without choices[0].message") from None
        out: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
        if msg.get("tool_calls"):
            out["tool_calls"] = msg["tool_calls"]
        elif out["content"] is None:
            out["content"] = ""
        u = data.get("usage") or {}
        details = u.get("prompt_tokens_details") or {}
        usage = Usage(
            input_tokens=int(u.get("prompt_tokens") or 0),
            output_tokens=int(u.get("completion_tokens") or 0),
            cache_read_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(details.get("cache_write_tokens") or 0),
        )
        return Reply(out, usage, data.get("model"), data.get("id"), choice.get("finish_reason"))


FORMAT = OpenAIChat()
NAME = FORMAT.name
