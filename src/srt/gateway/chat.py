"""Chat Completions pass-through, and the per-tenant usage report.

``POST /v1/chat/completions`` is stateless, as OpenAI's is: the messages are sent to the
routed upstream through an srt session that keeps nothing (``keep=False``), so the
request still gets srt's wire formats, routing and a ledger row for the tenant's usage,
and the reply comes back as a Chat Completion (or its chunks).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive

from .._types import Reply, Usage
from ..errors import SrtError
from ..message import replace_lone_surrogates
from ..providers import OpenAICompatible
from ..savings import usage_figures
from ..wire import get_format
from ..wire.params import CommonParams, offered
from .errors import ApiError, bad_request, from_exception
from .leaving import GONE, first_or_gone, gone_response
from .params import VERBOSITIES, allowed_members, check_stream_options, tool_named
from .service import Stop, translated
from .threads import thread_name
from .values import INT_MAX, above_max, check_metadata, number, wrong_type

if TYPE_CHECKING:
    from .service import Gateway


class State(Protocol):
    """What a handler uses of the app's shared state (``asgi.State``)."""

    @property
    def pool(self) -> Executor: ...

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any: ...


__all__ = ["handle", "usage"]

_FIELDS = frozenset(
    "model messages tools tool_choice parallel_tool_calls temperature top_p max_tokens "
    "max_completion_tokens stream stream_options response_format user metadata store "
    "reasoning_effort verbosity service_tier n seed stop".split()
)
#: The type each other field must have where it is given (``None`` is leaving it out).
_TYPES: dict[str, tuple[type, str]] = {
    "stream": (bool, "a boolean"),
    "store": (bool, "a boolean"),
    "parallel_tool_calls": (bool, "a boolean"),
    "stream_options": (dict, "an object"),
    "response_format": (dict, "an object"),
    "reasoning_effort": (str, "a string"),
    "verbosity": (str, "a string"),
    "service_tier": (str, "a string"),
    "user": (str, "a string"),
}
_FINISH = {"max_tokens": "length", "max_output_tokens": "length", "length": "length"}
_CHAT = get_format("openai.chat")


def _check(body: dict[str, Any]) -> dict[str, Any]:
    for k in body:
        if k not in _FIELDS:
            raise bad_request(
                f"Unrecognized request argument supplied: {k}", k, "unknown_parameter"
            )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "Missing required parameter: 'model'.", "model", "missing_required_parameter"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "Invalid 'messages': expected a non-empty array.", "messages", "invalid_value"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in (
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        ):
            raise bad_request(
                f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role", "invalid_value"
            )
    if body.get("n") not in (None, 1):
        raise bad_request("Only n = 1 is supported by this gateway.", "n", "unsupported_parameter")
    for k in ("stop", "seed"):
        if body.get(k) is not None:
            raise bad_request(
                f"'{k}' is not supported by this gateway.", k, "unsupported_parameter"
            )
    for k in ("max_tokens", "max_completion_tokens"):
        v = body.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise wrong_type(k, "an integer >= 1", v)
        if v is not None and v > INT_MAX:
            raise above_max(k, v)
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list)
        or not all(
            isinstance(t, dict)
            and t.get("type") == "function"
            and isinstance(t.get("function"), dict)
            for t in tools
        )
    ):
        raise bad_request("Invalid 'tools': function tools only.", "tools", "invalid_value")
    for i, t in enumerate(tools or ()):
        fn, p = t["function"], f"tools[{i}].function"
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise wrong_type(p + ".name", "a non-empty string", fn.get("name"))
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise wrong_type(p + ".parameters", "an object", fn["parameters"])
    _check_types(body)
    return body


def _check_types(body: dict[str, Any]) -> None:
    """The other fields' types, as OpenAI checks them: a field of the wrong type is a 400
    naming it, never passed on (nor a 500 here, nor silently dropped)."""
    for k, (kind, name) in _TYPES.items():
        v = body.get(k)
        if v is not None and not isinstance(v, kind):
            raise wrong_type(k, name, v)
    check_metadata(body.get("metadata"))
    usage = (body.get("stream_options") or {}).get("include_usage")
    if usage is not None and not isinstance(usage, bool):
        raise wrong_type("stream_options.include_usage", "a boolean", usage)
    check_stream_options(body, body.get("stream") is True)
    rf = body.get("response_format")
    if rf is not None:
        if rf.get("type") not in ("text", "json_object", "json_schema"):
            raise bad_request(
                "Invalid 'response_format.type': one of 'text', 'json_object', 'json_schema'.",
                "response_format.type",
                "invalid_value",
            )
        spec = rf.get("json_schema")
        if rf["type"] == "json_schema" and not isinstance(spec, dict):
            raise wrong_type("response_format.json_schema", "an object", spec)


