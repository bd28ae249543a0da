"""What the Agents SDK session tests (``test_agents2*``) share: ``run`` (a coroutine to
its end), ``drive`` (steps of a conversation through the SDK's ``Runner`` on any
session), ``usage`` (a session's usage per turn and overall, from ``SrtSession`` or the
SDK's ``AdvancedSQLiteSession``), ``both`` (the same steps on each, usage compared) and
``joined`` (a thread of the test's waited for, within a bound).
Their ``server`` fixture (``srt.testing.ProviderServer``) is in ``conftest.py``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession
from openai import AsyncOpenAI

import srt
from rel_support import waits
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer

set_tracing_disabled(True)

__all__ = ["CALC", "REPLIES", "both", "converse", "drive", "joined", "run", "usage"]

#: How long a test waits for a thread of its own (a bound, not a timing).
JOIN_S = 120.0

CALC = {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "call_1"}]}
#: The replies of the conversation below, in order: main turn 1 (a tool call, then the
#: answer), main turn 2, the branch's turn 2, main turn 3.
REPLIES: list[Any] = [CALC, "the sum is 5", "you are welcome", "it was 5", "bye"]


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


async def converse(url: str, session: Any, fork: Any, switch: Any) -> None:
    """Two turns on main (the first with a tool call: two requests), a branch from turn
    2 with one turn of its own, then a third turn on main."""
    async with AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        agent = Agent(name="calc", tools=[add], model=OpenAIResponsesModel("gpt-4o-mini", client))
        for text in ("what is 2+3?", "thanks", "what was it again?", "goodbye"):
            if text == "what was it again?":
                await fork()
            if text == "goodbye":
                await switch("main")
            result = await Runner.run(agent, text, session=session)
            if isinstance(session, AdvancedSQLiteSession):
                await session.store_run_usage(result)


def joined(thread: threading.Thread, what: str) -> None:
    """Wait for ``thread`` (started ``daemon``, so one that hangs cannot hold the test
    process), at most ``JOIN_S``: still running then, the test fails naming ``what``."""
    waits.joined(thread, timeout=JOIN_S, what=what)


def run(coro: Any) -> Any:
    """``coro`` run to its end on a new event loop."""
    return asyncio.run(coro)


async def drive(url: str, session: Any, steps: list[Any]) -> None:
    """``steps`` on ``session``: a str is a ``Runner.run`` of that text (the SDK's session
    then stores the run's usage), ``"pop"`` a ``pop_item()``, ``"clear"`` a
    ``clear_session()``."""
    async with AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        agent = Agent(name="a", model=OpenAIResponsesModel("gpt-4o-mini", client))
        for step in steps:
            if step == "pop":
                await session.pop_item()
            elif step == "clear":
                await session.clear_session()
            else:
                result = await Runner.run(agent, step, session=session)
                if isinstance(session, AdvancedSQLiteSession):
                    await session.store_run_usage(result)


def usage(session: Any) -> tuple[list[tuple[int, int, int, int]], Any]:
    """(turn, requests, input tokens, output tokens) per turn of the current branch, and
    the session's usage, from either kind of session."""
    if isinstance(session, AdvancedSQLiteSession):
        turns = [
            (t["user_turn_number"], t["requests"], t["input_tokens"], t["output_tokens"])
            for t in run(session.get_turn_usage())
        ]
    else:
        turns = [
            (t["turn"], t["requests"], t["input_tokens"], t["output_tokens"])
            for t in run(session.turn_usage())
        ]
    return turns, run(session.get_session_usage())


def both(
    rt: srt.Runtime, server: ProviderServer, tmp_path: Path, replies: list[Any], steps: list[Any]
) -> tuple[Any, Any, SrtSession]:
    """``steps`` on an ``SrtSession`` in ``rt`` and on an ``AdvancedSQLiteSession``, the
    server giving each the same ``replies``: the usage of each, and the ``SrtSession``."""
    ours = SrtSession("s", rt)
    sdk = AdvancedSQLiteSession(session_id="s", db_path=tmp_path / "sdk.db", create_tables=True)
    server.script("responses", replies)
    run(drive(server.url, ours, steps))
    n = len(server.log)
    server.script("responses", replies)
    run(drive(server.url, sdk, steps))
    # Both sent the same histories and were billed the same.
    assert [r.usage for r in server.log[:n]] == [r.usage for r in server.log[n:]]
    got, expected = usage(ours), usage(sdk)
    sdk.close()
    return got, expected, ours
