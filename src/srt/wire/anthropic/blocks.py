"""What Anthropic Messages and Bedrock Converse share (``BlockFormat``): messages as lists
of content blocks, tool results in user turns, same-role turns merged by ``make_glue``;
and the checks both make of a canonical message before it is rendered (its fields, its
tool calls, its images: a base64 data URL of a media type both take).
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import InvalidMessageError, UnsupportedFeatureError
from ...message import TOOL_KEYS
from ..base import (
    Frag,
    Target,
    TextFrags,
    WireFormat,
    check_tool_name,
    dumps,
    left_out,
    loads_arguments,
)

__all__ = [
    "IMAGE_TYPES",
    "KNOWN_FIELDS",
    "BlockFormat",
    "blocks_of",
    "check_call",
    "check_fields",
    "data_url",
    "empty",
    "error_marked",
    "image_spec",
    "join_blocks",
    "make_glue",
    "note_of",
    "replayed",
]

#: Top-level keys of a canonical message that the block formats understand.
KNOWN_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "artifacts", *TOOL_KEYS})
#: Image media types both Anthropic and Bedrock accept.
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_DATA_URL = re.compile(r"data:([^;,]*);base64,(.*)", re.S)


def empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def error_marked(msg: dict[str, Any], flag: Any) -> dict[str, Any]:
    """A canonical tool message ``msg`` marked ``is_error`` when an input block's error
    flag is ``True`` (``None`` and ``False``: not marked; anything else is refused)."""
    if flag is not None and not isinstance(flag, bool):
        raise InvalidMessageError(
            f"a tool result's is_error is a boolean, not {type(flag).__name__}"
        )
    if flag:
        msg["is_error"] = True
    return msg


def check_fields(msg: Mapping[str, Any], fmt: str) -> None:
    """``UnsupportedFeatureError`` for a message field ``fmt`` has no place for.

    Empty values (``"annotations": []``, say) carry nothing and pass.
    """
    for key, value in msg.items():
        if key not in KNOWN_FIELDS and not empty(value):
            raise UnsupportedFeatureError(fmt, f"the message '{key}' field")


def check_call(call: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """A canonical tool call's arguments as the JSON object the block formats send."""
    if call.get("type", "function") != "function":
        raise UnsupportedFeatureError(fmt, f"{call.get('type')} tool calls")
    for key, value in call.items():
        if key not in ("id", "type", "function") and not empty(value):
            raise UnsupportedFeatureError(fmt, f"the tool call '{key}' field")
    value = loads_arguments(call["function"]["arguments"], fmt)
    if not isinstance(value, dict):
        raise UnsupportedFeatureError(fmt, "tool call arguments that are not a JSON object")
    return value


def replayed(
    artifacts: Iterable[Mapping[str, Any]] | None, target: Target, fmt: str
) -> tuple[list[dict[str, Any]], str | None]:
    """The artifacts' data valid for ``target``, and a note naming the ones left out."""
    keep: list[dict[str, Any]] = []
    others: list[str] = []
    for art in artifacts or ():
        if art["provider"] == target.provider and art["model"] == target.model:
            data = art["data"]
            if not isinstance(data, dict):
                raise UnsupportedFeatureError(fmt, "a provider artifact that is not a JSON object")
            keep.append(data)
        else:
            others.append(f"{art['provider']}/{art['model']}")
    if not others:
        return keep, None
    who = ", ".join(dict.fromkeys(others))
    return keep, (
        f"stripped {len(others)} artifact(s) from {who}: "
        "they are only valid for the model that produced them"
    )


