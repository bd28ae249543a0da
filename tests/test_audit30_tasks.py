"""audit30: ``Session.run`` refuses two tools of one name whichever order they come in
(a function and a definition dict of the same name), before anything is sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer
from task_support import make, server


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s
        assert s.errors == []


def weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny"


DEFINITION = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
}
FLAT = {"type": "function", "name": "weather", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    "tools",
    [
        [weather, DEFINITION],
        [DEFINITION, weather],
        [weather, FLAT],
        [DEFINITION, FLAT],
    ],
    ids=["function-then-dict", "dict-then-function", "function-then-flat", "dict-then-dict"],
)
def test_two_tools_of_one_name_are_refused_before_a_send(
    rt: srt.Runtime, srv: ProviderServer, tools: list[Any]
) -> None:
    p = make("openai", srv.url)
    s = rt.session("dup")
    s.append({"role": "user", "content": "Weather in Paris?"})
    srv.script("openai.chat", ["Sunny."])
    n = len(s)
    try:
        for call in (s.run, s.run_stream):
            with pytest.raises(srt.ConfigError, match="two tools are called 'weather'"):
                result = call(p, model="gpt-4o", tools=tools)
                for _ in result if call is s.run_stream else ():
                    pass
    finally:
        p.close()
    assert len(s) == n and s.calls() == []


def _two_calls(srv: ProviderServer) -> None:
    calls = [{"id": f"call_{n}", "name": "act", "arguments": {"n": n}} for n in (1, 2)]
    srv.script("openai.chat", [{"tool_calls": calls}, "Done."])


def test_a_stream_left_at_a_tool_call_saves_the_results_of_calls_it_started(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    """A consumer that leaves ``run_stream`` at the second ``tool_call`` event (the first
    call already running in its thread): the first call's result is saved, so the next
    run neither reports it interrupted nor runs it again."""
    ran: list[int] = []
    lock = threading.Lock()

    def act(n: int) -> str:
        """Do something that is not idempotent."""
        with lock:
            ran.append(n)
        return f"did {n}"

    p = make("openai", srv.url)
    s = rt.session("left")
    s.append({"role": "user", "content": "Do both."})
    _two_calls(srv)
    try:
        stream = s.run_stream(p, model="gpt-4o", tools=[act])
        for event in stream:
            if event.kind == "tool_call" and event.call is not None and event.call.id == "call_2":
                break
        stream.close()
        results = {m["tool_call_id"]: m["content"] for m in s.messages() if m["role"] == "tool"}
        assert results == {"call_1": "did 1"}
        again = s.run(p, model="gpt-4o", tools=[act])
    finally:
        p.close()
    assert again.stopped == "done" and again.text == "Done."
    assert [(r.call.id, r.status) for r in again.tool_runs] == [("call_2", "ok")]
    assert sorted(ran) == [1, 2]


def test_an_async_stream_left_at_a_tool_call_saves_the_results_of_calls_it_started(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    """The asyncio twin: the async tool started before the consumer left is not left
    running detached with its result unsaved."""
    ran: list[int] = []

    async def act(n: int) -> str:
        """Do something that is not idempotent."""
        ran.append(n)
        return f"did {n}"

    p = make("openai", srv.url)
    s = rt.session("left-async")
    s.append({"role": "user", "content": "Do both."})
    _two_calls(srv)

    async def leave() -> None:
        stream = s.arun_stream(p, model="gpt-4o", tools=[act], concurrency=1)
        async for event in stream:
            if event.kind == "tool_call" and event.call is not None and event.call.id == "call_2":
                break
        await stream.aclose()

    try:
        asyncio.run(asyncio.wait_for(leave(), 60))
        statuses = {
            m["tool_call_id"]: m.get("is_error", False) for m in s.messages() if m["role"] == "tool"
        }
        again = asyncio.run(asyncio.wait_for(s.arun(p, model="gpt-4o", tools=[act]), 60))
    finally:
        p.close()
    assert again.stopped == "done" and again.text == "Done."
    # The first call finished before the stream ended (its result saved), or was cancelled
    # before it started (the next run runs it): no ConflictError, each call run once.
    assert ran.count(1) == 1 and ran.count(2) == 1, ran
    runs = {r.call.id: r.status for r in again.tool_runs}
    assert runs.get("call_2") == "ok"
    assert ("call_1" in statuses) != ("call_1" in runs), (statuses, runs)
    assert statuses.get("call_1", False) is False and runs.get("call_1", "ok") == "ok"


def test_an_async_stream_left_while_a_tool_runs_can_be_run_again_in_this_process(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    """Leaving ``arun_stream`` while an async tool runs cancels it (its call stays started),
    and the next run in the same process reports it interrupted, not ``ConflictError``
    ("running in this process"): the run releases its calls after its tools are settled.
    (A regression guard beside the two above; this case already held.)"""
    ran: list[int] = []

    p = make("openai", srv.url)
    s = rt.session("left-running")
    s.append({"role": "user", "content": "Do both."})
    _two_calls(srv)

    async def leave() -> None:
        started = asyncio.Event()

        async def act(n: int) -> str:
            """Do something that is not idempotent."""
            ran.append(n)
            if n == 1:
                started.set()
                await asyncio.sleep(60)  # cancelled when the consumer leaves
            return f"did {n}"

        stream = s.arun_stream(p, model="gpt-4o", tools=[act])
        async for event in stream:
            if event.kind == "tool_call" and event.call is not None and event.call.id == "call_2":
                await asyncio.wait_for(started.wait(), 30)
                break
        await stream.aclose()

    async def act_again(n: int) -> str:
        """Do something that is not idempotent."""
        ran.append(n)
        return f"did {n}"

    act_again.__name__ = "act"
    try:
        asyncio.run(asyncio.wait_for(leave(), 60))
        again = asyncio.run(asyncio.wait_for(s.arun(p, model="gpt-4o", tools=[act_again]), 60))
    finally:
        p.close()
    assert again.stopped == "done" and again.text == "Done."
    runs = {r.call.id: r.status for r in again.tool_runs}
    assert runs.get("call_1") == "interrupted", runs
    assert ran.count(1) == 1, ran
