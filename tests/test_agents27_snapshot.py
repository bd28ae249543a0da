"""Automatic compaction of the part of an ``SrtSession`` the model saw: the Agents SDK's
``OpenAIResponsesCompactionSession`` asks the session under it for a bounded snapshot
(``_get_compaction_snapshot``) and replaces only its suffix, keeping the older history.
Without it, a session whose model sees only its last items (``SessionSettings(limit)``)
is never compacted: the SDK needs the whole history to match the model exchange. The
SDK's ``SQLiteSession`` is the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents import Agent, OpenAIResponsesModel, Runner, SQLiteSession, set_tracing_disabled
from agents.memory import OpenAIResponsesCompactionSession, SessionSettings
from openai import AsyncOpenAI

import srt
from agents_support import run
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer
from support import agents_turns

set_tracing_disabled(True)


def _shape(items: list[Any]) -> list[Any]:
    """The items without what the server makes up each time (ids, the summary)."""
    return [
        {k: v for k, v in item.items() if k not in ("id", "encrypted_content")} for item in items
    ]


def _texts(items: list[Any]) -> list[str]:
    """Each item's text (``compaction`` for the compaction item)."""
    out = []
    for item in items:
        text = item.get("content", item.get("type"))
        out.append(text[0]["text"] if isinstance(text, list) else text)
    return out


async def _compacting_run(server: ProviderServer, under: Any) -> list[Any]:
    """Four old turns, a session limit of 2, then one run that compacts."""
    await under.add_items(agents_turns(4))
    async with AsyncOpenAI(base_url=server.url + "/v1", api_key="k") as client:
        session = OpenAIResponsesCompactionSession(
            "s", under, client=client, should_trigger_compaction=lambda ctx: True
        )
        agent = Agent(name="h", model=OpenAIResponsesModel("gpt-4o-mini", client))
        await Runner.run(agent, "new question", session=session)
        return await under.get_items(limit=-1)


def test_a_limited_session_compacts_the_suffix_the_model_saw(
    server: ProviderServer, tmp_path: Path
) -> None:
    server.script("responses", ["new answer", "new answer"])
    settings = SessionSettings(limit=2)
    reference = SQLiteSession("s", str(tmp_path / "sdk.db"), session_settings=settings)
    try:
        want = run(_compacting_run(server, reference))
    finally:
        reference.close()
    assert server.requests["openai.compact"] == 1
    with srt.Runtime(tmp_path / "srt.db") as rt:
        got = run(_compacting_run(server, SrtSession("s", rt, session_settings=settings)))
        assert server.requests["openai.compact"] == 2  # (not skipped)
        assert _shape(got) == _shape(want)
        # The turns the model did not see are kept as they were; the rest is compacted.
        assert got[:6] == agents_turns(3)
        assert _texts(got[6:]) == ["question 3", "new question", "compaction"]
        again = run(SrtSession("s", rt).get_items(limit=-1))
        assert again == got


def test_a_snapshot_whose_branch_moved_replaces_nothing(tmp_path: Path) -> None:
    async def go(rt: srt.Runtime) -> None:
        s = SrtSession("m", rt)
        await s.add_items(agents_turns(3))
        snap = await s._get_compaction_snapshot(3)  # noqa: SLF001 (the SDK calls it)
        assert snap is not None and not snap.complete
        assert snap.items == agents_turns(3)[3:]
        await SrtSession("m", rt).add_items([{"role": "user", "content": "later"}])
        assert await snap.replace_suffix(1, [{"role": "user", "content": "x"}]) is False
        assert await s.get_items() == [*agents_turns(3), {"role": "user", "content": "later"}]
        fresh = await s._get_compaction_snapshot(100)  # noqa: SLF001 (the SDK calls it)
        assert fresh is not None and fresh.complete
        assert await fresh.replace_suffix(2, [{"role": "user", "content": "x"}]) is True
        assert await SrtSession("m", rt).get_items() == [
            *agents_turns(1),
            {"role": "user", "content": "x"},
        ]

    with srt.Runtime(tmp_path / "m.db") as rt:
        run(go(rt))
