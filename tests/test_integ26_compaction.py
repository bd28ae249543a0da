"""The Agents SDK's ``OpenAIResponsesCompactionSession`` over ``SrtSession``, against
``srt.testing``'s ``/v1/responses/compact``: the endpoint speaks the protocol (the openai
SDK's own types read it); compacting one branch leaves the other branches and the forks
as they were; a crash in the middle of the replacement leaves the old history, not an
empty session; a cancelled compaction changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from agents.memory import OpenAIResponsesCompactionSession
from openai import AsyncOpenAI
from openai.types.responses import ResponseCompactionItem, ResponseUsage

import srt
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer
from support import agents_turns

set_tracing_disabled(True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def server() -> Any:
    with ProviderServer() as srv:
        yield srv


def test_the_compact_endpoint_speaks_the_protocol(server: ProviderServer) -> None:
    async def go() -> None:
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="k") as client:
            history = agents_turns(2)
            got = await client.responses.compact(model="gpt-4.1", input=history)
            assert got.object == "response.compaction" and got.id
            users = [o.model_dump(exclude_unset=True, warnings=False) for o in got.output[:-1]]
            assert [u["role"] for u in users] == ["user", "user"]
            assert [u["content"] for u in users] == [
                [{"type": "input_text", "text": "question 0"}],
                [{"type": "input_text", "text": "question 1"}],
            ]
            last = ResponseCompactionItem.model_validate(got.output[-1].model_dump())
            assert last.type == "compaction" and last.encrypted_content
            usage = ResponseUsage.model_validate(got.usage.model_dump())
            assert usage.input_tokens > 0 and usage.total_tokens == (
                usage.input_tokens + usage.output_tokens
            )
            # The compacted items are input a later response takes, with a new question.
            again = [o.model_dump(exclude_unset=True, warnings=False) for o in got.output]
            more = [*again, {"role": "user", "content": "more"}]
            first = await client.responses.create(model="gpt-4.1", input=more)
            assert first.output_text
            # From a stored response instead of input: its chain and output are compacted.
            chained = await client.responses.compact(model="gpt-4.1", previous_response_id=first.id)
            assert chained.output[-1].type == "compaction"
            with pytest.raises(openai.BadRequestError, match="Mutually exclusive"):
                await client.responses.compact(
                    model="gpt-4.1", input="hi", previous_response_id=first.id
                )
            with pytest.raises(openai.BadRequestError, match="input"):
                await client.responses.compact(model="gpt-4.1")
            with pytest.raises(openai.BadRequestError, match="Unrecognized"):
                await client.responses.compact(
                    model="gpt-4.1", input="hi", extra_body={"tools": []}
                )

    run(go())
    assert server.requests["openai.compact"] == 5
    assert server.log[0].usage is not None and server.log[0].model == "gpt-4.1"


def _ids(items: list[Any]) -> list[Any]:
    return [i.get("id") for i in items]


def test_compacting_a_branch_keeps_the_other_branches_and_forks(
    server: ProviderServer, tmp_path: Path
) -> None:
    async def go(rt: srt.Runtime) -> dict[str, Any]:
        under = SrtSession("c", rt)
        base = agents_turns(1)
        await under.add_items(base)
        await under.fork(name="keep", switch=False)
        await under.fork(name="work")
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="k") as client:
            wrapped = OpenAIResponsesCompactionSession(
                "c",
                under,
                client=client,
                should_trigger_compaction=lambda ctx: len(ctx["session_items"]) >= 6,
            )
            agent = Agent(name="h", model=OpenAIResponsesModel("gpt-4.1", client))
            await Runner.run(agent, "q1", session=wrapped)
            before = await under.get_items()
            await under.fork(name="child", switch=False)  # a fork of the branch compacted
            await Runner.run(agent, "q2", session=wrapped)  # 6 items: compacts
            assert server.requests["openai.compact"] == 1
            compacted = await wrapped.get_items()
            await Runner.run(agent, "q3", session=wrapped)
        return {"base": base, "before": before, "compacted": compacted, "under": under}

    with srt.Runtime(tmp_path / "c.db") as rt:
        got = run(go(rt))
        under: SrtSession = got["under"]
        compacted = got["compacted"]
        # The branch compacted holds the SDK's compacted history, exactly, and stays current.
        assert under.branch == "work"
        assert [i.get("type") for i in compacted] == ["message"] * 3 + ["compaction"]
        assert [i["content"][0]["text"] for i in compacted[:3]] == ["question 0", "q1", "q2"]
        # The next run sent it to the model, compaction item included, and appended to it.
        asked = [r for r in server.log if r.endpoint == "openai.responses"]
        sent = asked[-1].body["input"]
        assert any(i.get("type") == "compaction" for i in sent)
        assert sent[:4] == compacted and sent[4]["content"] == "q3"
        names = {b["name"] for b in run(under.branches())}
        assert names == {"main", "keep", "work", "child"}
        for name, want in (("main", got["base"]), ("keep", got["base"])):
            run(under.switch_to(name))
            assert run(under.get_items()) == want
        run(under.switch_to("child"))
        assert run(under.get_items()) == got["before"]  # ids and all: its patches were kept
        run(under.switch_to("work"))
        final = run(under.get_items())  # (q3 made 6 items again: compacted once more)
        assert server.requests["openai.compact"] == 2 and final[-1]["type"] == "compaction"
    with srt.Runtime(tmp_path / "c.db") as rt:
        assert run(SrtSession("c", rt).get_items()) == final


_CRASH = r"""
import asyncio, os, sys
from openai import AsyncOpenAI
from agents import set_tracing_disabled
from agents.memory import OpenAIResponsesCompactionSession
from srt.integrations import _append
from srt.integrations.agents import SrtSession

