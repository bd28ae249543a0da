"""A provider's "the prompt does not fit the model's context window" refusal, told apart
from its other errors by each provider's own error shape (pure: no I/O).

The shapes matched, as the providers and servers answer them:

- OpenAI Chat Completions, Responses and Azure OpenAI: HTTP 400 with
  ``{"error": {"code": "context_length_exceeded", "type": "invalid_request_error",
  "param": "messages" | "input", "message": ...}}``. Chat's message states both sizes
  ("This model's maximum context length is 128000 tokens. However, your messages resulted
  in 130000 tokens..."); Responses' does not ("Your input exceeds the context window of
  this model. Please adjust your input and try again."). A streamed Responses call is
  refused after its head, by an ``error`` event carrying the same object (``stream_error``).
- Anthropic Messages: HTTP 400, ``{"type": "error", "error": {"type":
  "invalid_request_error", "message": "prompt is too long: 208656 tokens > 200000
  maximum"}}``, or for a prompt that leaves no room for ``max_tokens``: "input length and
  `max_tokens` exceed context limit: 199759 + 8192 > 200000, ...". A 413
  ``request_too_large`` is the request's size in bytes (32 MB), not its tokens: not this.
- Bedrock Converse: HTTP 400, header ``x-amzn-ErrorType: ValidationException``, body
  ``{"message": "Input is too long for requested model."}`` (some models word it "too
  many input tokens"; Claude on Bedrock may pass Anthropic's "prompt is too long: N tokens
  > M maximum" on). ``ServiceQuotaExceededException`` is a 400 too: told apart by message.
- llama.cpp's server (and the local provider's): HTTP 400, ``{"error": {"code": 400,
  "type": "exceed_context_size_error", "message": "request (4476 tokens) exceeds the
  available context size (4096 tokens), try increasing it", "n_prompt_tokens": 4476,
  "n_ctx": 4096}}``.
- vLLM's OpenAI-compatible server: HTTP 400, ``{"error": {"type": "BadRequestError",
  "code": 400, "message": "This model's maximum context length is 4096 tokens. However,
  you requested 5000 tokens (4000 in the messages, 1000 in the completion)..."}}`` (older
  releases put the same members at the top level, with ``"object": "error"``), or
  "... maximum context length is 4096 tokens and your request has 2778 input tokens
  (8000 > 4096 - 2778)" when ``max_tokens`` does not fit.

Where these were checked (late 2026): the bodies the ``openai`` (3.54) and ``anthropic``
(2.12) SDKs raise as ``BadRequestError`` and their error models (``ErrorObject``,
``ErrorResponse``, ``InvalidRequestError``: ``tests/test_sdk_overflow.py``), botocore's
``bedrock-runtime`` model (``ValidationException`` is Converse's 400), a real llama.cpp
server (``xllamacpp``, ``tests/test_local_hostile.py``), and the bodies users report in
public issue threads: Anthropic's "prompt is too long" (anthropics/claude-code#62560) and
"exceed context limit" (continuedev/continue#6080), Bedrock's "Input is too long for
requested model." (aws-samples/bedrock-chat#95, continuedev/continue#6005), the streamed
Responses ``error`` event (anomalyco/opencode#6071, maximhq/bifrost#4413), vLLM's 400s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

__all__ = ["RULES", "Overflow", "anthropic", "bedrock", "from_stream_event", "openai"]


class Overflow(NamedTuple):
    """A context-window refusal: the provider's own message, and the prompt's size and
    the model's limit in tokens where the provider states them (else ``None``)."""

    message: str
    prompt_tokens: int | None = None
    limit: int | None = None


