"""LangChain and LangGraph data srt stored before tool results could be marked
``is_error``: a ``ToolMessage`` with ``status="error"`` was stored as the tool message
without the flag (its status in the patch beside it). Such a store, written here by the
converters exactly as they were before (``old_converters``: today's but for the flag),
keeps working: ``SrtSaver`` goes on with a thread without storing its messages again from
the failed result on, and reads every ``ToolMessage`` back with the status LangGraph gave;
a chat history reads back and grows. A result stored for a ``ToolMessage`` that was no
error is not taken for a failed one."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

import srt
from srt.integrations import _lcmsg
from srt.integrations.langchain import SrtChatMessageHistory
from srt.integrations.langgraph import SrtSaver

_CANONICAL, _BASE = _lcmsg.canonical, _lcmsg.base


def _old_canonical(message: Any) -> dict[str, Any]:
    out = _CANONICAL(message)
    out.pop("is_error", None)  # (before: no such key)
    return out


def _old_base(message: Any) -> dict[str, Any]:
    out = _BASE(message)
    if out["type"] == "tool":
        out["data"]["status"] = "success"  # (before: always)
    return out


@contextlib.contextmanager
def old_converters() -> Iterator[None]:
    """LangChain messages converted as srt did before ``is_error`` (commit 943fee0^1)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_lcmsg, "canonical", _old_canonical)
        mp.setattr(_lcmsg, "base", _old_base)
        yield


@tool
def divide(a: int, b: int) -> float:
    """Divide a by b."""
    return a / b


def tool_graph(checkpointer: Any) -> Any:
    """A model that asks for 1/0 (the tool fails: a ToolMessage with status "error"),
    then answers."""

    def model(state: MessagesState) -> dict[str, Any]:
        n = len(state["messages"])
        if isinstance(state["messages"][-1], ToolMessage):
            return {"messages": [AIMessage("it failed", id=f"m-{n}")]}
        call = {"name": "divide", "args": {"a": 1, "b": 0}, "id": f"call-{n}"}
        return {"messages": [AIMessage("", tool_calls=[call], id=f"c-{n}")]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END  # type: ignore[union-attr]

    g = StateGraph(MessagesState)
    g.add_node("model", model)
    g.add_node("tools", ToolNode([divide], handle_tool_errors=True))
    g.add_edge(START, "model")
    g.add_conditional_edges("model", route, ["tools", END])
    g.add_edge("tools", "model")
    return g.compile(checkpointer=checkpointer)


CFG: Any = {"configurable": {"thread_id": "t"}}


def _old_thread(rt: srt.Runtime) -> list[Any]:
    """One turn of ``tool_graph`` stored by the old converters; its messages."""
    with old_converters():
        saver = SrtSaver(rt)
        out = tool_graph(saver).invoke({"messages": [HumanMessage("1/0?", id="q0")]}, CFG)
        saver.close()
    stored = rt.session("langgraph/t").messages()
    assert stored[2] == {"role": "tool", "content": out["messages"][2].content,
                         "tool_call_id": "call-1"}  # fmt: skip
    assert [m.status for m in out["messages"] if isinstance(m, ToolMessage)] == ["error"]
    return list(out["messages"])


def test_a_thread_stored_before_is_error_goes_on(store_rt: srt.Runtime) -> None:
    before = _old_thread(store_rt)
    nodes = store_rt.store.verify().nodes
    saver = SrtSaver(store_rt)
    app = tool_graph(saver)
    assert app.get_state(CFG).values["messages"] == before  # status "error" read back
    out = app.invoke({"messages": [HumanMessage("again", id="q1")]}, CFG)
    assert out["messages"][:4] == before
    assert [getattr(m, "status", None) for m in out["messages"]] == [None, None, "error", None] * 2
    assert store_rt.store.verify().nodes == nodes + 4  # the new turn's only
    # The thread's own ToolMessage handed back again (a copy, as a client sends it):
    # the stored message, no second copy of the thread from it on.
    again = copy.deepcopy(out["messages"][2])
    app.update_state(CFG, {"messages": [again]})
    assert app.get_state(CFG).values["messages"] == out["messages"]
    assert store_rt.store.verify().nodes == nodes + 5  # and the write's own, below the head
    shown = store_rt.session("langgraph/t").messages()
    assert [m.get("is_error") for m in shown] == [None] * 6 + [True, None]
    # Another saver (another process) reads the same states.
    other = SrtSaver(store_rt)
    mine = [s.values for s in app.get_state_history(CFG)]
    assert [s.values for s in tool_graph(other).get_state_history(CFG)] == mine
    other.close()
    saver.close()


def test_a_result_that_was_no_error_stays_apart(store_rt: srt.Runtime) -> None:
    """The same text stored for a ToolMessage that succeeded: one that failed is stored
    marked, beside it."""
    saver = SrtSaver(store_rt)
    app = tool_graph(saver)
    call = {"name": "divide", "args": {"a": 1, "b": 0}, "id": "c1"}
    fine = ToolMessage("Error: division by zero", tool_call_id="c1", id="t")
    said = [HumanMessage("1/0?", id="h"), AIMessage("", tool_calls=[call], id="a"), fine]
    app.update_state(CFG, {"messages": said}, as_node="tools")
    nodes = store_rt.store.verify().nodes
    failed = fine.model_copy(update={"status": "error"})
    app.update_state(CFG, {"messages": [failed]}, as_node="tools")
    assert app.get_state(CFG).values["messages"] == [*said[:2], failed]
    assert store_rt.store.verify().nodes == nodes + 2  # the write's and the list's
    assert store_rt.session("langgraph/t").messages()[2].get("is_error") is True
    saver.close()


def test_a_chat_history_stored_before_is_error_reads_back_and_grows(rt: srt.Runtime) -> None:
    call = {"name": "divide", "args": {"a": 1, "b": 0}, "id": "c1"}
    said = [
        HumanMessage("1/0?", id="h"),
        AIMessage("", tool_calls=[call], id="a"),
        ToolMessage("Error: division by zero", tool_call_id="c1", status="error", id="t"),
    ]
    with old_converters():
        SrtChatMessageHistory("h", rt).add_messages(said)
    assert "is_error" not in rt.session("h").messages()[2]
    history = SrtChatMessageHistory("h", rt)
    assert history.messages == said
    history.add_messages([AIMessage("it failed", id="b")])
    assert history.messages == [*said, AIMessage("it failed", id="b")]
