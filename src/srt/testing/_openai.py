"""OpenAI Chat Completions and Responses (also behind Azure's URLs): validation and replies.

Tokenizer units: Chat -- each tool definition, then each message, as received. Responses --
each tool, then ``{"instructions": ...}`` when given, then every input item of the whole chain
(earlier stored inputs, their output items, this input); a string input is the item
``{"role": "user", "content": <string>}``.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from ._common import ApiError, Prepared, dumps, strip_markers

__all__ = [
    "conversation_id",
    "error_body",
    "error_event",
    "failed_event",
    "new_conversation",
    "prepare_chat",
    "prepare_responses",
]

JSON = dict[str, Any]
Event = tuple[str | None, Any]

CHAT_KEYS = frozenset(
    "model messages tools tool_choice temperature top_p max_tokens max_completion_tokens stream "
    "stream_options n stop seed user response_format parallel_tool_calls prompt_cache_key "
    "prompt_cache_retention metadata store logprobs top_logprobs presence_penalty "
    "frequency_penalty reasoning_effort service_tier safety_identifier verbosity".split()
)
RESPONSES_KEYS = frozenset(
    "model input instructions tools previous_response_id store stream truncation "
    "prompt_cache_key prompt_cache_retention max_output_tokens temperature top_p metadata "
    "reasoning include parallel_tool_calls tool_choice text user service_tier stream_options "
    "top_logprobs safety_identifier max_tool_calls background conversation".split()
)
_MESSAGE_KEYS = frozenset(
    "role content name tool_calls tool_call_id refusal audio function_call annotations".split()
)
_ROLES = ("system", "developer", "user", "assistant", "tool")
#: A function name's pattern, as the API states it in its errors (and at most 64 long).
_NAME = "^[a-zA-Z0-9_-]+$"
_NAME_RE = re.compile(_NAME[1:-1])
_RETENTION = {"in_memory": None, "24h": 86400.0}
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    408: "timeout",
    409: "conflict",
    429: "requests",
}
_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def bad(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code, etype="invalid_request_error")


def check_name(name: str, p: str) -> None:
    """A function's name checked as OpenAI checks one (``p``: its path, as
    ``tools[0].function.name``): a 400 in the API's words, longest first."""
    if len(name) > 64:
        raise bad(
            f"Invalid '{p}': string too long. Expected a string with maximum length 64, "
            f"but got a string with length {len(name)} instead.",
            p,
            "string_above_max_length",
        )
    if not _NAME_RE.fullmatch(name):
        raise bad(
            f"Invalid '{p}': string does not match pattern. Expected a string that matches "
            f"the pattern '{_NAME}'.",
            p,
            "invalid_value",
        )


def error_body(err: ApiError) -> JSON:
    etype = err.etype or _TYPES.get(err.status, "server_error")
    code = err.code if err.code is not None else _CODES.get(err.status)
    return {"error": {"message": err.message, "type": etype, "param": err.param, "code": code}}


def error_event(responses: bool, seq: int, message: str | None = None) -> Event:
    """A provider error event in the middle of a stream (``message``: its text, else
    the API's own for a server error)."""
    if responses:
        data = {
            "type": "error",
            "code": "server_error",
            "message": message or "The server had an error while processing your request.",
            "param": None,
            "sequence_number": seq,
        }
        return ("error", data)
    text = message or "The server had an error processing your request."
    return (None, error_body(ApiError(500, text)))


def failed_event(response: dict[str, Any], message: str | None = None) -> Event:
    """``response.failed`` for ``response`` (a server error): its output as far as it got
    is left out, its usage (the tokens billed) kept: a failed Response carries
    ``usage`` as any other."""
    failed = {
        **response,
        "status": "failed",
        "output": [],
        "error": {
            "code": "server_error",
            "message": message or "The server had an error while processing your request.",
        },
    }
    return ("response.failed", {"type": "response.failed", "response": failed})


def _type_name(v: Any) -> str:
    return {str: "a string", list: "an array", dict: "an object", bool: "a boolean"}.get(
        type(v), "null" if v is None else f"a {type(v).__name__}"
    )


