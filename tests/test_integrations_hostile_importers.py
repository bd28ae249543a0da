"""``srt import`` attacked with damaged and hand-edited files: typed errors naming what
cannot be imported, and nothing half-imported (the store read back after each)."""

from __future__ import annotations

import asyncio
import json
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
from llm.parts import Message, TextPart

import srt
from srt.errors import ConfigError, InvalidMessageError, SessionExistsError
from srt.integrations import importers
from srt.integrations.agents import SrtSession
from srt.integrations.langgraph import SrtSaver


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- importers ----------------------------------------------------------------------------


def _agents_file(path: Path, rows: list[tuple[str, Any]]) -> Path:
    """An Agents SDK ``SQLiteSession`` file (made by the SDK) with ``rows`` added as they
    are, as a damaged or hand-edited file would hold them."""
    sdk = SQLiteSession("a", path)
    run(
        sdk.add_items([{"role": "user", "content": "fine"}, {"role": "assistant", "content": "ok"}])
    )
    sdk.close()
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO agent_messages(session_id, message_data) VALUES (?, ?)", rows)
    conn.close()
    return path


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("5", InvalidMessageError),
        ('"just text"', InvalidMessageError),
        ('{"role": "user", "content": "\\ud83d"}', InvalidMessageError),
        (json.dumps({"role": "user", "content": "x" * 5000}), InvalidMessageError),
        (json.dumps({"role": "user", "content": "x", "n": float("nan")}), InvalidMessageError),
    ],
    ids=["int", "string", "lone-surrogate", "too-big", "nan"],
)
def test_agents_import_checks_the_whole_file_before_writing(
    tmp_path: Path, data: str, error: type[Exception]
) -> None:
    """Session ``a`` is fine, session ``b`` (after it) holds a row srt cannot take: the
    import is refused with the session named, and nothing of ``a`` was written."""
    path = _agents_file(
        tmp_path / "agents.db", [("b", json.dumps({"role": "user", "content": "q"})), ("b", data)]
    )
    with srt.Runtime(tmp_path / "srt.db", max_message_bytes=4096) as rt:
        with pytest.raises(error, match="session 'b' cannot be imported, so nothing was"):
            importers.run(rt, "agents-sqlite", str(path))
        assert rt.sessions() == []
        assert rt.store.list_objects("agents.branch", "a") == []
        assert rt.store.verify().ok


def test_agents_import_refuses_a_session_held_with_other_items_before_writing(
    tmp_path: Path,
) -> None:
    path = _agents_file(
        tmp_path / "agents.db", [("z", json.dumps({"role": "user", "content": "q"}))]
    )
    with srt.Runtime(tmp_path / "srt.db") as rt:
        run(SrtSession("z", rt).add_items([{"role": "user", "content": "other"}]))
        with pytest.raises(SessionExistsError, match="'z' exists with other items"):
            importers.run(rt, "agents-sqlite", str(path))
        assert [i.name for i in rt.sessions()] == ["z"]  # and no "a"


def _graph(checkpointer: Any) -> Any:
    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"answer {len(state['messages'])}")]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_edge(START, "agent")
    g.add_edge("agent", END)
    return g.compile(checkpointer=checkpointer)


def test_langgraph_import_of_a_damaged_checkpoint_leaves_nothing(tmp_path: Path) -> None:
    """Thread ``t1`` imports well, then a checkpoint of ``t2`` cannot be read: a
    ``ConfigError`` naming it, and ``t1`` is taken back out (its messages unnamed)."""
    path = tmp_path / "lg.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    app = _graph(SqliteSaver(conn))
    for thread in ("t1", "t2"):
        for i in range(2):
            app.invoke(
                {"messages": [HumanMessage(f"q{i}")]}, {"configurable": {"thread_id": thread}}
            )
    (cid,) = conn.execute(
        "SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = 't2'"
    ).fetchone()
    conn.execute(
        "UPDATE checkpoints SET checkpoint = ? WHERE checkpoint_id = ?", (b"\xc1\xc1junk", cid)
    )
    conn.commit()
    conn.close()
    with srt.Runtime(tmp_path / "srt.db") as rt:
        with pytest.raises(ConfigError, match=f"checkpoint {cid} of thread 't2' cannot be read"):
            importers.run(rt, "langgraph", str(path))
        saver = SrtSaver(rt)
        assert list(saver.list(None)) == []
        saver.close()
        assert rt.sessions() == []
        assert rt.store.verify().ok


