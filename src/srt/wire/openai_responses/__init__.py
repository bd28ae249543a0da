"""OpenAI Responses: ``POST /v1/responses`` (also Azure OpenAI, see ``srt.wire.azure``).

The body is ``{"model": M, "input": [items...], "tools": [...], **params}`` with
``tools`` only when there are some and the parameters in the caller's order
(``instructions``, ``previous_response_id``, ``store``, ``prompt_cache_key``... are
ordinary parameters here). It equals ``json.dumps(body, ensure_ascii=False,
separators=(",", ":"))``.

A tool (given in any shape ``canonical_tool`` reads) becomes ``{"type": "function",
"name", "description"?, "parameters", "strict"}``: ``parameters`` is ``null`` when the
tool has none and ``strict`` is ``false`` unless the caller set it, since the Responses
API reads a missing ``strict`` as "strict when possible" where Chat reads it as false.

One canonical message becomes one or more input items, joined by ``,``:

- system / developer / user: ``{"role": R, "content": S}`` for string content; with
  parts, ``input_text`` and ``input_image`` parts (``detail`` defaults to ``"auto"``).
- assistant: first its provider artifacts that belong to the target (provider and
  model both equal, e.g. encrypted ``reasoning`` items), verbatim; artifacts of any
  other provider or model are left out with a note. Then ``{"role": "assistant",
  "content": S}`` when there is text (text parts are joined into ``S``: the API's typed
  input takes ``output_text`` parts only inside an output message item), or for a
  message with a ``refusal`` the output message item ``{"type": "message", "id":
  "msg_<hash of text and refusal>", "role": "assistant", "status": "completed",
  "content": [output_text?, refusal]}``; then one ``function_call`` item per tool call.
  An assistant message that would give no item at all (empty content, no calls, no
  replayable artifact) is sent as its empty message item, so that no fragment is ever
  empty.
- tool: ``{"type": "function_call_output", "call_id": ..., "output": S}``.

Anything the Responses input cannot hold (audio parts, the ``name`` field, images
in tool results...) raises ``UnsupportedFeatureError``: nothing is dropped silently.

``to_canonical`` maps Responses items (input or output) back to canonical
messages. ``items -> to_canonical -> canonicalize -> render`` (same model) gives
the same items again, up to these normalisations:

- ``"type": "message"``, ``"id"`` and ``"status"`` are dropped from message,
  ``function_call`` and ``function_call_output`` items, and ``annotations`` /
  ``logprobs`` from ``output_text`` parts (none of them is model input);
- an ``input_image`` without ``detail`` gets ``"detail": "auto"``;
- text part types follow the role: ``input_text`` for system, developer and user;
  an assistant message's text parts become one string;
- a ``function_call_output`` whose output is a list of text parts becomes their
  joined string;
- a ``model`` key on a reasoning item (srt's way to say which model produced it)
  becomes the artifact's model and is not sent back;
- an assistant message's ``refusal`` parts are merged into one, after its text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ... import _core
from ..._types import Reply, Usage
from ...errors import (
    ConfigError,
    InvalidMessageError,
    ProviderResponseError,
    UnsupportedFeatureError,
)
from ...tokens import Tokenizer, openai_tokenizer
from .._input import typed_input
from ..base import (
    TEXT_ROLES,
    Event,
    Frag,
    StreamDecoder,
    Target,
    TextFrags,
    WireFormat,
    check_model,
    check_tool_name,
    dumps,
    left_out,
    params_tail,
    usage_or_none,
)
from ..images import OPENAI_DETAILS, OPENAI_SCHEMES, OPENAI_TYPES, check
from ..openai_chat import OPENAI_CACHE
from . import replies
from .replies import ResponsesStream

__all__ = ["FORMAT", "IMAGE_TYPES", "NAME", "OpenAIResponses", "model_bytes", "to_canonical"]

#: The image media types OpenAI takes (``srt.wire.images``).
IMAGE_TYPES = OPENAI_TYPES
_RESERVED = frozenset({"model", "input", "tools"})
_TOOL_KEYS = ("description", "parameters", "strict")
#: A message's keys the Responses input has a place for (which role's: ``_only``).
_SENT = frozenset({"role", "content", "tool_calls", "tool_call_id", "refusal"})
_ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning"})


def model_bytes(model: Any) -> bytes:
    """``model`` as JSON bytes; ``ConfigError`` for anything that is not a usable name."""
    try:
        return dumps(check_model(model))
    except UnicodeEncodeError:
        raise ConfigError("model must be valid Unicode text (it has a lone surrogate)") from None


_TEXTS = TextFrags(("message",) * 4, TEXT_ROLES, (None,) * 4, empty=True)


class OpenAIResponses(WireFormat):
    name = "openai.responses"
    provider = "openai"
    cache = OPENAI_CACHE
    server_state = True
    image_types: frozenset[str] | None = OPENAI_TYPES
    image_schemes: frozenset[str] | None = OPENAI_SCHEMES
    image_details: frozenset[str] | None = OPENAI_DETAILS

    def tokenizer(self, model: str) -> Tokenizer:
        return openai_tokenizer(model)

    def stream_decoder(self, model: str | None = None) -> StreamDecoder:
        return ResponsesStream(self, model)

    def encode_usage(self, usage: Usage) -> dict[str, Any]:
        return replies.encode_usage(usage)

    def encode_reply(
        self,
        reply: Reply,
        *,
        id: str,
        request: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return replies.encode_reply(reply, id=id, request=request, usage=usage)

    def encode_events(
        self,
        response: Mapping[str, Any],
        *,
        request: Mapping[str, Any] | None = None,
        chunks: Sequence[str] | None = None,
    ) -> list[Event]:
        return replies.encode_events(response, chunks)

    # -- messages -> items ---------------------------------------------------------

    def render(self, body: bytes, target: Target) -> Frag:
        msg: dict[str, Any] = json.loads(body)
        role = msg["role"]
        dropped = left_out(msg, _SENT, self.name)
        note = None
        if role == "assistant":
            items, note = self._assistant(msg, target)
        elif role == "tool":
            items = [self._tool_result(msg)]
        else:
            items = [self._input_message(msg)]
        if dropped:
            note = f"{dropped}; {note}" if note else dropped
        return Frag("message", role, b",".join(dumps(i) for i in items), note)

    def text_frags(self) -> TextFrags:
        """``render`` of a plain text message: an input (or assistant) message item that
        is the canonical body itself, an empty text too."""
        return _TEXTS

    def _unsupported(self, feature: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.name, feature)

    def _only(self, msg: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for key in msg:
            if key not in allowed:
                raise self._unsupported(f"the message '{key}' field")

    def _input_message(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._only(msg, frozenset({"role", "content"}))
        content = msg["content"]
        if isinstance(content, str):
            return {"role": msg["role"], "content": content}
        where = f"a {msg['role']} message's content"
        parts = [self._input_part(p, f"{where}[{i}]") for i, p in enumerate(content)]
        return {"role": msg["role"], "content": parts}

    def _input_part(self, part: dict[str, Any], where: str) -> dict[str, Any]:
        kind = part.get("type")
        if kind == "text":
            return {"type": "input_text", "text": part["text"]}
        if kind == "image_url":
            spec = part["image_url"]
            extra = sorted(set(spec) - {"url", "detail"})
            if extra:
                raise self._unsupported(f"image_url parts with {extra}")
            check(self, spec["url"], where, spec.get("detail"))
            return {
                "type": "input_image",
                "image_url": spec["url"],
                "detail": spec.get("detail") or "auto",
            }
        raise self._unsupported(f"{kind} parts")

    def _assistant(self, msg: dict[str, Any], target: Target) -> tuple[list[Any], str | None]:
        self._only(msg, frozenset({"role", "content", "tool_calls", "artifacts", "refusal"}))
        items: list[Any] = []
        stripped: dict[tuple[str, str], int] = {}
        for art in msg.get("artifacts") or ():
            if art["provider"] == target.provider and art["model"] == target.model:
                if not isinstance(art["data"], dict):
                    raise self._unsupported("an artifact whose data is not an item object")
                items.append(art["data"])
            else:
                key = (art["provider"], art["model"])
                stripped[key] = stripped.get(key, 0) + 1
        note = (
            "; ".join(
                f"stripped {n} artifact(s) from {p}/{m}: "
                "they are only valid for the model that produced them"
                for (p, m), n in stripped.items()
            )
            or None
        )

        content = msg.get("content")
        text = content if isinstance(content, str) else ""
        for p in content if isinstance(content, list) else ():
            if p.get("type") != "text":
                raise self._unsupported(f"{p.get('type')} parts in assistant messages")
            text += p["text"]
        refusal = msg.get("refusal")
        message: dict[str, Any]
        if refusal is not None:
            if not isinstance(refusal, str):
                raise self._unsupported("a refusal that is not a string")
            message = _output_message(text, refusal)
            wanted = True
        else:
            message = {"role": "assistant", "content": text}
            wanted = bool(text)

        calls = [self._call(c) for c in msg.get("tool_calls") or ()]
        if wanted or not (items or calls):
            items.append(message)
        items.extend(calls)
        return items, note

    def _call(self, call: dict[str, Any]) -> dict[str, Any]:
        if call.get("type") != "function":
            raise self._unsupported(f"{call.get('type')} tool calls")
        extra = sorted(set(call) - {"id", "type", "function"})
        if extra:
            raise self._unsupported(f"tool calls with {extra}")
        fn = call["function"]
        return {
            "type": "function_call",
            "call_id": call["id"],
            "name": fn["name"],
            "arguments": fn["arguments"],
        }

    def _tool_result(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._only(msg, frozenset({"role", "content", "tool_call_id"}))
        content = msg["content"]
        if not isinstance(content, str):
            texts = []
            for p in content:
                if p.get("type") != "text":
                    raise self._unsupported(f"{p.get('type')} parts in tool results")
                texts.append(p["text"])
            content = "".join(texts)
        return {"type": "function_call_output", "call_id": msg["tool_call_id"], "output": content}

    def tool_fragment(self, tool: dict[str, Any]) -> bytes:
        fn = tool["function"]
        extra = sorted(set(fn) - {"name", *_TOOL_KEYS})
        if extra:
            raise self._unsupported(f"tool definitions with {extra}")
        name = check_tool_name(fn["name"], self.name)
        out: dict[str, Any] = {"type": "function", "name": name}
        if "description" in fn:
            out["description"] = fn["description"]
        # Both are required members of a Responses function tool. A missing ``strict``
        # means "strict when possible" there (false in Chat), which would silently make
        # every optional argument required: a Chat-shaped tool keeps its meaning.
        out["parameters"] = fn.get("parameters")
        out["strict"] = fn.get("strict", False)
        return dumps(out)

    def envelope(
        self, model: str, params: dict[str, Any], system: list[bytes], tools: list[bytes]
    ) -> tuple[bytes, bytes]:
        head = b'{"model":' + model_bytes(model) + b',"input":['
        tail = b"]"
        if tools:
            tail += b',"tools":[' + b",".join(tools) + b"]"
        return head, tail + params_tail(params, _RESERVED) + b"}"

    # -- response -> reply -----------------------------------------------------------

    def parse_reply(self, data: dict[str, Any], model: str | None = None) -> Reply:
        """A Responses API response object -> canonical assistant message and usage.

        Output text of the message items is concatenated; ``function_call`` items become
        tool calls; ``reasoning`` items become artifacts for ``(provider, data["model"])``,
        replayed verbatim to that model only; ``refusal`` parts become the message's
        ``refusal``. A ``failed`` response, or an output item or part of any other type
        (hosted tool calls such as ``web_search_call``, which srt never asks for), raises
        ``ProviderResponseError``.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("output"), list):
            raise ProviderResponseError("a Responses object without an output list")
        if data.get("status") == "failed":
            err = data.get("error") if isinstance(data.get("error"), Mapping) else {}
            raise ProviderResponseError(
                f"the response failed ({(err or {}).get('code') or 'no error code'})",
                body=json.dumps(err, ensure_ascii=False),
            )
        model = data.get("model")
        texts: list[str] = []
        refusals: list[str] = []
        calls: list[dict[str, Any]] = []
        artifacts: list[dict[str, Any]] = []
        for item in data["output"]:
            if not isinstance(item, Mapping):
                raise ProviderResponseError("a Responses output item that is not an object")
            kind = item.get("type")
            if kind == "message":
                for part in item.get("content") or ():
                    ptype = part.get("type") if isinstance(part, Mapping) else None
                    if ptype == "output_text":
                        texts.append(_string(part.get("text"), "output_text"))
                    elif ptype == "refusal":
                        refusals.append(_string(part.get("refusal"), "refusal"))
                    else:
                        raise ProviderResponseError(
                            f"a Responses {str(ptype)[:40]!r} output part srt cannot represent"
                        )
            elif kind == "function_call":
                fn = {
                    "name": _string(item.get("name"), "function_call name"),
                    "arguments": _string(item.get("arguments"), "function_call arguments"),
                }
                call_id = _string(item.get("call_id"), "function_call call_id")
                calls.append({"id": call_id, "type": "function", "function": fn})
            elif kind == "reasoning":
                if not isinstance(model, str) or not model:
                    raise ProviderResponseError("a reasoning item in a response without a model")
                artifacts.append(
                    {"provider": self.provider, "model": model, "type": "reasoning", "data": item}
                )
            else:
                raise ProviderResponseError(
                    f"a Responses {str(kind)[:40]!r} output item srt cannot represent"
                )
        content: str | None = "".join(texts)
        if not texts and calls:
            content = None
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            msg["tool_calls"] = calls
        if refusals:
            msg["refusal"] = "".join(refusals)
        if artifacts:
            msg["artifacts"] = artifacts
        usage = _usage(data.get("usage") or {})
        return Reply(msg, usage, model, data.get("id"), _stop_reason(data))

    def parse_usage(self, data: Any) -> Usage | None:
        return usage_or_none(data, _usage)


