"""The OpenAI Agents SDK against the gateway: ``previous_response_id`` and a conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool
from agents.memory import OpenAIConversationsSession

from gateway_support import Harness, harness


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    with harness(db_path, monkeypatch) as h:
        yield h


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _agent(client: openai.AsyncOpenAI, model: str) -> Agent:
    return Agent(
        name="helper",
        instructions="You answer briefly.",
        model=OpenAIResponsesModel(model, client),
        tools=[get_weather],
    )


def test_agent_with_previous_response_id_and_a_tool(gw: Harness) -> None:
    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=gw.url, api_key="sk-any", max_retries=0)
        try:
            agent = _agent(client, "claude-sonnet-4-5")
            gw.srv.script(
                "*", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}]
            )
            cfg = RunConfig(tracing_disabled=True)
            first = await Runner.run(agent, "Weather in Oslo?", run_config=cfg)
            assert first.final_output.startswith("reply")
            tool_result = gw.srv.log[-1].body["messages"][-1]
            assert tool_result["content"][0]["type"] == "tool_result"
            assert tool_result["content"][0]["content"] == "sunny in Oslo"
            second = await Runner.run(
                agent, "And tomorrow?", previous_response_id=first.last_response_id, run_config=cfg
            )
            assert second.final_output.startswith("reply")
            sent = gw.srv.log[-1].body
            # the client sent only the new input; the gateway sent the whole history
            assert len(sent["messages"]) == 5 and sent["system"][0]["text"] == "You answer briefly."
        finally:
            await client.close()

    asyncio.run(run())


def test_agent_with_a_conversations_session(gw: Harness) -> None:
    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=gw.url, api_key="sk-any", max_retries=0)
        try:
            session = OpenAIConversationsSession(openai_client=client)
            agent = _agent(client, "gpt-4o-mini")
            cfg = RunConfig(tracing_disabled=True)
            await Runner.run(agent, "first question", session=session, run_config=cfg)
            await Runner.run(agent, "second question", session=session, run_config=cfg)
            items = await session.get_items()
            texts = [
                i["content"] if isinstance(i["content"], str) else i["content"][0]["text"]
                for i in items
                if i.get("type", "message") == "message"
            ]
            assert "first question" in texts[0] and "second question" in texts[2]
            assert len(items) == 4
            popped = await session.pop_item()
            assert popped is not None and len(await session.get_items()) == 3
            await session.clear_session()
        finally:
            await client.close()

    asyncio.run(run())
