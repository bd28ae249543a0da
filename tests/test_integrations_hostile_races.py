"""Races on one conversation: processes and handles adding, popping, clearing and forking
at once on a ``SrtSession``, a LangChain history written from two processes, and two
LangGraph savers putting children of one checkpoint at once. Nothing lost, nothing
doubled, every item with its own patch, and the store verifies."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

import srt
from rel_support.waits import WAIT_S, joined
from srt.integrations.agents import SrtSession
from srt.integrations.langchain import SrtChatMessageHistory
from srt.integrations.langgraph import SrtSaver

FORK = multiprocessing.get_context("fork")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _batch(tag: str, i: int) -> list[dict[str, Any]]:
    """Two items whose ids say which call added them."""
    return [
        {"role": "user", "content": f"{tag}-{i}", "id": f"u-{tag}-{i}"},
        {
            "type": "function_call",
            "call_id": f"c-{tag}-{i}",
            "name": "f",
            "arguments": "{}",
            "id": f"fc-{tag}-{i}",
        },
    ]


def _key(item: dict[str, Any]) -> str:
    return str(item.get("id"))


def _adder(db: str, tag: str, n: int, out: Any) -> None:
    async def go() -> list[Any]:
        s = SrtSession("race", db)
        popped = []
        for i in range(n):
            await s.add_items(_batch(tag, i))
            if i % 4 == 3:
                popped.append(await s.pop_item())
        s.close()
        return popped

    out.put(run(go()))


def test_two_processes_add_and_pop_on_one_session(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    SrtSession("race", db).close()
    out = FORK.Queue()
    procs = [FORK.Process(target=_adder, args=(db, tag, 12, out)) for tag in "ab"]
    for p in procs:
        p.start()
    popped = [item for _ in procs for item in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    s = SrtSession("race", db)
    left = run(s.get_items())
    added = [item for tag in "ab" for i in range(12) for item in _batch(tag, i)]
    # Every item once, exactly as added (its own id), whoever popped what.
    assert Counter(map(_key, [*left, *popped])) == Counter(map(_key, added))
    by_id = {_key(i): i for i in added}
    assert all(item == by_id[_key(item)] for item in [*left, *popped])
    s.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok


def test_clear_while_another_handle_adds(tmp_path: Path) -> None:
    """What is left is the adds after the last clear, each whole and with its ids."""
    db = tmp_path / "c.db"
    adder, clearer = SrtSession("c", db), SrtSession("c", db)
    n = 20
    done = threading.Event()

    def add() -> None:
        try:
            for i in range(n):
                run(adder.add_items(_batch("a", i)))
        finally:
            done.set()  # (an adder that failed must not leave the clearer looping)

    def clear() -> None:
        while not done.is_set():
            run(clearer.clear_session())

    threads = [threading.Thread(target=add), threading.Thread(target=clear)]
    for t in threads:
        t.start()
    joined(*threads, stop=done, what="adding and clearing")
    left = run(SrtSession("c", db).get_items())
    assert len(left) % 2 == 0
    first = n - len(left) // 2
    assert left == [item for i in range(first, n) for item in _batch("a", i)]
    adder.close()
    clearer.close()


def test_forks_while_another_handle_adds(tmp_path: Path) -> None:
    """Each branch forked meanwhile holds a prefix of what main holds, ids and all."""
    db = tmp_path / "f.db"
    adder, forker = SrtSession("f", db), SrtSession("f", db)
    done = threading.Event()

    def add() -> None:
        for i in range(15):
            run(adder.add_items(_batch("a", i)))
        done.set()

    names: list[str] = []

    def fork() -> None:
        while not done.is_set():
            names.append(run(forker.fork(switch=False)))

    threads = [threading.Thread(target=add), threading.Thread(target=fork)]
    for t in threads:
        t.start()
    joined(*threads, stop=done, what="adding and forking")
    main = run(adder.get_items())
    assert main == [item for i in range(15) for item in _batch("a", i)]
    for name in names:
        branch = SrtSession("f", db, branch=name)
        items = run(branch.get_items())
        assert items == main[: len(items)], name
        branch.close()
    adder.close()
    forker.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok


def _history_adder(db: str, tag: str, out: Any) -> None:
    h = SrtChatMessageHistory("h", db)
    for i in range(10):
        h.add_messages(
            [HumanMessage(f"{tag}{i}", id=f"h-{tag}{i}"), AIMessage("ok", id=f"a-{tag}{i}")]
        )
    h.close()
    out.put(tag)


def test_two_processes_add_to_one_langchain_history(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    SrtChatMessageHistory("h", db).close()
    out = FORK.Queue()
    procs = [FORK.Process(target=_history_adder, args=(db, tag, out)) for tag in "xy"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    h = SrtChatMessageHistory("h", db)
    got = h.messages
    assert len(got) == 40
    # Each call's pair stays together, each message with its own id.
    for human, ai in zip(got[::2], got[1::2], strict=True):
        assert human.id == f"h-{human.content}" and ai.id == f"a-{human.content}"
    assert sorted(m.content for m in got[::2]) == sorted(f"{t}{i}" for t in "xy" for i in range(10))
    h.close()


def test_two_savers_put_children_of_one_checkpoint_at_once(tmp_path: Path) -> None:
    """Two savers on one file put a child of the same checkpoint at the same moment,
    ten times: each child comes back with its own messages and parent."""
    db = tmp_path / "g.db"
    first, second = SrtSaver(db), SrtSaver(db)
    cfg: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    base = empty_checkpoint()
    base["channel_values"] = {"messages": [HumanMessage("q", id="q")]}
    base["channel_versions"] = {"messages": 1}
    parent = first.put(cfg, base, {"step": 0}, {"messages": 1})
    children: dict[str, list[Any]] = {}
    for round_ in range(10):
        barrier = threading.Barrier(2, timeout=WAIT_S)

        def put(saver: SrtSaver, tag: str, r: int = round_, barrier: Any = barrier) -> None:
            msgs = [HumanMessage("q", id="q"), AIMessage(f"{tag}{r}", id=f"{tag}{r}")]
            c = create_checkpoint(base, None, r + 1)
            c["channel_values"] = {"messages": msgs}
            c["channel_versions"] = {"messages": 2}
            barrier.wait()
            done = saver.put(parent, c, {"step": 1, "tag": tag}, {"messages": 2})
            children[done["configurable"]["checkpoint_id"]] = msgs

        threads = [
            threading.Thread(target=put, args=(s, t)) for s, t in ((first, "x"), (second, "y"))
        ]
        for t in threads:
            t.start()
        joined(*threads, what="two savers putting one parent's children")
    first.close()
    second.close()
    fresh = SrtSaver(db)
    listed = list(fresh.list(cfg))
    assert len(listed) == 1 + len(children) == 21
    for cid, msgs in children.items():
        back = fresh.get_tuple({"configurable": {**cfg["configurable"], "checkpoint_id": cid}})
        assert back is not None
        assert back.checkpoint["channel_values"]["messages"] == msgs
        assert [m.id for m in back.checkpoint["channel_values"]["messages"]] == [m.id for m in msgs]
        assert back.parent_config == parent
    fresh.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok
