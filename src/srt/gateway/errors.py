"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with a status.

Every failure the gateway answers goes through ``ApiError``. ``from_exception`` is the
one boundary where srt's typed errors become HTTP errors; anything else is a 500 whose
message says nothing about the code (the traceback goes to the server log, never to the
client). Upstream error text is passed on only after srt's providers have scrubbed it
of credentials.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import (
    ConfigError,
    ConflictError,
    ContextOverflowError,
    HistoryIndexError,
    InvalidMessageError,
    ModelNotFoundError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderContextOverflowError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
    ProxyAuthError,
    RateLimitError,
    SessionNotFoundError,
    StoreBusyError,
    StoreError,
    StreamInterruptedError,
)
from ..message import replace_lone_surrogates

__all__ = [
    "ApiError",
    "bad_request",
    "chain_conflict",
    "error_event",
    "from_exception",
    "not_found",
    "response_error",
    "response_not_found",
]

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
#: The longest wait an upstream's ``Retry-After`` is passed on as (an hour); a longer one
#: is cut to this, and one that is not a finite number of seconds is dropped.
MAX_RETRY_AFTER_S = 3600


class ApiError(Exception):
    """An error answered to the client with ``status`` and an OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = replace_lone_surrogates(message)  # (an upstream's text may hold one)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "server_error")
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def json(self) -> bytes:
        return json.dumps(self.body(), ensure_ascii=False).encode("utf-8")


#: The codes a response's ``error`` object takes (the ``openai`` SDK's ``ResponseError``:
#: api.openai.com's list, of which these are the ones a gateway failure can be). A
#: request's own error code (``upstream_error``, ``previous_response_not_found``...)
#: names an HTTP error; in a response's ``error`` it is ``server_error``, or
#: ``rate_limit_exceeded`` for a rate limit, its message kept.
_RESPONSE_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})
_AS_RESPONSE_CODE = {"upstream_rate_limited": "rate_limit_exceeded"}


def response_error(err: ApiError) -> dict[str, Any]:
    """``err`` as a response's ``error`` object (``{"code", "message"}``), its code one
    of those a ``ResponseError`` takes."""
    code = _AS_RESPONSE_CODE.get(err.code or "", err.code)
    return {"code": code if code in _RESPONSE_CODES else "server_error", "message": err.message}


def error_event(err: ApiError, sequence_number: int) -> dict[str, Any]:
    """``err`` as a stream's ``error`` event (the SDK's ``ResponseErrorEvent``)."""
    return {
        "type": "error",
        "code": err.code,
        "message": err.message,
        "param": err.param,
        "sequence_number": sequence_number,
    }


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def not_found(what: str, ident: str, param: str | None = None) -> ApiError:
    return ApiError(404, f"No {what} found with id '{ident}'.", param=param, code="not_found")


def response_not_found(rid: str) -> ApiError:
    """The 404 of a response id nothing is stored under (never made, deleted, or made
    with ``store: false``), in OpenAI's words: its message, with ``param`` and ``code``
    null (as api.openai.com answers a retrieve or delete of one)."""
    return ApiError(404, f"Response with id '{rid}' not found.")


def chain_conflict(rid: str) -> ApiError:
    """The 409 of a turn continuing response ``rid`` whose history another request (on
    another worker) continued at the same moment and committed first."""
    return ApiError(
        409,
        f"Another request continued the response chain at response '{rid}' at the same "
        "time and was first; nothing of this request was added. Retry it: it branches "
        f"from '{rid}' (the other request's response stays), or continue from the other "
        "request's response to follow it.",
        param="previous_response_id",
        code="conflict",
    )


def _upstream_message(exc: ProviderResponseError) -> str:
    """The upstream's own error message when its body is an error object, else srt's text."""
    try:
        data = json.loads(exc.body or "")
    except ValueError:
        return str(exc)
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return str(err["message"])
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return str(exc)


def from_exception(exc: BaseException) -> ApiError:
    """srt's typed errors as API errors; anything unknown is a bare 500. It never raises:
    a conversion that fails (an odd field of the error) gives the bare 500 too."""
    if isinstance(exc, ApiError):
        return exc
    try:
        return _convert(exc)
    except Exception:
        return ApiError(500, "The gateway had an error while processing your request.")


def _convert(exc: BaseException) -> ApiError:
    if isinstance(exc, ConflictError):  # a response chain's is ``chain_conflict``
        return ApiError(
            409,
            "Another request added to this conversation at the same time and was first; "
            "nothing of this request was added. Retry it: it runs on the conversation's "
            "items as they are now, the other request's turn included.",
            param="conversation",
            code="conflict",
        )
    if isinstance(exc, ProviderContextOverflowError):  # the upstream's refusal, in its words
        message = exc.provider_message or "The input exceeds the upstream model's context window."
        return ApiError(400, message, param="input", code="context_length_exceeded")
    if isinstance(exc, ContextOverflowError):  # srt's own window policy
        return ApiError(400, str(exc), param="input", code="context_length_exceeded")
    if isinstance(exc, (InvalidMessageError, HistoryIndexError)):
        return ApiError(400, str(exc), param="input", code="invalid_value")
    if isinstance(exc, ConfigError):
        return ApiError(400, str(exc), code="invalid_value")
    if isinstance(exc, SessionNotFoundError):
        return ApiError(404, "The conversation or response no longer exists.", code="not_found")
    if isinstance(exc, StoreBusyError):
        return ApiError(503, "The store is busy; retry shortly.", code="store_busy")
    if isinstance(exc, StoreError):
        return ApiError(500, "The gateway's store failed.", code="store_error")
    if isinstance(exc, ProviderError):
        return _from_provider(exc)
    return ApiError(500, "The gateway had an error while processing your request.")


def _from_provider(exc: ProviderError) -> ApiError:
    if isinstance(exc, ProxyAuthError):
        return ApiError(
            502,
            "A proxy on the way to the upstream provider refused the gateway's proxy credentials.",
            code="upstream_proxy_auth",
        )
    if isinstance(exc, ProviderAuthError):
        return ApiError(
            502,
            "The upstream provider refused the gateway's credentials.",
            code="upstream_auth",
        )
    if isinstance(exc, RateLimitError):
        return ApiError(
            429,
            "The upstream provider is rate limiting.",
            code="upstream_rate_limited",
            headers=_retry_after(getattr(exc, "retry_after", None)),
        )
    if isinstance(exc, ProviderTimeoutError):
        return ApiError(504, "The upstream provider timed out.", code="upstream_timeout")
    if isinstance(exc, (ProviderConnectionError, StreamInterruptedError)):
        return ApiError(502, "The upstream provider could not be reached.", code="upstream_error")
    if isinstance(exc, ModelNotFoundError):  # as OpenAI answers a model it does not have
        what = "deployment" if exc.provider == "azure" else "model"
        return ApiError(
            404,
            f"The upstream provider ({exc.provider}) has no {what} '{exc.model}': "
            f"{_upstream_message(exc)}",
            param="model",
            code="model_not_found",
        )
    if isinstance(exc, ProviderResponseError):
        status = exc.status or 502
        message = _upstream_message(exc)
        if status == 404:  # a wrong base URL, api-version or deployment: the gateway's setup
            return ApiError(
                502,
                "The upstream provider answered 404 (no such path, api-version or "
                f"deployment): {message}; check the gateway's upstream base URL, "
                "api_version and deployment",
                code="upstream_not_found",
            )
        if 400 <= status < 500 and status not in (401, 403, 404, 429):
            return ApiError(
                400,
                f"The upstream provider rejected the request: {message}",
                code="upstream_invalid_request",
            )
        return ApiError(502, f"The upstream provider failed: {message}", code="upstream_error")
    return ApiError(502, "The upstream provider failed.", code="upstream_error")


def _retry_after(after: object) -> dict[str, str]:
    """The ``Retry-After`` header for an upstream's requested wait: whole seconds, at
    least 1 and at most ``MAX_RETRY_AFTER_S``; none for no wait, or for one that is not a
    finite number (``Retry-After: inf`` or ``retry-after-ms: 1e400`` parse as infinity)."""
    if isinstance(after, bool) or not isinstance(after, (int, float)):
        return {}
    if not math.isfinite(after) or after <= 0:
        return {}
    return {"retry-after": str(min(MAX_RETRY_AFTER_S, max(1, math.ceil(after))))}
