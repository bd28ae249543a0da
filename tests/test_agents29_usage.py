"""``SrtSession``'s usage under races and re-added replies, on SQLite and PostgreSQL: a
clear that runs between another handle's append and its ledger rows (in a thread, or
another process) leaves none of them counting when the same items come back; a
compaction snapshot's ``replace_suffix`` refused only by the marks goes again; a reply
popped and added back with new usage counts the new usage only, as
``AdvancedSQLiteSession`` (which replaces a turn's usage row)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession

import srt
from agents_support import joined, run
from srt.integrations import _usage
from srt.integrations.agents import SrtSession
from support import agents_run, agents_turns
from test_agents28_marks import child


@pytest.mark.parametrize("other", ["thread", "process"])
def test_a_clear_between_an_append_and_its_ledger_rows(
    store_url: str, other: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handle ``a`` adds turn 2 with usage; right after its items are stored, handle
    ``b`` (another runtime in a thread, or another process) clears the session. Turn 2
    added back (the same nodes) has no usage: the request counted before the clear."""
    with srt.Runtime(store_url) as rt:
        a = SrtSession("s", rt)
        items = agents_turns(2)
        run(a.add_items(items[:2], wrapper=agents_run(5, 1)))
        real = rt.store.append
        cleared: list[bool] = []

        def clear() -> None:
            with srt.Runtime(store_url) as rt2:
                run(SrtSession("s", rt2).clear_session())

        def append_then_b_clears(*args: Any, **kw: Any) -> Any:
            out = real(*args, **kw)
            if args[4] and not cleared:  # (a's append of items: b clears now)
                cleared.append(True)
                if other == "process":
                    done = child(store_url, "clear")
                    assert done.returncode == 0, done.stderr
                else:
                    t = threading.Thread(target=clear, daemon=True)
                    t.start()
                    joined(t, "b's clear (in a thread)")
            return out

        monkeypatch.setattr(rt.store, "append", append_then_b_clears)
        run(a.add_items(items[2:], wrapper=agents_run(9, 1)))
        monkeypatch.undo()
        assert cleared
        run(a.add_items(items))  # (whatever the clear left: the same turns again)
        got = run(a.get_items())
        assert got[-4:] == items
        assert run(a.turn_usage()) == []
        assert run(a.session_usage()) is None


def test_replace_suffix_goes_again_when_only_the_marks_moved(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the snapshot's replacement reading the marks and writing, another handle
    pops the reply and adds it back: the head is the same node, the items the same, only
    the marks moved; ``replace_suffix`` replaces (``True``), as it would a moment later."""
    a = SrtSession("c", store_url)
    items = agents_turns(2)
    run(a.add_items(items, wrapper=agents_run(5, 1)))
    snap = run(a._get_compaction_snapshot(4))  # noqa: SLF001 (the SDK calls it)
    read = _usage.marks
    raced: list[bool] = []

    def marks_then_b_pops_and_adds(*args: Any) -> Any:
        out = read(*args)
        if not raced:
            raced.append(True)
            with srt.Runtime(store_url) as rt2:
                b = SrtSession("c", rt2)
                reply = run(b.pop_item())
                run(b.add_items([reply]))
        return out

    monkeypatch.setattr(_usage, "marks", marks_then_b_pops_and_adds)
    summary = {"content": "summary", "role": "user"}
    assert run(snap.replace_suffix(0, [summary])) is True
    monkeypatch.undo()
    assert raced
    assert run(a.get_items()) == [summary]
    a.close()


def test_a_reply_added_back_with_new_usage_as_the_sdk(
    store_rt: srt.Runtime, tmp_path: Path
) -> None:
    """A turn's reply popped and added back by a new run: the turn's usage is the new
    run's, on both; popping and adding it back without a run keeps it."""
    sdk = AdvancedSQLiteSession(session_id="s", db_path=tmp_path / "sdk.db", create_tables=True)
    ours = SrtSession("s", store_rt)
    items = agents_turns(2)

    async def add(session: Any, new: list[Any], wrapper: Any) -> None:
        if isinstance(session, AdvancedSQLiteSession):
            await session.add_items(new)
            if wrapper is not None:
                await session.store_run_usage(SimpleNamespace(context_wrapper=wrapper))
        else:
            await session.add_items(new, wrapper=wrapper)

    async def steps() -> list[Any]:
        out = []
        for session in (ours, sdk):
            await add(session, items[:2], agents_run(5, 1))
            await add(session, items[2:], agents_run(7, 2))
            await session.pop_item()
            await add(session, items[3:], agents_run(11, 3))  # (a new run's reply)
            out.append((await session.get_turn_usage(), await session.get_session_usage()))
            await session.pop_item()
            await add(session, items[3:], None)
            out.append((await session.get_turn_usage(), await session.get_session_usage()))
        return out

    got = run(steps())
    assert got[0] == got[2] and got[1] == got[3]
    turns, total = got[0]
    assert [(t["requests"], t["input_tokens"]) for t in turns] == [(1, 5), (1, 11)]
    assert total is not None and total["requests"] == 2
    sdk.close()


@pytest.mark.parametrize("cut", ["none", "clear", "pop"])
def test_a_run_of_two_requests_since_the_last_add(
    store_url: str, cut: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run context with two requests not written (the first goes with the items, the
    second after): with nothing between, the turn has both; with another handle's clear
    (or pop of the reply) between the two writes, the second has what the first has:
    void after the clear (the turn added back has no usage), at the turn's user message
    after the pop (the turn keeps both)."""
    with srt.Runtime(store_url) as rt:
        a = SrtSession("s", rt)
        items = agents_turns(1)
        wrapper = agents_run(5, 1)
        wrapper.usage.add(agents_run(7, 2).usage)
        assert len(wrapper.usage.request_usage_entries) == 2
        real = rt.store.record_call
        seen: list[bool] = []

        def b_then_record(call: Any) -> Any:
            if not seen and cut != "none":
                seen.append(True)
                with srt.Runtime(store_url) as rt2:
                    b = SrtSession("s", rt2)
                    run(b.clear_session() if cut == "clear" else b.pop_item())
            return real(call)

        monkeypatch.setattr(rt.store, "record_call", b_then_record)
        run(a.add_items(items, wrapper=wrapper))
        monkeypatch.undo()
        assert bool(seen) == (cut != "none")
        if cut == "clear":
            run(a.add_items(items))
            assert run(a.turn_usage()) == []
        else:
            if cut == "pop":
                assert run(a.get_items()) == items[:1]
            turns = run(a.turn_usage())
            assert [(t["requests"], t["input_tokens"]) for t in turns] == [(2, 12)]
