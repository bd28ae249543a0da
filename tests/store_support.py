"""What the store tests share (``test_store``, ``test_store_requests``, ``test_store_races``,
``test_store_files``, ``test_store_sessions``): one-line messages and a short history."""

from __future__ import annotations


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


HISTORY = [
    {"role": "system", "content": "You are terse."},
    user("hello"),
    assistant("hi"),
]
