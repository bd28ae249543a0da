"""Amazon Bedrock Converse and ConverseStream: auth, validation, cache points and replies.

Tokenizer units, in render order: each ``toolConfig.tools`` entry, each ``system`` block, then
every content block of every message; ``cachePoint`` blocks are markers, not units, and
belong to the unit before them. The first block of a message is prefixed with ``"<role>:"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._common import ApiError, Prepared, dumps

__all__ = [
    "check_auth",
    "error_body",
    "exception_headers",
    "prepare_converse",
    "reasoning_events",
    "with_reasoning",
]

JSON = dict[str, Any]

BODY_KEYS = frozenset(
    "messages system inferenceConfig toolConfig additionalModelRequestFields "
    "additionalModelResponseFieldPaths guardrailConfig promptVariables requestMetadata "
    "performanceConfig".split()
)
_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    409: "ConflictException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
    529: "ServiceUnavailableException",
}
_SIGV4 = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)
_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
_BLOCKS = {
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "reasoningContent",
    "guardContent",
    "citationsContent",
    "cachePoint",
}
_ROLE_ONLY = {"toolUse": "assistant", "reasoningContent": "assistant", "toolResult": "user"}
_FORMATS = ("png", "jpeg", "gif", "webp")
#: ``ToolUseId`` in botocore's bedrock-runtime model: 1 to 64 characters of this class.
_TOOL_ID = "[a-zA-Z0-9_.:-]+"
#: ``ToolName``'s pattern there (1 to 64 characters too).
_TOOL_NAME = "[a-zA-Z0-9_-]+"


def bad(message: str) -> ApiError:
    return ApiError(400, message, etype="ValidationException")


def error_body(err: ApiError) -> tuple[JSON, dict[str, str]]:
    etype = err.etype or _TYPES.get(err.status, "InternalServerException")
    return {"message": err.message}, {"x-amzn-ErrorType": etype}


def exception_headers(kind: str) -> dict[str, str]:
    return {
        ":message-type": "exception",
        ":exception-type": kind,
        ":content-type": "application/json",
    }


def check_auth(headers: Mapping[str, str]) -> ApiError | None:
    """A Bedrock API key (``Bearer``) or a well-formed SigV4 header for service ``bedrock``."""
    auth = headers.get("authorization", "")
    if auth.startswith("Bearer ") and auth[7:].strip():
        return None
    if not auth:
        return ApiError(
            403,
            "Missing Authentication Token",
            etype="UnrecognizedClientException",
        )
    m = _SIGV4.match(auth)
    if m is None:
        return ApiError(
            403,
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
            etype="IncompleteSignatureException",
        )
    if m["service"] != "bedrock":
        return ApiError(
            403,
            "Credential should be scoped to correct service: 'bedrock'.",
            etype="InvalidSignatureException",
        )
    signed = m["signed"].split(";")
    for h in ("host", "x-amz-date"):
        if h not in signed:
            return ApiError(
                403, f"'{h}' must be a signed header.", etype="IncompleteSignatureException"
            )
    date = headers.get("x-amz-date", "")
    if not _AMZ_DATE.match(date) or date[:8] != m["date"]:
        return ApiError(
            403,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
            "header, matching the credential scope.",
            etype="IncompleteSignatureException",
        )
    return None


class _Points:
    def __init__(self) -> None:
        self.points: list[tuple[int, str]] = []

    def add(self, cp: Any, where: str, unit: int) -> None:
        if not isinstance(cp, dict) or cp.get("type") != "default" or set(cp) - {"type", "ttl"}:
            raise bad(f"{where}.cachePoint: type must be 'default'")
        ttl = cp.get("ttl", "5m")
        if ttl not in ("5m", "1h"):
            raise bad(f"{where}.cachePoint.ttl: must be '5m' or '1h'")
        if unit < 0:
            raise bad(f"{where}: a cachePoint must follow a content block")
        if ttl == "1h" and any(t == "5m" for _, t in self.points):
            raise bad(
                "A cachePoint with a longer TTL cannot follow one with a shorter TTL "
                "(order: toolConfig, system, messages)."
            )
        self.points.append((unit, ttl))


def _only_key(block: Any, where: str, allowed: set[str]) -> str:
    if not isinstance(block, dict) or len(block) != 1:
        raise bad(f"{where}: a content block must have exactly one member")
    key = str(next(iter(block)))
    if key not in allowed:
        raise bad(f"{where}: unknown content block member '{key}'")
    return key


def _check_id(value: str, where: str, block: str) -> None:
    """A ``toolUseId`` checked as AWS checks a request's members: a ``ValidationException``
    naming the member by its path, where AWS counts list members from 1 (the second
    message's first block: ``messages.2.member.content.1.member...``), while ``where``
    (``messages.1.content.0``, as the other checks here name a block) counts from 0."""
    rule = _broken_rule(value, _TOOL_ID)
    if rule is None:
        return
    at = _member(where, f"{block}.toolUseId")
    raise bad(
        f"1 validation error detected: Value '{value}' at '{at}' failed to satisfy "
        f"constraint: {rule}"
    )


def _member(where: str, field: str) -> str:
    """The path AWS names a block's ``field`` by (``where``: ``messages.1.content.0``,
    counted from 0; AWS counts list members from 1: ``messages.2.member.content.1...``)."""
    _, i, _, j = where.split(".")
    return f"messages.{int(i) + 1}.member.content.{int(j) + 1}.member.{field}"


def _broken_rule(value: str, pattern: str) -> str | None:
    """The constraint AWS says a 1-to-64-character member matching ``pattern`` breaks,
    in its words (``None``: none)."""
    if not value:
        return "Member must have length greater than or equal to 1"
    if len(value) > 64:
        return "Member must have length less than or equal to 64"
    if not re.fullmatch(pattern, value):
        return f"Member must satisfy regular expression pattern: {pattern}"
    return None


def _check_name(value: str, at: str) -> None:
    """A ``toolSpec.name`` or a ``toolUse.name`` (``at``: its path, list members counted
    from 1) checked as AWS checks ``ToolName``: 1 to 64 characters of ``_TOOL_NAME``."""
    rule = _broken_rule(value, _TOOL_NAME)
    if rule is None:
        return
    raise bad(
        f"1 validation error detected: Value '{value}' at '{at}' failed to satisfy "
        f"constraint: {rule}"
    )


def _unanswered(content: list[Any], nxt: Any) -> list[str]:
    """The toolUseIds of ``content``'s toolUse blocks that the next message ``nxt``
    (None: the request ends) has no toolResult block for."""
    calls = list(dict.fromkeys(b["toolUse"]["toolUseId"] for b in content if "toolUse" in b))
    if not calls:
        return []
    blocks = nxt.get("content") if isinstance(nxt, dict) and nxt.get("role") == "user" else None
    answered = {
        b["toolResult"].get("toolUseId")
        for b in (blocks if isinstance(blocks, list) else ())
        if isinstance(b, dict) and isinstance(b.get("toolResult"), dict)
    }
    return [c for c in calls if c not in answered]


def _check_block(key: str, value: Any, role: str, where: str, ids: set[str]) -> str:
    need = _ROLE_ONLY.get(key)
    if need and need != role:
        raise bad(f"{where}: {key} is only allowed in a {need} message")
    if key == "text":
        if not isinstance(value, str) or not value.strip():
            raise bad(f"The text field in the ContentBlock object at {where} is blank.")
        return value
    if key == "image":
        src = value.get("source") if isinstance(value, dict) else None
        if (
            not isinstance(src, dict)
            or value.get("format") not in _FORMATS
            or not ({"bytes", "s3Location"} & set(src))
        ):
            raise bad(f"{where}.image: needs 'format' ({'|'.join(_FORMATS)}) and source.bytes")
    elif key == "toolUse":
        ok = isinstance(value, dict) and all(
            isinstance(value.get(k), str) for k in ("toolUseId", "name")
        )
        if not ok or "input" not in value:
            raise bad(f"{where}.toolUse: needs toolUseId, name and input")
        _check_id(value["toolUseId"], where, "toolUse")
        _check_name(value["name"], _member(where, "toolUse.name"))
        ids.add(value["toolUseId"])
    elif key == "toolResult":
        if not isinstance(value, dict) or not isinstance(value.get("toolUseId"), str):
            raise bad(f"{where}.toolResult: needs toolUseId")
        _check_id(value["toolUseId"], where, "toolResult")
        if value["toolUseId"] not in ids:
            raise bad(
                f"{where}: the toolResult's toolUseId {value['toolUseId']} does not match a "
                "toolUse block in an earlier assistant turn."
            )
        content = value.get("content")
        if not isinstance(content, list):
            raise bad(f"{where}.toolResult.content: must be a list")
        texts = []
        for j, c in enumerate(content):
            k = _only_key(
                c, f"{where}.toolResult.content.{j}", {"text", "json", "image", "document"}
            )
            if k == "text":
                texts.append(str(c["text"]))
        if value.get("status", "success") not in ("success", "error"):
            raise bad(f"{where}.toolResult.status: must be 'success' or 'error'")
        if set(value) - {"toolUseId", "content", "status"}:
            raise bad(f"{where}.toolResult: unknown member")
        return " ".join(texts)
    elif key == "reasoningContent" and (
        not isinstance(value, dict) or not ({"reasoningText", "redactedContent"} & set(value))
    ):
        raise bad(f"{where}.reasoningContent: needs reasoningText or redactedContent")
    return ""


def _inference(cfg: Any) -> None:
    if cfg is None:
        return
    if not isinstance(cfg, dict) or set(cfg) - {
        "maxTokens",
        "temperature",
        "topP",
        "stopSequences",
    }:
        raise bad("inferenceConfig: unknown member")
    mt = cfg.get("maxTokens")
    if "maxTokens" in cfg and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
        raise bad("inferenceConfig.maxTokens: must be an integer >= 1")
    for k in ("temperature", "topP"):
        v = cfg.get(k)
        if k in cfg and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1):
            raise bad(f"inferenceConfig.{k}: must be between 0 and 1")
    ss = cfg.get("stopSequences")
    if "stopSequences" in cfg and (
        not isinstance(ss, list) or not all(isinstance(s, str) for s in ss)
    ):
        raise bad("inferenceConfig.stopSequences: must be a list of strings")


def _tool_choice(choice: Any, tools: list[Any]) -> None:
    """A ``toolConfig.toolChoice``: a union of one member, ``auto`` and ``any`` empty
    objects, ``tool`` one naming a tool of ``tools`` (``SpecificToolChoice``)."""
    if choice is None:
        return
    if not isinstance(choice, dict) or len(choice) != 1:
        raise bad("toolConfig.toolChoice: must be one of auto, any, tool")
    ((kind, value),) = choice.items()
    if kind not in ("auto", "any", "tool") or not isinstance(value, dict):
        raise bad("toolConfig.toolChoice: must be one of auto, any, tool")
    if kind != "tool":
        if value:
            raise bad(f"toolConfig.toolChoice.{kind}: unknown member")
        return
    if set(value) != {"name"} or not isinstance(value["name"], str):
        raise bad("toolConfig.toolChoice.tool: needs name, and only name")
    names = {t["toolSpec"].get("name") for t in tools if "toolSpec" in t}
    if value["name"] not in names:
        raise bad(
            f"toolConfig.toolChoice.tool.name: {value['name']} is not a tool in toolConfig.tools"
        )


def prepare_converse(body: Any, model: str, stream: bool) -> Prepared:
    """Validate a Converse body (the model id comes from the URL)."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    for k in body:
        if k not in BODY_KEYS:
            raise bad(
                f'Unknown parameter in input: "{k}", must be one of: {", ".join(sorted(BODY_KEYS))}'
            )
    _inference(body.get("inferenceConfig"))
    if "additionalModelRequestFields" in body and not isinstance(
        body["additionalModelRequestFields"], dict
    ):
        raise bad("additionalModelRequestFields: must be an object")
    pts = _Points()
    units: list[str] = []
    labels: list[str] = []
    tc = body.get("toolConfig")
    if tc is not None:
        if not isinstance(tc, dict) or set(tc) - {"tools", "toolChoice"}:
            raise bad("toolConfig: unknown member")
        tools = tc.get("tools")
        if not isinstance(tools, list) or not tools:
            raise bad("toolConfig.tools: must be a non-empty list")
        for i, t in enumerate(tools):
            w = f"toolConfig.tools.{i}"
            key = _only_key(t, w, {"toolSpec", "cachePoint"})
            if key == "cachePoint":
                pts.add(t["cachePoint"], w, len(units) - 1)
                continue
            spec = t["toolSpec"]
            schema = spec.get("inputSchema") if isinstance(spec, dict) else None
            if (
                not isinstance(spec.get("name"), str)
                or not isinstance(schema, dict)
                or not isinstance(schema.get("json"), dict)
                or set(spec) - {"name", "description", "inputSchema"}
            ):
                raise bad(f"{w}.toolSpec: needs name and inputSchema.json")
            at = f"toolConfig.tools.{i + 1}.member.toolSpec"  # (AWS counts from 1)
            if spec.get("description") == "":  # (a NonEmptyString)
                raise bad(
                    f"1 validation error detected: Value '' at '{at}.description' failed to "
                    "satisfy constraint: Member must have length greater than or equal to 1"
                )
            _check_name(spec["name"], f"{at}.name")
            units.append(dumps(t))
            labels.append(f"tool:{i}")
        _tool_choice(tc.get("toolChoice"), tools)
    system = body.get("system", [])
    if not isinstance(system, list):
        raise bad("system: must be a list of blocks")
    for i, b in enumerate(system):
        w = f"system.{i}"
        key = _only_key(b, w, {"text", "cachePoint", "guardContent"})
        if key == "cachePoint":
            pts.add(b["cachePoint"], w, len(units) - 1)
            continue
        if key == "text" and (not isinstance(b["text"], str) or not b["text"].strip()):
            raise bad(f"The text field in the SystemContentBlock object at {w} is blank.")
        units.append(dumps(b))
        labels.append(f"system:{i}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages: must be a non-empty list")
    ids: set[str] = set()
    last_user = ""
    for i, m in enumerate(messages):
        w = f"messages.{i}"
        if not isinstance(m, dict) or set(m) - {"role", "content"}:
            raise bad(f"{w}: a message has only 'role' and 'content'")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise bad(f"{w}.role: must be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise bad(
                "A conversation must start with a user message. Try again with a "
                "conversation that starts with a user message."
            )
        if i > 0 and messages[i - 1].get("role") == role:
            raise bad(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        content = m.get("content")
        if not isinstance(content, list) or not content:
            raise bad(f"{w}.content: must be a non-empty list")
        first = True
        texts = []
        for j, b in enumerate(content):
            cw = f"{w}.content.{j}"
            key = _only_key(b, cw, _BLOCKS)
            if key == "cachePoint":
                pts.add(b["cachePoint"], cw, len(units) - 1)
                continue
            texts.append(_check_block(key, b[key], role, cw, ids))
            units.append((f"{role}:" if first else "") + dumps(b))
            labels.append(f"message:{i}.{j}")
            first = False
        if first:
            raise bad(f"{w}.content: a message needs at least one content block")
        if role == "user":
            last_user = " ".join(t for t in texts if t)
    for i, m in enumerate(messages):  # (once every block is well-formed, as the API does)
        missing = _unanswered(m["content"], messages[i + 1] if i + 1 < len(messages) else None)
        if missing:
            raise bad(
                f"Expected toolResult blocks at messages.{i + 1}.content for the following "
                f"Ids: {', '.join(missing)}"
            )
    if len(pts.points) > 4:
        raise bad(
            f"The number of cache points in the request ({len(pts.points)}) exceeds the "
            "maximum of 4."
        )
    return Prepared(
        model=model,
        stream=stream,
        units=units,
        labels=labels,
        breakpoints=pts.points,
        last_user_text=last_user,
    )


def _reasoning_block(text: str) -> JSON:
    return {"reasoningContent": {"reasoningText": {"text": text, "signature": "sig=="}}}


def with_reasoning(obj: JSON, text: str) -> JSON:
    """The Converse response ``obj`` whose message begins with a ``reasoningContent``
    block (a reasoning model's, before its text and tool calls)."""
    message = obj["output"]["message"]
    content = [_reasoning_block(text), *message["content"]]
    return {**obj, "output": {**obj["output"], "message": {**message, "content": content}}}


def reasoning_events(
    events: list[tuple[str | None, Any]], text: str
) -> list[tuple[str | None, Any]]:
    """ConverseStream ``events`` with the reasoning streamed first (block 0: its text,
    then its signature) and the other blocks numbered after it, as Bedrock streams them."""
    out: list[tuple[str | None, Any]] = []
    for name, data in events:
        if isinstance(data, dict) and "contentBlockIndex" in data:
            data = {**data, "contentBlockIndex": int(data["contentBlockIndex"]) + 1}
        out.append((name, data))
        if name == "messageStart":
            for piece in ({"text": text}, {"signature": "sig=="}):
                delta = {"contentBlockIndex": 0, "delta": {"reasoningContent": piece}}
                out.append(("contentBlockDelta", delta))
            out.append(("contentBlockStop", {"contentBlockIndex": 0}))
    return out
