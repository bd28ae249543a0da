"""The Agents SDK's ``Runner`` with a session for memory, as the SDK's own runner-level
session tests use it (``Runner.run``, ``run_sync`` and ``run_streamed``; memory across
runs, separate sessions, list input, ``session_input_callback``, ``RunConfig`` session
settings, a limit that would split a tool call from its output), each run against
``SrtSession`` and the SDK's ``SQLiteSession``, the model played by
``srt.testing.ProviderServer`` over the Responses API. What the model was sent is read
from the server's log of the requests."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    SQLiteSession,
    set_tracing_disabled,
)
from agents.memory import SessionSettings
from openai import AsyncOpenAI

import srt
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer

set_tracing_disabled(True)

METHODS = ["run", "run_sync", "run_streamed"]


@pytest.fixture(params=["srt", "sqlite"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as srv:
        yield srv
        assert srv.errors == []


@pytest.fixture
def session(kind: str, tmp_path: Path) -> Iterator[Callable[[str], Any]]:
    """Opens sessions of the parametrized kind on one file; closes them after the test."""
    opened: list[Any] = []

    def factory(session_id: str) -> Any:
        s: Any = (
            SrtSession(session_id, tmp_path / "srt.db")
            if kind == "srt"
            else SQLiteSession(session_id, tmp_path / "agents.db")
        )
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


def ask(method: str, url: str, prompt: Any, **kw: Any) -> Any:
    """One run of a plain agent by ``method``; a fresh client each time, since each run
    here has an event loop of its own."""

    def agent() -> tuple[Agent[Any], AsyncOpenAI]:
        client = AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        model = OpenAIResponsesModel("gpt-4o-mini", client)
        return Agent(name="test", instructions="be terse", model=model), client

    if method == "run_sync":
        # run_sync runs on the thread's default loop: a thread of its own with a new loop,
        # closed (client and async generators first) when the run is over.
        def in_thread() -> Any:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                a, client = agent()
                result = Runner.run_sync(a, prompt, **kw)
                loop.run_until_complete(client.close())
                loop.run_until_complete(loop.shutdown_asyncgens())
                return result
            finally:
                asyncio.set_event_loop(None)
                loop.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(in_thread).result()

    async def main() -> Any:
        a, client = agent()
        async with client:
            if method == "run":
                return await Runner.run(a, prompt, **kw)
            streamed = Runner.run_streamed(a, prompt, **kw)
            async for _event in streamed.stream_events():
                pass
            return streamed

    return asyncio.run(main())


def sent(server: ProviderServer) -> list[tuple[str, str]]:
    """What the last request gave the model, as (role or item type, text) pairs."""
    out = []
    for item in server.log[-1].body["input"]:
        content = item.get("content", item.get("output", item.get("arguments", "")))
        if isinstance(content, list):
            content = "".join(str(part.get("text", "")) for part in content)
        out.append((str(item.get("role", item.get("type"))), str(content)))
    return out


@pytest.mark.parametrize("method", METHODS)
def test_memory_across_runs_and_sessions(
    method: str, server: ProviderServer, session: Callable[[str], Any]
) -> None:
    one, two = session("one"), session("two")
    server.script("responses", ["San Francisco", "California", "I like dogs", "cats"])
    first = ask(method, server.url, "Where is the Golden Gate Bridge?", session=one)
    assert first.final_output == "San Francisco"
    second = ask(method, server.url, "Which state?", session=one)
    assert second.final_output == "California"
    assert sent(server) == [
        ("user", "Where is the Golden Gate Bridge?"),
        ("assistant", "San Francisco"),
        ("user", "Which state?"),
    ]
    # Another session starts empty and leaves the first alone.
    ask(method, server.url, "I like dogs", session=two)
    assert sent(server) == [("user", "I like dogs")]
    ask(method, server.url, "What did I say?", session=one)
    assert [t for _, t in sent(server)] == [
        "Where is the Golden Gate Bridge?",
        "San Francisco",
        "Which state?",
        "California",
        "What did I say?",
    ]
    assert len(asyncio.run(one.get_items())) == 6
    assert len(asyncio.run(two.get_items())) == 2


@pytest.mark.parametrize("method", METHODS)
def test_list_input_is_appended_to_history(
    method: str, server: ProviderServer, session: Callable[[str], Any]
) -> None:
    s = session("list")
    history = [
        {"role": "user", "content": "Earlier message"},
        {"role": "assistant", "content": "Saved reply"},
    ]
    asyncio.run(s.add_items(history))
    server.script("responses", ["ok"])
    ask(method, server.url, [{"role": "user", "content": "Test message"}], session=s)
    assert sent(server) == [
        ("user", "Earlier message"),
        ("assistant", "Saved reply"),
        ("user", "Test message"),
    ]
    items = asyncio.run(s.get_items())
    assert items[:3] == [*history, {"role": "user", "content": "Test message"}]
    assert len(items) == 4


@pytest.mark.parametrize("method", METHODS)
def test_session_input_callback(
    method: str, server: ProviderServer, session: Callable[[str], Any]
) -> None:
    s = session("callback")
    asyncio.run(
        s.add_items(
            [
                {"role": "user", "content": "Hello there."},
                {"role": "assistant", "content": "Hi, I'm here to assist you."},
            ]
        )
    )

    def users_only(history: list[Any], new: list[Any]) -> list[Any]:
        return [i for i in history if i.get("role") == "user"] + new

    server.script("responses", ["I'm a model"])
    ask(
        method,
        server.url,
        [{"role": "user", "content": "What is your name?"}],
        session=s,
        run_config=RunConfig(session_input_callback=users_only),
    )
    assert sent(server) == [("user", "Hello there."), ("user", "What is your name?")]


@pytest.mark.parametrize("method", METHODS)
def test_a_callback_repeating_history_does_not_grow_the_session(
    method: str, server: ProviderServer, session: Callable[[str], Any]
) -> None:
    s = session("repeat")

    def repeat_first(history: list[Any], new: list[Any]) -> list[Any]:
        return [*history, history[0], *new] if history else new

    server.script("responses", [f"assistant {i}" for i in range(3)])
    for i in range(3):
        ask(
            method,
            server.url,
            f"user {i}",
            session=s,
            run_config=RunConfig(session_input_callback=repeat_first),
        )
    stored = asyncio.run(s.get_items())
    assert [i["content"] for i in stored if i.get("role") == "user"] == [
        "user 0",
        "user 1",
        "user 2",
    ]
    assert len(stored) == 6


@pytest.mark.parametrize("method", METHODS)
def test_run_config_settings_override_the_sessions(
    method: str, server: ProviderServer, kind: str, tmp_path: Path
) -> None:
    settings = SessionSettings(limit=100)
    s: Any = (
        SrtSession("override", tmp_path / "srt.db", session_settings=settings)
        if kind == "srt"
        else SQLiteSession("override", tmp_path / "agents.db", session_settings=settings)
    )
    asyncio.run(s.add_items([{"role": "user", "content": f"Turn {i}"} for i in range(10)]))
    server.script("responses", ["Got it"])
    ask(
        method,
        server.url,
        "New question",
        session=s,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )
    assert sent(server) == [("user", "Turn 8"), ("user", "Turn 9"), ("user", "New question")]
    s.close()


@pytest.mark.parametrize("method", METHODS)
def test_a_limit_never_sends_a_tool_output_without_its_call(
    method: str, server: ProviderServer, session: Callable[[str], Any]
) -> None:
    s = session("pair")
    history = [
        {"role": "user", "content": "What is the weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}],
        },
    ]
    asyncio.run(s.add_items(history))
    assert asyncio.run(s.get_items(limit=2)) == history[-2:]
    server.script("responses", ["Sunny tomorrow too."])
    ask(
        method,
        server.url,
        "And tomorrow?",
        session=s,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )
    assert sent(server) == [("assistant", "It is sunny."), ("user", "And tomorrow?")]


@pytest.mark.parametrize("method", METHODS)
def test_usage_reaches_the_ledger(method: str, server: ProviderServer, tmp_path: Path) -> None:
    """Every runner method hands ``SrtSession`` its run context: the ledger has each
    request, with the server's token counts, against the turn it answered."""
    s = SrtSession("usage", tmp_path / "u.db")
    server.script("responses", ["one", "two"])
    ask(method, server.url, "first", session=s)
    ask(method, server.url, "second", session=s)
    turns = asyncio.run(s.turn_usage())
    assert [t["requests"] for t in turns] == [1, 1]
    assert [t["input_tokens"] for t in turns] == [r.prompt_tokens for r in server.log]
    s.close()


def test_the_sdks_reasoning_tokens_reach_the_ledger(server: ProviderServer, tmp_path: Path) -> None:
    s = SrtSession("thinking", tmp_path / "r.db")
    server.script("responses", [{"text": "thought it through", "reasoning_tokens": 31}])
    ask(METHODS[0], server.url, "think", session=s)
    s.close()
    with srt.Runtime(str(tmp_path / "r.db")) as rt:
        (row,) = rt.calls()
    assert row["reasoning_tokens"] == 31 and row["output_tokens"] > 31
