"""Checked and found right (lg29): LangChain history from two threads and async readers
while another adds, every message type back as ``messages_to_dict`` gave it; LangGraph
``Send`` fan-out (parallel branches' ``put_writes`` in one super-step) with a real
``StateGraph``, sync and async, against ``InMemorySaver``; ``list`` with a filter,
``before`` and ``limit`` while another saver writes."""

from __future__ import annotations

import asyncio
import json
import operator
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_to_dict,
)
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

from srt.integrations.langchain import SrtChatMessageHistory
from srt.integrations.langgraph import SrtSaver
from test_lg29_delete_races import JOIN_S, joined


def _kinds(tag: str) -> list[BaseMessage]:
    return [
        SystemMessage(f"sys {tag}", id=f"s-{tag}"),
        HumanMessage(
            [
                {"type": "text", "text": f"look {tag}"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
            id=f"h-{tag}",
            additional_kwargs={"k": [1, {"x": None}]},
        ),
        AIMessage(
            "",
            id=f"a-{tag}",
            tool_calls=[
                {
                    "name": "f",
                    "args": {"q": tag, "n": [1, 2.5]},
                    "id": f"c-{tag}",
                    "type": "tool_call",
                }
            ],
            response_metadata={"model_name": "m", "finish_reason": "tool_calls"},
            usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            additional_kwargs={"refusal": None},
        ),
        ToolMessage(
            f"out {tag}", tool_call_id=f"c-{tag}", id=f"t-{tag}", status="error", artifact={"a": 1}
        ),
        AIMessage(
            [{"type": "text", "text": f"done {tag}"}, {"type": "text", "text": "!"}],
            id=f"d-{tag}",
            response_metadata={"stop": True},
        ),
    ]


def _dump(msgs: list[BaseMessage]) -> str:
    return json.dumps(messages_to_dict(msgs), sort_keys=True)


def test_history_from_two_threads_and_a_reader(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    one, two = SrtChatMessageHistory("s", db), SrtChatMessageHistory("s", db)
    reader = SrtChatMessageHistory("s", db)
    want: dict[str, str] = {}
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def add(h: SrtChatMessageHistory, side: str) -> None:
        try:
            for i in range(8):
                batch = _kinds(f"{side}{i}")
                want[f"{side}{i}"] = _dump(batch)
                h.add_messages(batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def read() -> None:
        async def go() -> None:
            while not stop.is_set():
                got = await reader.aget_messages()
                assert len(got) % 5 == 0  # whole batches only
                seen.append(len(got))

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported below
            errors.append(exc)

    r = threading.Thread(target=read, name="read", daemon=True)
    r.start()
    ts = [
        threading.Thread(target=add, args=(h, s), name=f"add {s}", daemon=True)
        for h, s in ((one, "x"), (two, "y"))
    ]
    try:
        for t in ts:
            t.start()
        joined(ts, stop)
    finally:
        stop.set()
    joined([r])
    assert errors == []
    assert seen == sorted(seen)  # never fewer than before
    got = SrtChatMessageHistory("s", db).messages
    assert len(got) == 80
    batches = {m.id.split("-", 1)[1]: got[i : i + 5] for i, m in enumerate(got) if i % 5 == 0}
    assert {k: _dump(v) for k, v in batches.items()} == want
    for h in (one, two, reader):
        h.close()


class Fan(TypedDict):
    items: list[str]
    done: Annotated[list[str], operator.add]


def _fan_graph(saver: Any) -> Any:
    def start(state: Fan) -> dict[str, Any]:
        return {}

    def route(state: Fan) -> list[Send]:
        return [Send("work", {"items": [x], "done": []}) for x in state["items"]]

    def work(state: Fan) -> dict[str, Any]:
        return {"done": [f"w-{state['items'][0]}" * 40]}

    g = StateGraph(Fan)
    g.add_node("start", start)
    g.add_node("work", work)
    g.add_edge(START, "start")
    g.add_conditional_edges("start", route, ["work"])
    g.add_edge("work", END)
    return g.compile(checkpointer=saver)


def _history_of(app: Any, cfg: Any) -> list[Any]:
    return [(s.values, s.next, len(s.tasks)) for s in app.get_state_history(cfg)]


def test_send_fan_out_sync_and_async(tmp_path: Path) -> None:
    items = [f"i{n}" for n in range(12)]
    saver, ref = SrtSaver(tmp_path / "f.db"), InMemorySaver()
    cfg = {"configurable": {"thread_id": "fan"}}
    out = _fan_graph(saver).invoke({"items": items, "done": []}, cfg)
    _fan_graph(ref).invoke({"items": items, "done": []}, cfg)
    assert sorted(out["done"]) == sorted(f"w-{x}" * 40 for x in items)
    assert _history_of(_fan_graph(saver), cfg) == _history_of(_fan_graph(ref), cfg)
    acfg = {"configurable": {"thread_id": "afan"}}

    async def go() -> Any:
        return await _fan_graph(saver).ainvoke({"items": items, "done": []}, acfg)

    aout = asyncio.run(go())
    assert sorted(aout["done"]) == sorted(out["done"])
    # The super-step's writes: one per branch, each kept (a fresh saver reads them), as
    # InMemorySaver keeps them (with the input's empty "done" write).
    fresh = SrtSaver(tmp_path / "f.db")

    def writes(s: Any, c: Any) -> list[Any]:
        return sorted((w[1], repr(w[2])) for t in s.list(c) for w in (t.pending_writes or []))

    assert writes(fresh, cfg) == writes(ref, cfg)
    assert writes(fresh, acfg) == writes(ref, cfg)
    assert len([w for w in writes(fresh, acfg) if w[0] == "done" and w[1] != "[]"]) == len(items)
    saver.close()
    fresh.close()


def test_list_with_filter_before_and_limit_while_another_saver_writes(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    writer, lister = SrtSaver(db), SrtSaver(db)
    cfg: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    c = empty_checkpoint()
    c["channel_values"] = {"messages": [HumanMessage("q", id="q")]}
    c["channel_versions"] = {"messages": 1}
    conf = writer.put(cfg, c, {"step": 0, "parity": 0}, {"messages": 1})
    put_ids = [conf["configurable"]["checkpoint_id"]]
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        nonlocal c, conf
        try:
            for i in range(1, 80):
                c = create_checkpoint(c, None, i)
                c["channel_values"] = {
                    "messages": [HumanMessage("q", id="q"), AIMessage(f"a{i}", id=f"a{i}")]
                }
                c["channel_versions"] = {"messages": i + 1}
                conf = writer.put(conf, c, {"step": i, "parity": i % 2}, {"messages": i + 1})
                put_ids.append(conf["configurable"]["checkpoint_id"])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    t = threading.Thread(target=write, name="write", daemon=True)
    t.start()
    pages = 0
    deadline = time.monotonic() + JOIN_S
    while not done.is_set() or pages < 3:
        assert time.monotonic() < deadline, f"the writer did not end within {JOIN_S:.0f} s"
        pages += 1
        known = list(put_ids)
        top = known[-1]
        got = list(
            lister.list(
                cfg,
                filter={"parity": 1},
                before={"configurable": {"thread_id": "t", "checkpoint_id": top}},
                limit=5,
            )
        )
        ids = [g.config["configurable"]["checkpoint_id"] for g in got]
        want = [x for x in reversed(known[:-1]) if known.index(x) % 2 == 1][:5]
        assert ids == want
        assert all(g.metadata["parity"] == 1 for g in got)
    joined([t])
    assert errors == []
    writer.close()
    lister.close()
