"""Checks of the records the gateway reads back from the store.

Only the gateway writes its records, so one that is not as it writes them is damaged:
reading it is a 500 ``server_error`` naming the record and the member that is wrong,
logged once, never an unhandled exception. Nothing is rebuilt from the chain: an item
id's scope and the ids kept for rewritten histories say what ids a client was shown,
which the chain alone does not, so a guess would show other ids silently.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import ApiError

__all__ = ["check_conversation", "check_response", "damaged"]

log = logging.getLogger("srt.gateway")

#: The members of a conversation's record and what each must be.
_CONVERSATION: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "created_at": (int,),
    "metadata": (dict,),
    "thread": (str,),
    "lead": (int,),
    "instructions": (str, type(None)),
    "ids": (int,),
    "gen": (int,),
    "gens": (list,),
    "kept": (str,),
}
_REQUIRED = ("id", "created_at", "thread", "lead")


def check_conversation(cid: str, rec: Any) -> None:
    """``ValueError`` naming the member of a conversation's record that is not as the
    gateway writes it."""
    if not isinstance(rec, dict):
        raise ValueError(f"the record is a {type(rec).__name__}, not an object")
    for k in _REQUIRED:
        if k not in rec:
            raise ValueError(f"'{k}' is missing")
    for k, types in _CONVERSATION.items():
        if k in rec and (not isinstance(rec[k], types) or isinstance(rec[k], bool)):
            raise ValueError(f"'{k}' is a {type(rec[k]).__name__}")
    if rec["id"] != cid or rec["lead"] not in (0, 1):
        raise ValueError("'id' or 'lead' is not this conversation's")
    for g in rec.get("gens") or ():
        if not (isinstance(g, list) and len(g) == 2 and all(type(x) is int for x in g)):
            raise ValueError("'gens' holds other than [start, generation] pairs")


#: The members of a response's record (as stored) and what each must be (``ids`` is
#: checked where its scope is read, ``items.response_ids``).
_RESPONSE: dict[str, tuple[type, ...]] = {
    "r": (dict,),
    "response": (dict,),
    "texts": (dict,),
    "thread": (str,),
    "lead": (int,),
    "instructions": (str, type(None)),
    "out_start": (int,),
    "depth": (int,),
    "owner": (dict,),
    "model_up": (str, type(None)),
    "output_from": (int,),
    "kept": (str,),
}
#: Members of a response's small form (``r``) the gateway reads, and what each must be.
_SMALL: dict[str, tuple[type, ...]] = {
    "created_at": (int,),
    "status": (str,),
    "model": (str, type(None)),
    "output": (list,),
    "usage": (list, dict, type(None)),
    "metadata": (dict,),
}


def _check_members(rec: dict[str, Any], types: dict[str, tuple[type, ...]], at: str) -> None:
    for k, want in types.items():
        if k in rec and (not isinstance(rec[k], want) or isinstance(rec[k], bool)):
            raise ValueError(f"'{at}{k}' is a {type(rec[k]).__name__}")


def check_response(rec: Any) -> None:
    """``ValueError`` naming the member of a response's stored record that is not as
    the gateway writes it."""
    if not isinstance(rec, dict):
        raise ValueError(f"the record is a {type(rec).__name__}, not an object")
    for k in ("lead", "out_start", "depth"):
        if k not in rec:
            raise ValueError(f"'{k}' is missing")
    if "r" not in rec and "response" not in rec:
        raise ValueError("'r' is missing")
    _check_members(rec, _RESPONSE, "")
    if rec["lead"] not in (0, 1) or rec["out_start"] < 0 or rec["depth"] < 0:
        raise ValueError("'lead', 'out_start' or 'depth' is out of range")
    for k, v in (rec.get("texts") or {}).items():
        if k not in ("instructions", "tools") or not isinstance(v, str):
            raise ValueError(f"'texts.{k}' is not a text's key")
    owner = rec.get("owner")
    if owner is not None and not (
        isinstance(owner.get("host"), str)
        and type(owner.get("pid")) is int
        and isinstance(owner.get("token"), str)
    ):
        raise ValueError("'owner' is not {host, pid, token}")
    small = rec.get("r")
    if small is None:
        return
    _check_members(small, _SMALL, "r.")
    usage = small.get("usage")
    if isinstance(usage, list) and not (len(usage) == 5 and all(type(x) is int for x in usage)):
        raise ValueError("'r.usage' is not five token counts")


def damaged(what: str, ident: str, exc: BaseException) -> ApiError:
    """The 500 of a stored record the gateway cannot read, logged once (the record's id
    and what is wrong with it: no value of it, so no secret)."""
    log.error("%s %s: its stored record is damaged: %s", what.lower(), ident, exc)
    return ApiError(
        500,
        f"{what} '{ident}' is damaged: its stored record cannot be read ({exc}).",
        code="server_error",
    )
