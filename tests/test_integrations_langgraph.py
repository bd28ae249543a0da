"""``srt.integrations.langgraph.SrtSaver``: the published conformance suite, real graphs
(``MessagesState``, a tool loop, a subgraph) compared with LangGraph's ``InMemorySaver``,
every message type, time travel, storage once per message, gc and asyncio."""

from __future__ import annotations

import asyncio
import copy
import operator
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from typing_extensions import TypedDict

import srt
from srt.integrations.langgraph import SrtSaver


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[SrtSaver]:
    s = SrtSaver(tmp_path / "lg.db")
    yield s
    s.close()


def test_conformance_suite(tmp_path: Path) -> None:
    """langgraph-checkpoint-conformance: every capability detected, every test passed."""
    made: list[srt.Runtime] = []

    @checkpointer_test(name="SrtSaver")
    async def factory() -> Any:
        rt = srt.Runtime(tmp_path / f"conf-{len(made)}.db")
        made.append(rt)
        s = SrtSaver(rt)
        yield s
        s.close()
        rt.close()

    report = asyncio.run(validate(factory))
    lines = [
        f"{cap}: passed {r.tests_passed}, failed {r.tests_failed}, skipped {r.tests_skipped}"
        for cap, r in report.results.items()
    ]
    print("\n".join(lines))  # the per-capability report, shown with pytest -s
    assert set(report.results) == {
        "put", "put_writes", "get_tuple", "list", "delete_thread", "delete_for_runs",
        "copy_thread", "prune",
    }  # fmt: skip
    for cap, r in report.results.items():
        assert r.detected and r.passed, (cap, r.failures)
        assert r.tests_failed == 0 and r.tests_skipped == 0 and r.tests_passed > 0


def chat_graph(checkpointer: Any) -> Any:
    """One node that answers each turn, with an id of its own (deterministic)."""

    def agent(state: MessagesState) -> dict[str, Any]:
        n = len(state["messages"])
        return {
            "messages": [
                AIMessage(
                    f"answer {n}",
                    id=f"run-{n}",
                    response_metadata={"model_name": "m", "finish_reason": "stop"},
                    usage_metadata={"input_tokens": n, "output_tokens": 2, "total_tokens": n + 2},
                )
            ]
        }

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_edge(START, "agent")
    g.add_edge("agent", END)
    return g.compile(checkpointer=checkpointer)


def _turns(app: Any, thread: str, n: int) -> list[Any]:
    cfg = {"configurable": {"thread_id": thread}}
    return [
        app.invoke({"messages": [HumanMessage(f"question {i}", id=f"q-{i}")]}, cfg)
        for i in range(n)
    ]


def test_messages_state_matches_in_memory_saver(saver: SrtSaver, tmp_path: Path) -> None:
    ours, theirs = chat_graph(saver), chat_graph(InMemorySaver())
    out = _turns(ours, "t", 6)
    _turns(theirs, "t", 6)
    cfg = {"configurable": {"thread_id": "t"}}
    assert ours.get_state(cfg).values == out[-1]
    mine, ref = list(ours.get_state_history(cfg)), list(theirs.get_state_history(cfg))
    assert len(mine) == len(ref) == 18
    for a, b in zip(mine, ref, strict=True):
        assert a.values == b.values
        assert a.next == b.next
        assert {k: a.metadata[k] for k in ("source", "step")} == {
            k: b.metadata[k] for k in ("source", "step")
        }
    # Another process (a fresh runtime on the file) reads the same history.
    again = SrtSaver(tmp_path / "lg.db")
    fresh = list(chat_graph(again).get_state_history(cfg))
    assert [s.values for s in fresh] == [s.values for s in mine]
    again.close()


