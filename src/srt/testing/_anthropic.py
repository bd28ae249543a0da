"""Anthropic Messages: validation, cache breakpoints and replies.

Tokenizer units, in render order: each tool definition; the system prompt (a string is one
unit ``{"type":"text","text":...}``, a list gives one unit per block); then every content
block of every message (string content is one text block). The first block of a message is
prefixed with ``"<role>:"`` so roles are part of the prompt. ``cache_control`` is removed
before rendering.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from ._common import ApiError, CacheUsage, Prepared, dumps, strip_markers

__all__ = [
    "MESSAGE_KEYS",
    "VERSION_2026",
    "check_version",
    "error_body",
    "error_event",
    "prepare_messages",
    "signature",
    "thinking_events",
    "usage",
    "with_thinking",
]

JSON = dict[str, Any]
Event = tuple[str | None, Any]

MESSAGE_KEYS = frozenset(
    "model max_tokens messages system tools tool_choice temperature top_p top_k "
    "stop_sequences stream metadata thinking".split()
)
COUNT_KEYS = frozenset("model messages system tools tool_choice thinking".split())
#: A tool's name, in ``tools`` and in a ``tool_use`` block of the history.
_NAME_PATTERN = "^[a-zA-Z0-9_-]{1,128}$"
_NAME = re.compile(_NAME_PATTERN[1:-1])
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_MEDIA = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_BLOCK_KEYS: dict[str, set[str]] = {
    "text": {"type", "text", "cache_control", "citations"},
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "title", "context", "citations", "cache_control"},
    "tool_use": {"type", "id", "name", "input", "cache_control"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "thinking": {"type", "thinking", "signature"},
    "redacted_thinking": {"type", "data"},
}
_ROLE_BLOCKS = {
    "user": {"text", "image", "document", "tool_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
}


def bad(message: str) -> ApiError:
    return ApiError(400, message, etype="invalid_request_error")


def error_body(err: ApiError) -> JSON:
    etype = err.etype or _TYPES.get(err.status, "api_error")
    return {
        "type": "error",
        "error": {"type": etype, "message": err.message},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def error_event(etype: str = "overloaded_error", message: str = "Overloaded") -> Event:
    return ("error", {"type": "error", "error": {"type": etype, "message": message}})


class _Breakpoints:
    def __init__(self) -> None:
        self.points: list[tuple[int, str]] = []

    def check(self, block: JSON, where: str, unit: int) -> None:
        cc = block.get("cache_control")
        if cc is None:
            return
        if (
            not isinstance(cc, dict)
            or cc.get("type") != "ephemeral"
            or set(cc) - {"type", "ttl"}
            or cc.get("ttl", "5m") not in ("5m", "1h")
        ):
            raise bad(f"{where}.cache_control: Input should be {{'type': 'ephemeral'}}")
        ttl = cc.get("ttl", "5m")
        if ttl == "1h" and any(t == "5m" for _, t in self.points):
            raise bad(
                "a cache_control block with ttl='1h' cannot come after one with ttl='5m' "
                "(the order is tools, system, messages)"
            )
        self.points.append((unit, ttl))


def _check_keys(block: JSON, allowed: set[str], where: str) -> None:
    for k in block:
        if k not in allowed:
            raise bad(f"{where}.{k}: Extra inputs are not permitted")


def _check_block(block: Any, role: str, where: str, ids: set[str]) -> str:
    """Check one content block; return its text for the default reply."""
    if not isinstance(block, dict) or block.get("type") not in _BLOCK_KEYS:
        raise bad(f"{where}: Input tag '{_get(block, 'type')}' does not match any expected tag")
    kind = block["type"]
    if kind not in _ROLE_BLOCKS[role]:
        raise bad(f"{where}: a {kind} block is not allowed in a {role} message")
    _check_keys(block, _BLOCK_KEYS[kind], where)
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise bad(f"{where}.text: Field required")
        if not block["text"]:
            raise bad("messages: text content blocks must be non-empty")
        if block["text"].isspace():
            raise bad("messages: text content blocks must contain non-whitespace text")
        return str(block["text"])
    if kind in ("image", "document"):
        src = block.get("source")
        ok = isinstance(src, dict) and (
            (src.get("type") == "base64" and isinstance(src.get("data"), str))
            or (src.get("type") == "url" and isinstance(src.get("url"), str))
            or (kind == "document" and src.get("type") in ("text", "content", "file"))
        )
        if not ok:
            raise bad(f"{where}.source: Input should be a valid base64 or url source")
        assert isinstance(src, dict)
        if kind == "image" and src.get("type") == "base64" and src.get("media_type") not in _MEDIA:
            raise bad(f"{where}.source.media_type: Input should be one of {', '.join(_MEDIA)}")
    elif kind == "tool_use":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise bad(f"{where}: tool_use needs 'id' and 'name'")
        if not isinstance(block.get("input"), dict):
            raise bad(f"{where}.input: Input should be a valid dictionary")
        _check_id(block["id"], f"{where}.tool_use.id")
        if not _NAME.fullmatch(block["name"]):
            raise bad(f"{where}.tool_use.name: String should match pattern '{_NAME_PATTERN}'")
        if block["id"] in ids:
            raise bad(f"messages: `tool_use` ids must be unique; found a duplicate {block['id']}")
        ids.add(block["id"])
    elif kind == "tool_result":
        tid = block.get("tool_use_id")
        if not isinstance(tid, str):
            raise bad(f"{where}.tool_use_id: Field required")
        _check_id(tid, f"{where}.tool_result.tool_use_id")
        if tid not in ids:
            raise bad(
                f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {tid}. "
                "Each `tool_result` block must have a corresponding `tool_use` block before it."
            )
        if "is_error" in block and not isinstance(block["is_error"], bool):
            raise bad(f"{where}.is_error: Input should be a valid boolean")
        content = block.get("content", "")
        if isinstance(content, list):
            for j, sub in enumerate(content):
                if not isinstance(sub, dict) or sub.get("type") not in ("text", "image"):
                    raise bad(f"{where}.content.{j}: Input tag does not match any expected tag")
            return " ".join(str(s.get("text", "")) for s in content)
        if not isinstance(content, str):
            raise bad(f"{where}.content: Input should be a valid string or list")
        return content
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str) or not isinstance(
            block.get("signature"), str
        ):
            raise bad(f"{where}: a thinking block needs 'thinking' and 'signature'")
        sig = block["signature"]
        if sig.startswith("sig_") and sig != signature(block["thinking"]):  # (the fake's own)
            raise bad(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking" and not isinstance(block.get("data"), str):
        raise bad(f"{where}.data: Field required")
    return ""


def _check_id(value: str, where: str) -> None:
    if not _TOOL_ID.match(value):
        raise bad(f"{where}: String should match pattern '^[a-zA-Z0-9_-]+$'")


def _unanswered(blocks: list[Any], nxt: Any) -> list[str]:
    """The ids of ``blocks``' tool_use blocks that the next message ``nxt`` (None: the
    request ends) has no tool_result block for."""
    calls = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    if not calls:
        return []
    content = nxt.get("content") if isinstance(nxt, dict) and nxt.get("role") == "user" else None
    answered = {
        b.get("tool_use_id")
        for b in (content if isinstance(content, list) else ())
        if isinstance(b, dict) and b.get("type") == "tool_result"
    }
    return [c for c in calls if c not in answered]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _params(body: JSON, count_only: bool) -> None:
    if not count_only:
        mt = body.get("max_tokens")
        if "max_tokens" not in body:
            raise bad("max_tokens: Field required")
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            raise bad("max_tokens: Input should be a valid integer greater than or equal to 1")
    for k, hi in (("temperature", 1), ("top_p", 1)):
        v = body.get(k)
        if k in body and (
            isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi
        ):
            raise bad(f"{k}: Input should be a number between 0 and {hi}")
    if "top_k" in body and (not isinstance(body["top_k"], int) or body["top_k"] < 0):
        raise bad("top_k: Input should be a valid integer")
    ss = body.get("stop_sequences")
    if "stop_sequences" in body and (
        not isinstance(ss, list) or not all(isinstance(s, str) for s in ss)
    ):
        raise bad("stop_sequences: Input should be a valid list of strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad("stream: Input should be a valid boolean")
    md = body.get("metadata")
    if "metadata" in body and (not isinstance(md, dict) or set(md) - {"user_id"}):
        raise bad("metadata: only 'user_id' is permitted")
    tc = body.get("tool_choice")
    if "tool_choice" in body and (
        not isinstance(tc, dict)
        or tc.get("type") not in ("auto", "any", "tool", "none")
        or (tc["type"] == "tool" and not isinstance(tc.get("name"), str))
    ):
        raise bad("tool_choice: Input tag does not match any expected tag")
    th = body.get("thinking")
    if "thinking" in body:
        if not isinstance(th, dict) or th.get("type") not in ("enabled", "disabled", "adaptive"):
            raise bad("thinking: Input tag does not match any expected tag")
        if th["type"] == "enabled":
            budget = th.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise bad("thinking.enabled.budget_tokens: Input should be >= 1024")
            if not count_only and budget >= body["max_tokens"]:
                raise bad("`max_tokens` must be greater than `thinking.budget_tokens`")


#: The ``anthropic-version`` from which the API rejects the sampling parameters and user
#: text blocks with citations (documents in assistant messages are refused in every version).
VERSION_2026 = "2026-10-21"


def check_version(version: str, body: Any) -> None:
    """The request rules that depend on the ``anthropic-version`` header."""
    if version < VERSION_2026 or not isinstance(body, dict):
        return
    for k in ("temperature", "top_p", "top_k"):
        if k in body:
            raise bad(
                f"{k}: this parameter is not supported with anthropic-version {version}; "
                "remove it, or send anthropic-version 2023-06-01"
            )
    for i, m in enumerate(body.get("messages") or ()):
        if (
            not isinstance(m, dict)
            or m.get("role") != "user"
            or not isinstance(m.get("content"), list)
        ):
            continue
        for j, b in enumerate(m["content"]):
            if isinstance(b, dict) and b.get("type") == "text" and b.get("citations"):
                raise bad(
                    f"messages.{i}.content.{j}.citations: text blocks in user messages cannot "
                    f"carry citations with anthropic-version {version}"
                )


def prepare_messages(body: Any, count_only: bool = False) -> Prepared:
    """Validate a Messages (or count_tokens) body; raise ``ApiError`` like the real API."""
    if not isinstance(body, dict):
        raise bad("The request body is not valid JSON (expected an object)")
    allowed = COUNT_KEYS if count_only else MESSAGE_KEYS
    for k in body:
        if k not in allowed:
            raise bad(f"{k}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("model: Field required")
    _params(body, count_only)
    bp = _Breakpoints()
    units: list[str] = []
    labels: list[str] = []

    def add(obj: Any, label: str, prefix: str = "") -> None:
        units.append(prefix + dumps(strip_markers(obj)))
        labels.append(label)

    tools = body.get("tools", [])
    if not isinstance(tools, list):
        raise bad("tools: Input should be a valid list")
    names: set[str] = set()
    for i, t in enumerate(tools):
        w = f"tools.{i}"
        if not isinstance(t, dict):
            raise bad(f"{w}: Input should be a valid dictionary")
        _check_keys(t, {"name", "description", "input_schema", "cache_control", "type"}, w)
        if t.get("type", "custom") != "custom":
            raise bad(f"{w}.type: Input should be 'custom'")
        if not isinstance(t.get("name"), str) or not _NAME.fullmatch(t["name"]):
            raise bad(f"{w}.name: String should match pattern '{_NAME_PATTERN}'")
        if t["name"] in names:
            raise bad("tools: Tool names must be unique.")
        names.add(t["name"])
        schema = t.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise bad(f"{w}.input_schema: Input should be a JSON schema of type 'object'")
        bp.check(t, w, len(units))
        add(t, f"tool:{i}")
    system = body.get("system")
    if isinstance(system, str):
        if system:
            add({"type": "text", "text": system}, "system:0")
    elif isinstance(system, list):
        for i, b in enumerate(system):
            w = f"system.{i}"
            if not isinstance(b, dict) or b.get("type") != "text":
                raise bad(f"{w}: Input tag does not match any expected tag ('text')")
            _check_keys(b, _BLOCK_KEYS["text"], w)
            if not isinstance(b.get("text"), str) or not b["text"]:
                raise bad("system: text content blocks must be non-empty")
            if b["text"].isspace():
                raise bad("system: text content blocks must contain non-whitespace text")
            bp.check(b, w, len(units))
            add(b, f"system:{i}")
    elif system is not None:
        raise bad("system: Input should be a valid string or list of text blocks")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise bad("messages: Field required")
    if not messages:
        raise bad("messages: at least one message is required")
    ids: set[str] = set()
    last_user = ""
    for i, m in enumerate(messages):
        w = f"messages.{i}"
        if not isinstance(m, dict):
            raise bad(f"{w}: Input should be a valid dictionary")
        _check_keys(m, {"role", "content"}, w)
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise bad(f"{w}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise bad('messages: the first message must use the "user" role')
        content = m.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == len(messages) - 1):
                raise bad("messages: text content blocks must be non-empty")
            blocks: list[Any] = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            if not content:
                raise bad(f"{w}.content: List should have at least 1 item")
            blocks = content
        else:
            raise bad(f"{w}.content: Input should be a valid string or list")
        texts = []
        for j, b in enumerate(blocks):
            texts.append(_check_block(b, role, f"{w}.content.{j}", ids))
            bp.check(b, f"{w}.content.{j}", len(units))
            add(b, f"message:{i}.{j}", f"{role}:" if j == 0 else "")
        if role == "user":
            last_user = " ".join(t for t in texts if t)
        if i == len(messages) - 1 and role == "assistant" and blocks:
            last = blocks[-1]
            if last.get("type") == "text" and last["text"] != last["text"].rstrip():
                raise bad("final assistant content cannot end with trailing whitespace")
    for i, m in enumerate(messages):  # (once every block is well-formed, as the API does)
        blocks = m["content"] if isinstance(m["content"], list) else []
        missing = _unanswered(blocks, messages[i + 1] if i + 1 < len(messages) else None)
        if missing:
            raise bad(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
    if len(bp.points) > 4:
        raise bad(
            f"A maximum of 4 blocks with cache_control may be provided. Found {len(bp.points)}."
        )
    return Prepared(
        model=body["model"],
        stream=bool(body.get("stream")),
        units=units,
        labels=labels,
        breakpoints=bp.points,
        last_user_text=last_user,
    )


def usage(cache: CacheUsage, out: int) -> JSON:
    """Anthropic's usage object, with the cache writes split by TTL (5 minutes, 1 hour)."""
    return {
        "input_tokens": cache.uncached,
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.written - cache.written_1h,
            "ephemeral_1h_input_tokens": cache.written_1h,
        },
        "output_tokens": out,
        "service_tier": "standard",
    }


