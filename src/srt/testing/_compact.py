"""``POST /v1/responses/compact`` (endpoint ``openai.compact``): OpenAI's Responses
compaction, as the Agents SDK's ``OpenAIResponsesCompactionSession`` calls it.

The body names a ``model`` and the history to compact: ``input`` (a string or input
items) or ``previous_response_id`` (a stored response's chain and output), not both; it
may carry ``instructions`` and the prompt-cache and ``service_tier`` parameters the SDK's
``responses.compact`` sends. The reply is a ``response.compaction`` object whose
``output`` is every user message of the history (``input_text`` parts, as the real API
gives them back), then one ``compaction`` item whose ``encrypted_content`` is opaque;
``usage`` bills the history's tokens as input and the compaction item as output. A later
``/v1/responses`` takes the compaction item as input (``_openai`` checks its shape).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

from .._types import Usage
from ..wire import get_format
from ._common import Prepared, dumps, ntokens
from ._openai import bad, prepare_responses

__all__ = ["COMPACT_KEYS", "compacted", "prepare_compact"]

COMPACT_KEYS = frozenset(
    "model input instructions previous_response_id prompt_cache_key prompt_cache_options "
    "prompt_cache_retention service_tier image".split()
)


def prepare_compact(body: Any, chain: list[dict[str, Any]]) -> Prepared:
    """Validate a compaction body (``chain``: the stored chain of its
    ``previous_response_id``, or ``[]``) and render the history it compacts."""
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.")
    for k in body:
        if k not in COMPACT_KEYS:
            raise bad(f"Unrecognized request argument supplied: {k}", param=k)
    if body.get("input") is not None and body.get("previous_response_id") is not None:
        raise bad(
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'input'.",
            code="mutually_exclusive_parameters",
        )
    if body.get("input") is None and body.get("previous_response_id") is None:
        raise bad("Missing required parameter: 'input' or 'previous_response_id'.", "input")
    rest = {k: v for k, v in body.items() if k in ("model", "input", "instructions")}
    return prepare_responses({"input": [], **rest}, chain)


def compacted(prep: Prepared, seq: int) -> dict[str, Any]:
    """The ``response.compaction`` object for a prepared compaction request."""
    history = prep.extra["chain"] + prep.extra["items"]
    users = [it for it in history if it.get("role") == "user"]
    out: list[dict[str, Any]] = []
    for i, item in enumerate(users):
        content = item.get("content")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        out.append(
            {
                "id": f"msg_{seq:06d}{i:04d}{uuid.uuid4().hex[:12]}",
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": parts,
            }
        )
    digest = hashlib.sha256(dumps(history).encode()).digest()
    blob = base64.b64encode(b"srt-compaction:" + digest).decode()
    out.append({"id": f"cmp_{uuid.uuid4().hex}", "type": "compaction", "encrypted_content": blob})
    output_tokens = ntokens(blob) + 8
    return {
        "id": f"resp_cmp_{uuid.uuid4().hex}",
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": out,
        "usage": get_format("openai.responses").encode_usage(
            Usage(prep.total_tokens, output_tokens)
        ),
    }
