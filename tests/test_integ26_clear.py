"""``SrtSession.clear_session``: what the SDK's ``AdvancedSQLiteSession`` does (every
branch goes, an empty ``main`` is current), srt forks of its sessions keep their
messages, and a crash part way never leaves an item without its patch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from agents.extensions.memory import AdvancedSQLiteSession

import srt
from srt.integrations.agents import SrtSession
from support import agents_turns


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_clear_matches_advanced_sqlite_session_and_keeps_srt_forks(tmp_path: Path) -> None:
    items = agents_turns(2)
    sdk = AdvancedSQLiteSession(session_id="c", db_path=tmp_path / "sdk.db", create_tables=True)
    run(sdk.add_items(items))
    run(sdk.create_branch_from_turn(2, "b"))
    run(sdk.clear_session())
    assert [b["branch_id"] for b in run(sdk.list_branches())] == []
    assert run(sdk.get_items()) == [] and run(sdk.get_items(branch_id="main")) == []
    sdk.close()
    with srt.Runtime(tmp_path / "srt.db") as rt:
        s = SrtSession("c", rt)
        run(s.add_items(items))
        run(s.fork(at_turn=2, name="b"))
        run(s.add_items([{"role": "user", "content": "on b"}]))
        rt.session("c").fork("copy-of-main")
        rt.session("c@b").fork("copy-of-b")
        run(s.clear_session())
        assert s.branch == "main" and run(s.get_items()) == []
        assert [b["name"] for b in run(s.branches())] == ["main"]
        assert rt.store.list_objects("agents.item", "c") == []
        copied = [m["content"] for m in rt.session("copy-of-main").messages()]
        assert copied[0] == "question 0" and len(copied) == 4
        assert [m["content"] for m in rt.session("copy-of-b").messages()][-1] == "on b"


class Crash(BaseException):
    """Where the process would have died (nothing after it runs)."""


@pytest.mark.parametrize("at", range(1, 7))
def test_a_crash_during_clear_leaves_no_item_without_its_patch(tmp_path: Path, at: int) -> None:
    path = tmp_path / f"c{at}.db"
    items = agents_turns(3)
    with srt.Runtime(path) as rt:
        s = SrtSession("c", rt)
        run(s.add_items(items))
        run(s.fork(at_turn=3, name="b", switch=False))
        run(s.switch_to("b"))
        run(s.add_items([dict(items[1], id="msg_b")]))
        run(s.fork(name="bb", switch=False))
        on_b = run(s.get_items())
        store = rt.store
        real = store.delete_object
        calls = [0]

        def dying(*args: Any, **kw: Any) -> bool:
            calls[0] += 1
            if calls[0] == at:
                raise Crash
            return real(*args, **kw)

        store.delete_object = dying  # type: ignore[method-assign]
        with pytest.raises(Crash):
            run(s.clear_session())
        store.delete_object = real  # type: ignore[method-assign]
    with srt.Runtime(path) as rt:
        s = SrtSession("c", rt)  # it opens (on main)
        assert run(s.get_items()) in ([], items)
        for b in run(s.branches()):
            if b["name"] != "main":
                run(s.switch_to(b["name"]))
                assert run(s.get_items()) == on_b  # a branch left is whole, ids and all
        run(s.clear_session())  # and clearing again finishes the job
        assert [b["name"] for b in run(s.branches())] == ["main"]
        assert run(s.get_items()) == [] and rt.store.list_objects("agents.item", "c") == []