def _tool_names(body: dict[str, Any]) -> set[str]:
    """The request's function names (its tools are Chat's function tools: ``_check``)."""
    return {t["function"]["name"] for t in body.get("tools") or ()}


def _allowed_choice(c: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """Chat's ``{"type": "allowed_tools", "allowed_tools": {"mode": ..., "tools": [...]}}``
    (the SDK's ``ChatCompletionAllowedToolChoiceParam``), checked against the request's
    tools as ``/v1/responses`` checks its own form, in srt's words (the Responses form,
    which each upstream's format translates)."""
    top = "tool_choice.allowed_tools"
    extra = sorted(set(c) - {"type", "allowed_tools"})
    if extra:
        p = f"tool_choice.{extra[0]}"
        raise bad_request(f"Unknown parameter: '{p}'.", p, "unknown_parameter")
    a = c.get("allowed_tools")
    if not isinstance(a, dict):
        raise wrong_type(top, "an object", a)
    entries = allowed_members(a, top, {"mode", "tools"})
    chosen = []
    for i, t in enumerate(entries):
        fn = t.get("function") if isinstance(t, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not tool_named(name, names):
            raise bad_request(
                f"'{top}.tools[{i}]' names no function of 'tools', which is not allowed: "
                'each entry is {"type": "function", "function": {"name": ...}} naming one.',
                "tool_choice",
                "invalid_value",
            )
        chosen.append({"type": "function", "name": name})
    return {"type": "allowed_tools", "mode": a["mode"], "tools": chosen}


def _choice(body: dict[str, Any]) -> Any:
    c = body.get("tool_choice")
    if isinstance(c, dict) and c.get("type") == "allowed_tools":
        return _allowed_choice(c, _tool_names(body))
    if isinstance(c, dict):
        fn = c.get("function")
        if (
            c.get("type") != "function"
            or not isinstance(fn, dict)
            or not isinstance(fn.get("name"), str)
        ):
            raise bad_request("Invalid 'tool_choice'.", "tool_choice", "invalid_value")
        return {"type": "function", "name": fn["name"]}
    if c not in (None, "auto", "none", "required"):
        raise bad_request("Invalid 'tool_choice'.", "tool_choice", "invalid_value")
    return c


def _message(reply: Reply) -> dict[str, Any]:
    m = reply.message
    out: dict[str, Any] = {
        "role": "assistant",
        "content": m.get("content") if m.get("content") or not m.get("tool_calls") else None,
        "refusal": m.get("refusal"),
        "annotations": [],
    }
    if isinstance(out["content"], list):
        out["content"] = "".join(p.get("text", "") for p in out["content"])
    if m.get("tool_calls"):
        out["tool_calls"] = m["tool_calls"]
    return out


def _usage(reply: Reply | None) -> dict[str, Any]:
    """The reply's usage as a Chat Completions usage object (the same counts as the
    Responses endpoint's ``items.usage_json``: cache reads and writes, reasoning)."""
    return _CHAT.encode_usage(reply.usage if reply is not None else Usage())


def _error(exc: BaseException) -> ApiError:
    """``exc`` as the API error Chat answers: what ``from_exception`` makes, with the
    request's messages as the ``param`` where it names the input (OpenAI's Chat names
    ``messages`` in a ``context_length_exceeded`` refusal, its Responses ``input``)."""
    err = from_exception(exc)
    if err.param == "input":
        err = ApiError(err.status, err.message, type=err.type, param="messages", code=err.code)
    return err


def _finish(reply: Reply) -> str:
    if reply.message.get("tool_calls"):
        return "tool_calls"
    return _FINISH.get(str(reply.stop_reason), "stop")


async def handle(
    st: State, gw: Gateway, tenant: str, body: dict[str, Any], receive: Receive
) -> Response:
    body = _check(body)
    _route, provider, up_model = gw.route(body["model"])
    fmt = get_format(provider.format)
    text = None
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        spec = {"type": rf["type"], **(rf.get("json_schema") or {})}  # (checked: an object)
        text = {"format": spec}
    verbosity = body.get("verbosity")
    if verbosity is not None:  # (Chat's own; text.verbosity in srt's terms)
        if verbosity not in VERBOSITIES:
            raise bad_request(
                "Invalid value for 'verbosity': one of low, medium, high.",
                "verbosity",
                "invalid_value",
            )
        text = {**(text or {}), "verbosity": verbosity}
    common = CommonParams(
        max_output_tokens=body.get("max_completion_tokens")
        or body.get("max_tokens")
        or gw.config.default_max_output_tokens,
        temperature=number(body, "temperature", 0.0, 2.0),
        top_p=number(body, "top_p", 0.0, 1.0),
        tool_choice=_choice(body),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        text=text,
        reasoning={"effort": body["reasoning_effort"]} if body.get("reasoning_effort") else None,
        service_tier=body.get("service_tier"),
        user=body.get("user"),
    )
    kw = translated(fmt, common, isinstance(provider, OpenAICompatible))
    messages = body["messages"]
    tools = offered(fmt, common.tool_choice, body.get("tools") or ()) or None
    name = thread_name(tenant, "chat")
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def send() -> Reply:
        s = gw.rt.session(name)
        return s.send(provider, model=up_model, tools=tools, append=messages, keep=False, **kw)

    if not body.get("stream"):
        try:
            reply = await st.run(send)
        except SrtError as exc:
            raise _error(exc) from exc
        return JSONResponse(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": _message(reply),
                        "logprobs": None,
                        "finish_reason": _finish(reply),
                    }
                ],
                "usage": _usage(reply),
                "service_tier": "default",
                "system_fingerprint": None,
            }
        )
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body["model"],
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        text = replace_lone_surrogates(json.dumps(data, ensure_ascii=False))  # (an upstream's)
        return b"data: " + text.encode() + b"\n\n"

    gone = Stop()  # the client went away: the upstream's stream is cancelled

    def put(item: Any) -> None:
        if not gone.is_set():
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            s = gw.rt.session(name)
            stream = s.stream(
                provider, model=up_model, tools=tools, append=messages, keep=False, **kw
            )
            gone.watch(stream)
            # The role chunk goes out with the first delta (or the reply's end), not
            # before the upstream answers: a refusal before it (the prompt over the
            # model's window) is then the HTTP error it is on OpenAI's own server.
            role = chunk({"role": "assistant", "content": "", "refusal": None})
            with stream:  # left early: the upstream's stream closed, its ledger row cancelled
                for delta in stream:
                    if role:
                        put(role)
                        role = b""
                    put(chunk({"content": delta}))
                    if gone.is_set():
                        return
            if role:
                put(role)
            reply = stream.reply
            assert reply is not None
            for i, call in enumerate(reply.message.get("tool_calls") or ()):
                put(chunk({"tool_calls": [{"index": i, **call}]}))
            put(chunk({}, _finish(reply)))
            if include_usage:
                data = {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [],
                    "usage": _usage(reply),
                }
                put(b"data: " + json.dumps(data).encode() + b"\n\n")
            put(b"data: [DONE]\n\n")
            put(None)
        except BaseException as exc:
            put(exc)

    st.pool.submit(work)
    first = await first_or_gone(queue, receive, gone.set)
    if first is GONE:
        return gone_response()
    if isinstance(first, BaseException):
        raise _error(first) if isinstance(first, SrtError) else first

    async def events() -> AsyncIterator[bytes]:
        item = first
        try:
            while item is not None:
                if isinstance(item, BaseException):
                    err = _error(item)
                    yield b"data: " + json.dumps(err.body()).encode() + b"\n\n"
                    return
                yield item
                item = await queue.get()
        finally:
            if item is not None:
                gone.set()  # the client went away before the end (or it is an error)

    return StreamingResponse(events(), media_type="text/event-stream")


def usage(gw: Gateway, tenant: str) -> dict[str, Any]:
    """The tenant's totals from the ledger: requests, tokens, cache reads, cost, savings."""
    prefix, every = thread_name(tenant, ""), gw.rt.calls()
    rows = [r for r in every if str(r.get("session_name") or "").startswith(prefix)]
    # as ``srt stats --tenant``: the careful baseline follows the stored history
    figures = usage_figures(rows, history=gw.rt.store.tail, context=every)
    return {"object": "usage", "tenant": tenant, **figures}