def _common_params(body: JSON, keys: frozenset[str]) -> None:
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    for k in body:
        if k not in keys:
            raise bad(f"Unrecognized request argument supplied: {k}", param=k)
    model = body.get("model")
    if "model" in body and (not isinstance(model, str) or not model):
        raise bad("Invalid type for 'model': expected a non-empty string.", "model", "invalid_type")
    for k, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1)):
        v = body.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad(f"Invalid type for '{k}': expected a number.", k, "invalid_type")
        if v is not None and not lo <= v <= hi:
            raise bad(f"Invalid '{k}': must be between {lo} and {hi}.", k, "invalid_value")
    for k in ("max_tokens", "max_completion_tokens", "max_output_tokens", "n"):
        v = body.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise bad(f"Invalid '{k}': expected an integer >= 1.", k, "invalid_value")
    for k in ("stream", "store", "parallel_tool_calls"):
        if k in body and body[k] is not None and not isinstance(body[k], bool):
            raise bad(f"Invalid type for '{k}': expected a boolean.", k, "invalid_type")
    key = body.get("prompt_cache_key")
    if key is not None and not isinstance(key, str):
        raise bad("Invalid type for 'prompt_cache_key'.", "prompt_cache_key", "invalid_type")
    ret = body.get("prompt_cache_retention")
    if ret is not None and ret not in _RETENTION:
        raise bad("Invalid 'prompt_cache_retention'.", "prompt_cache_retention", "invalid_value")
    md = body.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise bad("Invalid type for 'metadata'.", "metadata", "invalid_type")


def _chat_tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    out = []
    for i, t in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(t, dict) or t.get("type") != "function":
            raise bad(f"Invalid '{p}': a tool needs type 'function'.", p, "invalid_value")
        fn = t.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad(f"Missing required parameter: '{p}.function.name'.", p + ".function")
        check_name(fn["name"], f"{p}.function.name")
        if "parameters" in fn and not isinstance(fn["parameters"], dict):
            raise bad(f"Invalid type for '{p}.function.parameters'.", p, "invalid_type")
        if set(t) - {"type", "function"} or set(fn) - {
            "name",
            "description",
            "parameters",
            "strict",
        }:
            raise bad(f"Additional properties are not allowed in '{p}'.", p)
        out.append(dumps(t))
    return out


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _chat_content(msg: JSON, p: str, any_image: bool = False) -> None:
    role = msg["role"]
    content = msg.get("content")
    if content is None:
        if role == "assistant" and (msg.get("tool_calls") or msg.get("function_call")):
            return
        raise bad(f"Invalid value for '{p}.content': expected a string, got null.", p + ".content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad(
            f"Invalid type for '{p}.content': expected one of a string or array of objects, "
            f"but got {_type_name(content)} instead.",
            p + ".content",
            "invalid_type",
        )
    allowed = _CHAT_PARTS.get(role, ("text",))
    if any_image and "image_url" not in allowed:  # (a compatible server's: any role's)
        allowed = (*allowed, "image_url")
    for j, part in enumerate(content):
        q = f"{p}.content[{j}]"
        if not isinstance(part, dict):
            raise bad(f"Invalid value for '{q}.type'.", q + ".type", "invalid_value")
        _check_part_type(part.get("type"), allowed, q)
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise bad(f"Missing required parameter: '{q}.text'.", q + ".text")
        if part["type"] == "image_url":
            img = part.get("image_url")
            if not isinstance(img, dict) or not isinstance(img.get("url"), str):
                raise bad(f"Missing required parameter: '{q}.image_url.url'.", q)
            if not any_image:
                _check_image(img["url"], img.get("detail"), f"{q}.image_url.url", q + ".image_url")


# -- images --------------------------------------------------------------------------

#: The parts each role's Chat message takes, in the order the API lists them.
_CHAT_PARTS = {
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
}
#: The image formats OpenAI takes, as its error lists them; the ``detail`` values.
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
_DETAILS = ("auto", "low", "high", "original")
_DATA_URL_EXAMPLE = "'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='"