# OpenAI Chat and vLLM: "maximum context length is 4096 tokens".
_MAX_CONTEXT = re.compile(r"maximum context length is (\d+) tokens", re.I)
# The prompt's size, in the wordings that state it alone (not prompt + completion).
_PROMPT = (
    re.compile(r"your messages resulted in (\d+) tokens", re.I),  # OpenAI Chat
    re.compile(r"\((\d+) in the messages", re.I),  # vLLM: "(4000 in the messages, ..."
    re.compile(r"your (?:request|prompt) has (\d+) input tokens", re.I),  # vLLM
    re.compile(r"(\d+) in your prompt", re.I),  # OpenAI completions, older vLLM
)
# Anthropic (and Claude on Bedrock): "prompt is too long: 208656 tokens > 200000 maximum".
_TOO_LONG = re.compile(r"prompt is too long:\s*(\d+) tokens\s*>\s*(\d+) maximum", re.I)
# Anthropic: "input length and `max_tokens` exceed context limit: 199759 + 8192 > 200000".
_WITH_MAX = re.compile(r"exceed context limit:\s*(\d+)\s*\+\s*\d+\s*>\s*(\d+)", re.I)
# Bedrock's ValidationException wordings.
_BEDROCK = re.compile(r"input is too long|too many input tokens|prompt is too long", re.I)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _first(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        m = pattern.search(text)
        if m:
            return int(m.group(1))
    return None


def openai_error(err: Mapping[str, Any]) -> Overflow | None:
    """An OpenAI-shaped error object (``{"code", "type", "message", ...}``, OpenAI's,
    Azure's, llama.cpp's or vLLM's) as an overflow, or ``None``."""
    message = err.get("message")
    message = message if isinstance(message, str) else ""
    if err.get("type") == "exceed_context_size_error":  # llama.cpp
        return Overflow(message, _int(err.get("n_prompt_tokens")), _int(err.get("n_ctx")))
    limit = _MAX_CONTEXT.search(message)
    if err.get("code") == "context_length_exceeded" or limit:
        return Overflow(message, _first(_PROMPT, message), int(limit.group(1)) if limit else None)
    return None


def openai(status: int, body: str, headers: Mapping[str, str]) -> Overflow | None:
    """OpenAI, Azure OpenAI and the OpenAI-compatible servers (llama.cpp, vLLM)."""
    if status != 400:
        return None
    data = _json(body)
    if not isinstance(data, Mapping):
        return None
    err = data.get("error")
    if isinstance(err, Mapping):
        return openai_error(err)
    if data.get("object") == "error":  # vLLM before 0.9: the members at the top level
        return openai_error(data)
    return None


def _anthropic_message(message: str) -> Overflow | None:
    m = _TOO_LONG.search(message) or _WITH_MAX.search(message)
    if m is None:
        return None
    return Overflow(message, int(m.group(1)), int(m.group(2)))


def anthropic(status: int, body: str, headers: Mapping[str, str]) -> Overflow | None:
    """Anthropic's Messages API: a 400 ``invalid_request_error`` that says so (a 413
    ``request_too_large`` is about bytes, and is not)."""
    if status != 400:
        return None
    data = _json(body)
    err = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(err, Mapping) or err.get("type") != "invalid_request_error":
        return None
    message = err.get("message")
    return _anthropic_message(message) if isinstance(message, str) else None


def bedrock(status: int, body: str, headers: Mapping[str, str]) -> Overflow | None:
    """Bedrock's Converse: a 400 ``ValidationException`` whose message says the input is
    too long."""
    if status != 400:
        return None
    kind = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), None)
    if kind is not None and not kind.startswith("ValidationException"):
        return None
    data = _json(body)
    message = (data.get("message") or data.get("Message")) if isinstance(data, Mapping) else None
    if not isinstance(message, str) or not _BEDROCK.search(message):
        return None
    return _anthropic_message(message) or Overflow(message)


#: The rule a format applies to an error answer, by its provider family
#: (``WireFormat.provider``): OpenAI's shape also serves Azure and the compatible servers
#: (llama.cpp's and vLLM's own shapes included); a family not listed has none.
RULES: dict[str, Callable[[int, str, Mapping[str, str]], Overflow | None]] = {
    "openai": openai,
    "azure": openai,
    "anthropic": anthropic,
    "bedrock": bedrock,
}


def from_stream_event(kind: str, message: str) -> Overflow | None:
    """A provider's error event mid-stream (its type or code, and its message) as an
    overflow, or ``None``: a streamed Responses call's ``context_length_exceeded``, or a
    Converse stream's ``validationException`` saying the input is too long."""
    if kind == "context_length_exceeded":
        return Overflow(message, _first(_PROMPT, message), None)
    if kind in ("validationException", "ValidationException") and _BEDROCK.search(message):
        return _anthropic_message(message) or Overflow(message)
    if kind == "invalid_request_error":
        return _anthropic_message(message)
    return None
