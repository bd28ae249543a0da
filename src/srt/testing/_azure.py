"""Azure OpenAI's additions to Chat Completions: its content filter's annotations and refusal.

Azure's default content filter annotates every Chat Completions reply: the body carries
``prompt_filter_results`` (one entry per prompt, ``prompt_index`` and its
``content_filter_results``) and each choice its own ``content_filter_results`` (hate,
self_harm, sexual and violence with a ``severity``; protected material ``detected``). A
stream opens with a chunk of no choices whose ``id``, ``model`` and ``object`` are empty
and ``created`` is 0, carrying ``prompt_filter_results``; each later chunk's choices carry
``content_filter_results`` (``{}`` where no text was checked: the role and finish chunks).
A prompt the filter refuses gets HTTP 400 with ``code`` ``content_filter`` and an
``innererror`` naming what was filtered (``content_filter_error``).

A request without a key, or with a wrong one, gets Azure's 401 (``auth_error``): the
error's ``code`` is ``"401"`` and its message Azure's, for a key or an Entra token.
"""

from __future__ import annotations

from typing import Any

from ._common import ApiError

__all__ = ["annotate_events", "annotate_reply", "auth_error", "content_filter_error"]

JSON = dict[str, Any]
Event = tuple[str | None, Any]

_SAFE = {"filtered": False, "severity": "safe"}
_NOT_DETECTED = {"filtered": False, "detected": False}


def _prompt_results() -> list[JSON]:
    results = {k: dict(_SAFE) for k in ("hate", "self_harm", "sexual", "violence")}
    results["jailbreak"] = dict(_NOT_DETECTED)
    return [{"prompt_index": 0, "content_filter_results": results}]


def _output_results() -> JSON:
    results: JSON = {k: dict(_SAFE) for k in ("hate", "self_harm", "sexual", "violence")}
    results["protected_material_code"] = {"filtered": False, "detected": False}
    results["protected_material_text"] = dict(_NOT_DETECTED)
    return results


def annotate_reply(obj: JSON) -> JSON:
    """A Chat Completions reply as Azure sends it: with the filter's results."""
    obj["prompt_filter_results"] = _prompt_results()
    for choice in obj.get("choices", []):
        choice["content_filter_results"] = _output_results()
    return obj


def annotate_events(events: list[Event]) -> list[Event]:
    """A Chat Completions stream's events as Azure sends them: the prompt's results
    first, then each chunk's choices with their own (``{}`` where no text was checked)."""
    first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": _prompt_results(),
    }
    for _, data in events:
        choices = data.get("choices") if isinstance(data, dict) else None  # (not "[DONE]")
        for choice in choices or ():
            checked = (choice.get("delta") or {}).get("content")
            choice["content_filter_results"] = _output_results() if checked else {}
    return [(None, first), *events]


def content_filter_error(param: str = "prompt") -> JSON:
    """Azure's 400 body for a prompt its content filter refused."""
    results = {k: dict(_SAFE) for k in ("hate", "self_harm", "violence")}
    results["sexual"] = {"filtered": True, "severity": "medium"}
    results["jailbreak"] = dict(_NOT_DETECTED)
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy. Please modify your prompt and retry. To learn more about our "
        "content filtering policies please read our documentation: "
        "https://go.microsoft.com/fwlink/?linkid=2198766"
    )
    inner = {"code": "ResponsibleAIPolicyViolation", "content_filter_result": results}
    error = {"message": message, "type": None, "param": param, "code": "content_filter"}
    return {"error": {**error, "status": 400, "innererror": inner}}


_NO_KEY = (
    "Access denied due to missing subscription key. Make sure to include subscription key "
    "when making requests to an API."
)
_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)
_BAD_TOKEN = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)


def auth_error(given: str | None) -> ApiError:
    """Azure's 401: ``given`` is the credential sent (``"api-key"``, ``"token"`` or None)."""
    message = _NO_KEY if given is None else _BAD_KEY if given == "api-key" else _BAD_TOKEN
    return ApiError(401, message, body={"error": {"code": "401", "message": message}})
