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
from typing import Any

from .errors import InvalidMessageError

__all__ = ["CallIds", "check", "unique_calls"]

_ASSISTANT = b'{"role":"assistant"'
_TOOL = b'{"role":"tool"'
_CALLS = b'"tool_calls":'
_RESULT = b',"tool_call_id":'


#: What a reply's call id that the conversation holds already is stored as: the id, this
#: mark and the index of the reply's message (``unique_calls``).
RENAMED = "-srt"


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


class CallIds:
    """The tool-call ids of a chain's first ``n`` messages, kept as the chain grows: a
    chain holds one (``ChainState.call_ids``) and drops it whenever messages it counted
    may have changed (a truncation, a load); ``of`` then counts the messages after the
    ``n`` it has seen, so a turn reads only its new messages."""

    __slots__ = ("ids", "n")

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.n = 0

    @staticmethod
    def of(chain: Any) -> CallIds:
        """The ids of every message ``chain`` holds (staged ones too)."""
        known: CallIds | None = chain.call_ids
        if known is None or known.n > len(chain.bodies):
            known = chain.call_ids = CallIds()
        bodies = chain.bodies
        for i in range(known.n, len(bodies)):
            if _CALLS in bodies[i]:
                known.ids.update(_call_ids(bodies[i]))
        known.n = len(bodies)
        return known


def unique_calls(message: dict[str, Any], taken: Container[str], index: int) -> dict[str, Any]:
    """``message`` (a reply, to be message ``index`` of its chain) with each tool-call id
    that ``taken`` (the chain's ids) or an earlier call of the message holds already
    replaced by a new one: the id, ``RENAMED`` and ``index`` (and ``-<k>`` until unique).
    Some OpenAI-compatible servers number their calls per reply (llama.cpp's ``call_0``
    every turn), and Anthropic refuses a request holding one ``tool_use`` id twice. The
    message itself when nothing is renamed (the usual case: one set lookup per call)."""
    calls = message.get("tool_calls")
    if not calls or not isinstance(calls, list):
        return message
    seen: set[str] = set()
    out: list[Any] = []
    renamed = False
    for call in calls:
        cid = call.get("id") if isinstance(call, dict) else None
        if isinstance(cid, str) and (cid in taken or cid in seen):
            new = f"{cid}{RENAMED}{index}"
            k = 1
            while new in taken or new in seen:
                k += 1
                new = f"{cid}{RENAMED}{index}-{k}"
            call = {**call, "id": new}
            cid, renamed = new, True
        if isinstance(cid, str):
            seen.add(cid)
        out.append(call)
    return {**message, "tool_calls": out} if renamed else message


def renamed_at(body: bytes, index: int) -> bool:
    """Whether message ``index`` (canonical ``body``) holds a call id ``unique_calls``
    renamed: a provider that keeps its replies (Responses' ``previous_response_id``) knows
    that call by the id it gave, so a request is not chained from that reply."""
    mark = f"{RENAMED}{index}".encode()
    return mark in body and any(
        i.endswith(f"{RENAMED}{index}") or f"{RENAMED}{index}-" in i for i in _call_ids(body)
    )
