"""``srt import --from`` again on a file imported before tool results could be marked
``is_error`` (an llm result with an ``exception``, a LangGraph ``ToolMessage`` with
``status="error"``: both were stored unmarked). The store is written by the importers as
they were (``old`` converters: today's but for the flag); importing the same file again
then verifies it, stores nothing new and leaves the conversation as it was stored. A
stored result marked as an error that the file now gives unmarked is another conversation."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from llm.logs import LogStore
from llm.parts import Message, TextPart, ToolCallPart, ToolResultPart

import srt
from srt.integrations import importers
from srt.integrations.importers import _llm_message
from srt.integrations.langgraph import SrtSaver
from test_compat26_langchain import CFG, old_converters, tool_graph

FAILED = "Error: division by zero"
#: What srt stored for the failed result before the flag.
OLD = b'{"role":"tool","content":"Error: division by zero","tool_call_id":"c1"}'


def llm_logs(path: Path, *, raised: bool = True) -> None:
    """Two threads; in thread-a the tool raised (``exception``) when ``raised``."""
    db = sqlite_utils.Database(str(path))
    store = LogStore(db)
    raise_ = "ZeroDivisionError" if raised else None
    result = ToolResultPart(name="div", output=FAILED, tool_call_id="c1", exception=raise_)
    store.append(
        store.ensure_thread("thread-a"),
        [
            Message("user", [TextPart("1/0?")]),
            Message("assistant", [ToolCallPart(name="div", arguments={"a": 1}, tool_call_id="c1")]),
            Message("tool", [result]),
            Message("assistant", [TextPart("it failed")]),
        ],
    )
    store.append(
        store.ensure_thread("thread-b"),
        [Message("user", [TextPart("hi")]), Message("assistant", [TextPart("hello")])],
    )
    db.close()


@contextlib.contextmanager
def old_llm() -> Iterator[None]:
    """``_llm_message`` as it was: a result whose tool raised, unmarked."""

    def old(message: Any, left: Any) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in m.items() if k != "is_error"} for m in _llm_message(message, left)
        ]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(importers, "_llm_message", old)
        yield


def test_llm_logs_imported_before_is_error_import_again(tmp_path: Path) -> None:
    path = str(tmp_path / "logs.db")
    llm_logs(tmp_path / "logs.db")
    with old_llm(), srt.Runtime(tmp_path / "srt.db") as rt:
        first = importers.run(rt, "llm-logs", path)
        assert first.new_messages == 6
        assert rt.session("llm/thread-a").messages_bytes()[2] == OLD
    with srt.Runtime(tmp_path / "srt.db") as rt:
        report = importers.run(rt, "llm-logs", path)  # with today's converter
        assert report.lines()[1:] == [
            "  stored 0 new messages (6 shared or already stored)",
            "  verified 2 of 2 threads: read back equal",
        ]
        assert rt.session("llm/thread-a").messages_bytes()[2] == OLD  # kept as it was
        assert rt.store.verify().nodes == 6


def test_a_result_stored_marked_that_the_file_gives_unmarked_differs(tmp_path: Path) -> None:
    llm_logs(tmp_path / "raised.db")
    llm_logs(tmp_path / "fine.db", raised=False)
    with srt.Runtime(tmp_path / "srt.db") as rt:
        importers.run(rt, "llm-logs", str(tmp_path / "raised.db"))
        assert rt.session("llm/thread-a").messages()[2]["is_error"] is True
        with pytest.raises(srt.SessionExistsError, match="llm/thread-a"):
            importers.run(rt, "llm-logs", str(tmp_path / "fine.db"))


def test_langgraph_imported_before_is_error_imports_again(tmp_path: Path) -> None:
    path = tmp_path / "lg.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    app = tool_graph(SqliteSaver(conn))
    for i, q in enumerate(("1/0?", "again")):
        app.invoke({"messages": [HumanMessage(q, id=f"q{i}")]}, CFG)
    source = [s.values for s in app.get_state_history(CFG)]
    conn.close()
    with old_converters(), srt.Runtime(tmp_path / "srt.db") as rt:
        assert importers.run(rt, "langgraph", str(path)).new_messages == 7
    with srt.Runtime(tmp_path / "srt.db") as rt:
        before = rt.store.verify()
        shown = rt.session("langgraph/t").messages()
        report = importers.run(rt, "langgraph", str(path))
        assert report.lines()[1:] == [
            "  stored 0 new messages (40 shared or already stored)",
            "  verified 1 of 1 threads: read back equal",
        ]
        assert rt.store.verify() == before  # no node either
        assert rt.session("langgraph/t").messages() == shown
        assert [m.get("is_error") for m in shown if m["role"] == "tool"] == [None, None]
        saver = SrtSaver(rt)
        assert [s.values for s in tool_graph(saver).get_state_history(CFG)] == source
        saver.close()


def test_langgraph_imported_twice_keeps_every_message_id(tmp_path: Path) -> None:
    """A checkpoint put again keeps the patches it first stored its messages with (the
    second import's records named none, so a reader lost the messages' ids)."""
    path = tmp_path / "lg.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    app = tool_graph(SqliteSaver(conn))
    app.invoke({"messages": [HumanMessage("1/0?", id="q0")]}, CFG)
    source = [s.values for s in app.get_state_history(CFG)]
    conn.close()
    for _ in range(2):
        with srt.Runtime(tmp_path / "srt.db") as rt:
            importers.run(rt, "langgraph", str(path))
    with srt.Runtime(tmp_path / "srt.db") as rt:
        saver = SrtSaver(rt)
        mine = [s.values for s in tool_graph(saver).get_state_history(CFG)]
        assert mine[0]["messages"][0].id == "q0"
        assert mine == source
        saver.close()
