"""The canonical message model: validation, normalisation and canonical bytes.

A message's canonical bytes are compact JSON (``ensure_ascii=False``) of its
normalised OpenAI Chat Completions form: top-level keys in the fixed order
``role, content, name, tool_calls, is_error, tool_call_id``, then ``artifacts``,
then an assistant's other keys (``ASSISTANT_KEYS``) sorted; any other key is
refused; text parts as ``{"type","text"}``; image parts as ``{"type","image_url"}``;
every other nested object with its keys sorted. The bytes therefore depend only
on what the model sees, never on dict order, process or machine, and they are
also, byte for byte, the message's Chat Completions fragment, but for a tool
result marked as an error (``"is_error": true``, ``TOOL_KEYS``), which Chat has no
place for. ``is_error`` is kept only when true (``False`` is the default and left
out, so an unmarked result's bytes, and hash, are those it always had), and it
comes before ``tool_call_id``, which stays a tool message's last key
(``srt._tool_pairs`` reads it there).

Everything is checked before anything is hashed or written; a bad message raises
``InvalidMessageError`` naming the problem (never quoting the content).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ._types import Message
from .errors import InvalidMessageError, SrtError

__all__ = [
    "ASSISTANT_KEYS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "RESERVED_PREFIX",
    "ROLES",
    "SENT_KEYS",
    "TEXT_HEADS",
    "TOOL_KEYS",
    "canonical_text",
    "canonical_tool",
    "canonicalize",
    "dumps",
    "own_metadata",
    "redact_strings",
    "split_extra",
    "unknown_key_error",
]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
#: Default limit on one message's canonical size (32 MiB); configurable per runtime.
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
_TOP_ORDER = ("role", "content", "name", "tool_calls", "tool_call_id")
#: The other keys an assistant message may carry, kept and sent as given by the Chat
#: Completions formats (the others leave them out, or refuse them: docs/api.md): what
#: the OpenAI SDK's ``ChatCompletionAssistantMessageParam`` and ``ChatCompletionMessage``
#: hold (``refusal``, ``audio``, the deprecated ``function_call``, ``annotations``), and
#: the reasoning text OpenAI-compatible servers return and take back (``reasoning_content``:
#: DeepSeek, llama.cpp, older vLLM; ``reasoning``: vLLM, OpenRouter). Any other key
#: (another role's too) is an ``InvalidMessageError``; one whose value is ``None`` is
#: left out, as it always was.
ASSISTANT_KEYS = frozenset(
    {"refusal", "audio", "function_call", "annotations", "reasoning", "reasoning_content"}
)
#: Every top-level key a canonical message may hold but ``artifacts`` and ``TOOL_KEYS``:
#: what a Chat Completions request sends.
SENT_KEYS = frozenset({*_TOP_ORDER, *ASSISTANT_KEYS})
#: The other key a tool message may carry: ``is_error`` (``True`` only), a result marked
#: as an error: Anthropic's ``is_error``, Bedrock's ``"status": "error"``; the OpenAI
#: formats have no such flag and leave it out (noted).
TOOL_KEYS = frozenset({"is_error"})
#: The keys ``_normalise`` reads by name (a tool message's: also ``TOOL_KEYS``); any
#: other is checked against ``_known``.
_READ = frozenset({*_TOP_ORDER, "metadata", "artifacts"})
_READ_TOOL = _READ | TOOL_KEYS
#: Half of a UTF-16 pair: JSON can spell one (``"\\ud83d"``, a reply cut inside an
#: emoji), UTF-8 cannot hold it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: How deep a message (or a tool definition) may nest arrays and objects.
MAX_DEPTH = 64
#: A base64 data URL (``data:<media type>[;params];base64,<data>``): every provider
#: takes an image as one, and refuses one whose data is not base64 or not an image.
_DATA_URL = re.compile(r"data:([^;,]*)((?:;[^;,]*)*);base64,", re.I)
#: A URL's scheme (RFC 3986: a letter, then letters, digits, '+', '-' or '.'), and its colon.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
#: Standard base64 (RFC 4648, section 4): padded to a multiple of 4 characters.
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

#: Metadata keys that start with this are srt's own (``srt_compacted``, a summary's link
#: to its span; ``srt_tool``, a tool run's record): a message given by a user with one
#: is refused, so no user key is read, stripped or overwritten as srt's.
RESERVED_PREFIX = "srt_"
_OWN = ContextVar("srt_own_metadata", default=False)


@contextmanager
def own_metadata() -> Iterator[None]:
    """Within it, messages may carry srt's own metadata keys (srt's writers only)."""
    token = _OWN.set(True)
    try:
        yield
    finally:
        _OWN.reset(token)


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes exactly as ``json.dumps(..., ensure_ascii=False)`` gives them."""
    return _encoder.encode(value).encode("utf-8")


