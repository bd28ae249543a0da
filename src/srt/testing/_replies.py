"""Routing, rendering and reply encoding (JSON bodies, SSE events, AWS event-stream frames)."""

from __future__ import annotations

import email.utils
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .. import _types as srt_types
from .._types import Usage
from ..wire import bedrock as bedrock_format
from ..wire import get_format
from ..wire.bedrock import event_frame
from ..wire.eventstream import encode_frame
from ..wire.sse import sse_event
from . import _anthropic, _azure, _bedrock, _openai
from ._common import STOPS, ApiError, CacheUsage, Prepared, Reply, dumps
from ._http import StreamBody

__all__ = [
    "Built",
    "build",
    "check_auth",
    "count_tokens",
    "encode_event_frame",
    "error_response",
    "redact",
    "render",
    "route",
    "status_fault",
]

JSON = dict[str, Any]
SSE = "text/event-stream; charset=utf-8"
_SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "x-amz-security-token")
_BROKEN = {
    "chat": b'data: {"id":"chatcmpl-broken","choices":[{"index":0,"delta":{"content":\n\n',
    "responses": b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta'
    b'","delta":\n\n',
    "anthropic": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{\n\n',
}


_DEFAULT_MESSAGES = {
    408: "Request timed out.",
    409: "Conflict.",
    429: "Rate limit exceeded. Please retry after a while.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable.",
    529: "Overloaded",
}


def encode_event_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream frame: prelude (total length, headers length, CRC32 of those 8
    bytes), headers (name length u8, name, type 7 = string, value length u16, value), payload
    and the CRC32 of everything before it; integers big-endian."""
    return encode_frame(headers, payload)


def route(path: str, query: Mapping[str, list[str]]) -> tuple[str, dict[str, str]] | None:
    """``(endpoint name, params)`` for a POST path, or None (404). An Azure path's params
    carry its ``api_version`` (the query's), and ``v1`` (``"1"``) on the v1 path; a dated
    path without one is not served (Azure's 404 "Resource not found")."""
    version = query.get("api-version")
    azure = {"api_version": version[0]} if version else {}
    simple = {
        "/v1/chat/completions": "openai.chat",
        "/v1/responses": "openai.responses",
        "/v1/responses/compact": "openai.compact",
        "/openai/v1/chat/completions": "azure.chat",
        "/openai/v1/responses": "azure.responses",
        "/v1/messages": "anthropic.messages",
        "/v1/messages/count_tokens": "anthropic.count_tokens",
        "/v1/conversations": "openai.conversations",
    }
    if path in simple:
        endpoint = simple[path]
        return endpoint, ({**azure, "v1": "1"} if endpoint.startswith("azure.") else {})
    if path == "/openai/responses" and version:
        return "azure.responses", azure
    m = re.fullmatch(r"/openai/deployments/([^/]+)/chat/completions", path)
    if m and version:
        return "azure.chat", {**azure, "deployment": unquote(m[1])}
    m = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream)", path)
    if m:
        kind = "bedrock.converse" if m[2] == "converse" else "bedrock.converse_stream"
        return kind, {"model": unquote(m[1])}
    return None


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with the values of secret ones replaced (the auth scheme word is kept)."""
    out = {}
    for k, v in headers.items():
        if k in _SECRET_HEADERS:
            scheme = v.split(" ", 1)[0] if " " in v else ""
            v = f"{scheme} <redacted>".strip()
        out[k] = v
    return out


def render(
    endpoint: str, body: Any, *, model: str | None = None, any_image: bool = False
) -> Prepared:
    """Validate ``body`` for ``endpoint`` and render it for the tokenizer (stateless: a
    Responses ``previous_response_id`` is not resolved). Raises ``ApiError`` if invalid;
    ``model`` is the Azure deployment or the Bedrock model id from the URL; ``any_image``:
    the OpenAI-shaped endpoints take any image, as an OpenAI-compatible server does."""
    if endpoint in ("openai.chat", "azure.chat"):
        return _openai.prepare_chat(body, model, any_image)
    if endpoint in ("openai.responses", "azure.responses"):
        return _openai.prepare_responses(body, [], model, any_image)
    if endpoint in ("anthropic.messages", "anthropic.count_tokens"):
        return _anthropic.prepare_messages(body, endpoint.endswith("count_tokens"))
    if endpoint in ("bedrock.converse", "bedrock.converse_stream"):
        if model is None:
            raise ValueError("Bedrock takes the model id from the URL: pass model=")
        return _bedrock.prepare_converse(body, model, endpoint.endswith("_stream"))
    raise ValueError(f"unknown endpoint {endpoint!r}")


def count_tokens(endpoint: str, body: Any, *, model: str | None = None) -> int:
    """Prompt tokens of ``body`` under the documented tokenizer (see ``render``)."""
    return render(endpoint, body, model=model).total_tokens


def check_auth(provider: str, headers: Mapping[str, str], api_key: str | None) -> None:
    """Raise the provider's ``ApiError`` unless the request carries credentials it takes."""
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.startswith("Bearer ") else ""
    if provider == "bedrock":
        err = _bedrock.check_auth(headers)
        if err is not None:
            raise err
        key: str | None = bearer or None
    elif provider == "anthropic":
        key = headers.get("x-api-key") or bearer
        if not key:
            raise ApiError(401, "x-api-key header is required")
        version = headers.get("anthropic-version")
        if version is None:
            raise ApiError(400, "anthropic-version: header is required")
        if not re.fullmatch(r"20\d\d-[01]\d-[0-3]\d", version) or version < "2023-01-01":
            raise ApiError(400, f"anthropic-version: invalid version {version!r}")
    elif provider == "azure":
        key = headers.get("api-key") or bearer
        given = "api-key" if headers.get("api-key") else "token" if bearer else None
        if given is None or (api_key is not None and key != api_key):
            raise _azure.auth_error(given)
    else:
        key = bearer
        if not key:
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
    if api_key is not None and key is not None and key != api_key:
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")


def error_response(provider: str, err: ApiError) -> tuple[JSON, dict[str, str]]:
    """The provider's error body and headers (request id, ``x-amzn-ErrorType``, extras)."""
    if err.body is not None:
        return err.body, {"x-request-id": f"req_{uuid.uuid4().hex}", **err.headers}
    if provider == "anthropic":
        body = _anthropic.error_body(err)
        hdrs = {"request-id": body["request_id"]}
    elif provider == "bedrock":
        body, hdrs = _bedrock.error_body(err)
        hdrs["x-amzn-RequestId"] = str(uuid.uuid4())
    else:
        body = _openai.error_body(err)
        hdrs = {"x-request-id": f"req_{uuid.uuid4().hex}"}
    return body, {**hdrs, **err.headers}


def _num(v: float | str) -> str:
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else str(v)


def status_fault(kw: Mapping[str, Any]) -> tuple[ApiError, bytes | None]:
    """The error of a ``status`` fault, and its raw body when the fault gives ``body=``."""
    code = int(kw["code"])
    headers = {str(k): str(v) for k, v in (kw.get("headers") or {}).items()}
    if "retry_after" in kw:
        headers["Retry-After"] = _num(kw["retry_after"])
    if "retry_after_date" in kw:
        v = kw["retry_after_date"]
        when = v if isinstance(v, str) else email.utils.formatdate(time.time() + v, usegmt=True)
        headers["Retry-After"] = when
    if "retry_after_ms" in kw:
        headers["retry-after-ms"] = _num(kw["retry_after_ms"])
    message = kw.get("message") or _DEFAULT_MESSAGES.get(code, f"HTTP {code}")
    raw = kw.get("body")
    if kw.get("variant") == "content_filter":  # (Azure's refusal of a prompt)
        raw = _azure.content_filter_error()
    if raw is None:
        return ApiError(code, message, headers=headers), None
    data = raw if isinstance(raw, bytes) else raw.encode() if isinstance(raw, str) else None
    data = dumps(raw).encode() if data is None else data
    headers.setdefault("Content-Type", "application/json")
    return ApiError(code, message, headers=headers), data


@dataclass
class Built:
    obj: JSON
    usage: JSON
    headers: dict[str, str]
    stream: StreamBody | None = None
    response_id: str | None = None
    output: list[JSON] = field(default_factory=list)


def _usage(cache: CacheUsage, out: int, reasoning: int = 0) -> Usage:
    return Usage(cache.total, out, cache.read, cache.written, cache.written_1h, reasoning)


def _cap(cap: Any, reply: Reply) -> int:
    """The output cap ``reply`` runs into (0: none, or one it stays within)."""
    limit = cap if type(cap) is int else 0
    return limit if 0 < limit < reply.output_tokens else 0


def _canonical(reply: Reply, model: str, call_id: str) -> srt_types.Reply:
    """The fake model's reply as srt's canonical reply; tool calls without an id get
    ``call_id.format(i)``."""
    message: JSON = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id or call_id.format(i),
                "type": "function",
                "function": {"name": c.name, "arguments": dumps(c.arguments)},
            }
            for i, c in enumerate(reply.tool_calls)
        ]
    return srt_types.Reply(message, Usage(), model)


