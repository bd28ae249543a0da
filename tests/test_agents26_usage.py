"""``SrtCompactionSession``: the Agents SDK's compaction session over ``SrtSession`` with
every request of a run in srt's usage ledger, the ``responses.compact`` request too,
each exactly once and with the server's token counts (``srt.testing.ProviderServer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    Runner,
    SQLiteSession,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

import srt
from agents_support import run
from srt.integrations.agents import SrtCompactionSession, SrtSession
from srt.testing import ProviderServer
from support import agents_turns

set_tracing_disabled(True)


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _billed(server: ProviderServer) -> list[tuple[str, int, int]]:
    """(endpoint, input tokens, output tokens) of each request the server answered."""
    out = []
    for r in server.log:
        assert r.usage is not None
        out.append((r.endpoint, r.usage["input_tokens"], r.usage["output_tokens"]))
    return out


def test_a_compacting_run_puts_every_request_in_the_ledger_once(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.script(
        "responses",
        ["one", {"tool_calls": [{"name": "weather", "arguments": '{"city": "Oslo"}'}]}, "two"],
    )

    async def go(rt: srt.Runtime) -> tuple[SrtSession, list[Any], list[Any]]:
        under = SrtSession("c", rt, model="gpt-4o-mini")
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="k") as client:
            session = SrtCompactionSession(
                "c",
                under,
                client=client,
                should_trigger_compaction=lambda ctx: len(ctx["session_items"]) >= 4,
            )
            agent = Agent(
                name="h", model=OpenAIResponsesModel("gpt-4o-mini", client), tools=[weather]
            )
            entries: list[Any] = []
            for question in ("q1", "q2"):  # q2 asks for a tool, then answers: compacts
                result = await Runner.run(agent, question, session=session)
                entries += result.context_wrapper.usage.request_usage_entries
            return under, entries, await session.get_items()

    with srt.Runtime(tmp_path / "c.db") as rt:
        under, entries, compacted = run(go(rt))
        billed = _billed(server)
        # Three model requests and one compaction, the last.
        assert [b[0] for b in billed] == ["openai.responses"] * 3 + ["openai.compact"]
        assert compacted[-1]["type"] == "compaction"
        rows = rt.calls(session_name="c")
        # Each request once, in order, with the server's counts and the SDK's.
        assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [b[1:] for b in billed]
        assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [
            (e.input_tokens, e.output_tokens) for e in entries
        ]
        assert [r["model"] for r in rows] == ["gpt-4o-mini"] * 3 + ["gpt-4.1"]
        # The compaction is against the compacted history's newest item: the last turn's.
        head = rt.store.get_session("c").head
        assert rows[-1]["node"] == head
        turns = run(under.turn_usage())
        assert turns[-1]["requests"] == 1 and turns[-1]["input_tokens"] == billed[-1][1]
        assert sum(t["requests"] for t in turns) == 1  # (the others' items were compacted)


def test_a_manual_compaction_is_in_the_ledger(server: ProviderServer, tmp_path: Path) -> None:
    async def go(rt: srt.Runtime) -> None:
        under = SrtSession("m", rt)
        await under.add_items(agents_turns(3))
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="k") as client:
            session = SrtCompactionSession("m", under, client=client, model="gpt-4.1-mini")
            await session.run_compaction({"force": True})
            await session.run_compaction()  # (3 items: the default hook declines)

    with srt.Runtime(tmp_path / "m.db") as rt:
        run(go(rt))
        (billed,) = _billed(server)
        (row,) = rt.calls(session_name="m")
        assert (row["input_tokens"], row["output_tokens"]) == billed[1:]
        assert row["model"] == "gpt-4.1-mini" and row["node"] == rt.store.get_session("m").head


def test_the_compaction_session_needs_an_srt_session(tmp_path: Path) -> None:
    with pytest.raises(srt.ConfigError, match="SrtSession"):
        SrtCompactionSession("x", SQLiteSession("x", str(tmp_path / "x.db")))
