"""Typed request parameters, checked the way the OpenAI API checks them.

A request body becomes a frozen dataclass here or an ``ApiError`` (400) naming the
parameter: unknown fields, wrong types, out-of-range values and malformed input items
are all refused before anything is sent or stored. Fields the OpenAI API has but this
gateway cannot honour (hosted tools, prompt templates...) are refused by name rather
than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .body import parse_json
from .errors import ApiError, bad_request
from .values import MIN_OUTPUT_TOKENS, check_metadata, number, object_id, wrong_type
from .values import boolean as _bool
from .values import integer as _int
from .values import string as _str

__all__ = [
    "CreateResponse",
    "check_include",
    "check_items",
    "parse_create",
    "parse_json",
]

#: Fields of ``POST /v1/responses`` this gateway honours.
_CREATE_FIELDS = frozenset(
    "model input instructions previous_response_id conversation store stream background "
    "tools tool_choice parallel_tool_calls truncation max_output_tokens max_tool_calls "
    "metadata include temperature top_p top_logprobs text reasoning user safety_identifier "
    "prompt_cache_key prompt_cache_retention service_tier stream_options".split()
)
#: Fields the OpenAI API has that this gateway refuses unless null.
_UNSUPPORTED = frozenset(
    "prompt context_management access_programs background_options image moderation "
    "prompt_cache_options".split()
)
_INCLUDABLE = frozenset(
    {
        "message.output_text.logprobs",
        "reasoning.encrypted_content",
        "message.input_image.image_url",
    }
)
#: ``text.verbosity``'s values (OpenAI's default: ``medium``).
VERBOSITIES = ("low", "medium", "high")
#: OpenAI's service tiers; an upstream other than OpenAI's serves only the first two.
_TIERS = ("auto", "default", "flex", "scale", "priority")
_ROLES = frozenset({"user", "assistant", "system", "developer"})
_PARTS = {
    "user": frozenset({"input_text", "input_image"}),
    "system": frozenset({"input_text"}),
    "developer": frozenset({"input_text"}),
    "assistant": frozenset({"output_text", "refusal"}),
}
_ITEM_KEYS = {
    "message": frozenset({"type", "role", "content", "id", "status"}),
    "function_call": frozenset({"type", "call_id", "name", "arguments", "id", "status"}),
    "function_call_output": frozenset({"type", "call_id", "output", "id", "status"}),
    "reasoning": frozenset({"type", "id", "summary", "encrypted_content", "content", "status"}),
}
#: A ``call_id``'s most characters: OpenAI's bound on a ``function_call_output``'s (its
#: OpenAPI spec, ``FunctionCallOutputItemParam``), which a ``function_call``'s is held to
#: as well: no output could answer a longer one.
CALL_ID_MAX = 64
_PART_KEYS = {
    "input_text": frozenset({"type", "text"}),
    "output_text": frozenset({"type", "text", "annotations", "logprobs"}),
    "refusal": frozenset({"type", "refusal"}),
    "input_image": frozenset({"type", "image_url", "detail", "file_id"}),
}


def _check_part(part: Any, role: str, p: str) -> None:
    if not isinstance(part, dict):
        raise wrong_type(p, "an object", part)
    kind = part.get("type")
    if not isinstance(kind, str) or kind not in _PARTS[role]:
        allowed = ", ".join(sorted(_PARTS[role]))
        raise bad_request(
            f"Invalid value for '{p}.type': {role} content parts are {allowed}.",
            p + ".type",
            "invalid_value",
        )
    extra = set(part) - _PART_KEYS[kind]
    if extra:
        raise bad_request(f"Unknown parameter: '{p}.{sorted(extra)[0]}'.", p, "unknown_parameter")
    if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
        raise wrong_type(p + ".text", "a string", part.get("text"))
    if kind == "refusal" and not isinstance(part.get("refusal"), str):
        raise wrong_type(p + ".refusal", "a string", part.get("refusal"))
    if kind == "input_image":
        if part.get("file_id") is not None:
            raise bad_request(
                "Files are not supported by this gateway: pass the image as image_url.",
                p + ".file_id",
                "unsupported_parameter",
            )
        if not isinstance(part.get("image_url"), str):
            raise wrong_type(p + ".image_url", "a string", part.get("image_url"))
        if part.get("detail", "auto") not in ("auto", "low", "high", "original"):
            raise bad_request(f"Invalid value for '{p}.detail'.", p + ".detail", "invalid_value")


def _check_item(item: Any, p: str, calls: set[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise wrong_type(p, "an object", item)
    kind = item.get("type", "message" if "role" in item else None)
    if not isinstance(kind, str) or kind not in _ITEM_KEYS:
        if kind == "item_reference":
            raise bad_request(
                "Item references are not supported by this gateway.", p, "unsupported_parameter"
            )
        raise bad_request(
            f"Invalid value for '{p}.type': supported input items are message, "
            "function_call, function_call_output and reasoning.",
            p + ".type",
            "invalid_value",
        )
    extra = set(item) - _ITEM_KEYS[kind]
    if extra:
        raise bad_request(f"Unknown parameter: '{p}.{sorted(extra)[0]}'.", p, "unknown_parameter")
    if kind == "message":
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise bad_request(
                f"Invalid value for '{p}.role': one of user, assistant, system, developer.",
                p + ".role",
                "invalid_value",
            )
        content = item.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                _check_part(part, role, f"{p}.content[{j}]")
        elif not isinstance(content, str):
            raise wrong_type(p + ".content", "a string or an array", content)
    elif kind == "function_call":
        for k in ("call_id", "name", "arguments"):
            if not isinstance(item.get(k), str):
                raise wrong_type(f"{p}.{k}", "a string", item.get(k))
        if not item["call_id"] or not item["name"]:
            raise bad_request(f"Invalid '{p}': empty call_id or name.", p, "empty_string")
        _str(item, "call_id", most=CALL_ID_MAX, param=p + ".call_id")
        calls.add(item["call_id"])
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str) or not item["call_id"]:
            raise wrong_type(p + ".call_id", "a non-empty string", item.get("call_id"))
        _str(item, "call_id", most=CALL_ID_MAX, param=p + ".call_id")
        out = item.get("output")
        if isinstance(out, list):
            for j, part in enumerate(out):
                if not isinstance(part, dict) or part.get("type") != "input_text":
                    raise bad_request(
                        f"Invalid value for '{p}.output[{j}]': only input_text parts.",
                        f"{p}.output[{j}]",
                        "invalid_value",
                    )
                if not isinstance(part.get("text"), str):
                    raise wrong_type(f"{p}.output[{j}].text", "a string", part.get("text"))
        elif not isinstance(out, str):
            raise wrong_type(p + ".output", "a string or an array", out)
    else:
        if not isinstance(item.get("summary", []), list):
            raise wrong_type(p + ".summary", "an array", item.get("summary"))
        enc = item.get("encrypted_content")
        if enc is not None and not isinstance(enc, str):
            raise wrong_type(p + ".encrypted_content", "a string", enc)
    if item.get("id") is not None and not isinstance(item["id"], str):
        raise wrong_type(p + ".id", "a string", item["id"])
    if item.get("status") not in (None, "in_progress", "completed", "incomplete"):
        raise bad_request(
            f"Invalid value for '{p}.status': one of in_progress, completed, incomplete.",
            p + ".status",
            "invalid_value",
        )
    return {k: v for k, v in item.items() if k not in ("id", "status")}


def check_items(value: Any, param: str, limit: int, *, text: bool = True) -> list[dict[str, Any]]:
    """Input items (a string is one user message, where ``text``), checked; ``id`` and
    ``status`` dropped. The Conversations API takes an array only (``text=False``). An
    empty string is refused: no reference says what OpenAI does with it, and it would
    send an empty user message (which Anthropic and Bedrock refuse)."""
    if isinstance(value, str) and text:
        if not value:
            raise bad_request(
                f"Invalid '{param}': empty string: give the text to send, or leave "
                f"'{param}' out (or []) to continue from instructions or earlier items.",
                param,
                "empty_string",
            )
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        expected = "a string or an array of items" if text else "an array of items"
        raise wrong_type(param, expected, value)
    if len(value) > limit:
        raise bad_request(
            f"Invalid '{param}': at most {limit} items per request, got {len(value)}.",
            param,
            "array_above_max_length",
        )
    calls: set[str] = set()
    return [_check_item(item, f"{param}[{i}]", calls) for i, item in enumerate(value)]


def _check_tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise wrong_type("tools", "an array", value)
    out = []
    names = set()
    for i, t in enumerate(value):
        p = f"tools[{i}]"
        if not isinstance(t, dict):
            raise wrong_type(p, "an object", t)
        if t.get("type") != "function":
            raise bad_request(
                f"Invalid value for '{p}.type': this gateway supports function tools only.",
                p + ".type",
                "unsupported_parameter",
            )
        extra = set(t) - {"type", "name", "description", "parameters", "strict"}
        if extra:
            raise bad_request(
                f"Unknown parameter: '{p}.{sorted(extra)[0]}'.", p, "unknown_parameter"
            )
        name = t.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise wrong_type(p + ".name", "a string of 1 to 64 characters", name)
        if name in names:
            raise bad_request(f"Duplicate function name '{name}' in tools.", p + ".name")
        names.add(name)
        if t.get("description") is not None and not isinstance(t["description"], str):
            raise wrong_type(p + ".description", "a string", t["description"])
        if t.get("parameters") is not None and not isinstance(t["parameters"], dict):
            raise wrong_type(p + ".parameters", "an object", t["parameters"])
        if t.get("strict") is not None and not isinstance(t["strict"], bool):
            raise wrong_type(p + ".strict", "a boolean", t["strict"])
        out.append(t)
    return out


def allowed_members(value: dict[str, Any], where: str, keys: set[str]) -> list[Any]:
    """The members an allowed-tools choice ``value`` at ``where`` must have, each checked
    (nothing but ``keys``; a ``mode`` of ``auto`` or ``required``; ``tools`` a non-empty
    array, which is returned): ``/v1/responses`` holds them in the choice itself,
    ``/v1/chat/completions`` in its ``allowed_tools`` object."""
    extra = sorted(set(value) - keys)
    if extra:
        p = f"{where}.{extra[0]}"
        raise bad_request(f"Unknown parameter: '{p}'.", p, "unknown_parameter")
    for k in ("mode", "tools"):
        if value.get(k) is None:
            p = f"{where}.{k}"
            raise bad_request(
                f"Missing required parameter: '{p}'.", p, "missing_required_parameter"
            )
    if value["mode"] not in ("auto", "required"):
        p = f"{where}.mode"
        raise bad_request(f"Invalid value for '{p}': 'auto' or 'required'.", p, "invalid_value")
    entries = value["tools"]
    if not isinstance(entries, list):
        raise wrong_type(f"{where}.tools", "an array", entries)
    if not entries:
        p = f"{where}.tools"
        raise bad_request(
            f"Invalid '{p}': empty array: name at least one tool of 'tools'.", p, "empty_array"
        )
    return entries


def tool_named(name: Any, names: set[str]) -> bool:
    """Whether ``name`` is one of ``names`` (an object or an array is no name: it cannot
    even be looked up)."""
    return isinstance(name, str) and name in names


def _check_allowed(value: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"type": "allowed_tools", "mode": "auto"|"required", "tools": [...]}``: each
    entry a function of ``tools`` (``{"type": "function", "name": ...}``, as OpenAI's
    Responses API writes it; other members of an entry are taken, as OpenAI takes them)."""
    entries = allowed_members(value, "tool_choice", {"type", "mode", "tools"})
    names = {t["name"] for t in tools}
    for i, t in enumerate(entries):
        p = f"tool_choice.tools[{i}]"
        if not isinstance(t, dict):
            raise wrong_type(p, "an object", t)
        if t.get("type") != "function" or not tool_named(t.get("name"), names):
            what = (
                f"function {t.get('name')!r}"
                if t.get("type") == "function"
                else f"a tool of type {t.get('type')!r}"
            )
            raise bad_request(
                f"'{p}' names {what}, which is not in tools: allowed_tools names "
                'function tools of the request as {"type": "function", "name": ...}.',
                "tool_choice",
                "invalid_value",
            )
    return value