set_tracing_disabled(True)
def crash(*a, **k):
    os._exit(3)  # the process dies before the compacted items are written

async def main(url, path):
    under = SrtSession("c", path)
    async with AsyncOpenAI(base_url=url + "/v1", api_key="k") as client:
        s = OpenAIResponsesCompactionSession("c", under, client=client)
        _append.append = crash
        await s.run_compaction({"force": True})

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_a_crash_during_compaction_leaves_the_history(
    server: ProviderServer, tmp_path: Path
) -> None:
    path = tmp_path / "crash.db"
    items = agents_turns(3)
    s = SrtSession("c", path)
    run(s.add_items(items))
    run(s.fork(name="side", switch=False))
    s.close()
    done = subprocess.run(
        [sys.executable, "-c", _CRASH, server.url, str(path)], capture_output=True, timeout=120
    )
    assert done.returncode == 3, done.stderr.decode()[-2000:]
    assert server.requests["openai.compact"] == 1
    s = SrtSession("c", path)
    assert run(s.get_items()) == items
    assert {b["name"] for b in run(s.branches())} == {"main", "side"}
    s.close()


def test_a_cancelled_compaction_changes_nothing(server: ProviderServer, tmp_path: Path) -> None:
    items = agents_turns(3)

    async def go(rt: srt.Runtime) -> None:
        under = SrtSession("c", rt)
        await under.add_items(items)
        server.fault("compact", "delay", seconds=30)
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="k") as client:
            s = OpenAIResponsesCompactionSession("c", under, client=client)
            task = asyncio.create_task(s.run_compaction({"force": True}))
            while server.requests["openai.compact"] == 0:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await s.get_items() == items
            # The session still works: a compaction afterwards replaces the history.
            server.clear()
            await s.run_compaction({"force": True})
            after = await under.get_items()
            assert [i.get("type") for i in after] == ["message"] * 3 + ["compaction"]

    with srt.Runtime(tmp_path / "x.db") as rt:
        run(go(rt))


def test_replace_items_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    with srt.Runtime(tmp_path / "r.db") as rt:
        s = SrtSession("c", rt)
        items = agents_turns(2)
        run(s.add_items(items))
        with pytest.raises(srt.InvalidMessageError):
            run(s.replace_items({"role": "user", "content": "x"}))  # type: ignore[arg-type]
        with pytest.raises(srt.InvalidMessageError):
            run(s.replace_items([{"role": "user", "content": "ok"}, "not an item"]))
        assert run(s.get_items()) == items
        run(s.replace_items([]))
        assert run(s.get_items()) == []
        run(s.replace_items(items[:1]))
        assert run(s.get_items()) == items[:1]
