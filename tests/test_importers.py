"""``srt import --from``: stores made by the real libraries inside the test (llm 0.36's
``LogStore``, the Agents SDK's ``SQLiteSession``, LangGraph's ``SqliteSaver``) brought into
srt, shared prefixes stored once, every conversation read back equal, counts reported."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from agents import SQLiteSession
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from llm.logs import LogStore
from llm.parts import Message, ReasoningPart, TextPart, ToolCallPart, ToolResultPart

import srt
from srt.cli import main
from srt.integrations.agents import SrtSession
from srt.integrations.importers import run
from srt.integrations.langgraph import SrtSaver
from support import agents_turns

DOC = (Path(__file__).resolve().parent.parent / "docs" / "integrations.md").read_text("utf-8")
LONG = "You are a careful assistant. " * 80  # a system prompt every conversation shares


def shown(source: str) -> str:
    """What docs/integrations.md shows ``srt import --from SOURCE`` printing."""
    outputs = [
        re.split(r"\n", run, maxsplit=1)
        for block in re.findall(r"```console\n(.*?)```", DOC, flags=re.S)
        for run in block.split("$ ")[1:]
    ]
    (text,) = [o[1] for o in outputs if f"--from {source} " in o[0] and o[1].strip()]
    return text


def llm_logs(path: Path) -> dict[str, list[Message]]:
    """Two threads sharing a long prefix (one a fork of the other), with a tool call."""
    db = sqlite_utils.Database(str(path))
    store = LogStore(db)
    first = [
        Message("system", [TextPart(LONG)]),
        Message("user", [TextPart("what is 2+3?")]),
        Message(
            "assistant",
            [
                ReasoningPart("add them"),
                ToolCallPart(name="add", arguments={"a": 2, "b": 3}, tool_call_id="c1"),
            ],
        ),
        Message("tool", [ToolResultPart(name="add", output="5", tool_call_id="c1")]),
        Message("assistant", [TextPart("5")]),
    ]
    a = store.ensure_thread("thread-a")
    store.append(a, first)
    tip = store.thread_tip(a)
    assert tip is not None
    # A fork at the user's question, answered differently.
    chain = store.load_chain(tip)
    fork_at = store.ensure_chain(chain[:2])
    b = store.fork(fork_at, name="retry")
    store.append(b, [Message("assistant", [TextPart("five")])])
    db.close()
    return {"thread-a": first, b: [*first[:2], Message("assistant", [TextPart("five")])]}


def test_llm_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    threads = llm_logs(tmp_path / "logs.db")
    db = tmp_path / "srt.db"
    assert main(["--db", str(db), "import", "--from", "llm-logs", str(tmp_path / "logs.db")]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "llm-logs: 2 threads, 8 messages read" in out
    assert out == shown("llm-logs")  # what docs/integrations.md shows
    # 5 + 3 messages, 2 shared: the system prompt and the question are stored once.
    assert "stored 6 new messages (2 shared or already stored)" in out
    assert "verified 2 of 2 threads" in out and "left out: 1 reasoning parts" in out
    with srt.Runtime(db) as rt:
        a = rt.session("llm/thread-a").messages()
        assert [m["role"] for m in a] == ["system", "user", "assistant", "tool", "assistant"]
        assert a[2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
        assert a[3] == {"role": "tool", "content": "5", "tool_call_id": "c1"}
        (b,) = [n for n in threads if n != "thread-a"]
        assert rt.session(f"llm/{b}").messages()[-1] == {"role": "assistant", "content": "five"}
        assert rt.store.verify().messages == 6
    # Importing again changes nothing and still verifies.
    assert main(["--db", str(db), "import", "--from", "llm-logs", str(tmp_path / "logs.db")]) == 0
    assert "stored 0 new messages" in capsys.readouterr().out


def agents_items(n: int) -> list[dict[str, Any]]:
    """A system message, then ``n`` turns (``support.agents_turns``)."""
    return [{"content": LONG, "role": "system"}, *agents_turns(n)]


def test_agents_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agents.db"
    one, two = SQLiteSession("one", path), SQLiteSession("two", path)
    items = agents_items(3)
    other = [*items[:3], {"content": "something else", "role": "user"}]
    asyncio.run(one.add_items(items))
    asyncio.run(two.add_items(other))
    one.close()
    two.close()
    db = tmp_path / "srt.db"
    assert main(["--db", str(db), "import", "--from", "agents-sqlite", str(path)]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "agents-sqlite: 2 sessions, 11 messages read" in out
    assert out == shown("agents-sqlite")
    assert "stored 8 new messages (3 shared or already stored)" in out
    assert "verified 2 of 2 sessions" in out
    with srt.Runtime(db) as rt:
        # The sessions continue in srt as they were: SrtSession gives the items back exactly.
        assert asyncio.run(SrtSession("one", rt).get_items()) == items
        assert asyncio.run(SrtSession("two", rt).get_items()) == other


def chat_graph(checkpointer: Any, replies: list[str]) -> Any:
    answers = iter(replies)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(next(answers))]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_edge(START, "agent")
    g.add_edge("agent", END)
    return g.compile(checkpointer=checkpointer)


def test_langgraph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "lg.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    app = chat_graph(SqliteSaver(conn), [f"answer {i}" for i in range(20)])
    for thread in ("t1", "t2"):
        cfg = {"configurable": {"thread_id": thread}}
        for i in range(4):
            app.invoke({"messages": [HumanMessage(f"{thread} question {i}")]}, cfg)
    # Time travel in t1: a branch from the end of turn 2.
    cfg = {"configurable": {"thread_id": "t1"}}
    old = next(s for s in app.get_state_history(cfg) if len(s.values["messages"]) == 4)
    app.invoke({"messages": [HumanMessage("t1 other question")]}, old.config)
    source = {
        t: [s.values for s in app.get_state_history({"configurable": {"thread_id": t}})]
        for t in ("t1", "t2")
    }
    conn.close()
    db = tmp_path / "srt.db"
    assert main(["--db", str(db), "import", "--from", "langgraph", str(path)]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "langgraph: 2 threads" in out and "in 27 checkpoints" in out
    assert out == shown("langgraph")
    assert "verified 2 of 2 threads" in out
    with srt.Runtime(db) as rt:
        # 8 + 8 + 2 distinct messages, however many checkpoints repeat them.
        assert rt.store.verify().messages == 18
        saver = SrtSaver(rt)
        for t, history in source.items():
            mine = chat_graph(saver, []).get_state_history({"configurable": {"thread_id": t}})
            assert [s.values for s in mine] == history
        saver.close()


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "srt.db")
    assert main(["--db", db, "import", "--from", "langgraph", str(tmp_path / "missing.db")]) == 1
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    for source in ("langgraph", "agents-sqlite", "llm-logs"):
        assert main(["--db", db, "import", "--from", source, str(junk)]) == 1
        assert "srt: error:" in capsys.readouterr().err
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    for source in ("langgraph", "agents-sqlite"):
        assert main(["--db", db, "import", "--from", source, str(other)]) == 1
        assert "is not" in capsys.readouterr().err
    with srt.Runtime(db) as rt:
        assert rt.sessions() == []  # nothing half-imported above
        with pytest.raises(srt.ConfigError):
            run(rt, "no-such-source", str(other))
        rt.session("mine").append({"role": "user", "content": "kept"})
    # The store itself (by another name too): a second SQLite library must not open it.
    alias = tmp_path / "alias.db"
    alias.symlink_to(db)
    for source in ("langgraph", "agents-sqlite", "llm-logs"):
        for path in (db, str(alias)):
            assert main(["--db", db, "import", "--from", source, path]) == 1
            assert "is this srt store itself" in capsys.readouterr().err
    with srt.Runtime(db) as rt:
        assert [i.name for i in rt.sessions()] == ["mine"] and rt.store.verify().ok


def test_a_file_that_is_no_database_leaves_no_connection_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection an import opens to a junk file is closed when it refuses it (one
    was left to the collector, which Python 3.13 reports as an unclosed database)."""
    opened: list[sqlite3.Connection] = []
    real = sqlite3.connect

    def connect(*args: Any, **kw: Any) -> sqlite3.Connection:
        conn = real(*args, **kw)
        opened.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    db = str(tmp_path / "srt.db")
    for source in ("langgraph", "agents-sqlite", "llm-logs"):
        assert main(["--db", db, "import", "--from", source, str(junk)]) == 1
        assert "is not an SQLite database" in capsys.readouterr().err
    assert len(opened) == 3
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
