"""``SrtSaver`` attacked: bad configs, checkpoints and arguments are ``ConfigError``s, a
value that cannot be stored is an ``InvalidMessageError``, and a refused write leaves
nothing behind (read back from the store after each)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from langgraph.graph import START, MessagesState, StateGraph

import srt
from srt.errors import ConfigError, InvalidMessageError
from srt.integrations.langgraph import SrtSaver


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the LangGraph saver --------------------------------------------------------------------


def _checkpoint(values: dict[str, Any], version: int = 1) -> Any:
    c = empty_checkpoint()
    c["channel_values"] = values
    c["channel_versions"] = dict.fromkeys(values, version)
    return c


def _cfg(thread: Any = "t", **more: Any) -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": "", **more}}


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({}, "'configurable' dict"),
        ({"configurable": "t"}, "'configurable' dict"),
        ({"configurable": {}}, "thread_id"),
        ({"configurable": {"thread_id": None}}, "thread_id"),
        ({"configurable": {"thread_id": 1.5}}, "thread_id must be"),
        ({"configurable": {"thread_id": "\ud83d"}}, "lone surrogate"),
        ({"configurable": {"thread_id": "t", "checkpoint_ns": 3}}, "checkpoint_ns must be"),
        ({"configurable": {"thread_id": "t", "checkpoint_ns": "\ud83d"}}, "lone surrogate"),
        ({"configurable": {"thread_id": "t", "checkpoint_id": 5}}, "checkpoint_id must be"),
        ({"configurable": {"thread_id": "a\x1fb"}}, "U\\+001F"),
        ({"configurable": {"thread_id": "a", "checkpoint_ns": "b\x1f"}}, "U\\+001F"),
    ],
)
def test_bad_configs_are_config_errors(tmp_path: Path, config: Any, match: str) -> None:
    saver = SrtSaver(tmp_path / "g.db")
    with pytest.raises(ConfigError, match=match):
        saver.put(config, _checkpoint({"a": 1}), {}, {})
    with pytest.raises(ConfigError, match=match):
        saver.get_tuple(config)
    with pytest.raises(ConfigError, match=match):
        list(saver.list(config))
    with pytest.raises(ConfigError, match=match):
        run(saver.aput(config, _checkpoint({"a": 1}), {}, {}))
    assert list(saver.list(None)) == []
    saver.close()
    with srt.Runtime(tmp_path / "g.db") as rt:
        assert rt.store.list_sessions() == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.put(_cfg(), 5, {}, {}), "checkpoint must be a dict"),
        (lambda s: s.put(_cfg(), {"id": "x"}, {}, {}), "channel_values"),
        (lambda s: s.put(_cfg(), {**_checkpoint({}), "id": None}, {}, {}), "id must be a str"),
        (lambda s: s.put(_cfg(), _checkpoint({"a": 1}), None, {}), "metadata must be a dict"),
        (lambda s: s.put_writes(_cfg(checkpoint_id="x"), [5], "task"), r"\(channel, value\) pair"),
        (lambda s: s.put_writes(_cfg(checkpoint_id="x"), "ab", "task"), "writes must be a list"),
        (lambda s: s.put_writes(_cfg(checkpoint_id="x"), [], None), "str task_id"),
        (lambda s: list(s.list(_cfg(), limit="2")), "limit must be an int"),
        (lambda s: list(s.list(_cfg(), before={})), "before must be a dict"),
        (lambda s: s.prune("t"), "list of thread ids"),
        (lambda s: s.delete_for_runs("run"), "list of run ids"),
        (lambda s: s.delete_thread(None), "thread_id must be"),
    ],
)
def test_bad_arguments_are_config_errors(tmp_path: Path, call: Any, match: str) -> None:
    saver = SrtSaver(tmp_path / "g.db")
    first = saver.put(_cfg(), _checkpoint({"a": 1}), {}, {})
    with pytest.raises(ConfigError, match=match):
        call(saver)
    back = saver.get_tuple(_cfg())
    assert back is not None and back.config == first
    assert len(list(saver.list(None))) == 1
    saver.close()


def test_a_refused_put_takes_back_what_it_wrote(tmp_path: Path) -> None:
    """A value the serializer cannot store is an ``InvalidMessageError``, raised after
    the new messages went into the store: the thread's session goes back to where it
    was, the saver does not think their ids stored, and a new thread is not left."""
    db = tmp_path / "g.db"
    saver = SrtSaver(db)
    hello = HumanMessage("hello", id="h1")
    one = saver.put(_cfg(), _checkpoint({"messages": [hello]}), {}, {})
    reply = AIMessage("hi there", id="a1")
    two = _checkpoint({"messages": [hello, reply]}, 2)
    with pytest.raises(InvalidMessageError, match="cannot be stored"):
        saver.put(one, two, {"step": object()}, {"messages": 2})
    with pytest.raises(InvalidMessageError, match="cannot be stored"):
        saver.put(_cfg("fresh"), _checkpoint({"messages": [reply], "x": object()}), {}, {})
    with srt.Runtime(db) as rt:
        assert [m["content"] for m in rt.session("langgraph/t").messages()] == ["hello"]
        assert "langgraph/fresh" not in [s.name for s in rt.store.list_sessions()]
    latest = saver.get_tuple(_cfg())
    assert latest is not None and latest.config == one
    assert [t.config["configurable"]["thread_id"] for t in saver.list(None)] == ["t"]
    # The same objects again, stored this time: the reply keeps its id, in this saver
    # and in a new one reading the file.
    stored = saver.put(one, two, {"step": 2}, {"messages": 2})
    for s in (saver, SrtSaver(db)):
        back = s.get_tuple(stored)
        assert back is not None
        assert back.checkpoint["channel_values"]["messages"] == [hello, reply]
        assert [m.id for m in back.checkpoint["channel_values"]["messages"]] == ["h1", "a1"]
        s.close()


def test_a_refused_write_takes_back_what_it_wrote(tmp_path: Path) -> None:
    saver = SrtSaver(tmp_path / "g.db")
    one = saver.put(_cfg(), _checkpoint({"messages": [HumanMessage("q", id="q")]}), {}, {})
    with pytest.raises(InvalidMessageError, match="cannot be stored"):
        saver.put_writes(one, [("messages", [AIMessage("a", id="a")]), ("x", object())], "task")
    back = saver.get_tuple(one)
    assert back is not None and back.pending_writes == []
    saver.put_writes(one, [("messages", [AIMessage("a", id="a")])], "task")
    back = saver.get_tuple(one)
    assert back is not None
    assert back.pending_writes == [("task", "messages", [AIMessage("a", id="a")])]
    saver.close()


# -- two savers on one thread (two processes, or two runtimes of one) --------------------


def _step(msgs: list[Any], i: int) -> Any:
    c = create_checkpoint(empty_checkpoint(), None, i)
    c["channel_values"] = {"messages": list(msgs), "step": i}
    c["channel_versions"] = {"messages": i + 1, "step": i + 1}
    return c


def test_writes_from_two_savers_to_one_checkpoint_are_all_kept(tmp_path: Path) -> None:
    """Each saver had read the checkpoint before the other added its task's writes: the
    second wrote the record back without the first's writes."""
    db = tmp_path / "g.db"
    one, two = SrtSaver(db), SrtSaver(db)
    cp = one.put(_cfg(), _step([HumanMessage("q", id="q")], 0), {}, {"messages": 1, "step": 1})
    assert two.get_tuple(cp) is not None
    two.put_writes(cp, [("a", 1)], "task-x")
    one.put_writes(cp, [("b", 2)], "task-y")
    want = [("task-x", "a", 1), ("task-y", "b", 2)]
    for saver in (one, two, SrtSaver(db)):
        back = saver.get_tuple(cp)
        assert back is not None and sorted(back.pending_writes or []) == want
        saver.close()