def _check_tool_choice(value: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    if value is None or value in ("auto", "none", "required"):
        if value == "required" and not tools:
            raise bad_request("tool_choice 'required' needs tools.", "tool_choice", "invalid_value")
        return value  # type: ignore[no-any-return]
    if (
        isinstance(value, dict)
        and value.get("type") == "function"
        and set(value) <= {"type", "name"}
    ):
        if not tool_named(value.get("name"), {t["name"] for t in tools}):
            raise bad_request(
                f"tool_choice names function {value.get('name')!r}, which is not in tools.",
                "tool_choice",
                "invalid_value",
            )
        return value
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "allowed_tools":
        return _check_allowed(value, tools)
    if isinstance(kind, str) and kind != "function":  # OpenAI's other forms: not served here
        raise bad_request(
            f"tool_choice of type '{kind}' is not supported by this gateway: it serves "
            "function tools only; use 'auto', 'none', 'required', "
            '{"type": "function", "name": ...} or {"type": "allowed_tools", ...}.',
            "tool_choice",
            "unsupported_parameter",
        )
    raise bad_request(
        "Invalid 'tool_choice': one of 'auto', 'none', 'required', "
        '{"type": "function", "name": ...} or {"type": "allowed_tools", ...}.',
        "tool_choice",
        "invalid_value",
    )


#: The object fields of a create request: each member's type where it is given (a member
#: given as null is left out); any other member is refused by name.
_OBJECTS: dict[str, dict[str, tuple[type, str]]] = {
    "reasoning": {
        "effort": (str, "a string"),
        "summary": (str, "a string"),
        "generate_summary": (str, "a string"),
    },
    "text": {"format": (dict, "an object"), "verbosity": (str, "a string")},
    "stream_options": {"include_obfuscation": (bool, "a boolean")},
}
#: The members of each ``text.format`` type but ``type``, with their types; the members
#: a ``json_schema`` format must have.
_FORMATS: dict[str, dict[str, tuple[type, str]]] = {
    "text": {},
    "json_object": {},
    "json_schema": {
        "name": (str, "a string"),
        "schema": (dict, "an object"),
        "description": (str, "a string"),
        "strict": (bool, "a boolean"),
    },
}
_SCHEMA_NEEDS = ("name", "schema")


def check_stream_options(body: Mapping[str, Any], stream: bool) -> None:
    """OpenAI takes ``stream_options`` only with ``stream: true`` (Chat and Responses)."""
    if body.get("stream_options") is not None and not stream:
        raise bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
            "invalid_value",
        )


