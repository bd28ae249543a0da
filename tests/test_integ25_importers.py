"""``srt import --from agents-sqlite`` on an ``AdvancedSQLiteSession`` file, the SDK's
session with branches: each branch comes over as the ``SrtSession`` branch of the same
name, its items exactly as the SDK's own ``get_items(branch_id=...)`` reads them, forked
from the branch it shares most with (nothing copied). The importer read every message
row of the session as one conversation: the branches' items ran together, in an order
no branch had, and the import said it verified them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from agents.extensions.memory import AdvancedSQLiteSession

import srt
from srt.errors import SessionExistsError
from srt.integrations.agents import SrtSession
from srt.integrations.importers import run


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _ai(text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{text}",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


async def _advanced(path: Path) -> dict[str, list[Any]]:
    """An AdvancedSQLiteSession file: main, a branch from turn 2, a branch of that
    branch, and a branch whose items part from main before its first user turn. Returns
    what the SDK reads of each branch."""
    s = AdvancedSQLiteSession(session_id="s1", db_path=str(path), create_tables=True)
    try:
        await s.add_items(
            [{"role": "developer", "content": "d1"}, {"role": "system", "content": "d2"}]
        )
        await s.add_items([_user("q1"), _ai("a1")])
        await s.add_items([_user("q2"), _ai("a2")])
        await s.add_items([_user("q3"), _ai("a3")])
        await s.create_branch_from_turn(2, "alt")
        await s.add_items([_user("q2-alt"), _ai("a2-alt")])
        await s.add_items([_user("q3-alt"), _ai("a3-alt")])
        await s.create_branch_from_turn(3, "alt2")  # (from alt: shares q2-alt with it)
        await s.add_items([_user("q3-alt2"), _ai("a3-alt2")])
        await s.switch_to_branch("main")
        await s.create_branch_from_turn(1, "early")  # the two leading items
        await s.pop_item()  # ... then one of them goes: it parts from main at item 1
        await s.add_items([{"role": "system", "content": "other"}, _user("q1-early")])
        await s.switch_to_branch("main")
        return {b: await s.get_items(branch_id=b) for b in ("main", "alt", "alt2", "early")}
    finally:
        s.close()


def _held(rt: srt.Runtime) -> dict[str, list[Any]]:
    names = [b["name"] for b in asyncio.run(SrtSession("s1", rt).branches())]
    return {b: asyncio.run(SrtSession("s1", rt, branch=b).get_items()) for b in names}


def test_advanced_sqlite_branches_come_over_as_branches(tmp_path: Path) -> None:
    path = tmp_path / "adv.db"
    source = asyncio.run(_advanced(path))
    assert source["alt2"][-4:] == [_user("q2-alt"), _ai("a2-alt"), _user("q3-alt2"), _ai("a3-alt2")]
    with srt.Runtime(tmp_path / "srt.db") as rt:
        report = run(rt, "agents-sqlite", str(path))
        assert _held(rt) == source
        assert asyncio.run(SrtSession("s1", rt).get_items()) == source["main"]
        parents = {b["name"]: b["parent"] for b in asyncio.run(SrtSession("s1", rt).branches())}
        assert parents == {"main": None, "alt": "main", "alt2": "alt", "early": "main"}
        assert report.conversations == report.verified == 1
        assert report.messages == sum(len(v) for v in source.values())
        # Forks copy nothing: the new messages are those no branch before shared.
        distinct = {repr(i) for items in source.values() for i in items}
        assert report.new_messages == len(distinct)
        again = run(rt, "agents-sqlite", str(path))
        assert again.new_messages == 0 and again.verified == 1
        assert _held(rt) == source


def test_advanced_sqlite_branch_held_with_other_items_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "adv.db"
    source = asyncio.run(_advanced(path))
    with srt.Runtime(tmp_path / "srt.db") as rt:
        s = SrtSession("s1", rt)
        asyncio.run(s.add_items(source["main"]))
        asyncio.run(s.fork(at_turn=2, name="alt", switch=False))
        other = SrtSession("s1", rt, branch="alt")
        asyncio.run(other.add_items([_user("not the source's")]))
        before = _held(rt)
        with pytest.raises(SessionExistsError, match="branch 'alt'"):
            run(rt, "agents-sqlite", str(path))
        assert _held(rt) == before
