"""The fake providers' context windows: a prompt over a model's window is refused with
that provider's own error (``srt.wire.overflow`` lists the shapes and where they come
from), or cut first for a Responses request with ``truncation: "auto"``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from .._types import Reply, Usage
from ..wire import get_format
from ._common import ApiError, Prepared
from ._http import StreamBody

__all__ = ["IMITATED", "StreamRefusal", "check", "window_for"]

#: Whose refusal the OpenAI-shaped endpoints answer with: OpenAI's own (and Azure's),
#: llama.cpp's server's or vLLM's (both OpenAI-compatible servers).
IMITATED = frozenset({"openai", "llama.cpp", "vllm"})
_SSE = "text/event-stream; charset=utf-8"


class StreamRefusal(Exception):
    """A streamed request refused after its head: the stream to send (a 200)."""

    def __init__(self, body: StreamBody) -> None:
        super().__init__("refused mid-stream")
        self.body = body


def window_for(model: str, default: int | None, windows: Mapping[str, int]) -> int | None:
    """The context window of ``model``: the first of ``windows`` whose key is part of
    the model's name, else ``default`` (``None``: no limit)."""
    for needle, n in windows.items():
        if needle in model:
            return n
    return default


def check(
    endpoint: str, body: Any, prep: Prepared, window: int | None, imitate: str = "openai"
) -> None:
    """Refuse ``prep`` (``ApiError``, or ``StreamRefusal`` for a streamed Responses call)
    if its prompt is over ``window`` tokens; a Responses request with ``truncation:
    "auto"`` first loses its oldest input items (never the last) until it fits."""
    if window is None or prep.total_tokens <= window:
        return
    total = prep.total_tokens
    responses = endpoint.endswith(".responses")
    if responses and body.get("truncation") == "auto":
        items = [i for i, lab in enumerate(prep.labels) if lab.startswith("item:")]
        for _ in items[:-1]:
            if prep.total_tokens <= window:
                break
            first = next(j for j, lab in enumerate(prep.labels) if lab.startswith("item:"))
            del prep.units[first], prep.labels[first]
        if prep.total_tokens <= window:
            return
    if endpoint.startswith("anthropic"):
        raise ApiError(
            400,
            f"prompt is too long: {total} tokens > {window} maximum",
            etype="invalid_request_error",
        )
    if endpoint.startswith("bedrock"):
        raise ApiError(400, "Input is too long for requested model.", etype="ValidationException")
    if imitate == "llama.cpp":
        message = (
            f"request ({total} tokens) exceeds the available context size ({window} tokens), "
            "try increasing it"
        )
        err = {"code": 400, "message": message, "type": "exceed_context_size_error"}
        err.update(n_prompt_tokens=total, n_ctx=window)
        raise ApiError(400, message, body={"error": err})
    if imitate == "vllm":
        message = (
            f"This model's maximum context length is {window} tokens. However, your request "
            f"has {total} input tokens. Please reduce the length of the input messages."
        )
        err = {"message": message, "type": "BadRequestError", "param": None, "code": 400}
        raise ApiError(400, message, body={"error": err})
    if not responses:
        raise ApiError(
            400,
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {total} tokens. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )
    error = {
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
        "message": "Your input exceeds the context window of this model. Please adjust your "
        "input and try again.",
        "param": "input",
    }
    if not prep.stream:
        raise ApiError(400, error["message"], param="input", code="context_length_exceeded")
    raise StreamRefusal(_responses_refusal(endpoint, body, prep, error))


def _responses_refusal(
    endpoint: str, body: Any, prep: Prepared, error: dict[str, Any]
) -> StreamBody:
    """A streamed Responses call over the window, as the API answers it: the head (200),
    ``response.created`` and ``response.in_progress``, then an ``error`` event whose
    ``error`` holds what a 400's body would, and the end of the stream."""
    fmt = get_format(endpoint)
    said = Reply({"role": "assistant", "content": ""}, Usage(), prep.model)
    obj = fmt.encode_reply(said, id=f"resp_{uuid.uuid4().hex}", request=body)
    start = fmt.encode_events(obj, request=body)[:2]  # created, in_progress
    events = [*start, ("error", {"type": "error", "sequence_number": len(start), "error": error})]
    frames = fmt.encode_stream(events)
    return StreamBody(_SSE, frames, b": keep-alive\n\n", frames[-1], frames[-1])
