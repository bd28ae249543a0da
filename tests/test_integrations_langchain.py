"""``srt.integrations.langchain.SrtChatMessageHistory``: every message type round-trips
exactly (through the file, in a new process's view), shared text is stored once, and
LangChain's ``RunnableWithMessageHistory`` runs on it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import (
    GenericFakeChatModel,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

import srt
from srt.integrations.langchain import SrtChatMessageHistory

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAAB"
    "JRU5ErkJggg=="
)


def every_type() -> list[BaseMessage]:
    return [
        SystemMessage("You are terse.", id="sys-1"),
        HumanMessage("What is on this picture, and what is 2+3?", name="alice"),
        HumanMessage(
            content=[
                {"type": "text", "text": "here:"},
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
                },
                {"type": "image", "base64": PNG, "mime_type": "image/png"},
                {"type": "image", "url": "https://example.com/cat.png"},
            ],
            id="h-2",
        ),
        AIMessage(
            content="",
            tool_calls=[
                {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1"},
                {"name": "describe", "args": {"image": 0}, "id": "call_2"},
            ],
            id="run-1",
            response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
            usage_metadata={"input_tokens": 31, "output_tokens": 12, "total_tokens": 43},
            additional_kwargs={"refusal": None},
        ),
        ToolMessage("5", tool_call_id="call_1", id="t-1"),
        ToolMessage(
            "no such image", tool_call_id="call_2", status="error", artifact={"tried": [0]}
        ),
        AIMessage(
            content=[{"type": "text", "text": "It is a pixel; 2+3 is 5.", "index": 0}],
            id="run-2",
        ),
        AIMessageChunk(content="streamed", id="run-3"),
        ChatMessage(role="critic", content="too long"),
        ChatMessage(role="developer", content="answer in French"),
        FunctionMessage(name="legacy", content="{}"),
    ]


def test_every_message_type_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "lc.db"
    messages = every_type()
    h = SrtChatMessageHistory("chat", path)
    h.add_messages(messages[:3])
    for m in messages[3:]:
        h.add_message(m)
    assert h.messages == messages
    assert [type(m) for m in h.messages] == [type(m) for m in messages]
    h.close()
    again = SrtChatMessageHistory("chat", path)  # a fresh runtime reads the file
    assert again.messages == messages
    # srt sees an ordinary chat: what a model would be sent.
    with srt.Runtime(path) as rt:
        canonical = rt.session("chat").messages()
    assert [m["role"] for m in canonical] == [
        "system",
        "user",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "assistant",
        "user",
        "developer",
        "tool",
    ]
    assert canonical[2]["content"][2] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG}"},
    }
    assert json.loads(canonical[3]["tool_calls"][0]["function"]["arguments"]) == {"a": 2, "b": 3}
    again.clear()
    assert again.messages == []
    again.close()


def test_async_methods(tmp_path: Path) -> None:
    h = SrtChatMessageHistory("async", tmp_path / "a.db")

    async def main() -> list[BaseMessage]:
        await h.aadd_messages([HumanMessage("hi"), AIMessage("hello", id="r")])
        return await h.aget_messages()

    assert asyncio.run(main()) == [HumanMessage("hi"), AIMessage("hello", id="r")]
    asyncio.run(h.aclear())
    assert h.messages == []
    h.close()


def test_same_text_is_stored_once_and_ids_stay_apart(tmp_path: Path) -> None:
    with srt.Runtime(tmp_path / "s.db") as rt:
        a, b = SrtChatMessageHistory("a", rt), SrtChatMessageHistory("b", rt)
        a.add_messages([SystemMessage("long prompt " * 200), HumanMessage("hi", id="a1")])
        b.add_messages([SystemMessage("long prompt " * 200), HumanMessage("hi", id="b1")])
        assert a.messages[1].id == "a1" and b.messages[1].id == "b1"
        assert rt.session("a").head == rt.session("b").head  # the same nodes


def test_two_histories_adding_at_once_keep_their_ids(tmp_path: Path) -> None:
    """A message's patch is written with it in one transaction (two handles on one
    history adding at once), and ``clear`` leaves no patch for the next messages."""
    path = tmp_path / "c.db"
    one, two = SrtChatMessageHistory("same", path), SrtChatMessageHistory("same", path)

    def add(h: SrtChatMessageHistory, tag: str) -> None:
        for i in range(25):
            h.add_messages([HumanMessage(f"{tag}{i}"), AIMessage(f"{tag}{i}", id=f"{tag}-{i}")])

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(add, (one, two), ("x", "y")))
    got = SrtChatMessageHistory("same", path).messages
    pairs = sorted((got[j].content, got[j + 1].id) for j in range(0, len(got), 2))
    assert pairs == sorted((f"{t}{i}", f"{t}-{i}") for t in "xy" for i in range(25))
    one.clear()
    two.add_messages([HumanMessage("x0"), AIMessage("x0")])
    assert one.messages == [HumanMessage("x0"), AIMessage("x0")]
    one.close()
    two.close()


def test_the_redaction_hook_covers_whole_messages(tmp_path: Path) -> None:
    secret = "sk-live-0123456789abcdef"
    path = tmp_path / "r.db"
    with srt.Runtime(path, redact=lambda t: t.replace(secret, "[key]")) as rt:
        h = SrtChatMessageHistory("r", rt)
        h.add_messages(
            [
                HumanMessage(f"my key is {secret}", id="h1"),
                AIMessage("noted", id="a1", response_metadata={"echo": secret}),
            ]
        )
        got = h.messages
        assert got[0] == HumanMessage("my key is [key]", id="h1")
        assert got[1].response_metadata == {"echo": "[key]"} and got[1].id == "a1"
    for name in os.listdir(tmp_path):
        assert secret.encode() not in (tmp_path / name).read_bytes()


def test_bad_messages_write_nothing(tmp_path: Path) -> None:
    h = SrtChatMessageHistory("bad", tmp_path / "b.db")
    h.add_message(HumanMessage("ok"))
    bad: list[Any] = [
        [HumanMessage("fine"), "not a message"],
        [HumanMessage("\ud800")],
        [HumanMessage("x", additional_kwargs={"blob": object()})],
    ]
    for batch in bad:
        with pytest.raises(srt.InvalidMessageError):
            h.add_messages(batch)
    assert h.messages == [HumanMessage("ok")]
    h.close()


def test_a_chain_keeps_its_history_here(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    model = GenericFakeChatModel(messages=iter([AIMessage("first"), AIMessage("second")]))
    chain = (
        ChatPromptTemplate.from_messages(
            [("system", "be terse"), MessagesPlaceholder("history"), ("human", "{question}")]
        )
        | model
    )
    for question in ("one", "two"):
        history = SrtChatMessageHistory("user-1", path)  # a new handle each turn
        reply = chain.invoke({"history": history.messages, "question": question})
        history.add_messages([HumanMessage(question), reply])
        history.close()
    history = SrtChatMessageHistory("user-1", path)
    got = [(type(m).__name__, m.content) for m in history.messages]
    assert got == [
        ("HumanMessage", "one"),
        ("AIMessage", "first"),
        ("HumanMessage", "two"),
        ("AIMessage", "second"),
    ]
    assert history.messages[1].id is not None  # the model's run id came back too
    history.close()
