"""Usage under the SDK's own ``OpenAIResponsesCompactionSession``: it gives the session
under it no run context, so ``SrtSession`` cannot see the run's requests (the SDK calls
no hook with them either); ``store_run_usage(result)``, ``AdvancedSQLiteSession``'s way,
writes them after the run, each once (``SrtCompactionSession`` needs no call)."""

from __future__ import annotations

from pathlib import Path

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from agents.memory import OpenAIResponsesCompactionSession
from openai import AsyncOpenAI

import srt
from agents_support import run
from srt.errors import ConfigError
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer

set_tracing_disabled(True)


def test_store_run_usage_writes_a_compacting_runs_requests_once(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.script("responses", ["one"])

    async def go(rt: srt.Runtime) -> None:
        under = SrtSession("u", rt, model="gpt-4o-mini")
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="k") as client:
            session = OpenAIResponsesCompactionSession(
                "u", under, client=client, should_trigger_compaction=lambda ctx: True
            )
            agent = Agent(name="h", model=OpenAIResponsesModel("gpt-4o-mini", client))
            result = await Runner.run(agent, "q1", session=session)
        assert server.requests["openai.compact"] == 1
        assert rt.store.calls(session_name="u") == []  # (the SDK passed no run context)
        await under.store_run_usage(result)
        await under.store_run_usage(result)  # (written once)
        rows = rt.store.calls(session_name="u")
        billed = [(r.usage["input_tokens"], r.usage["output_tokens"]) for r in server.log]
        assert [(c.input_tokens, c.output_tokens) for c in rows] == billed
        assert len(rows) == 2
        assert [t["requests"] for t in await under.turn_usage()] == [2]
        with pytest.raises(ConfigError, match="Runner result"):
            await under.store_run_usage("not a result")

    with srt.Runtime(tmp_path / "u.db") as rt:
        run(go(rt))