def _one_of(values: tuple[str, ...]) -> str:
    """``values`` listed as OpenAI's enum errors list them: 'a', 'a' and 'b', 'a', 'b', and 'c'."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def _check_part_type(kind: Any, allowed: tuple[str, ...], q: str) -> None:
    """A content part's ``type`` (at ``q``) that its message's role does not take: an
    image in a system, developer, assistant or tool message of Chat Completions, in an
    assistant message of the Responses API."""
    if kind not in allowed:
        raise bad(
            f"Invalid value: '{kind}'. Supported values are: {_one_of(allowed)}.",
            q + ".type",
            "invalid_value",
        )


def _check_image(url: str, detail: Any, at: str, part: str) -> None:
    """An image OpenAI does not take, refused in its words: a URL neither ``http(s)`` nor
    ``data`` (``at``: the URL's path, Chat's ``...image_url.url``, the Responses API's
    ``...image_url``), a data URL of no image type or of one not in ``_IMAGE_FORMATS``
    (no ``param``: OpenAI names none), a ``detail`` not in ``_DETAILS`` (``part``: the
    path its ``detail`` hangs from)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        media = url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower()
        if not media.startswith("image/"):
            raise bad(
                "Invalid MIME type. Only image types are supported.", code="invalid_image_format"
            )
        if media[6:] not in _IMAGE_FORMATS:
            raise bad(
                "You uploaded an unsupported image. Please make sure your image has of one the "
                f"following formats: {list(_IMAGE_FORMATS)}.",
                code="invalid_image_format",
            )
    elif scheme not in ("http", "https"):
        head = "Invalid image URL: " if at.endswith(".url") else "Invalid "
        raise bad(
            f"{head}'{at}'. Expected a base64-encoded data URL with an image MIME type "
            f"(e.g. {_DATA_URL_EXAMPLE}), but got a value without the 'data:' prefix.",
            at,
            "invalid_value",
        )
    if detail is not None and detail not in _DETAILS:
        raise bad(
            f"Invalid value: '{detail}'. Supported values are: {_one_of(_DETAILS)}.",
            part + ".detail",
            "invalid_value",
        )


def _chat_answered(messages: list[JSON]) -> None:
    """Each assistant message's tool calls answered by the tool messages right after it."""
    for i, msg in enumerate(messages):
        calls = msg.get("tool_calls") if msg.get("role") == "assistant" else None
        if not calls:
            continue
        open_ = list(dict.fromkeys(c["id"] for c in calls))  # (an id repeated: answered once)
        k = i + 1
        while k < len(messages) and messages[k].get("role") == "tool":
            if messages[k]["tool_call_id"] in open_:
                open_.remove(messages[k]["tool_call_id"])
            k += 1
        if open_:
            raise bad(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(open_)}",
                f"messages.[{k if k < len(messages) else i}].role",
            )


def prepare_chat(body: Any, deployment: str | None = None, any_image: bool = False) -> Prepared:
    """Validate a Chat Completions body like the real API; raise ``ApiError`` on a fault
    (``any_image``: take any image, in any message, as an OpenAI-compatible server does)."""
    _common_params(body, CHAT_KEYS)
    if body.get("verbosity") not in (None, "low", "medium", "high"):
        raise bad("Invalid value for 'verbosity'.", "verbosity", "invalid_value")
    model = body.get("model") or deployment
    if not model:
        raise bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("Invalid 'messages': expected a non-empty array.", "messages", "invalid_value")
    units = _chat_tools(body.get("tools"))
    labels = [f"tool:{i}" for i in range(len(units))]
    call_ids: set[str] = set()
    last_user = ""
    for i, msg in enumerate(messages):
        p = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad(f"Invalid type for '{p}': expected an object.", p, "invalid_type")
        if msg.get("role") not in _ROLES:
            raise bad(
                f"Invalid value: '{msg.get('role')}'. Supported values are: 'system', "
                "'assistant', 'user', 'tool', and 'developer'.",
                p + ".role",
                "invalid_value",
            )
        extra = set(msg) - _MESSAGE_KEYS
        if extra:
            raise bad(
                f"Additional properties are not allowed ('{sorted(extra)[0]}' was unexpected)"
                f" - '{p}'",
                p,
            )
        _chat_content(msg, p, any_image)
        role = msg["role"]
        if "tool_calls" in msg:
            calls = msg["tool_calls"]
            if role != "assistant" or not isinstance(calls, list):
                raise bad(f"Invalid '{p}.tool_calls'.", p + ".tool_calls")
            for j, c in enumerate(calls):
                fn = c.get("function") if isinstance(c, dict) else None
                if (
                    not isinstance(c, dict)
                    or not isinstance(c.get("id"), str)
                    or c.get("type") != "function"
                    or not isinstance(fn, dict)
                    or not isinstance(fn.get("name"), str)
                    or not isinstance(fn.get("arguments"), str)
                ):
                    raise bad(f"Invalid '{p}.tool_calls[{j}]'.", f"{p}.tool_calls[{j}]")
                call_ids.add(c["id"])
        if role == "tool":
            tid = msg.get("tool_call_id")
            if not isinstance(tid, str):
                raise bad(f"Missing required parameter: '{p}.tool_call_id'.", p + ".tool_call_id")
            if tid not in call_ids:
                raise bad(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    p + ".role",
                )
        elif "tool_call_id" in msg:
            raise bad(f"Invalid '{p}.tool_call_id': only for role 'tool'.", p + ".tool_call_id")
        if role == "user":
            last_user = _text_of(msg.get("content"))
        units.append(dumps(msg))
        labels.append(f"message:{i}")
    _chat_answered(messages)
    stream = bool(body.get("stream"))
    so = body.get("stream_options")
    if so is not None:
        if not stream:
            raise bad(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
                "invalid_value",
            )
        if not isinstance(so, dict) or set(so) - {"include_usage", "include_obfuscation"}:
            raise bad("Invalid 'stream_options'.", "stream_options", "invalid_value")
    return Prepared(
        model=str(model),
        stream=stream,
        units=units,
        labels=labels,
        last_user_text=last_user,
        cache_key=body.get("prompt_cache_key"),
        cache_ttl_s=_RETENTION.get(body.get("prompt_cache_retention") or "in_memory"),
        extra={
            "include_usage": bool((so or {}).get("include_usage")),
            "n": body.get("n") or 1,
        },
    )


