"""Tool-call ids in the forms the block formats accept.

A conversation may hold tool-call ids another provider made (``functions.get_weather:0``
from some OpenAI-compatible servers, ``call_...`` from OpenAI) or none at all (an
importer's ``""``). Anthropic takes a ``tool_use`` id (and a ``tool_result``'s
``tool_use_id``) matching ``^[a-zA-Z0-9_-]+$``; Bedrock Converse a ``toolUseId`` of 1 to
64 characters matching ``[a-zA-Z0-9_.:-]+`` (botocore's ``bedrock-runtime`` model). Each
format sends a call's id and its result's id through the same ``IdForm.wire``, so the
pair stays matched: an id already valid is sent as it is (byte for byte what srt sent
before), any other is replaced by one derived from it alone, deterministically (the same
in every request, so a cached prefix stays the same): its invalid characters as ``_``,
cut to fit the length limit, then ``_`` and 12 hex digits of its SHA-256, so that two
different ids cannot meet in one. Replies need no mapping back: their ids are the
provider's own, valid.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["ANTHROPIC_IDS", "BEDROCK_IDS", "IdForm"]

_HASH_CHARS = 12


class IdForm:
    """The ids a format accepts: characters ``chars`` (a regex class body), at most
    ``limit`` of them (None: no limit)."""

    def __init__(self, chars: str, limit: int | None = None) -> None:
        self.valid = re.compile(f"[{chars}]+")
        self.invalid = re.compile(f"[^{chars}]")
        self.limit = limit

    def wire(self, call_id: str) -> str:
        """``call_id`` as the format accepts it: itself when valid, else a valid id
        derived from it (see the module docstring)."""
        if self.valid.fullmatch(call_id) and (self.limit is None or len(call_id) <= self.limit):
            return call_id
        digest = hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()
        stem = self.invalid.sub("_", call_id)
        if self.limit is not None:
            stem = stem[: self.limit - _HASH_CHARS - 1]
        return f"{stem}_{digest[:_HASH_CHARS]}"


#: Anthropic Messages' ``tool_use.id`` and ``tool_result.tool_use_id``.
ANTHROPIC_IDS = IdForm("a-zA-Z0-9_-")
#: Bedrock Converse's ``toolUse.toolUseId`` and ``toolResult.toolUseId``.
BEDROCK_IDS = IdForm("a-zA-Z0-9_.:-", 64)