def _secret_free(db: Path) -> bool:
    return all(b"sk-live-1234" not in p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_imports_go_through_the_redaction_hook(tmp_path: Path) -> None:
    """With ``Runtime(redact=...)`` every importer stores the redacted conversation and
    verifies it against the source as redacted (it raised ``CorruptionError`` after
    writing), and importing again finds it already there."""
    secret = "my key is sk-live-1234"
    sdk = SQLiteSession("a", tmp_path / "agents.db")
    run(sdk.add_items([{"role": "user", "content": secret, "id": "sk-live-1234"}]))
    sdk.close()
    db = sqlite_utils.Database(str(tmp_path / "logs.db"))
    logs = LogStore(db)
    logs.append(logs.ensure_thread("t"), [Message("user", [TextPart(secret)])])
    db.close()
    conn = sqlite3.connect(tmp_path / "lg.db", check_same_thread=False)
    _graph(SqliteSaver(conn)).invoke(
        {"messages": [HumanMessage(secret)]}, {"configurable": {"thread_id": "t"}}
    )
    conn.close()

    def hide(text: str) -> str:
        return text.replace("sk-live-1234", "[key]")

    for source, name in (("agents-sqlite", "agents"), ("llm-logs", "logs"), ("langgraph", "lg")):
        dest = tmp_path / f"{name}-srt.db"
        with srt.Runtime(dest, redact=hide) as rt:
            for _ in range(2):
                report = importers.run(rt, source, str(tmp_path / f"{name}.db"))
                assert report.verified == report.conversations == 1
        assert _secret_free(dest), source
    with srt.Runtime(tmp_path / "agents-srt.db") as rt:
        back = run(SrtSession("a", rt).get_items())
        assert back == [{"role": "user", "content": "my key is [key]", "id": "[key]"}]


def test_llm_import_checks_the_whole_file_before_writing(tmp_path: Path) -> None:
    """Thread ``a`` is fine, thread ``b`` holds a message over the runtime's
    ``max_message_bytes``: refused with the session named, and nothing of ``a`` written."""
    db = sqlite_utils.Database(str(tmp_path / "logs.db"))
    logs = LogStore(db)
    logs.append(logs.ensure_thread("a"), [Message("user", [TextPart("fine")])])
    logs.append(logs.ensure_thread("b"), [Message("user", [TextPart("x" * 5000)])])
    db.close()
    with srt.Runtime(tmp_path / "srt.db", max_message_bytes=4096) as rt:
        with pytest.raises(InvalidMessageError, match="'llm/b' cannot be imported, so nothing was"):
            importers.run(rt, "llm-logs", str(tmp_path / "logs.db"))
        assert rt.sessions() == []


def test_a_damaged_row_is_not_quoted_in_the_error(tmp_path: Path) -> None:
    """LangGraph's serializer quotes what it cannot read (here a row's type): the
    importer's error names the checkpoint and the error's type, never the row."""
    path = tmp_path / "lg.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    _graph(SqliteSaver(conn)).invoke(
        {"messages": [HumanMessage("q")]}, {"configurable": {"thread_id": "t"}}
    )
    conn.execute("UPDATE checkpoints SET type = 'sk-live-1234'")
    conn.commit()
    conn.close()
    with srt.Runtime(tmp_path / "srt.db") as rt:
        with pytest.raises(ConfigError, match="cannot be read") as caught:
            importers.run(rt, "langgraph", str(path))
        assert "sk-live-1234" not in str(caught.value)
        assert rt.sessions() == []
