"""How a response ended: its record's final fields once the reply is in, or the turn
failed (its status, ``incomplete_details`` for a reply the upstream cut off or
filtered, its usage and error), written by ``service`` before the record is stored."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._types import Reply
from .errors import response_error
from .items import usage_json

__all__ = ["INCOMPLETE", "settle"]

if TYPE_CHECKING:
    from .errors import ApiError

#: Stop reasons of a reply the upstream ended early, as the reason of an ``incomplete``
#: response: cut off by its token limit or where the model's context window ends
#: (Anthropic's and Bedrock's ``model_context_window_exceeded``), or stopped by a
#: content filter (OpenAI's ``content_filter``, a Responses upstream's own reason,
#: Anthropic's ``refusal``, Bedrock's ``content_filtered`` and ``guardrail_intervened``).
INCOMPLETE = {
    **dict.fromkeys(
        ("length", "max_tokens", "max_output_tokens", "model_context_window_exceeded"),
        "max_output_tokens",
    ),
    **dict.fromkeys(
        ("content_filter", "refusal", "content_filtered", "guardrail_intervened"),
        "content_filter",
    ),
}


def settle(
    record: dict[str, Any],
    reply: Reply | None,
    status: str,
    error: ApiError | None,
    kept: bool,
    depth: int,
) -> None:
    """A response record's final fields, its output aside, once the reply is in (or
    the turn failed): ``kept``, the reply is stored, so its output is rendered from it."""
    response: dict[str, Any] = record["response"]
    if reply is not None:
        if status == "completed" and kept:
            record["output_from"] = 1  # the stored reply: rendered again when read
        reason = INCOMPLETE.get(str(reply.stop_reason))
        if status == "completed" and reason is not None:
            status = "incomplete"
            response["incomplete_details"] = {"reason": reason}
        response["usage"] = usage_json(reply.usage)
    response["status"] = status
    if error is not None:
        response["error"] = response_error(error)
    response["completed_at"] = int(time.time())
    record["depth"] = depth
    record.pop("owner", None)
