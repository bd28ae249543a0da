"""Tool calls and their results in the newest step of a request, checked before it is sent.

Every provider refuses (400) a request whose newest assistant message with tool calls is
not followed by one result for each of its calls, or that holds a tool result for a call
the assistant message before it did not make: OpenAI Chat ("An assistant message with
'tool_calls' must be followed by tool messages responding to each 'tool_call_id'"),
Responses ("No tool output found for function call ..."), Anthropic ("`tool_use` ids were
found without `tool_result` blocks immediately after"), Bedrock ("Expected toolResult
blocks ..."). ``check`` finds these in the canonical bodies a send is about to build from,
so the caller gets an ``InvalidMessageError`` naming the call before anything is sent
(and nothing staged with ``append=`` is written), instead of a billed-nothing 400.

It reads the newest step only: from the last assistant message the request sends to the
end. A step srt sent before was checked then. Cost: a substring search in that assistant
message and, per tool message after it, a parse of its last key: canonical bytes hold
``"tool_calls":`` unescaped only as a key (inside a JSON string a quote is escaped), and
``tool_call_id`` is a tool message's last key (``srt.message``'s order puts ``is_error``,
a result's error mark, before it).
"""

from __future__ import annotations

import json
from collections.abc import Container, Sequence

from .errors import InvalidMessageError

__all__ = ["check"]

_ASSISTANT = b'{"role":"assistant"'
_TOOL = b'{"role":"tool"'
_CALLS = b'"tool_calls":'
_RESULT = b',"tool_call_id":'


def _call_ids(body: bytes) -> list[str]:
    if _CALLS not in body:
        return []
    return [str(c.get("id")) for c in json.loads(body).get("tool_calls") or ()]


def _result_id(body: bytes) -> str:
    at = body.rfind(_RESULT)
    return str(json.loads(body[at + len(_RESULT) : -1]))


def _shown(ids: Sequence[str]) -> str:
    return ", ".join(repr(i if len(i) <= 80 else i[:80] + "...") for i in ids)


def check(bodies: Sequence[bytes], skipped: Container[int] = ()) -> None:
    """``InvalidMessageError`` if the newest step of ``bodies`` (canonical message bytes,
    the ones at the indexes in ``skipped`` left out of the request: partial replies)
    leaves a tool call without its result, or holds a result that answers no call of the
    assistant message right before it (results may come in any order)."""
    n = len(bodies)
    at = n - 1
    while at >= 0 and (at in skipped or not bodies[at].startswith(_ASSISTANT)):
        at -= 1
    open_ = dict.fromkeys(_call_ids(bodies[at])) if at >= 0 else {}
    calls = tuple(open_)
    i = at + 1
    while i < n and (i in skipped or bodies[i].startswith(_TOOL)):
        if i not in skipped:
            cid = _result_id(bodies[i])
            if cid not in open_:
                why = (
                    "an earlier result answers that call already"
                    if cid in calls
                    else f"the assistant message before it (message {at}) made no such "
                    f"call (its calls: {_shown(calls) or 'none'})"
                )
                raise InvalidMessageError(
                    f"the tool result of message {i} is for call {_shown([cid])}, but {why}: "
                    "every provider refuses such a request; nothing was sent"
                )
            del open_[cid]
        i += 1
    if open_:
        raise InvalidMessageError(
            f"tool call(s) {_shown(list(open_))} of message {at} have no result: append a "
            "tool message for each ({'role': 'tool', 'tool_call_id': ..., 'content': ...}) "
            "right after the assistant message, before any other message (every provider "
            "refuses a call left unanswered); nothing was sent"
        )
    for k in range(i, n):
        if k not in skipped and bodies[k].startswith(_TOOL):
            raise InvalidMessageError(
                f"the tool result of message {k} (call {_shown([_result_id(bodies[k])])}) "
                f"does not follow the assistant message that made the call: results go "
                "right after it, before any other message (every provider refuses it "
                "elsewhere); nothing was sent"
            )