# -- Responses -----------------------------------------------------------------------


def _responses_tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    for i, t in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(t, dict) or t.get("type") != "function":
            raise bad(f"Invalid '{p}': a tool needs type 'function'.", p, "invalid_value")
        if not isinstance(t.get("name"), str):
            raise bad(f"Missing required parameter: '{p}.name'.", p + ".name")
        check_name(t["name"], f"{p}.name")
        extra = set(t) - {"type", "name", "description", "parameters", "strict"}
        if extra:
            raise bad(f"Unknown parameter: '{p}.{sorted(extra)[0]}'.", p, "unknown_parameter")
    return [dumps(t) for t in tools]


#: The parts each role's message takes (a system or developer message takes the user's:
#: the SDK's ``ResponseInputMessageContentList``; an assistant's, its output parts).
_INPUT_PARTS = ("input_text", "input_image", "input_file", "input_audio")
_PARTS = {
    "user": _INPUT_PARTS,
    "system": _INPUT_PARTS,
    "developer": _INPUT_PARTS,
    "assistant": ("output_text", "refusal"),
}


def _check_item(item: Any, p: str, call_ids: set[str], any_image: bool = False) -> None:
    if not isinstance(item, dict):
        raise bad(f"Invalid type for '{p}': expected an object.", p, "invalid_type")
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in _PARTS:
            raise bad(f"Invalid value: '{role}'.", p + ".role", "invalid_value")
        content = item.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                q = f"{p}.content[{j}]"
                if not isinstance(part, dict):
                    raise bad(f"Invalid value for '{q}.type'.", q + ".type", "invalid_value")
                _check_part_type(part.get("type"), _PARTS[role], q)
                if part["type"] in ("input_text", "output_text") and not isinstance(
                    part.get("text"), str
                ):
                    raise bad(f"Missing required parameter: '{q}.text'.", q + ".text")
                url = part.get("image_url")
                if part["type"] == "input_image" and isinstance(url, str) and not any_image:
                    _check_image(url, part.get("detail"), q + ".image_url", q)
        elif not isinstance(content, str):
            raise bad(f"Invalid type for '{p}.content'.", p + ".content", "invalid_type")
    elif kind == "function_call":
        for k in ("call_id", "name", "arguments"):
            if not isinstance(item.get(k), str):
                raise bad(f"Missing required parameter: '{p}.{k}'.", f"{p}.{k}")
        call_ids.add(item["call_id"])
    elif kind == "function_call_output":
        cid = item.get("call_id")
        if not isinstance(cid, str):
            raise bad(f"Missing required parameter: '{p}.call_id'.", p + ".call_id")
        if not isinstance(item.get("output"), (str, list)):
            raise bad(f"Missing required parameter: '{p}.output'.", p + ".output")
        if cid not in call_ids:
            raise bad(f"No tool call found for function call output with call_id {cid}.", "input")
    elif kind == "reasoning":
        if not isinstance(item.get("summary"), list):
            raise bad(f"Missing required parameter: '{p}.summary'.", p + ".summary")
    elif kind == "compaction":  # (what /v1/responses/compact returned)
        if not isinstance(item.get("encrypted_content"), str):
            q = p + ".encrypted_content"
            raise bad(f"Missing required parameter: '{q}'.", q)
    else:
        raise bad(f"Invalid value: '{kind}'.", p + ".type", "invalid_value")


