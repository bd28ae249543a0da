"""The naive baseline store: one row per message, history loaded and re-serialized on
every turn (used by ``chat``, ``reads``, ``writes``, ``branching`` and the peers)."""

from __future__ import annotations

import json
from typing import Any

import apsw

from ..store.sqlite.files import create_private_file

MODEL = "gpt-4o-mini"


def _dumps(messages: list[dict[str, Any]]) -> bytes:
    body = {"model": MODEL, "messages": messages}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class NaiveStore:
    """One row per message, history loaded and re-serialized on every turn."""

    def __init__(self, path: str) -> None:
        create_private_file(path)  # (apsw would make it with the umask's mode)
        self.conn = apsw.Connection(path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS msgs(id INTEGER PRIMARY KEY, session TEXT, "
            "role TEXT, content TEXT)"
        )

    def append(self, session: str, msg: dict[str, Any]) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO msgs(session, role, content) VALUES (?, ?, ?)",
                (session, msg["role"], msg["content"]),
            )

    def build(self, session: str) -> bytes:
        rows = self.conn.execute(
            "SELECT role, content FROM msgs WHERE session = ? ORDER BY id", (session,)
        ).fetchall()
        return _dumps([{"role": r, "content": c} for r, c in rows])
