"""A second ``SrtSession`` handle whose current branch another handle removed. As the
SDK's ``AdvancedSQLiteSession``: after another handle's ``clear_session`` it carries on
on ``main`` (the SDK's handles notice the clear and reset to ``main``, even when a new
branch took the old one's name); after another handle's ``delete_branch`` its branch is
gone and it says so (``SessionNotFoundError``), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

import srt
from agents_support import run
from srt.integrations.agents import SrtSession
from support import agents_run, agents_turns


def test_after_a_clear_elsewhere_a_handle_goes_on_on_main(store_rt: srt.Runtime) -> None:
    rt = store_rt
    a = SrtSession("s", rt)
    run(a.add_items(agents_turns(2)))
    run(a.fork(name="work"))
    b = SrtSession("s", rt)  # opens on "work", the current branch
    assert b.branch == "work" and len(run(b.get_items())) == 4
    run(a.clear_session())
    assert run(b.get_items()) == []  # main's, empty
    assert b.branch == "main"
    run(b.add_items(agents_turns(1)))
    assert run(a.get_items()) == agents_turns(1)  # on main, where a sees it
    assert {x["name"] for x in run(a.branches())} == {"main"}


@pytest.mark.parametrize("call", ["add_items", "pop_item", "fork", "turn_usage"])
def test_every_call_after_a_clear_elsewhere_is_on_main(store_rt: srt.Runtime, call: str) -> None:
    rt = store_rt
    a = SrtSession("s", rt)
    run(a.add_items(agents_turns(1)))
    run(a.fork(name="work"))
    b = SrtSession("s", rt)
    run(a.clear_session())
    run(a.add_items(agents_turns(1), wrapper=agents_run(7, 3)))
    if call == "add_items":
        run(b.add_items([{"role": "user", "content": "more"}]))
        assert run(a.get_items()) == [*agents_turns(1), {"role": "user", "content": "more"}]
    elif call == "pop_item":
        assert run(b.pop_item()) == agents_turns(1)[-1]
        assert run(a.get_items()) == agents_turns(1)[:1]
    elif call == "fork":
        assert run(b.fork(name="again", switch=False)) == "again"
        assert [x["items"] for x in run(b.branches())] == [2, 2]
    else:
        assert run(b.turn_usage()) == [
            {"turn": 1, "requests": 1, "input_tokens": 7, "cached_tokens": 0, "output_tokens": 3}
        ]
    assert b.branch == "main"


def test_a_branch_of_the_same_name_after_a_clear_is_not_the_old_one(
    store_rt: srt.Runtime,
) -> None:
    """The SDK keeps a stale handle off a later branch that reuses its branch's name."""
    rt = store_rt
    a = SrtSession("s", rt)
    run(a.add_items(agents_turns(1)))
    run(a.fork(name="work"))
    b = SrtSession("s", rt)
    run(a.clear_session())
    run(a.add_items(agents_turns(2)))
    run(a.fork(name="work", at_turn=2))  # a new "work": one turn of the new main
    run(b.add_items([{"role": "user", "content": "from b"}]))
    assert b.branch == "main"
    assert run(a.get_items()) == agents_turns(2)[:2]
    run(a.switch_to("main"))
    assert run(a.get_items()) == [*agents_turns(2), {"role": "user", "content": "from b"}]


def test_a_branch_deleted_elsewhere_is_a_typed_error(store_rt: srt.Runtime) -> None:
    """The SDK's stale handle reads nothing and writes to the deleted branch; srt says
    the branch is gone, and the handle works again once switched."""
    rt = store_rt
    a = SrtSession("s", rt)
    run(a.add_items(agents_turns(1)))
    run(a.fork(name="work"))
    b = SrtSession("s", rt)
    run(a.switch_to("main"))
    run(a.delete_branch("work"))
    for call in (b.get_items, lambda: b.add_items(agents_turns(1)), b.turn_usage):
        with pytest.raises(srt.SessionNotFoundError, match=r"'work'.*deleted"):
            run(call())
    assert b.branch == "work"
    run(b.switch_to("main"))
    assert run(b.get_items()) == agents_turns(1)


def test_a_clear_before_the_handle_came_to_its_branch_does_not_hide_a_delete(
    store_rt: srt.Runtime,
) -> None:
    """What tells a clear from a delete is read when the handle comes to its branch."""
    rt = store_rt
    a = SrtSession("s", rt)
    b = SrtSession("s", rt)  # on main
    run(a.add_items(agents_turns(1)))
    run(a.clear_session())
    run(a.fork(name="late", switch=False))
    run(b.switch_to("late"))
    run(a.delete_branch("late"))
    with pytest.raises(srt.SessionNotFoundError, match=r"'late'.*deleted"):
        run(b.get_items())
