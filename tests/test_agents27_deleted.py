"""A handle whose branch another handle deleted: the SDK's ``AdvancedSQLiteSession``
handle reads an empty history and writes the next turn to the deleted branch, which comes
back holding that turn alone (its context gone: the model answered it without history).
``SrtSession`` keeps its typed ``SessionNotFoundError`` instead, writes nothing, and goes
on after ``switch_to``: matching the SDK would lose the conversation the turn belongs to."""

from __future__ import annotations

from pathlib import Path

import pytest
from agents.extensions.memory import AdvancedSQLiteSession

import srt
from agents_support import run
from srt.errors import SessionNotFoundError
from srt.integrations.agents import SrtSession
from support import agents_turns

NEXT = {"role": "user", "content": "next"}


def test_the_sdk_resurrects_the_branch_without_its_history(tmp_path: Path) -> None:
    async def go() -> None:
        path = str(tmp_path / "sdk.db")
        a = AdvancedSQLiteSession(session_id="d", db_path=path, create_tables=True)
        b = AdvancedSQLiteSession(session_id="d", db_path=path)
        try:
            await a.add_items(agents_turns(2))
            await a.create_branch_from_turn(2, "x")
            await b.switch_to_branch("x")
            await a.switch_to_branch("main")
            await a.delete_branch("x")
            assert await b.get_items() == []  # (the run would see no history)
            await b.add_items([NEXT])
            assert await a.get_items(branch_id="x") == [NEXT]
        finally:
            a.close()
            b.close()

    run(go())


def test_srt_refuses_and_writes_nothing(tmp_path: Path) -> None:
    async def go(rt: srt.Runtime) -> None:
        a = SrtSession("d", rt)
        await a.add_items(agents_turns(2))
        await a.fork(at_turn=2, name="x", switch=False)
        b = SrtSession("d", rt, branch="x")
        await a.delete_branch("x")
        with pytest.raises(SessionNotFoundError, match="was deleted"):
            await b.get_items()
        with pytest.raises(SessionNotFoundError, match="was deleted"):
            await b.add_items([NEXT])
        assert [x["name"] for x in await a.branches()] == ["main"]
        assert await a.get_items() == agents_turns(2)
        await b.switch_to("main")
        await b.add_items([NEXT])
        assert await a.get_items() == [*agents_turns(2), NEXT]

    with srt.Runtime(tmp_path / "d.db") as rt:
        run(go(rt))
