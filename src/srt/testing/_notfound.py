"""Each provider's "not found" replies: an unknown model, Azure deployment or api-version,
and a path the server does not serve (a wrong base URL).

As the real APIs answer them (``srt.wire.notfound`` reads the same shapes):

- OpenAI Chat Completions: 404 ``invalid_request_error`` / ``model_not_found`` ("The model
  `X` does not exist or you do not have access to it."); Responses: the same code with 400
  and ``param: "model"`` ("The requested model 'X' does not exist.").
- Azure OpenAI: 404 ``{"error": {"code": "DeploymentNotFound", "message": ...}}``; a
  dated path with an api-version it does not serve, or none: 404 ``{"error": {"code":
  "404", "message": "Resource not found"}}``; the v1 path with a dated api-version: 400
  ``{"error": {"code": "BadRequest", "message": "API version not supported"}}``.
- Anthropic: 404 ``not_found_error`` ("model: X"), for Messages and count_tokens alike.
- Bedrock: 400 ``ValidationException`` ("The provided model identifier is invalid."); an
  ARN that does not exist: 404 ``ResourceNotFoundException``.
- A path nobody serves, in the shape of the provider whose URLs it looks like: OpenAI's
  404 "Invalid URL (POST /path)", Azure's "Resource not found", Anthropic's
  ``not_found_error`` "Not Found", Bedrock's ``UnknownOperationException``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from ._common import ApiError

__all__ = ["check_api_version", "check_model", "unknown_path"]

JSON = dict[str, Any]

DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. If you created the deployment "
    "within the last 5 minutes, please wait a moment and try again."
)
#: api-versions the v1 path takes (it needs none).
V1_VERSIONS = frozenset({"preview", "latest", "v1"})
_DATED = re.compile(r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(-preview)?")


def _azure(status: int, code: str, message: str) -> ApiError:
    body = {"error": {"code": code, "message": message}}
    return ApiError(status, message, code=code, body=body, headers={"apim-request-id": _rid()})


def _rid() -> str:
    return str(uuid.uuid4())


def resource_not_found() -> ApiError:
    return _azure(404, "404", "Resource not found")


def check_api_version(
    params: Mapping[str, str], versions: Collection[str] | None, v1: bool
) -> None:
    """Azure's refusal of the request's api-version (``params["api_version"]``): on a dated
    path, one not in ``versions`` (``None``: any ``YYYY-MM-DD[-preview]`` from 2022 on);
    on the v1 path, a dated one. (A dated path without one is not routed at all.)"""
    version = params.get("api_version", "")
    if v1:
        if version and version not in V1_VERSIONS:
            raise _azure(400, "BadRequest", "API version not supported")
        return
    if versions is not None:
        if version not in versions:
            raise resource_not_found()
        return
    m = _DATED.fullmatch(version)
    if m is None or int(m[1]) < 2022:
        raise resource_not_found()


def check_model(
    endpoint: str,
    model: str,
    models: Collection[str] | None,
    deployments: Mapping[str, str] | None,
) -> None:
    """The provider's refusal of a ``model`` it does not serve: for ``azure.*``, a
    deployment not in ``deployments`` (``None``: any deployment exists); else a model not
    in ``models`` (``None``: any model)."""
    if endpoint.startswith("azure."):
        if deployments is not None and model not in deployments:
            raise _azure(404, "DeploymentNotFound", DEPLOYMENT_NOT_FOUND)
        return
    if models is None or model in models or endpoint == "openai.conversations":
        return
    if endpoint == "openai.chat":
        raise ApiError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            etype="invalid_request_error",
            code="model_not_found",
        )
    if endpoint in ("openai.responses", "openai.compact"):
        raise ApiError(
            400,
            f"The requested model '{model}' does not exist.",
            etype="invalid_request_error",
            param="model",
            code="model_not_found",
        )
    if endpoint.startswith("anthropic."):
        raise ApiError(404, f"model: {model}", etype="not_found_error")
    if model.startswith("arn:"):
        raise ApiError(
            404, "The specified resource ARN was not found.", etype="ResourceNotFoundException"
        )
    raise ApiError(400, "The provided model identifier is invalid.", etype="ValidationException")


def unknown_path(method: str, path: str) -> tuple[JSON, dict[str, str]]:
    """The 404 body and headers for a path the server does not serve, shaped as the
    provider whose URLs it looks like answers."""
    if path.startswith("/openai/") or path == "/openai":
        err = resource_not_found()
        return err.body or {}, err.headers
    if "/messages" in path:
        rid = f"req_{uuid.uuid4().hex[:24]}"
        body = {"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}}
        return {**body, "request_id": rid}, {"request-id": rid}
    if "/converse" in path or path.startswith("/model/"):
        headers = {"x-amzn-ErrorType": "UnknownOperationException", "x-amzn-RequestId": _rid()}
        return {"message": None}, headers
    message = f"Invalid URL ({method} {path})"
    obj: JSON = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return {"error": obj}, {"x-request-id": f"req_{uuid.uuid4().hex}"}
