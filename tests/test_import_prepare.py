"""``srt import`` stores a message as ``Session.append`` does: one prepare path
(``srt._chain.prepare``), the runtime's redaction hook, size limit and hashing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.cli import _import_file
from srt.cli._sessions import json_line
from srt.errors import InvalidMessageError

SECRET = "sk-live-0123456789abcdef"

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": f"You hold the key {SECRET}."},
    {"role": "user", "content": f"my key is {SECRET}", "name": "ann"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": json.dumps({"key": SECRET})},
            }
        ],
    },
    {"role": "tool", "content": f"found {SECRET}", "tool_call_id": "call_1"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": f"and {SECRET} again"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ],
    },
    {"role": "assistant", "content": "Done."},
]


def _redact(text: str) -> str:
    return text.replace(SECRET, "[key]")


def test_an_imported_message_is_stored_as_an_appended_one(store_url: str) -> None:
    _import_and_append(store_url, None)


def test_the_same_in_a_keyed_store(tmp_path: Path) -> None:
    _import_and_append(str(tmp_path / "keyed.db"), bytes(range(32)))  # (SQLite's option)


def _import_and_append(store_url: str, hash_key: bytes | None) -> None:
    lines = [json.dumps(m) for m in MESSAGES]
    batch = [(n, m) for n, line in enumerate(lines, 1) for m in json_line(n, line)]
    with srt.Runtime(store_url, redact=_redact, hash_key=hash_key) as rt:
        rt.session("appended").append(*MESSAGES)
        assert _import_file.write(rt, "imported", [batch[:2], batch[2:]]) == len(MESSAGES)
        imported, appended = rt.session("imported"), rt.session("appended")
        assert imported.messages_bytes() == appended.messages_bytes()
        assert imported.prefix_hashes() == appended.prefix_hashes()
        assert imported.head == appended.head  # (the same nodes: content-addressed)
        stored = b"".join(imported.messages_bytes())
    assert SECRET.encode() not in stored and stored.count(b"[key]") == 5


def test_an_invalid_message_names_its_line_before_and_after_the_store_opens(
    store_url: str,
) -> None:
    batch = [(1, {"role": "user", "content": "x"}), (7, {"role": "user", "content": [1]})]
    with pytest.raises(InvalidMessageError, match=r"^line 7: "):
        _import_file.checked(batch)
    with srt.Runtime(store_url) as rt:
        with pytest.raises(InvalidMessageError, match=r"^line 7: "):
            _import_file.write(rt, "t", [batch])
        assert [i.name for i in rt.sessions()] == []
