"""Tool results as srt stored them before it marked failed ones (``is_error``).

srt now stores a tool result whose tool failed marked ``"is_error": true``
(``srt.message.TOOL_KEYS``): a LangChain ``ToolMessage`` with ``status="error"``, an llm
tool result with an ``exception``. Before, the adapters stored the same result unmarked:
the same message without the flag, so other bytes and another hash. What an adapter or
importer converts now is compared with what a store holds; there, a stored result that
is the converted one but for the flag is that result (``same``), so a store written before
keeps working: importing the same file again neither fails nor stores the conversation a
second time, and a LangGraph thread goes on from the messages it holds. The stored result
stays as it was (unmarked); the other way round (stored marked, converted unmarked) is a
real difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["same", "unmarked"]


def unmarked(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A canonical tool message marked ``is_error`` without its mark, as srt stored it
    before the flag existed; ``None`` for any other message."""
    if message.get("role") != "tool" or message.get("is_error") is not True:
        return None
    return {k: v for k, v in message.items() if k != "is_error"}


def same(stored: Mapping[str, Any], message: Mapping[str, Any]) -> bool:
    """Whether the stored canonical message is ``message``, or ``message`` unmarked."""
    return stored == message or stored == unmarked(message)