def _bad(msg: str) -> InvalidMessageError:
    return InvalidMessageError(msg)


def _too_long(max_bytes: int) -> InvalidMessageError:
    return _bad(f"message is larger than the limit of {max_bytes} bytes")


def _too_big(body: bytes, max_bytes: int) -> InvalidMessageError:
    return _bad(f"message is {len(body)} bytes, over the limit of {max_bytes} bytes")


def _lone_surrogate(exc: UnicodeEncodeError) -> InvalidMessageError:
    return _bad(
        f"message text contains a lone surrogate (U+{ord(exc.object[exc.start]):04X}), "
        "which is not valid Unicode text"
    )


def _text(value: Any, where: str) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(f"{where}: invalid UTF-8 at byte {exc.start}") from None
    if not isinstance(value, str):
        raise _bad(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _plain(value: Any, where: str, depth: int) -> Any:
    """A JSON-representable copy of ``value`` with object keys sorted."""
    if depth > MAX_DEPTH:
        raise _bad(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(f"{where}: NaN and infinity cannot be represented in JSON")
        return value
    if isinstance(value, Mapping):
        out = {}
        for k in sorted(value, key=lambda k: (not isinstance(k, str), str(k))):
            if not isinstance(k, str):
                raise _bad(f"{where}: object keys must be strings, got {type(k).__name__}")
            out[k] = _plain(value[k], f"{where}.{k}", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise _bad(f"{where}: a {type(value).__name__} cannot be represented in JSON")


def _known(key: str, role: str) -> bool:
    """Whether a message of ``role`` may carry top-level ``key``."""
    return (
        key in _TOP_ORDER
        or key in ("metadata", "artifacts")
        or (role == "assistant" and key in ASSISTANT_KEYS)
        or (role == "tool" and key in TOOL_KEYS)
    )


def split_extra(msg: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``msg``'s top-level keys in two dicts, in its order: those a message of its role
    may carry, and the others, which ``canonicalize`` refuses (``unknown_key_error``).
    Another key whose value is None is in neither (``canonicalize`` leaves it out); a
    message without a valid role, or with a key that is not a string, is all in the
    first (``canonicalize`` refuses it for that)."""
    role = msg.get("role")
    if not isinstance(role, str) or role not in ROLES or not all(isinstance(k, str) for k in msg):
        return dict(msg), {}
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in msg.items():
        if _known(key, role):
            known[key] = value
        elif value is not None:
            extra[key] = value
    return known, extra


def unknown_key_error(key: str, role: str) -> InvalidMessageError:
    """The error for a ``role`` message that carries ``key``, which it may not."""
    shown = key if len(key) <= 40 else key[:40] + "..."
    where = (
        f"only an assistant message may carry {shown!r}"
        if key in ASSISTANT_KEYS
        else f"only a tool message may carry {shown!r}"
        if key in TOOL_KEYS
        else f"{shown!r} is not a message key"
    )
    return _bad(
        f"a {role} message cannot carry {shown!r}: {where}. A message's keys are "
        f"{', '.join(_TOP_ORDER)}, artifacts, metadata, on an assistant message "
        f"{', '.join(sorted(ASSISTANT_KEYS))}, and on a tool message "
        f"{', '.join(sorted(TOOL_KEYS))}; put your own data in the message's "
        "'metadata' dict, which srt stores beside it but never sends"
    )


def _image_data(url: str, where: str, role: str) -> None:
    """Refuse an image URL that no provider takes: one with no scheme (``example.com/a.png``,
    ``//host/a.png``, an empty one), a data URL that is not base64, and a base64 data URL
    with no data, data that is not base64 (sent, either costs a paid 400 after the call
    is recorded), or a media type that is not an image's. Which image types and URL
    schemes a provider takes, its format checks as the request is built (``srt.wire``)."""
    what = f"the {role} message's {where} (an image part)"
    if _SCHEME.match(url) is None:
        shown = url if len(url) <= 40 else url[:40] + "..."
        raise _bad(
            f"{what}: its URL {shown!r} has no scheme; an image is an absolute URL "
            "(https://...) or a base64 data URL (data:image/png;base64,...)"
        )
    if url[:5].lower() != "data:":
        return
    m = _DATA_URL.match(url)
    if m is None:
        raise _bad(
            f"{what}: its data URL is not base64; an image's is data:<image type>;base64,<data>"
        )
    media = m.group(1).strip().lower()
    if not media.startswith("image/"):
        shown = media[:40] or "none"
        raise _bad(f"{what}: its data URL's media type is not an image's ({shown!r})")
    data = url[m.end() :]
    if not data:
        raise _bad(f"{what}: its data URL holds no data (an empty image)")
    if len(data) % 4 or not _BASE64.fullmatch(data):
        raise _bad(
            f"{what}: its data URL's data is not valid base64 (RFC 4648: A-Z, a-z, 0-9, "
            "'+' and '/', padded with '=' to a multiple of 4 characters, no spaces)"
        )


def _part(part: Any, where: str, role: str = "") -> dict[str, Any]:
    if not isinstance(part, Mapping):
        raise _bad(f"{where}: a content part must be an object")
    kind = part.get("type")
    if not isinstance(kind, str):
        raise _bad(f"{where}: a content part needs a string 'type'")
    if kind == "text":
        extra = set(part) - {"type", "text"}
        if extra:
            raise _bad(f"{where}: unexpected keys in a text part: {sorted(extra, key=str)}")
        return {"type": "text", "text": _text(part.get("text"), f"{where}.text")}
    if kind == "image":
        # Image by bytes: stored losslessly as a base64 data URL.
        data = part.get("data")
        media = _text(part.get("media_type", "image/png"), f"{where}.media_type")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _bad(f"{where}: an image part needs 'data' as bytes")
        url = f"data:{media};base64," + base64.b64encode(bytes(data)).decode("ascii")
        _image_data(url, where, role)
        image: dict[str, Any] = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = _text(part["detail"], f"{where}.detail")
        return {"type": "image_url", "image_url": image}
    if kind == "image_url":
        spec = part.get("image_url")
        if isinstance(spec, str):
            spec = {"url": spec}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("url"), str):
            raise _bad(f"{where}: an image_url part needs image_url.url as a string")
        _image_data(spec["url"], where, role)
        return {"type": "image_url", "image_url": _plain(spec, f"{where}.image_url", 2)}
    return dict(_plain(part, where, 1))


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _bad(f"{where}: tool_calls must be a non-empty list")
    out = []
    for i, call in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(call, Mapping):
            raise _bad(f"{w}: a tool call must be an object")
        if not all(isinstance(k, str) for k in call):
            raise _bad(f"{w}: tool call keys must be strings")
        fn = call.get("function")
        if not isinstance(fn, Mapping):
            raise _bad(f"{w}: a tool call needs a 'function' object")
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            raise _bad(f"{w}.function.arguments must be a JSON string")
        norm: dict[str, Any] = {
            "id": _text(call.get("id"), f"{w}.id"),
            "type": _text(call.get("type", "function"), f"{w}.type"),
            "function": {"name": _text(fn.get("name"), f"{w}.function.name"), "arguments": args},
        }
        extra = set(call) - {"id", "type", "function"}
        for k in sorted(extra):
            norm[k] = _plain(call[k], f"{w}.{k}", 2)
        out.append(norm)
    return out


def _artifacts(value: Any) -> list[dict[str, Any]]:
    """Provider artifacts: opaque state a provider asked to get back verbatim, valid only
    for the model that produced it (Anthropic thinking blocks with their signature,
    OpenAI encrypted reasoning items). Each is
    ``{"provider": str, "model": str, "type": str, "data": <the provider's JSON>}``.
    """
    if not isinstance(value, (list, tuple)) or not value:
        raise _bad("artifacts must be a non-empty list")
    out = []
    for i, art in enumerate(value):
        w = f"artifacts[{i}]"
        if not isinstance(art, Mapping) or set(art) != {"provider", "model", "type", "data"}:
            raise _bad(f"{w}: an artifact needs exactly provider, model, type and data")
        out.append(
            {
                "provider": _text(art["provider"], f"{w}.provider"),
                "model": _text(art["model"], f"{w}.model"),
                "type": _text(art["type"], f"{w}.type"),
                "data": _plain(art["data"], f"{w}.data", 2),
            }
        )
    return out


def _is_error(value: Any) -> bool:
    """A tool message's ``is_error``: ``True`` or ``False`` (``None``: not given)."""
    if value is None or isinstance(value, bool):
        return value is True
    raise _bad(f"is_error must be True or False, got {type(value).__name__}")


def _normalise(msg: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if isinstance(msg, Message):
        msg = msg.to_dict()
    if not isinstance(msg, Mapping):
        raise _bad(f"a message must be a dict or srt.Message, got {type(msg).__name__}")
    if not all(isinstance(k, str) for k in msg):
        raise _bad("message keys must be strings")
    role = msg.get("role")
    if not isinstance(role, str) or role not in ROLES:
        expected = f"expected one of {sorted(ROLES)}"
        if "role" not in msg:
            keys = [k if len(k) <= 40 else k[:40] + "..." for k in list(msg)[:8]]
            raise _bad(f"the message has no role (its keys: {keys}); {expected}")
        if not isinstance(role, str):
            raise _bad(f"role must be a string, got {type(role).__name__}; {expected}")
        shown = role if len(role) <= 40 else role[:40] + "..."
        raise _bad(f"unknown role {shown!r}; {expected}")
    out: dict[str, Any] = {"role": role}
    content = msg.get("content")
    tool_calls = msg.get("tool_calls")
    if content is None:
        if role != "assistant" or tool_calls is None:
            raise _bad(f"a {role} message needs content")
        out["content"] = None
    elif isinstance(content, (list, tuple)):
        out["content"] = [_part(p, f"content[{i}]", role) for i, p in enumerate(content)]
    else:
        out["content"] = _text(content, "content")
    if msg.get("name") is not None:
        out["name"] = _text(msg["name"], "name")
    if tool_calls is not None:
        if role != "assistant":
            raise _bad("only an assistant message may carry tool_calls")
        out["tool_calls"] = _tool_calls(tool_calls, "tool_calls")
    if role == "tool":
        if _is_error(msg.get("is_error")):
            out["is_error"] = True  # (before tool_call_id, the last key: module doc)
        out["tool_call_id"] = _text(msg.get("tool_call_id"), "tool_call_id")
    elif msg.get("tool_call_id") is not None:
        raise _bad("only a tool message may carry tool_call_id")
    if msg.get("artifacts") is not None:
        if role != "assistant":
            raise _bad("only an assistant message may carry provider artifacts")
        out["artifacts"] = _artifacts(msg["artifacts"])
    for key in sorted(set(msg) - (_READ_TOOL if role == "tool" else _READ)):
        if msg[key] is not None:
            if not _known(key, role):
                raise unknown_key_error(key, role)
            out[key] = _plain(msg[key], key, 1)
    meta = msg.get("metadata")
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise _bad("metadata must be a dict")
        meta = _plain(meta, "metadata", 1)
        mine = [k for k in meta if k.startswith(RESERVED_PREFIX)]
        if mine and not _OWN.get():
            shown = mine[0] if len(mine[0]) <= 40 else mine[0][:40] + "..."
            raise _bad(
                f"metadata key {shown!r} is reserved: keys starting with "
                f"{RESERVED_PREFIX!r} are srt's own (drop them to append a message "
                "read back with metadata=True)"
            )
    return out, meta


def canonicalize(
    msg: Any, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> tuple[bytes, bytes | None]:
    """Validate ``msg`` and return ``(canonical bytes, metadata JSON bytes or None)``.

    Raises ``InvalidMessageError`` for an unknown role, lone surrogates, invalid
    UTF-8, NaN or infinity, values JSON cannot hold, or a message over
    ``max_bytes``. The size is checked before the message is hashed.
    """
    if isinstance(msg, Mapping):
        content = msg.get("content")
        if isinstance(content, str) and len(content) > max_bytes:
            raise _too_long(max_bytes)
    try:
        norm, meta = _normalise(msg)
        body = dumps(norm)
        meta_bytes = dumps(meta) if meta is not None else None
    except UnicodeEncodeError as exc:
        raise _lone_surrogate(exc) from None
    except RecursionError:
        raise _bad("message is nested too deeply") from None
    except InvalidMessageError:
        raise
    except ValueError as exc:  # e.g. an integer too large to convert to text
        raise _bad(f"message cannot be represented as JSON: {exc}") from None
    if len(body) > max_bytes:
        raise _too_big(body, max_bytes)
    return body, meta_bytes


#: The start of a plain text message's canonical bytes, by role (``canonical_text``; the
#: C fast path of an append, ``_core.plain_prepared``, writes the same bytes after it).
TEXT_HEADS = {r: b'{"role":"%s","content":' % r.encode() for r in ROLES - {"tool"}}


def canonical_text(msg: Any, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes | None:
    """``canonicalize(msg)[0]`` for the commonest message, ``{"role": r, "content": "..."}``
    with nothing else (r not ``tool``), without the general walk; ``None`` for any other
    message, which then goes through ``canonicalize``. Same bytes, same errors."""
    if type(msg) is not dict or len(msg) != 2:
        return None
    role, content = msg.get("role"), msg.get("content")
    head = TEXT_HEADS.get(role) if type(role) is str else None
    if head is None or type(content) is not str:
        return None
    if len(content) > max_bytes:
        raise _too_long(max_bytes)
    try:
        body = head + _encoder.encode(content).encode("utf-8") + b"}"
    except UnicodeEncodeError as exc:
        raise _lone_surrogate(exc) from None
    if len(body) > max_bytes:
        raise _too_big(body, max_bytes)
    return body


def canonical_tool(tool: Any) -> bytes:
    """A tool definition's canonical bytes: the OpenAI Chat Completions function shape.

    Accepts that shape, the Responses shape (``{"type": "function", "name": ...}``),
    Anthropic's (``{"name", "description", "input_schema"}``), Bedrock's
    (``{"toolSpec": {...}}``), and a Python callable or ``srt.Tool``, whose schema
    comes from its signature and docstring (``srt.tools``). Nested objects are
    key-sorted, so equal tools hash equally whatever their dict order.
    """
    if not isinstance(tool, Mapping):
        from .tools import definition  # a Python callable: its derived definition

        tool = definition(tool)
    if "toolSpec" in tool:
        spec = tool["toolSpec"]
        if not isinstance(spec, Mapping):
            raise _bad("toolSpec must be an object")
        schema = spec.get("inputSchema", {})
        fn = {
            "name": spec.get("name"),
            "description": spec.get("description"),
            "parameters": schema.get("json") if isinstance(schema, Mapping) else None,
        }
    elif isinstance(tool.get("function"), Mapping):
        fn = dict(tool["function"])
    elif "input_schema" in tool:
        fn = {
            "name": tool.get("name"),
            "description": tool.get("description"),
            "parameters": tool.get("input_schema"),
        }
    else:
        fn = {k: v for k, v in tool.items() if k != "type"}
    if tool.get("type", "function") != "function" and "toolSpec" not in tool:
        raise _bad(f"unsupported tool type {str(tool.get('type'))[:40]!r}")
    fn = {k: v for k, v in fn.items() if v is not None}
    _text(fn.get("name"), "tool.name")
    try:
        return dumps({"type": "function", "function": _plain(fn, "tool.function", 1)})
    except UnicodeEncodeError:
        raise _bad("a tool definition contains a lone surrogate") from None


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD, so it can be encoded."""
    return text if text.isascii() else LONE_SURROGATE.sub("\ufffd", text)


def redact_strings(value: Any, redact: Any) -> Any:
    """``value`` with ``redact(text)`` applied to every string in it (not to keys).

    Used for the runtime's redaction hook, before a message is validated, hashed
    or stored, so a secret pasted into a chat never reaches the file. A hook that
    fails, or returns what is not a str, is an ``InvalidMessageError`` (nothing is
    written); its own exception is chained, its text not shown (it may quote the
    secret). An srt error the hook raises (to refuse a message) goes through as it is.
    """
    if isinstance(value, str):
        try:
            out = redact(value)
        except SrtError:
            raise
        except Exception as exc:
            raise _bad(
                f"the redaction hook (Runtime(redact=...)) failed with {type(exc).__name__}; "
                "nothing was written: fix the hook, a function that takes each string of a "
                "message and returns the text to store"
            ) from exc
        if not isinstance(out, str):
            raise _bad(
                "the redaction hook (Runtime(redact=...)) must return the text to store, a "
                f"str, got {type(out).__name__}; nothing was written"
            )
        return out
    if isinstance(value, Message):
        return redact_strings(value.to_dict(), redact)
    if isinstance(value, Mapping):
        return {k: redact_strings(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_strings(v, redact) for v in value]
    return value