def test_checkpoints_are_kept_as_they_were_put(saver: SrtSaver, tmp_path: Path) -> None:
    """LangGraph goes on changing the dicts it passes to ``put``: what comes back later,
    in this process and in another, is what was put at the time."""
    given: dict[str, Any] = {}
    put = saver.put

    def spy(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        given[checkpoint["id"]] = copy.deepcopy(
            {k: checkpoint[k] for k in ("channel_versions", "versions_seen")}
        ) | {"metadata": copy.deepcopy(metadata)}
        return put(config, checkpoint, metadata, versions)

    saver.put = spy  # type: ignore[method-assign]
    app = chat_graph(saver)
    _turns(app, "kept", 4)
    again = SrtSaver(tmp_path / "lg.db")
    for reader in (saver, again):
        got = list(reader.list({"configurable": {"thread_id": "kept"}}))
        assert len(got) == len(given) == 12
        for t in got:
            want = given[t.checkpoint["id"]]
            assert t.checkpoint["channel_versions"] == want["channel_versions"]
            assert t.checkpoint["versions_seen"] == want["versions_seen"]
            assert {k: t.metadata[k] for k in want["metadata"]} == want["metadata"]
    again.close()


def test_records_packed_against_a_changed_record_stay_readable(
    saver: SrtSaver, tmp_path: Path
) -> None:
    """A record is compressed against its parent's and the one three steps back: writes
    added to an old checkpoint later (or a checkpoint put again) repack the records that
    depend on it, and another process reads every one."""
    cfg: Any = {"configurable": {"thread_id": "packed", "checkpoint_ns": ""}}
    stored = []
    for i in range(6):
        cp: Any = {
            "v": 4, "id": f"1f000000-0000-6000-8000-00000000000{i}", "ts": f"2026-01-0{i + 1}",
            "channel_values": {"n": i}, "channel_versions": {"n": i + 1}, "versions_seen": {},
            "updated_channels": ["n"],
        }  # fmt: skip
        cfg = saver.put(cfg, cp, {"source": "loop", "step": i}, {"n": i + 1})
        stored.append(cfg)
    saver.put_writes(stored[0], [("late", "x" * 300)], "task-late")
    saver.put_writes(stored[2], [("late", "y")], "task-late")
    again = SrtSaver(tmp_path / "lg.db")
    for i, c in enumerate(stored):
        t = again.get_tuple(c)
        assert t is not None and t.checkpoint["channel_values"] == {"n": i}
        want = {0: [("task-late", "late", "x" * 300)], 2: [("task-late", "late", "y")]}
        assert t.pending_writes == want.get(i, [])
    again.close()


def test_every_message_type_round_trips(saver: SrtSaver) -> None:
    messages: list[BaseMessage] = [
        SystemMessage("be terse", id="s"),
        HumanMessage(
            content=[
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image", "base64": "AAAA", "mime_type": "image/png"},
            ],
            id="h",
            name="alice",
        ),
        AIMessage(
            "",
            id="a1",
            tool_calls=[{"name": "look", "args": {"x": 1}, "id": "c1", "type": "tool_call"}],
            additional_kwargs={"refusal": None},
        ),
        ToolMessage("a pixel", tool_call_id="c1", id="t1", artifact={"px": 1}),
        AIMessage([{"type": "text", "text": "a pixel", "index": 0}], id="a2"),
    ]
    g = StateGraph(MessagesState)
    g.add_node("echo", lambda s: {})
    g.add_edge(START, "echo")
    g.add_edge("echo", END)
    app = g.compile(checkpointer=saver)
    cfg = {"configurable": {"thread_id": "types"}}
    app.invoke({"messages": messages}, cfg)
    got = app.get_state(cfg).values["messages"]
    assert got == messages
    assert [type(m) for m in got] == [type(m) for m in messages]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def tool_graph(checkpointer: Any) -> Any:
    """A model that calls ``add`` once, then answers; the prebuilt ToolNode runs the tool."""

    def model(state: MessagesState) -> dict[str, Any]:
        last = state["messages"][-1]
        if isinstance(last, ToolMessage):
            return {"messages": [AIMessage(f"the sum is {last.content}", id=f"m-{last.id}")]}
        call = {"name": "add", "args": {"a": 2, "b": 3}, "id": f"call-{len(state['messages'])}"}
        return {"messages": [AIMessage("", tool_calls=[call], id=f"c-{len(state['messages'])}")]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END  # type: ignore[union-attr]

    g = StateGraph(MessagesState)
    g.add_node("model", model)
    g.add_node("tools", ToolNode([add]))
    g.add_edge(START, "model")
    g.add_conditional_edges("model", route, ["tools", END])
    g.add_edge("tools", "model")
    return g.compile(checkpointer=checkpointer)


def test_tool_loop(saver: SrtSaver) -> None:
    app = tool_graph(saver)
    cfg = {"configurable": {"thread_id": "tools"}}
    for q in ("add 2 and 3", "again"):
        out = app.invoke({"messages": [("user", q)]}, cfg)
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"] * 2
    assert out["messages"][-1].content == "the sum is 5"
    assert app.get_state(cfg).values == out
    ref = tool_graph(InMemorySaver())
    for q in ("add 2 and 3", "again"):
        ref.invoke({"messages": [("user", q)]}, cfg)
    # The same states step by step (message ids LangGraph draws at random aside).
    strip = [
        [(type(m), m.content) for m in s.values["messages"]] for s in ref.get_state_history(cfg)
    ]
    mine = [
        [(type(m), m.content) for m in s.values["messages"]] for s in app.get_state_history(cfg)
    ]
    assert mine == strip


def test_time_travel(saver: SrtSaver) -> None:
    app = chat_graph(saver)
    cfg = {"configurable": {"thread_id": "tt"}}
    out = _turns(app, "tt", 4)
    history = list(app.get_state_history(cfg))
    assert [len(s.values.get("messages", [])) for s in history][:4] == [8, 7, 6, 6]
    # Resume from the end of turn 2 with the same question turn 3 had, under a new id:
    # the stored message is shared, and each branch keeps its own ids.
    old = next(s for s in history if len(s.values.get("messages", [])) == 4 and not s.next)
    redo = app.invoke({"messages": [HumanMessage("question 2", id="q-redo")]}, old.config)
    assert [m.id for m in redo["messages"]] == [
        "q-0", "run-1", "q-1", "run-3", "q-redo", "run-5"
    ]  # fmt: skip
    branch_a = next(s for s in history if len(s.values.get("messages", [])) == 6 and not s.next)
    assert app.get_state(branch_a.config).values == out[2]
    # update_state forks from an old checkpoint.
    forked = app.update_state(old.config, {"messages": [AIMessage("edited", id="e1")]})
    assert app.get_state(forked).values["messages"][-1] == AIMessage("edited", id="e1")
    assert len(list(app.get_state_history(cfg))) > len(history)


def test_each_message_is_stored_once(saver: SrtSaver, tmp_path: Path) -> None:
    app = chat_graph(saver)
    _turns(app, "once", 20)
    rt = srt.Runtime(tmp_path / "lg.db")  # the saver's file
    report = rt.store.verify()
    assert report.ok
    # 40 messages in 60 checkpoints: 40 stored messages, 40 nodes.
    assert report.messages == 40 and report.nodes == 40
    # The thread's latest list is an ordinary srt session.
    shown = rt.session("langgraph/once").messages()
    assert [m["role"] for m in shown] == ["user", "assistant"] * 20
    assert shown[-1]["content"] == "answer 39"
    rt.close()


def test_gc_keeps_what_checkpoints_name(saver: SrtSaver, tmp_path: Path) -> None:
    app = chat_graph(saver)
    _turns(app, "keep", 3)
    _turns(app, "drop", 3)
    rt = srt.Runtime(tmp_path / "lg.db")  # the saver's file, as srt gc opens it
    cfg = {"configurable": {"thread_id": "keep"}}
    before = [s.values for s in app.get_state_history(cfg)]
    # Time travel leaves a branch that no session head reaches: checkpoints keep it.
    old = list(app.get_state_history(cfg))[-4]
    app.invoke({"messages": [HumanMessage("other", id="o")]}, old.config)
    rt.store.gc()
    assert [s.values for s in app.get_state_history(cfg)][-len(before) :] == before
    saver.delete_thread("drop")
    assert rt.store.gc().nodes == 0  # "drop" shares every node with "keep"
    saver.delete_thread("keep")
    report = rt.store.gc()
    assert report.nodes > 0 and report.messages > 0
    assert rt.store.verify().messages == 0
    rt.close()


def test_async_graph(saver: SrtSaver) -> None:
    app = chat_graph(saver)
    cfg = {"configurable": {"thread_id": "async"}}

    async def main() -> list[Any]:
        for i in range(3):
            await app.ainvoke({"messages": [HumanMessage(f"q{i}", id=f"q{i}")]}, cfg)
        return [s async for s in app.aget_state_history(cfg)]

    history = asyncio.run(main())
    assert len(history) == 9
    assert [m.id for m in history[0].values["messages"]] == [
        "q0", "run-1", "q1", "run-3", "q2", "run-5"
    ]  # fmt: skip


class Inner(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: Annotated[list[str], operator.add]


def test_subgraph_namespaces(saver: SrtSaver) -> None:
    inner = StateGraph(Inner)
    inner.add_node("write", lambda s: {"notes": ["seen"], "messages": [AIMessage("inner", id="i")]})
    inner.add_edge(START, "write")
    inner.add_edge("write", END)
    outer = StateGraph(Inner)
    outer.add_node("sub", inner.compile())
    outer.add_edge(START, "sub")
    outer.add_edge("sub", END)
    app = outer.compile(checkpointer=saver)
    cfg = {"configurable": {"thread_id": "sub"}}
    out = app.invoke({"messages": [HumanMessage("hi", id="h")], "notes": []}, cfg)
    assert app.get_state(cfg).values == out
    state = app.get_state(cfg, subgraphs=True)
    assert state.values["notes"] == ["seen"]
    assert [m.id for m in out["messages"]] == ["h", "i"]


def test_odd_values_round_trip(saver: SrtSaver) -> None:
    class State(TypedDict):
        data: Any

    values: list[Any] = [
        {"__srt__": [1, 2, 3]},  # the saver's own marker key, as user data
        [("user", "a tuple that looks like a message"), ("pirate", "one that does not")],
        {"role": "user", "content": "a dict that looks like one"},
        b"\x00bytes",
        {"big": "x" * 5000},
    ]
    g = StateGraph(State)
    g.add_node("n", lambda s: {})
    g.add_edge(START, "n")
    g.add_edge("n", END)
    app = g.compile(checkpointer=saver)
    for i, v in enumerate(values):
        cfg = {"configurable": {"thread_id": f"odd-{i}"}}
        app.invoke({"data": v}, cfg)
        got = app.get_state(cfg).values["data"]
        # Tuples come back lists, as LangGraph's serializer gives them to every saver.
        assert got == (v if not isinstance(v, list) else [list(x) for x in v])


def test_bench_script_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/savers.py (the size and time table of docs/integrations.md) runs; its figures
    come from the full run, not from here: no timing is asserted."""
    import importlib.util
    import json

    bench = Path(__file__).resolve().parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench))  # (as when it runs: its folder holds benchio)
    spec = importlib.util.spec_from_file_location("savers", bench / "savers.py")
    assert spec is not None and spec.loader is not None
    savers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(savers)
    out = tmp_path / "lg.json"
    assert savers.main(["--turns", "12", "--json", str(out), "--dir", str(tmp_path)]) == 0
    doc = json.loads(out.read_text())
    ours, theirs = doc["results"]["SrtSaver"], doc["results"]["SqliteSaver"]
    assert ours["db_bytes"] > 0 and theirs["db_bytes"] > ours["db_bytes"]
    assert ours["time_travel"]["resume_middle_ok"] and theirs["time_travel"]["resume_middle_ok"]
    assert len(ours["deciles"]) == 12  # a tenth of 12 turns is 1 turn


def test_typed_errors_and_reuse_after_close(tmp_path: Path) -> None:
    s = SrtSaver(tmp_path / "e.db")
    app = chat_graph(s)
    _turns(app, "e", 1)
    with pytest.raises(srt.ConfigError):
        s.prune(["e"], strategy="keep_some")
    with pytest.raises(srt.ConfigError):
        s.put_writes({"configurable": {"thread_id": "e"}}, [("ch", 1)], "task")
    s.close()
    # Used again after close(), the saver opens its thread and runtime again.
    assert len(list(s.list({"configurable": {"thread_id": "e"}}))) == 3
    s.close()


def test_a_store_with_a_hash_key(tmp_path: Path) -> None:
    """Messages are hashed the store's way: with ``hash_key`` (keyed BLAKE2b) too."""
    with srt.Runtime(tmp_path / "k.db", hash_key=bytes(range(32))) as rt:
        saver = SrtSaver(rt)
        app = chat_graph(saver)
        out = _turns(app, "k", 3)
        cfg = {"configurable": {"thread_id": "k"}}
        assert app.get_state(cfg).values == out[-1]
        assert len(list(app.get_state_history(cfg))) == 9
        report = rt.store.verify()
        assert report.ok and report.messages == 6
        assert rt.session("langgraph/k").messages()[-1]["content"] == "answer 5"
        saver.close()


def test_the_redaction_hook_covers_messages(tmp_path: Path) -> None:
    """``Runtime(redact=...)``: a secret in a message (its text or its metadata) never
    reaches the file, in the checkpoints, the writes or the thread's session."""
    secret = "sk-live-0123456789abcdef"
    path = tmp_path / "r.db"

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage("noted", id="a1", response_metadata={"echo": secret})]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_edge(START, "agent")
    cfg = {"configurable": {"thread_id": "r"}}
    with srt.Runtime(path, redact=lambda t: t.replace(secret, "[key]")) as rt:
        saver = SrtSaver(rt)
        g.compile(checkpointer=saver).invoke(
            {"messages": [HumanMessage(f"my key is {secret}", id="h1"), ("user", secret)]}, cfg
        )
        saver.close()
    for name in os.listdir(tmp_path):
        assert secret.encode() not in (tmp_path / name).read_bytes()
    again = SrtSaver(path)
    got = g.compile(checkpointer=again).get_state(cfg).values["messages"]
    assert [m.content for m in got] == ["my key is [key]", "[key]", "noted"]
    assert got[0].id == "h1" and got[2].response_metadata == {"echo": "[key]"}
    again.close()
