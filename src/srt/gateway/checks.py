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

__all__ = ["check_conversation", "damaged"]

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


def damaged(what: str, ident: str, exc: BaseException) -> ApiError:
    """The 500 of a stored record the gateway cannot read, logged once (the record's id
    and what is wrong with it: no value of it, so no secret)."""
    log.error("%s %s: its stored record is damaged: %s", what.lower(), ident, exc)
    return ApiError(
        500,
        f"{what} '{ident}' is damaged: its stored record cannot be read ({exc}).",
        code="server_error",
    )