def signature(thinking: str) -> str:
    """The signature the fake model gives its thinking (a real one is opaque): checked
    when the thinking comes back (``_check_block``: present; its text's own)."""
    return "sig_" + hashlib.sha256(thinking.encode("utf-8")).hexdigest()[:32]


def with_thinking(obj: JSON, thinking: str) -> JSON:
    """The message ``obj`` beginning with a ``thinking`` block (Claude's extended
    thinking: before its text and tool calls, with its signature)."""
    block = {"type": "thinking", "thinking": thinking, "signature": signature(thinking)}
    return {**obj, "content": [block, *obj["content"]]}


def thinking_events(events: list[Event], thinking: str) -> list[Event]:
    """``events`` of a message without its thinking, with the thinking block streamed
    first (index 0: ``thinking_delta``, then ``signature_delta``) and the other blocks
    numbered after it, as the API streams them."""
    out: list[Event] = []
    for name, data in events:
        if name is not None and name.startswith("content_block_"):
            data = {**data, "index": int(data["index"]) + 1}
        out.append((name, data))
        if name == "message_start":
            sig = signature(thinking)
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": thinking}]
            deltas.append({"type": "signature_delta", "signature": sig})
            out.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": start},
                )
            )
            for d in deltas:
                out.append(
                    (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": d},
                    )
                )
            out.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    return out