def test_a_saver_that_read_a_thread_earlier_leaves_it_readable(tmp_path: Path) -> None:
    """A saver writes to a checkpoint another saver has built children on since it read
    the thread: the children, packed against the checkpoint's record, must be packed
    again (they were not, and no checkpoint of the thread could be read any more)."""
    db = tmp_path / "g.db"
    writer, other = SrtSaver(db), SrtSaver(db)
    msgs = [HumanMessage("q0", id="q0")]
    first = writer.put(_cfg(), _step(msgs, 0), {"step": 0}, {"messages": 1, "step": 1})
    assert other.get_tuple(_cfg()) is not None  # (reads the thread: one checkpoint)
    configs, parent = [first], first
    for i in range(1, 5):
        msgs = [*msgs, HumanMessage(f"q{i}", id=f"q{i}")]
        parent = writer.put(parent, _step(msgs, i), {"step": i}, {"messages": i + 1, "step": i + 1})
        configs.append(parent)
    other.put_writes(first, [("x", "from the other saver")], "task")
    fresh = SrtSaver(db)
    for i, cfg in enumerate(configs):
        back = fresh.get_tuple(cfg)
        assert back is not None and back.checkpoint["channel_values"]["step"] == i
        assert [m.id for m in back.checkpoint["channel_values"]["messages"]] == [
            f"q{j}" for j in range(i + 1)
        ]
    for saver in (writer, other, fresh):
        saver.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok


def test_a_thread_another_saver_deleted_is_gone_and_can_be_written_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "g.db"
    one, two = SrtSaver(db), SrtSaver(db)
    cp = one.put(_cfg(), _step([HumanMessage("q")], 0), {}, {"messages": 1, "step": 1})
    two.delete_thread("t")
    assert one.get_tuple(cp) is None and list(one.list(_cfg())) == []
    again = one.put(_cfg(), _step([HumanMessage("anew")], 0), {}, {"messages": 1, "step": 1})
    back = two.get_tuple(_cfg())
    assert back is not None and back.config == again
    assert back.checkpoint["channel_values"]["messages"] == [HumanMessage("anew")]
    one.close()
    two.close()


def test_the_redaction_hook_covers_checkpoint_metadata(tmp_path: Path) -> None:
    """LangGraph copies the config's configurable strings into each checkpoint's metadata
    (an API key passed that way too): with ``Runtime(redact=...)`` it is scrubbed there
    as in the messages."""
    db = tmp_path / "g.db"

    def hide(text: str) -> str:
        return text.replace("sk-live-1234", "[key]")

    graph = StateGraph(MessagesState)
    graph.add_node("echo", lambda s: {"messages": [AIMessage("hi")]})
    graph.add_edge(START, "echo")
    with srt.Runtime(db, redact=hide) as rt:
        saver = SrtSaver(rt)
        app = graph.compile(checkpointer=saver)
        cfg = {"configurable": {"thread_id": "1", "api_key": "sk-live-1234"}}
        app.invoke({"messages": [HumanMessage("my key is sk-live-1234")]}, cfg)
        latest = saver.get_tuple({"configurable": {"thread_id": "1"}})
        assert latest is not None and latest.metadata["api_key"] == "[key]"
        saver.close()
    assert all(b"sk-live-1234" not in p.read_bytes() for p in tmp_path.glob("g.db*"))