def data_url(url: str, fmt: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a base64 data URL; None for any other URL."""
    if url[:5].lower() != "data:":
        return None
    m = _DATA_URL.fullmatch(url)
    if m is None:
        raise UnsupportedFeatureError(fmt, "image data URLs that are not base64")
    media = m.group(1).lower()
    if media not in IMAGE_TYPES:
        raise UnsupportedFeatureError(fmt, f"{media or 'untyped'} images")
    return media, m.group(2)


def image_spec(spec: Mapping[str, Any], fmt: str, notes: list[str]) -> str:
    """The URL of a canonical ``image_url`` object, noting a ``detail`` hint left out."""
    for key, value in spec.items():
        if key not in ("url", "detail") and not empty(value):
            raise UnsupportedFeatureError(fmt, f"the image_url '{key}' field")
    detail = spec.get("detail")
    if detail not in (None, "auto"):
        notes.append(f"left out an image 'detail' hint: {fmt} has none")
    url = spec["url"]
    assert isinstance(url, str)
    return url


def join_blocks(blocks: list[Any], fmt: str) -> bytes:
    """Content blocks as the comma-joined bytes of a fragment."""
    try:
        return b",".join([dumps(b) for b in blocks])
    except ValueError:  # NaN or infinity in tool call arguments (json.loads accepts them)
        raise UnsupportedFeatureError(fmt, "NaN or infinity in tool call arguments") from None


def note_of(notes: list[str]) -> str | None:
    return "; ".join(dict.fromkeys(notes)) if notes else None


def make_glue(prev: str | None, role: str) -> bytes:
    """The role glue of the block formats: one ``{"role","content":[...]}`` per run."""
    if prev == role:
        return b","
    start = b'{"role":' + dumps(role) + b',"content":['
    return start if prev is None else b"]}," + start


def blocks_of(content: Any) -> list[Any]:
    if not isinstance(content, list):
        raise InvalidMessageError("message content must be a string or a list of blocks")
    return content


class BlockFormat(WireFormat):
    """What Anthropic Messages and Bedrock Converse share: messages as lists of content
    blocks, tool results in user turns, and same-role turns merged by ``make_glue``.
    A subclass says how a text, image, tool result and tool call block look."""

    splits_system = True
    #: The longest tool name the provider takes (its pattern: ``check_tool_name``).
    tool_name_max = 64

    def _text(self, text: Any) -> dict[str, Any]:
        if not isinstance(text, str):
            raise InvalidMessageError("a text part needs a string 'text'")
        if not text.strip():  # (Anthropic: "must contain non-whitespace text"; Bedrock too)
            raise UnsupportedFeatureError(self.name, "an empty text block (or whitespace)")
        return self._text_block(text)

    @abstractmethod
    def _text_block(self, text: str) -> dict[str, Any]: ...

    @abstractmethod
    def _image(self, spec: Mapping[str, Any], notes: list[str]) -> dict[str, Any]: ...

    @abstractmethod
    def _tool_result(self, call_id: str, content: Any, notes: list[str]) -> dict[str, Any]: ...

    @abstractmethod
    def _error(self, result: dict[str, Any]) -> dict[str, Any]:
        """A ``_tool_result`` block marked as an error."""

    @abstractmethod
    def _tool_use(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]: ...

    def _call_name(self, call: Mapping[str, Any], j: int) -> str:
        """A stored tool call's name, refused (``UnsupportedFeatureError`` naming the
        call) where the format's provider takes no such name, as its tools' names
        (``tool_name_max``): a session begun on a server with looser rules (a dotted or
        longer name) and sent here would get a 400 after the call was made and recorded."""
        name: str = call["function"]["name"]
        try:
            return check_tool_name(name, self.name, self.tool_name_max)
        except UnsupportedFeatureError as exc:
            where = f"an assistant message's tool_calls[{j}], call {str(call.get('id'))[:64]!r}"
            raise UnsupportedFeatureError(self.name, f"{exc.feature} ({where})") from None

    def _parts(
        self, content: Any, what: str, notes: list[str], images: bool = True, bare: bool = False
    ) -> list[dict[str, Any]]:
        """The blocks of ``content``; a blank text part (empty or whitespace) beside others is
        left out, one alone refused unless ``bare`` (an assistant's: calls follow, or it goes)."""
        if isinstance(content, str):
            return [self._text(content)]
        out, empty = [], False
        for i, part in enumerate(content or ()):
            kind = part.get("type")
            if kind == "text" and isinstance(t := part.get("text"), str) and not t.strip():
                empty = True
            elif kind == "text":
                out.append(self._text(part.get("text")))
            elif kind == "image_url" and images:
                try:
                    out.append(self._image(part["image_url"], notes))
                except UnsupportedFeatureError as exc:  # (named where it is)
                    feature = f"{exc.feature} ({what}'s content[{i}])"
                    raise UnsupportedFeatureError(self.name, feature) from None
            else:
                raise UnsupportedFeatureError(self.name, f"{kind} parts in {what}")
        if empty:
            if not out and not bare:
                raise UnsupportedFeatureError(self.name, "an empty text block (or whitespace)")
            notes.append("left out an empty text part")
        return out

    def render(self, body: bytes, target: Target) -> Frag:
        msg = json.loads(body)
        dropped = left_out(msg, KNOWN_FIELDS, self.name)
        check_fields(msg, self.name)
        role = msg["role"]
        content = msg.get("content")
        notes: list[str] = [dropped] if dropped else []
        if role in ("system", "developer"):
            blocks = self._parts(content, "a system message", notes, images=False)
            wire = "system"
        elif role == "user":
            blocks = self._parts(content, "a user message", notes)
            wire = "user"
        elif role == "tool":
            result = self._tool_result(msg["tool_call_id"], content, notes)
            blocks = [self._error(result) if msg.get("is_error") else result]
            wire = "user"
        else:
            blocks, note = replayed(msg.get("artifacts"), target, self.name)
            if note:
                notes.append(note)
            if isinstance(content, str):
                if content.strip():  # (one of whitespace alone is left out, as "" is)
                    blocks.append(self._text(content))
            elif content is not None:
                blocks += self._parts(content, "an assistant message", notes, False, bare=True)
            for j, call in enumerate(msg.get("tool_calls") or ()):
                name = self._call_name(call, j)
                blocks.append(self._tool_use(call["id"], name, check_call(call, self.name)))
            wire = "assistant"
        if not blocks and wire == "assistant":
            # e.g. a reply of ``content: []`` after a tool result: nothing to send.
            notes.append("left out an assistant message with no content")
            return Frag("message", wire, b"", note_of(notes), blocks=0)
        if not blocks:
            raise UnsupportedFeatureError(self.name, f"an empty {role} message")
        kind = "system" if wire == "system" else "message"
        return Frag(kind, wire, join_blocks(blocks, self.name), note_of(notes), len(blocks))

    def text_frags(self) -> TextFrags:
        """``render`` of a plain text message: one text block around the text's JSON
        string (made from ``_text_block`` itself); an empty text goes to ``render``."""
        texts: TextFrags | None = self.__dict__.get("_texts")
        if texts is None:
            probe = dumps("srt text probe")
            pre, post = dumps(self._text_block("srt text probe")).split(probe)
            texts = self.__dict__["_texts"] = TextFrags(
                kinds=("system", "system", "message", "message"),
                roles=("system", "system", "user", "assistant"),
                wraps=((pre, post),) * 4,
                empty=False,
                system_codes=b"\x00\x01",
            )
        return texts

    def glue(self, prev: str | None, role: str) -> bytes:
        return make_glue(prev, role)

    def close(self, last: str | None) -> bytes:
        return b"]}" if last else b""