def _usage(u: Any) -> Usage:
    """A Responses usage object as srt's ``Usage``."""
    try:
        details = u.get("input_tokens_details") or {}
        out = u.get("output_tokens_details") or {}
        return Usage(
            input_tokens=int(u.get("input_tokens") or 0),
            output_tokens=int(u.get("output_tokens") or 0),
            cache_read_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(details.get("cache_write_tokens") or 0),
            reasoning_tokens=int(out.get("reasoning_tokens") or 0),
        )
    except (AttributeError, TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ProviderResponseError("a Responses object with a malformed usage") from None


def _output_message(text: str, refusal: str) -> dict[str, Any]:
    """An assistant message with a refusal, as the output message item the API's typed
    input takes for it (an easy input message cannot hold a refusal). Its ``id`` is
    derived from the text and the refusal, so the same message always renders the same."""
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"type": "output_text", "text": text, "annotations": []})
    parts.append({"type": "refusal", "refusal": refusal})
    digest = _core.digest(dumps([text, refusal])).hex()
    return {
        "type": "message",
        "id": f"msg_{digest}",
        "role": "assistant",
        "status": "completed",
        "content": parts,
    }


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ProviderResponseError(f"a Responses reply with a non-string {what}")
    return value


# -- items -> canonical messages ------------------------------------------------------