def build(
    endpoint: str,
    body: JSON,
    prep: Prepared,
    reply: Reply,
    cache: CacheUsage,
    seq: int,
    t0: float,
    kw: Mapping[str, Any],
) -> Built:
    """The reply to a valid request: its JSON body, or its encoded stream if it streams.
    The bodies and events are the wire formats' own reply encoders'
    (``WireFormat.encode_reply``, ``encode_events``, ``encode_stream``)."""
    provider = endpoint.split(".")[0]
    chunks = reply.chunks()
    if provider in ("openai", "azure"):
        fmt = get_format(endpoint)
        hdrs = {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-processing-ms": "1"}
        ka = b": keep-alive\n\n"
        said = _canonical(reply, prep.model, f"call_{seq}_{{}}")
        usage = fmt.encode_usage(_usage(cache, reply.output_tokens, reply.reasoning_tokens))
        if endpoint.endswith("chat"):
            obj = fmt.encode_reply(
                said, id=f"chatcmpl-{uuid.uuid4().hex[:24]}", request=body, usage=usage
            )
            if reply.stop:
                obj["choices"][0]["finish_reason"] = STOPS[reply.stop]["openai"]
            out = Built(obj, obj["usage"], hdrs)
            if prep.stream:
                chat_events = fmt.encode_events(obj, request=body, chunks=chunks)
                if provider == "azure":  # (its content filter's results, as Azure sends them)
                    chat_events = _azure.annotate_events(chat_events)
                events = fmt.encode_stream(chat_events)
                err = sse_event(*_openai.error_event(False, 0, kw.get("message")))
                out.stream = StreamBody(SSE, events, ka, err, _BROKEN["chat"])
            elif provider == "azure":
                _azure.annotate_reply(obj)
            return out
        rid = f"resp_{uuid.uuid4().hex}"
        limit = _cap(body.get("max_output_tokens"), reply)
        capped = limit > 0
        if capped:  # the model stopped at the cap: an incomplete response
            reply = reply.cut(limit)
            chunks = reply.chunks()
            said = _canonical(reply, prep.model, f"call_{seq}_{{}}")
            usage = fmt.encode_usage(_usage(cache, limit))
        obj = fmt.encode_reply(said, id=rid, request=body, usage=usage)
        if reply.reasoning:  # (its summary: the item a reasoning model's reply begins with)
            summary = [{"type": "summary_text", "text": reply.reasoning}]
            item = {"id": f"rs_{uuid.uuid4().hex}", "type": "reasoning", "summary": summary}
            obj["output"].insert(0, item)
        if capped or reply.stop:
            obj["status"] = "incomplete"
            cut = capped or reply.stop == "model_context_window_exceeded"
            reason = "max_output_tokens" if cut else "content_filter"
            obj["incomplete_details"] = {"reason": reason}
            for item in obj["output"]:
                item["status"] = "incomplete"
        out = Built(obj, obj["usage"], hdrs, response_id=rid, output=obj["output"])
        if prep.stream:
            events = fmt.encode_stream(fmt.encode_events(obj, request=body, chunks=chunks))
            err = sse_event(*_openai.error_event(True, 1, kw.get("message")))
            out.stream = StreamBody(SSE, events, ka, err, _BROKEN["responses"])
            out.stream.failed = sse_event(*_openai.failed_event(obj, kw.get("message")))
        return out
    limit = _cap(
        body.get("max_tokens")
        if provider == "anthropic"
        else (body.get("inferenceConfig") or {}).get("maxTokens"),
        reply,
    )
    if limit:  # the model stopped at the cap: stop reason max_tokens (both APIs' word)
        reply = reply.cut(limit)
        chunks = reply.chunks()
    if provider == "anthropic":
        fmt = get_format("anthropic.messages")
        hdrs = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        said = _canonical(reply, prep.model, f"toolu_{seq:08d}{{:04d}}")
        usage = _anthropic.usage(cache, limit or reply.output_tokens)  # (and 1-hour writes)
        obj = fmt.encode_reply(said, id=f"msg_{uuid.uuid4().hex[:24]}", usage=usage)
        if limit:
            obj["stop_reason"] = "max_tokens"
        elif reply.stop:
            obj["stop_reason"] = STOPS[reply.stop]["anthropic"]
        plain = obj
        if reply.reasoning:  # (its extended thinking: a signed block before its text)
            obj = _anthropic.with_thinking(obj, reply.reasoning)
        out = Built(obj, obj["usage"], hdrs)
        if prep.stream:
            sse = fmt.encode_events(plain, chunks=chunks)
            if reply.reasoning:
                sse = _anthropic.thinking_events(sse, reply.reasoning)
            events = fmt.encode_stream(sse)
            etype = str(kw.get("error_type", "overloaded_error"))
            err = sse_event(*_anthropic.error_event(etype, str(kw.get("message", "Overloaded"))))
            ka = sse_event("ping", {"type": "ping"})
            out.stream = StreamBody(SSE, events, ka, err, _BROKEN["anthropic"])
        return out
    bedrock = bedrock_format.FORMAT
    hdrs = {"x-amzn-RequestId": str(uuid.uuid4())}
    latency = max(1, int((time.monotonic() - t0) * 1000))
    said = _canonical(reply, prep.model, f"tooluse_{seq:08d}{{:04d}}")
    usage = bedrock.encode_usage(_usage(cache, limit or reply.output_tokens))
    obj = bedrock.encode_reply(said, usage=usage, latency_ms=latency)
    if limit:
        obj["stopReason"] = "max_tokens"
    elif reply.stop:
        obj["stopReason"] = STOPS[reply.stop]["bedrock"]
    plain = obj
    if reply.reasoning:  # (a reasoning model's: its reasoningContent before its text)
        obj = _bedrock.with_reasoning(obj, reply.reasoning)
    out = Built(obj, obj["usage"], hdrs)
    if prep.stream:
        sent = bedrock.encode_events(plain, chunks=chunks)
        if reply.reasoning:
            sent = _bedrock.reasoning_events(sent, reply.reasoning)
        frames = bedrock.encode_stream(sent)
        kind = str(kw.get("error_type", "modelStreamErrorException"))
        message = str(kw.get("message", "The model stream was interrupted."))
        payload = dumps({"message": message}).encode()
        err = encode_event_frame(_bedrock.exception_headers(kind), payload)
        ka = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": ""}})
        broken = event_frame("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":')
        crc = bytearray(frames[min(1, len(frames) - 1)])
        crc[-1] ^= 0xFF
        stream = StreamBody("application/vnd.amazon.eventstream", frames, ka, err, broken)
        stream.bad_crc = bytes(crc)
        out.stream = stream
    return out