def prepare_responses(
    body: Any, chain: list[JSON], model: str | None = None, any_image: bool = False
) -> Prepared:
    """Validate a Responses body; ``chain`` is the stored chain of ``previous_response_id``
    (``any_image``: take any image type, URL scheme and detail, as ``prepare_chat``)."""
    _common_params(body, RESPONSES_KEYS)
    model = body.get("model") or model
    if not model:
        raise bad("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    inp = body.get("input")
    if isinstance(inp, str):
        items: list[JSON] = [{"role": "user", "content": inp}]
    elif isinstance(inp, list):
        items = inp
    else:
        raise bad("Invalid type for 'input': expected a string or an array.", "input")
    instr = body.get("instructions")
    if instr is not None and not isinstance(instr, str):
        raise bad("Invalid type for 'instructions'.", "instructions", "invalid_type")
    if body.get("truncation") not in (None, "auto", "disabled"):
        raise bad("Invalid value for 'truncation'.", "truncation", "invalid_value")
    units = _responses_tools(body.get("tools"))
    labels = [f"tool:{i}" for i in range(len(units))]
    if instr is not None:
        units.append(dumps({"instructions": instr}))
        labels.append("instructions")
    call_ids: set[str] = set()
    for item in chain:
        if item.get("type") == "function_call":
            call_ids.add(item["call_id"])
    last_user = ""
    for i, item in enumerate(items):
        _check_item(item, f"input[{i}]", call_ids, any_image)
        if item.get("role") == "user":
            last_user = _text_of(item.get("content"))
    outputs = {x.get("call_id") for x in chain + items if x.get("type") == "function_call_output"}
    for x in chain + items:
        if x.get("type") == "function_call" and x["call_id"] not in outputs:
            raise bad(f"No tool output found for function call {x['call_id']}.", "input")
    for i, item in enumerate(chain + items):
        units.append(dumps(strip_markers(item)))
        labels.append(f"item:{i}")
    return Prepared(
        model=str(model),
        stream=bool(body.get("stream")),
        units=units,
        labels=labels,
        last_user_text=last_user,
        cache_key=body.get("prompt_cache_key"),
        cache_ttl_s=_RETENTION.get(body.get("prompt_cache_retention") or "in_memory"),
        extra={"items": items, "chain": chain},
    )


def new_conversation(body: Any) -> tuple[JSON, list[JSON]]:
    """``POST /v1/conversations``: the conversation object, and the input items of its
    ``items`` (as a response's ``input`` takes them)."""
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid type for the request body: expected an object.")
    unknown = sorted(set(body) - {"items", "metadata"})
    if unknown:
        raise ApiError(400, f"Unrecognized request argument supplied: {unknown[0]}")
    items = body.get("items") or []
    metadata = body.get("metadata") or {}
    if not isinstance(items, list) or not isinstance(metadata, dict):
        raise ApiError(400, "Invalid type for 'items' or 'metadata'.", param="items")
    prep = prepare_responses({"model": "-", "input": items}, [])
    obj = {
        "id": f"conv_{uuid.uuid4().hex}",
        "object": "conversation",
        "created_at": int(time.time()),
        "metadata": metadata,
    }
    return obj, list(prep.extra["items"])


def conversation_id(body: dict[str, Any]) -> str:
    """The id a Responses body's ``conversation`` names (an id, or ``{"id": ...}``)."""
    conv = body["conversation"]
    cid = conv.get("id") if isinstance(conv, dict) else conv
    if not isinstance(cid, str) or not cid:
        raise ApiError(400, "Invalid type for 'conversation'.", param="conversation")
    return cid