def _stop_reason(data: dict[str, Any]) -> Any:
    """A response's status as its reply's stop reason; an ``incomplete`` one's is why
    (``incomplete_details.reason``: ``max_output_tokens`` or ``content_filter``, as the
    other formats' stop reasons say it)."""
    status = data.get("status")
    details = data.get("incomplete_details")
    if status == "incomplete" and isinstance(details, dict):
        reason = details.get("reason")
        if isinstance(reason, str) and reason:
            return reason
    return status


_MESSAGE_KEYS = frozenset({"type", "role", "content", "id", "status"})
_CALL_KEYS = frozenset({"type", "call_id", "name", "arguments", "id", "status"})
_OUTPUT_KEYS = frozenset({"type", "call_id", "output", "id", "status"})


def _kind(item: Any) -> str:
    if not isinstance(item, Mapping):
        raise InvalidMessageError("a Responses item must be an object")
    kind = item.get("type", "message" if "role" in item else None)
    if kind not in _ITEM_TYPES:
        raise UnsupportedFeatureError(NAME, f"{kind} items")
    return str(kind)


def _keys(item: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    extra = sorted(set(item) - allowed, key=str)
    if extra:
        raise UnsupportedFeatureError(NAME, f"{what} with {extra}")


def _parts(content: Any, what: str) -> tuple[Any, list[str]]:
    """Responses content (string or parts) -> canonical content and refusal texts."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, (list, tuple)):
        raise InvalidMessageError(f"{what}: content must be a string or a list of parts")
    out: list[dict[str, Any]] = []
    refusals: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("input_text", "output_text"):
            _keys(part, frozenset({"type", "text", "annotations", "logprobs"}), f"{kind} parts")
            out.append({"type": "text", "text": part.get("text")})
        elif kind == "input_image":
            _keys(part, frozenset({"type", "image_url", "detail", "file_id"}), "input_image parts")
            if part.get("file_id") is not None or not isinstance(part.get("image_url"), str):
                raise UnsupportedFeatureError(NAME, "input_image parts without an image_url")
            spec = {"url": part["image_url"]}
            if part.get("detail") is not None:
                spec["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": spec})
        elif kind == "refusal":
            refusals.append(part.get("refusal") or "")
        else:
            raise UnsupportedFeatureError(NAME, f"{kind} parts")
    return out, refusals


def _empty(content: Any) -> bool:
    return content == "" or (isinstance(content, (list, tuple)) and not content)


@typed_input("a Responses input")
def to_canonical(
    items: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    model: str | None = None,
    *,
    provider: str = "openai",
) -> list[dict[str, Any]]:
    """Responses input or output items -> canonical (Chat Completions) messages.

    Message items become messages (``input_image`` -> ``image_url`` part,
    ``input_text``/``output_text`` -> text). A run of ``reasoning`` items, then at most
    one assistant message item with content, then ``function_call`` items forms ONE
    assistant message with ``tool_calls`` and, for the reasoning items, artifacts of
    ``provider`` for the item's ``model`` key or else ``model`` (neither is an
    ``UnsupportedFeatureError``). ``function_call_output`` becomes a tool message.
    Unknown item types raise ``UnsupportedFeatureError``. See the module docstring for
    the normalisations of the round trip back through ``render``.
    """
    if not isinstance(items, (Mapping, list, tuple)):
        raise InvalidMessageError("a Responses input is an item or a list of items")
    seq = [items] if isinstance(items, Mapping) else list(items)
    kinds = [_kind(it) for it in seq]
    out: list[dict[str, Any]] = []

    def is_assistant(i: int) -> bool:
        return kinds[i] == "message" and seq[i].get("role") == "assistant"

    i, n = 0, len(seq)
    while i < n:
        item, kind = seq[i], kinds[i]
        if kind == "function_call_output":
            _keys(item, _OUTPUT_KEYS, "function_call_output items")
            content, refusals = _parts(item.get("output"), "function_call_output")
            if refusals:
                raise UnsupportedFeatureError(NAME, "refusal parts in tool results")
            out.append({"role": "tool", "content": content, "tool_call_id": item.get("call_id")})
            i += 1
            continue
        if kind == "message" and not is_assistant(i):
            _keys(item, _MESSAGE_KEYS, "message items")
            role = item.get("role")
            if role not in ("user", "system", "developer"):
                raise UnsupportedFeatureError(NAME, f"message items with role {role!r}")
            content, refusals = _parts(item.get("content"), f"a {role} message")
            if refusals:
                raise UnsupportedFeatureError(NAME, f"refusal parts in {role} messages")
            out.append({"role": role, "content": content})
            i += 1
            continue

        # An assistant turn: reasoning*, an assistant message with content?, function_call*.
        start = i
        artifacts = []
        while i < n and kinds[i] == "reasoning":
            data = dict(seq[i])
            art_model = data.pop("model", None) or model
            if not isinstance(art_model, str) or not art_model:
                raise UnsupportedFeatureError(
                    NAME, "a reasoning item without a model (pass model=...)"
                )
            artifacts.append(
                {"provider": provider, "model": art_model, "type": "reasoning", "data": data}
            )
            i += 1
        message = None
        if i < n and is_assistant(i) and not _empty(seq[i].get("content")):
            message = seq[i]
            i += 1
        calls = []
        while i < n and kinds[i] == "function_call":
            call = seq[i]
            _keys(call, _CALL_KEYS, "function_call items")
            calls.append(
                {
                    "id": call.get("call_id"),
                    "type": "function",
                    "function": {"name": call.get("name"), "arguments": call.get("arguments")},
                }
            )
            i += 1
        if i == start:  # an assistant message item with empty content stands alone
            message = seq[i]
            i += 1
        msg: dict[str, Any] = {"role": "assistant", "content": None if calls else ""}
        if message is not None:
            _keys(message, _MESSAGE_KEYS, "message items")
            content, refusals = _parts(message.get("content"), "an assistant message")
            msg["content"] = content
            if refusals:
                msg["refusal"] = "".join(refusals)
        if calls:
            msg["tool_calls"] = calls
        if artifacts:
            msg["artifacts"] = artifacts
        out.append(msg)
    return out


FORMAT = OpenAIResponses()
NAME = FORMAT.name
