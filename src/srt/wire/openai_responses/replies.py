"""The reply side of OpenAI Responses: the stream decoder (typed SSE events;
``response.completed`` carries the whole response), and the reply encoder (a
``response`` object and the events that stream it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..._types import Reply, Usage
from ...errors import ProviderResponseError
from ..base import Event, SSEStream, WireFormat, reply_parts, stream_error
from ..sse import ServerSentEvent

__all__ = ["ResponsesStream", "encode_events", "encode_output", "encode_reply", "encode_usage"]


class ResponsesStream(SSEStream):
    """OpenAI Responses typed events; ``response.completed`` (or ``response.incomplete``)
    carries the whole response."""

    def __init__(self, fmt: WireFormat, model: str | None = None) -> None:
        super().__init__(fmt, model)
        self._final: dict[str, Any] | None = None
        self._text: list[str] = []
        self._refusal: list[str] = []
        self._base: dict[str, Any] = {}

    def on_event(self, ev: ServerSentEvent) -> list[str]:
        data = ev.json()
        if not isinstance(data, dict):
            raise ProviderResponseError("a Responses event is not an object")
        kind = data.get("type") or ev.event
        if kind == "response.output_text.delta":
            d = str(data.get("delta") or "")
            self._text.append(d)
            return [d] if d else []
        if kind == "response.refusal.delta":
            self._refusal.append(str(data.get("delta") or ""))
        elif kind == "response.output_item.done" and not self._text:
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") == "reasoning":
                self.leading.append(item)
        elif kind in ("response.created", "response.in_progress"):
            self._base = dict(data.get("response") or {})
        elif kind in ("response.completed", "response.incomplete"):
            # An incomplete response (max_output_tokens, content_filter) ends the stream
            # with the whole response and its usage, as a non-streamed one would arrive.
            self._final = data.get("response")
            self.done = True
        elif kind == "response.failed":
            resp = data.get("response") or {}
            if isinstance(resp.get("usage"), dict):  # the tokens billed, for the ledger row
                self._base["usage"] = resp["usage"]
            err = resp.get("error") or resp.get("incomplete_details") or {}
            raise stream_error(str(err.get("code") or kind), str(err.get("message") or err))
        elif kind == "error":
            # The event's members are the error's (``ResponseErrorEvent``), or (as the API
            # sends a streamed call's ``context_length_exceeded`` after its head) in an
            # ``error`` object of the event, as a 400's body holds them.
            nested = data.get("error")
            err = nested if isinstance(nested, dict) else data
            raise stream_error(str(err.get("code") or "error"), str(err.get("message")))
        return []

    def response(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        out = dict(self._base)
        content = [{"type": "output_text", "text": "".join(self._text)}]
        if self._refusal:  # (a refusal cut off is kept as far as it got, as the text is)
            content.append({"type": "refusal", "refusal": "".join(self._refusal)})
        message = {"type": "message", "role": "assistant", "content": content}
        out["output"] = [*self.leading, message]  # (the reasoning its text came after)
        out.setdefault("usage", {})
        return out


# -- the server side: a Response object and its typed events --------------------------------


def encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def encode_output(reply: Reply) -> list[dict[str, Any]]:
    """The ``output`` items of ``reply``: a message (its text) and function calls."""
    text, calls = reply_parts(reply)
    out: list[dict[str, Any]] = []
    if text or not calls:
        out.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    for cid, name, args in calls:
        out.append(
            {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex}",
                "call_id": cid,
                "name": name,
                "arguments": args,
                "status": "completed",
            }
        )
    return out


def encode_reply(
    reply: Reply,
    *,
    id: str,
    request: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object; the request's parameters are echoed as the API does."""
    body = request or {}
    return {
        "id": id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": reply.model,
        "output": encode_output(reply),
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": dict(usage) if usage is not None else encode_usage(reply.usage),
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def encode_events(response: Mapping[str, Any], chunks: Sequence[str] | None = None) -> list[Event]:
    """The typed event sequence of a streamed response (``sequence_number`` from 0),
    ending with ``response.completed``, or ``response.incomplete`` for a response of
    that status."""
    events: list[Event] = []

    def add(kind: str, **data: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **data}))

    start = {**response, "status": "in_progress", "output": [], "usage": None}
    add("response.created", response=start)
    add("response.in_progress", response=start)
    for oi, item in enumerate(response["output"]):
        iid = item["id"]
        if item["type"] == "message":
            text = item["content"][0]["text"]
            add("response.output_item.added", output_index=oi, item={**item, "content": []})
            empty = {"type": "output_text", "text": "", "annotations": []}
            ix = {"item_id": iid, "output_index": oi, "content_index": 0}
            add("response.content_part.added", **ix, part=empty)
            for piece in chunks if chunks is not None else ([text] if text else []):
                add("response.output_text.delta", **ix, delta=piece, logprobs=[])
            add("response.output_text.done", **ix, text=text, logprobs=[])
            add("response.content_part.done", **ix, part=item["content"][0])
        elif item["type"] == "reasoning":  # its summary's parts, each in one delta
            add("response.output_item.added", output_index=oi, item={**item, "summary": []})
            for si, part in enumerate(item.get("summary") or ()):
                ix = {"item_id": iid, "output_index": oi, "summary_index": si}
                add("response.reasoning_summary_part.added", **ix, part={**part, "text": ""})
                add("response.reasoning_summary_text.delta", **ix, delta=part["text"])
                add("response.reasoning_summary_text.done", **ix, text=part["text"])
                add("response.reasoning_summary_part.done", **ix, part=part)
        else:
            added = {**item, "arguments": "", "status": "in_progress"}
            add("response.output_item.added", output_index=oi, item=added)
            args = item["arguments"]
            for k in range(0, len(args), 16):
                add(
                    "response.function_call_arguments.delta",
                    item_id=iid,
                    output_index=oi,
                    delta=args[k : k + 16],
                )
            add(
                "response.function_call_arguments.done",
                item_id=iid,
                output_index=oi,
                name=item["name"],
                arguments=args,
            )
        add("response.output_item.done", output_index=oi, item=item)
    # A response cut short (its status ``incomplete``) ends with that event instead.
    ended = (
        "response.incomplete" if response.get("status") == "incomplete" else "response.completed"
    )
    add(ended, response=response)
    return events
