"""A provider's "no such model, deployment, api-version or path" refusal, told apart from
its other errors by each provider's own error shape (pure: no I/O).

The shapes matched, as the providers and servers answer them:

- OpenAI Chat Completions: HTTP 404, ``{"error": {"message": "The model `gpt-5o` does not
  exist or you do not have access to it.", "type": "invalid_request_error", "param": null,
  "code": "model_not_found"}}``; Responses answers the same code with HTTP 400 and
  ``"param": "model"`` ("The requested model 'gpt-5o' does not exist."). A path the API
  does not serve (a base URL without ``/v1``): HTTP 404, ``{"error": {"message": "Invalid
  URL (POST /chat/completions)", "type": "invalid_request_error", "param": null, "code":
  null}}``.
- Azure OpenAI: a deployment the resource does not have: HTTP 404, ``{"error": {"code":
  "DeploymentNotFound", "message": "The API deployment for this resource does not exist.
  ..."}}``; an api-version the path does not serve (or a path it does not): HTTP 404,
  ``{"error": {"code": "404", "message": "Resource not found"}}``; a dated api-version on
  the v1 path: HTTP 400, ``{"error": {"code": "BadRequest", "message": "API version not
  supported"}}``.
- Anthropic Messages: HTTP 404, ``{"type": "error", "error": {"type": "not_found_error",
  "message": "model: claude-x"}}``; an unknown path: the same type, message ``Not Found``.
- Bedrock Converse: an unknown model id: HTTP 400, ``x-amzn-ErrorType:
  ValidationException``, ``{"message": "The provided model identifier is invalid."}``; an
  ARN (an inference profile, a custom model) that does not exist: HTTP 404,
  ``ResourceNotFoundException``; an unknown path: HTTP 404, ``UnknownOperationException``.
- OpenAI-compatible servers: vLLM answers an unknown model with 404 and "The model `x`
  does not exist.", Ollama with 404 and 'model "x" not found, try pulling it first'; an
  unknown path: llama.cpp's 404 ``File Not Found``, FastAPI's (vLLM's) ``{"detail": "Not
  Found"}``, Go's (Ollama's) plain ``404 page not found``.

Other 404s are not these (OpenAI's ``previous_response_not_found``, a conversation or a
stored response that does not exist): they stay plain ``ProviderResponseError``s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

__all__ = ["RULES", "NotFound", "anthropic", "azure", "bedrock", "openai"]

#: What a refusal says is missing.
KINDS = ("model", "deployment", "api_version", "path")


class NotFound(NamedTuple):
    """``kind`` (one of ``KINDS``) and the provider's own message."""

    kind: str
    message: str


# vLLM's "The model `x` does not exist.", Ollama's 'model "x" not found'.
_MODEL_MISSING = re.compile(r"\bmodel\b.{0,200}\b(?:does not exist|not found)", re.I | re.S)
# The wordings of "no such path", from the OpenAI API and the servers that imitate it.
_PATH_MISSING = re.compile(
    r"^(?:Invalid URL \(|Unknown request URL|File Not Found$|Not Found$|404 page not found)", re.I
)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_object(body: str) -> tuple[Any, Mapping[str, Any] | None]:
    data = _json(body)
    err = data.get("error") if isinstance(data, Mapping) else None
    return data, err if isinstance(err, Mapping) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def openai(status: int, body: str, headers: Mapping[str, str]) -> NotFound | None:
    """OpenAI and the OpenAI-compatible servers (vLLM, Ollama, llama.cpp)."""
    if status not in (400, 404):
        return None
    data, err = _error_object(body)
    if err is None and isinstance(data, Mapping) and data.get("object") == "error":
        err = data  # (vLLM before 0.9: the members at the top level)
    if err is not None:
        message = _text(err.get("message"))
        if err.get("code") == "model_not_found":
            return NotFound("model", message)
        if status != 404:
            return None
        if "response" not in message.lower() and _MODEL_MISSING.search(message):
            return NotFound("model", message)
        return NotFound("path", message) if _PATH_MISSING.match(message) else None
    if status != 404:
        return None
    if isinstance(data, Mapping):  # FastAPI's {"detail": "Not Found"}
        detail = _text(data.get("detail"))
        return NotFound("path", detail) if _PATH_MISSING.match(detail) else None
    text = body.strip()
    return NotFound("path", text[:200]) if data is None else None


def azure(status: int, body: str, headers: Mapping[str, str]) -> NotFound | None:
    """Azure OpenAI: a deployment, an api-version (or a path) it does not have."""
    _, err = _error_object(body)
    if err is not None:
        code, message = str(err.get("code")), _text(err.get("message"))
        if status == 404 and code == "DeploymentNotFound":
            return NotFound("deployment", message)
        if status == 404 and code == "404" and message.lower().startswith("resource not found"):
            return NotFound("api_version", message)
        if status == 400 and "api version not supported" in message.lower():
            return NotFound("api_version", message)
    return openai(status, body, headers)  # (its v1 path answers as OpenAI's API does)


def anthropic(status: int, body: str, headers: Mapping[str, str]) -> NotFound | None:
    """Anthropic's Messages API: a 404 ``not_found_error``."""
    if status != 404:
        return None
    data, err = _error_object(body)
    if err is None:
        return NotFound("path", body.strip()[:200]) if data is None else None
    if err.get("type") != "not_found_error":
        return None
    message = _text(err.get("message"))
    if message.startswith("model:"):
        return NotFound("model", message)
    return NotFound("path", message) if _PATH_MISSING.match(message) else None


_BEDROCK_MODEL = re.compile(r"model identifier is invalid|model (?:id|identifier) .*not", re.I)


def bedrock(status: int, body: str, headers: Mapping[str, str]) -> NotFound | None:
    """Bedrock's Converse: ``ValidationException`` naming the model id, a
    ``ResourceNotFoundException``, or an operation it does not have."""
    kind = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), "")
    kind = kind.split(":", 1)[0]
    data = _json(body)
    message = ""
    if isinstance(data, Mapping):
        message = _text(data.get("message") or data.get("Message"))
    if status == 400 and kind == "ValidationException" and _BEDROCK_MODEL.search(message):
        return NotFound("model", message)
    if status == 404 and kind == "ResourceNotFoundException":
        return NotFound("model", message)
    if status == 404 and (kind == "UnknownOperationException" or data is None):
        return NotFound("path", message or body.strip()[:200])
    return None


#: The rule a provider family (``WireFormat.provider``) applies to an error answer.
RULES: dict[str, Callable[[int, str, Mapping[str, str]], NotFound | None]] = {
    "openai": openai,
    "azure": azure,
    "anthropic": anthropic,
    "bedrock": bedrock,
}