def _check_object(body: Mapping[str, Any], key: str, members: Mapping[str, Any]) -> None:
    v = body.get(key)
    if v is None:
        return
    if not isinstance(v, dict):
        raise wrong_type(key, "an object", v)
    for k, inner in v.items():
        if k not in members:
            raise bad_request(f"Unknown parameter: '{key}.{k}'.", f"{key}.{k}", "unknown_parameter")
        kind, name = members[k]
        if inner is not None and not isinstance(inner, kind):
            raise wrong_type(f"{key}.{k}", name, inner)


def _check_format(fmt: dict[str, Any] | None) -> None:
    """``text.format``: a type this gateway knows, with its members and their types."""
    if fmt is None:
        return
    kind = fmt.get("type")
    if not isinstance(kind, str) or kind not in _FORMATS:
        raise bad_request(
            "Invalid value for 'text.format.type': one of text, json_object, json_schema.",
            "text.format.type",
            "invalid_value",
        )
    _check_object(
        {"text.format": fmt}, "text.format", {"type": (str, "a string"), **_FORMATS[kind]}
    )
    for k in _SCHEMA_NEEDS if kind == "json_schema" else ():
        if fmt.get(k) is None:
            p = f"text.format.{k}"
            raise bad_request(
                f"Missing required parameter: '{p}'.", p, "missing_required_parameter"
            )


