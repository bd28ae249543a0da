"""A compacted branch's fork points: ``branches()`` says how many items a branch shares
with its parent (``at``); a replacement of the branch's history (the compaction session's)
keeps only the items the new history starts with, so its ``at`` and its forks' come down
to those, and every branch still reads its own items exactly (on both engines).

(The SDK's ``AdvancedSQLiteSession`` has no fork point to keep: its branches are copies,
and its compaction, ``clear_session()`` then ``add_items``, empties every branch.)"""

from __future__ import annotations

from typing import Any

import srt
from agents_support import run
from srt.integrations.agents import SrtSession
from support import agents_turns

SUMMARY = {"type": "compaction", "encrypted_content": "enc", "id": "cmp_1"}


def _at(branches: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    return {b["name"]: (b["at"], b["items"]) for b in branches}


def test_compacting_a_fork_brings_its_fork_point_down(store_url: str) -> None:
    async def go(rt: srt.Runtime) -> None:
        s = SrtSession("f", rt)
        await s.add_items(agents_turns(2))
        await s.fork(name="b")  # shares all four items
        assert _at(await s.branches())["b"] == (4, 4)
        await s.replace_items([*agents_turns(1), SUMMARY])  # keeps the first turn
        assert _at(await s.branches())["b"] == (2, 3)
        await s.replace_items([SUMMARY])
        assert _at(await s.branches())["b"] == (0, 1)
        assert await s.get_items() == [SUMMARY]
        await s.switch_to("main")
        assert await s.get_items() == agents_turns(2)

    with srt.Runtime(store_url) as rt:
        run(go(rt))


def test_compacting_a_parent_brings_its_forks_down_and_they_keep_their_items(
    store_url: str,
) -> None:
    async def go(rt: srt.Runtime) -> None:
        s = SrtSession("p", rt)
        await s.add_items(agents_turns(3))
        await s.fork(at_turn=3, name="b", switch=False)  # shares two turns
        await s.add_items([{"role": "user", "content": "main only"}])
        await s.replace_items([SUMMARY])
        assert _at(await s.branches()) == {"main": (0, 1), "b": (0, 4)}
        # Main grows again where b's items were: b reads its own, ids included.
        await s.add_items(agents_turns(3)[1:])
        b = SrtSession("p", rt, branch="b")
        assert await b.get_items() == agents_turns(2)
        await b.add_items([{"role": "user", "content": "on b"}])
        assert await SrtSession("p", rt, branch="b").get_items() == [
            *agents_turns(2),
            {"role": "user", "content": "on b"},
        ]
        assert await SrtSession("p", rt).get_items() == [SUMMARY, *agents_turns(3)[1:]]

    with srt.Runtime(store_url) as rt:
        run(go(rt))
