"""OpenAI Chat Completions: ``POST /v1/chat/completions`` (also Azure OpenAI and
OpenAI-compatible servers).

The canonical message bytes are already a valid Chat Completions message, so a
message's fragment is its stored body itself: building a request serializes
nothing but the small envelope. The exceptions are an assistant message that
carries provider artifacts (reasoning state for another API), and a message stored
before srt refused unknown keys that holds one (a server would refuse it): each is
re-serialized without them and noted.

The body equals ``json.dumps({"model": ..., "messages": [...], "tools": [...],
**params}, ensure_ascii=False, separators=(",", ":"))``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from operator import methodcaller
from typing import Any

from .._core import find_odd_key
from .._types import Reply, Usage
from ..errors import ProviderResponseError, UnsupportedFeatureError
from ..message import SENT_KEYS
from ..tokens import Tokenizer, openai_tokenizer
from . import images
from .base import (
    CacheRules,
    Event,
    Frag,
    SSEStream,
    StreamDecoder,
    Target,
    WireFormat,
    check_model,
    check_tool_name,
    dumps,
    left_out,
    params_tail,
    reply_parts,
    stream_error,
    usage_or_none,
)
from .sse import ServerSentEvent

_RESERVED = frozenset({"model", "messages", "tools"})
#: Every key a canonical body holds at any depth when it holds nothing to leave out: a
#: body with another key (``_core.find_odd_key``: artifacts, a key stored before unknown
#: keys were refused, a nested key of a part srt passes through, or a text's last comma
#: inside the body, a false alarm) is rendered (``render``); the rest are sent as they are.
#: ``image_url`` is not among them either: a message with an image is rendered, which
#: checks the image's type and URL scheme where the target has rules (OpenAI, Azure).
#: ``tool_call_id`` is not among them: a tool message is sent as it is only when its
#: content is a string (``plain``); one with parts is rendered, which refuses any part but
#: text (Chat's tool message takes text parts only).
_PLAIN_KEYS = tuple(
    k.encode()
    for k in sorted(SENT_KEYS - {"tool_call_id"} | {"type", "text", "id", "function", "arguments"})
)
_TOOL_KEYS = tuple(sorted((*_PLAIN_KEYS, b"tool_call_id")))
_TOOL_TEXT = b'{"role":"tool","content":"'
_TOOL_PARTS = methodcaller("startswith", b'{"role":"tool","content":[')


#: OpenAI's automatic prompt caching: prefixes from 1,024 tokens, kept 5-10 minutes idle,
#: routed by ``prompt_cache_key``.
OPENAI_CACHE = CacheRules(min_tokens=1024, idle_ttl_s=300.0, key_param="prompt_cache_key")


class OpenAIChat(WireFormat):
    name = "openai.chat"
    provider = "openai"
    identity = True
    cache = OPENAI_CACHE
    image_types: frozenset[str] | None = images.OPENAI_TYPES
    image_schemes: frozenset[str] | None = images.OPENAI_SCHEMES
    image_details: frozenset[str] | None = images.OPENAI_DETAILS

    def tokenizer(self, model: str) -> Tokenizer:
        return openai_tokenizer(model)

    def plain(self, body: bytes) -> bool:
        return find_odd_key([body], _PLAIN_KEYS) < 0 or (
            body.startswith(_TOOL_TEXT) and find_odd_key([body], _TOOL_KEYS) < 0
        )

    def plain_all(self, bodies: list[bytes]) -> bool:
        return find_odd_key(bodies, _PLAIN_KEYS) < 0 or (
            find_odd_key(bodies, _TOOL_KEYS) < 0 and not any(map(_TOOL_PARTS, bodies))
        )

    def render(self, body: bytes, target: Target) -> Frag:
        """The body as it is, but for its artifacts and any top-level key a message
        stored before srt refused unknown keys holds (``{"foo": 1}``): a Chat Completions
        server refuses a message with a key it does not know (400), so these are left
        out, and noted. An image OpenAI does not take (``image_types``,
        ``image_schemes``, ``image_details``, or in a message not the user's, whose
        content takes text and refusal parts only) is an ``UnsupportedFeatureError``; an
        OpenAI-compatible server's copy of the format (``images.any_image``) sends it as it is."""
        if self.plain(body):
            return Frag("message", "", body)
        msg = json.loads(body)
        # (a tool message's parts first: its refusal names the call the result is for)
        if isinstance(msg.get("content"), list) and msg["role"] != "tool" and images.checks(self):
            for i, part in enumerate(msg["content"]):
                if part.get("type") == "image_url":
                    spec, where = part["image_url"], f"a {msg['role']} message's content[{i}]"
                    if msg["role"] != "user":  # (system, developer: text; assistant: refusals)
                        raise UnsupportedFeatureError(self.name, f"image_url parts in {where}")
                    images.check(self, spec["url"], where, spec.get("detail"))
        if msg["role"] == "tool" and not isinstance(msg["content"], str):
            for part in msg["content"]:
                if part.get("type") != "text":
                    raise UnsupportedFeatureError(
                        self.name,
                        f"{part.get('type')} parts in a tool message (the result for call "
                        f"{msg['tool_call_id']!r}): its content takes text parts only",
                    )
        arts = msg.pop("artifacts", None)
        unknown = left_out(msg, SENT_KEYS, self.name)
        if not arts and not unknown:
            return Frag("message", "", body)
        notes = [unknown] if unknown else []
        if arts:
            notes.append(
                f"left out {len(arts)} provider artifact(s): Chat Completions cannot carry them"
            )
        return Frag("message", "", dumps(msg), "; ".join(notes))

    def tool_fragment(self, tool: dict[str, Any]) -> bytes:
        check_tool_name(tool["function"]["name"], self.name)
        return dumps(tool)

    def stream_decoder(self, model: str | None = None) -> StreamDecoder:
        return ChatStream(self, model)

    def envelope(
        self, model: str, params: dict[str, Any], system: list[bytes], tools: list[bytes]
    ) -> tuple[bytes, bytes]:
        head = b'{"model":' + dumps(check_model(model)) + b',"messages":['
        tail = b"]"
        if tools:
            tail += b',"tools":[' + b",".join(tools) + b"]"
        return head, tail + params_tail(params, _RESERVED) + b"}"

    def parse_reply(self, data: dict[str, Any], model: str | None = None) -> Reply:
        """A Chat Completions response object -> canonical assistant message and usage.

        The message's ``content``, ``tool_calls`` (function calls) and ``refusal`` are
        kept; ``annotations``, ``audio`` and the deprecated ``function_call`` are not. A
        tool call of another type (``custom``) is a ``ProviderResponseError``: srt's
        messages hold function calls only."""
        try:
            choice = data["choices"][0]
            msg = choice["message"]
            if not isinstance(msg, Mapping):
                raise TypeError
        except (KeyError, IndexError, TypeError):
            raise ProviderResponseError("a chat completion without choices[0].message") from None
        out: dict[str, Any] = {"role": "assistant", "content": msg.get("content")}
        calls = msg.get("tool_calls")
        if calls:
            out["tool_calls"] = [_function_call(c) for c in _list(calls, "tool_calls")]
        elif out["content"] is None:
            out["content"] = ""
        refusal = msg.get("refusal")
        if refusal is not None:
            if not isinstance(refusal, str):
                raise ProviderResponseError("a chat completion with a non-string refusal")
            out["refusal"] = refusal
        usage = _usage(data.get("usage") or {})
        return Reply(out, usage, data.get("model"), data.get("id"), choice.get("finish_reason"))

    def parse_usage(self, data: Any) -> Usage | None:
        return usage_or_none(data, _usage)

    # -- the server side ---------------------------------------------------------------

    def encode_usage(self, usage: Usage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {
                "cached_tokens": usage.cache_read_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": usage.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def encode_reply(
        self,
        reply: Reply,
        *,
        id: str,
        request: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A ``chat.completion``; ``request``'s ``n`` gives the number of choices."""
        text, calls = reply_parts(reply)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not calls else None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in calls
            ]
        finish = "tool_calls" if calls else "stop"
        n = int((request or {}).get("n") or 1)
        return {
            "id": id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ],
            "usage": dict(usage) if usage is not None else self.encode_usage(reply.usage),
            "service_tier": "default",
            "system_fingerprint": None,
        }

    def encode_events(
        self,
        response: Mapping[str, Any],
        *,
        request: Mapping[str, Any] | None = None,
        chunks: Sequence[str] | None = None,
    ) -> list[Event]:
        """``chat.completion.chunk`` events, then ``[DONE]``; with ``stream_options``'
        ``include_usage`` every chunk has ``usage: null`` and a last one carries it. Each
        choice (``n`` of them) streams its own chunks, named by its ``index``."""
        include_usage = bool(((request or {}).get("stream_options") or {}).get("include_usage"))
        base = {
            "id": response["id"],
            "object": "chat.completion.chunk",
            "created": response["created"],
            "model": response["model"],
            "system_fingerprint": None,
        }

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> Event:
            c: dict[str, Any] = {
                **base,
                "choices": [
                    {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                c["usage"] = None
            return (None, c)

        events: list[Event] = []
        for choice in response["choices"]:
            n, message = choice["index"], choice["message"]
            content = message.get("content") or ""
            pieces = list(chunks) if chunks is not None else ([content] if content else [])
            events.append(chunk(n, {"role": "assistant", "content": "", "refusal": None}))
            events += [chunk(n, {"content": piece}) for piece in pieces]
            for i, call in enumerate(message.get("tool_calls") or []):
                head = {"index": i, "id": call["id"], "type": "function"}
                fn = {"name": call["function"]["name"], "arguments": ""}
                events.append(chunk(n, {"tool_calls": [{**head, "function": fn}]}))
                args = call["function"]["arguments"]
                for k in range(0, len(args), 16):
                    part = {"index": i, "function": {"arguments": args[k : k + 16]}}
                    events.append(chunk(n, {"tool_calls": [part]}))
            events.append(chunk(n, {}, choice["finish_reason"]))
        if include_usage:
            last = dict(events[-1][1])
            last["choices"] = []
            last["usage"] = response["usage"]
            events.append((None, last))
        events.append((None, "[DONE]"))
        return events


def _usage(u: Any) -> Usage:
    """A Chat Completions usage object as srt's ``Usage``."""
    details = (u.get("prompt_tokens_details") if isinstance(u, Mapping) else None) or {}
    out = (u.get("completion_tokens_details") if isinstance(u, Mapping) else None) or {}
    try:
        return Usage(
            input_tokens=int(u.get("prompt_tokens") or 0),
            output_tokens=int(u.get("completion_tokens") or 0),
            cache_read_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(details.get("cache_write_tokens") or 0),
            reasoning_tokens=int(out.get("reasoning_tokens") or 0),
        )
    except (AttributeError, TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ProviderResponseError("a chat completion with a malformed usage") from None


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProviderResponseError(f"a chat completion whose {what} is not a list")
    return value


def _function_call(call: Any) -> Any:
    """A reply's tool call, checked to be a function call srt can store."""
    if not isinstance(call, Mapping) or call.get("type", "function") != "function":
        kind = call.get("type") if isinstance(call, Mapping) else type(call).__name__
        raise ProviderResponseError(
            f"a chat completion {str(kind)[:40]!r} tool call srt cannot represent"
        )
    fn = call.get("function")
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise ProviderResponseError("a chat completion tool call without a function name")
    return call


# -- streamed replies -------------------------------------------------------------------


def _name(name: str, piece: Any) -> str:
    """A streamed tool call's name after a delta's ``function.name`` ``piece``. OpenAI
    sends the name whole in the call's first delta (``null`` after); the official SDK's
    ``ChatCompletionStreamState`` appends every piece, as a server that splits a name
    (``get_`` then ``weather``) needs; some servers (MiniMax M2.7 through NVIDIA NIM) send
    the whole name again in later deltas, which appending makes ``get_weatherget_weather``
    (a name no tool has): a piece equal to the name so far is taken as that resend."""
    if piece is None or piece == name:
        return name
    if not isinstance(piece, str):
        raise ProviderResponseError("a chat completion chunk whose tool call name is not a string")
    return name + piece


class ChatStream(SSEStream):
    """OpenAI Chat Completions chunks (``data: {...}`` ... ``data: [DONE]``)."""

    def __init__(self, fmt: WireFormat, model: str | None = None) -> None:
        super().__init__(fmt, model)
        self._text: list[str] = []
        self._refusal: list[str] | None = None
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._id: str | None = None
        self._model: str | None = None

    def on_event(self, ev: ServerSentEvent) -> list[str]:
        if ev.data == "[DONE]":
            self.done = True
            return []
        data = ev.json()
        if not isinstance(data, dict):
            raise ProviderResponseError("a chat completion chunk is not an object")
        if "error" in data:
            err = data["error"] or {}
            raise stream_error(str(err.get("type") or err.get("code")), str(err.get("message")))
        self._id = data.get("id", self._id)
        self._model = data.get("model", self._model)
        if data.get("usage"):
            self._usage = data["usage"]
        out: list[str] = []
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text.append(delta["content"])
                out.append(delta["content"])
            if isinstance(delta.get("refusal"), str):  # (null in every chunk of a reply)
                if self._refusal is None:
                    self._refusal = []
                self._refusal.append(delta["refusal"])
            for tc in delta.get("tool_calls") or []:
                slot = self._calls.setdefault(
                    int(tc.get("index", 0)),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] = _name(slot["function"]["name"], fn.get("name"))
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def response(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(self._text) or None}
        if self._calls:
            msg["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        elif msg["content"] is None:
            msg["content"] = ""
        if self._refusal is not None:
            msg["refusal"] = "".join(self._refusal)
        return {
            "id": self._id,
            "model": self._model,
            "choices": [{"index": 0, "message": msg, "finish_reason": self._finish}],
            "usage": self._usage or {},
        }


FORMAT = OpenAIChat()
NAME = FORMAT.name