@dataclass(frozen=True)
class CreateResponse:
    """``POST /v1/responses``, checked."""

    model: str
    input: list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | None = None
    store: bool = True
    stream: bool = False
    background: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    truncation: str = "disabled"
    max_output_tokens: int | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    max_tool_calls: int | None = None
    include: tuple[str, ...] = ()
    top_logprobs: int | None = None


def parse_create(body: dict[str, Any], max_items: int) -> CreateResponse:
    for k in body:
        if k in _UNSUPPORTED:
            if body[k] is None:
                continue
            raise bad_request(
                f"'{k}' is not supported by this gateway.", k, "unsupported_parameter"
            )
        if k not in _CREATE_FIELDS:
            raise bad_request(
                f"Unrecognized request argument supplied: {k}", k, "unknown_parameter"
            )
    model = _str(body, "model", empty=False)
    if model is None:
        raise bad_request(
            "Missing required parameter: 'model'.", "model", "missing_required_parameter"
        )
    items = check_items(body.get("input", []), "input", max_items)
    conv, key = body.get("conversation"), "conversation"
    if isinstance(conv, dict):  # {"id": ...}
        for k in sorted(set(conv) - {"id"})[:1]:
            raise bad_request(
                f"Unrecognized request argument supplied: conversation.{k}",
                f"conversation.{k}",
                "unknown_parameter",
            )
        if "id" not in conv:
            raise bad_request(
                "Missing required parameter: 'conversation.id'.",
                "conversation.id",
                "missing_required_parameter",
            )
        conv, key = conv["id"], "conversation.id"
    if conv is not None and not isinstance(conv, str):
        raise wrong_type(key, "a string", conv)
    prev = _str(body, "previous_response_id", empty=False)
    if prev is not None and conv is not None:  # api.openai.com's words, param null
        raise bad_request(
            "Mutually exclusive parameters. Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'.",
            None,
            "mutually_exclusive_parameters",
        )
    if conv is not None:
        object_id(conv, "conversation", "conv")
    if prev is not None:
        object_id(prev, "previous_response_id", "resp")
    trunc = body.get("truncation")
    if trunc is not None and trunc not in ("auto", "disabled"):
        raise bad_request(
            "Invalid value for 'truncation': 'auto' or 'disabled'.", "truncation", "invalid_value"
        )
    tools = _check_tools(body.get("tools"))
    include = body.get("include")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(x, str) for x in include)
    ):
        raise wrong_type("include", "an array of strings", include)
    include = check_include(include or ())
    for key, members in _OBJECTS.items():
        _check_object(body, key, members)
    text = body.get("text")
    if text is not None:
        _check_format(text.get("format"))
        if text.get("verbosity") not in (None, *VERBOSITIES):
            raise bad_request(
                "Invalid value for 'text.verbosity': one of low, medium, high.",
                "text.verbosity",
                "invalid_value",
            )
    retention = body.get("prompt_cache_retention")
    if retention is not None and retention not in ("in_memory", "24h"):
        raise bad_request(
            "Invalid 'prompt_cache_retention'.", "prompt_cache_retention", "invalid_value"
        )
    top_logprobs = _int(body, "top_logprobs", 0, 20)
    if top_logprobs:
        raise _no_logprobs("top_logprobs")
    tier = _str(body, "service_tier")
    if tier is not None and tier not in _TIERS:
        raise bad_request(
            f"Invalid value for 'service_tier': one of {', '.join(_TIERS)}.",
            "service_tier",
            "invalid_value",
        )
    stream = bool(_bool(body, "stream"))
    check_stream_options(body, stream)
    background = bool(_bool(body, "background"))
    store = _bool(body, "store")
    if background and store is False:
        raise bad_request(  # (no reference names OpenAI's code: invalid_value)
            "Background responses must be stored: 'background': true needs 'store' true "
            "or left out (a background response is read back with GET).",
            "background",
            "invalid_value",
        )
    return CreateResponse(
        model=model,
        input=items,
        instructions=_str(body, "instructions"),
        previous_response_id=prev,
        conversation=conv,
        store=store is not False,
        stream=stream,
        background=background,
        tools=tools,
        tool_choice=_check_tool_choice(body.get("tool_choice"), tools),
        parallel_tool_calls=_bool(body, "parallel_tool_calls"),
        truncation=trunc or "disabled",
        max_output_tokens=_int(body, "max_output_tokens", MIN_OUTPUT_TOKENS),
        metadata=check_metadata(body.get("metadata")),
        temperature=number(body, "temperature", 0.0, 2.0),
        top_p=number(body, "top_p", 0.0, 1.0),
        text=text,
        reasoning=body.get("reasoning"),
        prompt_cache_key=_str(body, "prompt_cache_key"),
        prompt_cache_retention=retention,
        service_tier=tier,
        user=_str(body, "user"),
        safety_identifier=_str(body, "safety_identifier", most=64),  # as OpenAI documents
        max_tool_calls=_int(body, "max_tool_calls", 1),
        include=include,
        top_logprobs=top_logprobs,
    )


def check_include(values: Any) -> tuple[str, ...]:
    """``include`` (of a create request, or a query string's): each value one this
    gateway serves; the logprobs one is refused, as ``top_logprobs`` is."""
    for x in values:
        if x not in _INCLUDABLE:
            raise bad_request(f"Invalid value for 'include': {x!r}.", "include", "invalid_value")
        if x == "message.output_text.logprobs":
            raise _no_logprobs("include")
    return tuple(values)


def _no_logprobs(param: str) -> ApiError:
    """Token log probabilities: srt's replies do not carry them from any upstream."""
    return bad_request(
        f"'{param}': token log probabilities are not supported by this gateway.",
        param,
        "unsupported_parameter",
    )
