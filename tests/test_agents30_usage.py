"""``SrtSession``'s usage as the SDK's ``AdvancedSQLiteSession`` keeps it when a turn has
more than one run: a second ``Runner.run`` with no new user message, or a second
``store_run_usage`` (a run resumed from its ``RunState`` holds the first run's requests
again), replaces the turn's usage, as the SDK's ``INSERT OR REPLACE`` of its turn row
does, where it used to add to it; and ``_wrote`` (or a clear) giving up on the marks
is a ``ConflictError`` naming the session, where it used to return as if written."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession

import srt
from agents_support import both, joined, run, usage
from srt.errors import ConflictError
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer
from support import agents_run, agents_turns

#: A child process: a run's usage (9 input tokens) stored in session ``s`` of argv[1].
_RECORD = r"""
import asyncio, sys
from types import SimpleNamespace
from agents import RunContextWrapper
from agents.usage import Usage
from srt.integrations.agents import SrtSession

wrapper = RunContextWrapper(context=None)
wrapper.usage.add(Usage(requests=1, input_tokens=9, output_tokens=1, total_tokens=10))
s = SrtSession("s", sys.argv[1])
asyncio.run(s.store_run_usage(SimpleNamespace(context_wrapper=wrapper)))
s.close()
"""


def test_a_second_run_in_a_turn_as_the_sdk(
    store_rt: srt.Runtime, server: ProviderServer, tmp_path: Path
) -> None:
    """``Runner.run(agent, [])`` after a turn's run: no user message, so the same turn;
    its usage is the second run's on both (it was both runs' on ``SrtSession``)."""
    steps: list[Any] = ["hi", [], "more"]
    got, expected, ours = both(store_rt, server, tmp_path, ["one", "two", "three"], steps)
    assert got == expected
    turns, total = got
    assert [(t[0], t[1]) for t in turns] == [(1, 1), (2, 1)]
    assert total is not None and total["requests"] == 2
    assert len(run(ours.get_items())) == 5


@pytest.mark.parametrize("resumed", [False, True])
def test_a_second_store_run_usage_in_a_turn_as_the_sdk(
    store_rt: srt.Runtime, tmp_path: Path, resumed: bool
) -> None:
    """Two runs' usage stored in one turn by ``store_run_usage`` (the second with the
    first's request again when ``resumed``): the turn has the second's, on both."""
    sdk = AdvancedSQLiteSession(session_id="s", db_path=tmp_path / "sdk.db", create_tables=True)
    ours = SrtSession("s", store_rt)
    items = agents_turns(2)

    async def steps(session: Any) -> Any:
        await session.add_items(items[:2])
        first = agents_run(5, 1)
        await session.store_run_usage(SimpleNamespace(context_wrapper=first))
        await session.add_items(items[2:])
        await session.store_run_usage(SimpleNamespace(context_wrapper=agents_run(6, 1)))
        second = agents_run(5, 1) if resumed else agents_run(7, 2)
        if resumed:
            second.usage.add(agents_run(7, 2).usage)
        await session.store_run_usage(SimpleNamespace(context_wrapper=second))
        return await session.get_turn_usage(), await session.get_session_usage()

    got, expected = run(steps(ours)), run(steps(sdk))
    sdk.close()
    assert got == expected
    turns, total = got
    want = (2, 12) if resumed else (1, 7)
    assert [(t["requests"], t["input_tokens"]) for t in turns] == [(1, 5), want]
    assert total is not None and total["requests"] == 1 + want[0]


def test_one_runs_requests_add_up_in_its_turn(store_rt: srt.Runtime) -> None:
    """One run context written in two adds (a tool call, then the answer): both requests
    count (the run's second write replaces nothing), as the SDK's one row for the run."""
    s = SrtSession("s", store_rt)
    items = agents_turns(1)
    wrapper = agents_run(5, 1)
    run(s.add_items(items[:1]))
    run(s.add_items(items[1:], wrapper=wrapper))
    wrapper.usage.add(agents_run(7, 2).usage)
    run(s.add_items([{"content": "and?", "role": "assistant"}], wrapper=wrapper))
    assert [(t["requests"], t["input_tokens"]) for t in run(s.turn_usage())] == [(2, 12)]
    assert usage(s)[1]["requests"] == 2


def test_the_marks_given_up_on_are_a_conflict_error(
    store_rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of two requests since the last add: the second row's marks are written on
    their own (``_wrote``); when every try is refused, the add raises ``ConflictError``
    naming the session (it returned as if the usage were settled)."""
    s = SrtSession("given-up", store_rt)
    wrapper = agents_run(5, 1)
    wrapper.usage.add(agents_run(7, 2).usage)
    real = store_rt.store.put_object
    refused: list[str] = []

    def refuse_the_marks(kind: str, scope: str, key: str, *args: Any, **kw: Any) -> bool:
        if key.startswith("usage@"):
            refused.append(key)
            return False
        return bool(real(kind, scope, key, *args, **kw))

    monkeypatch.setattr(store_rt.store, "put_object", refuse_the_marks)
    with pytest.raises(ConflictError, match="'given-up'") as caught:
        run(s.add_items(agents_turns(1), wrapper=wrapper))
    monkeypatch.undo()
    assert "64 times" in str(caught.value)
    assert len(refused) == 64
    assert len(run(s.get_items())) == 2  # (the items are stored)


def test_a_clear_given_up_on_is_a_conflict_error(
    store_rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every try of a clear's write of ``main``'s head and marks refused: the clear raises
    ``ConflictError`` naming the session (it went on and returned, ``main`` and its
    usage as they were), and ``main`` keeps its items and usage."""
    s = SrtSession("kept-moving", store_rt)
    run(s.add_items(agents_turns(1), wrapper=agents_run(5, 1)))
    tries: list[int] = []

    def refused(self: Any, n: int, objects: Any = ()) -> None:
        tries.append(n)
        raise ConflictError("the session moved")

    monkeypatch.setattr(srt.Session, "rewind", refused)
    with pytest.raises(ConflictError, match="'kept-moving'"):
        run(s.clear_session())
    monkeypatch.undo()
    assert len(tries) == 64
    assert len(run(s.get_items())) == 2
    assert [(t["requests"], t["input_tokens"]) for t in run(s.turn_usage())] == [(1, 5)]


@pytest.mark.parametrize("op", ["pop", "clear", "replace"])
def test_a_pop_or_clear_that_changes_no_usage_writes_no_marks(
    store_rt: srt.Runtime, op: str
) -> None:
    """The marks stay as stored (the same bytes: not written, where every pop, clear
    and replacement used to write them again) when no usage counted at what went."""
    s = SrtSession("s", store_rt)
    items = agents_turns(2)
    run(s.add_items(items[:2], wrapper=agents_run(5, 1)))
    run(s.pop_item())  # (the reply: its row moves to turn 1's user message; written)
    run(s.add_items(items[1:2]))
    run(s.add_items(items[2:]))  # (turn 2: no usage)
    before = store_rt.store.get_object("agents.state", "s", "usage@main")
    assert before is not None
    if op == "pop":
        run(s.pop_item())
        run(s.pop_item())
    elif op == "replace":
        run(s.replace_items(items[:2]))
    else:
        run(s.clear_session())  # (usage at turn 1: written)
        before = store_rt.store.get_object("agents.state", "s", "usage@main")
        run(s.add_items(items))
        run(s.clear_session())  # (no usage since: not written)
    after = store_rt.store.get_object("agents.state", "s", "usage@main")
    assert after is not None and before is not None
    assert (after.value, after.updated) == (before.value, before.updated)
    want = [] if op == "clear" else [(1, 1, 5)]
    got = [(t["turn"], t["requests"], t["input_tokens"]) for t in run(s.turn_usage())]
    assert got == want


@pytest.mark.parametrize("other", ["thread", "process"])
def test_a_ledger_row_written_while_a_pop_checks_the_marks(
    store_url: str, other: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handle ``a`` pops turn 2's reply (no usage there: the marks are only checked);
    between its read of the ledger and its write, handle ``b`` (another runtime: in a
    thread, or another process) stores a run's usage against that reply. The pop goes
    again and sees it: turn 2 keeps it at its user message, as two writes one after
    the other would leave it, and the reply added back brings nothing more."""
    with srt.Runtime(store_url) as rt:
        a = SrtSession("s", rt)
        items = agents_turns(2)
        run(a.add_items(items[:2], wrapper=agents_run(5, 1)))
        run(a.add_items(items[2:]))
        read = rt.store.calls
        raced: list[bool] = []

        def record() -> None:
            with srt.Runtime(store_url) as rt2:
                b = SrtSession("s", rt2)
                run(b.store_run_usage(SimpleNamespace(context_wrapper=agents_run(9, 1))))

        def calls_then_b_records(*args: Any, **kw: Any) -> Any:
            out = read(*args, **kw)
            if not raced:  # (a's read of the ledger: b writes its row now)
                raced.append(True)
                if other == "process":
                    done = subprocess.run(
                        [sys.executable, "-c", _RECORD, store_url],
                        capture_output=True,
                        text=True,
                        timeout=120,  # (then the child is killed, and the test fails)
                    )
                    assert done.returncode == 0, done.stderr
                else:
                    t = threading.Thread(target=record, daemon=True)
                    t.start()
                    joined(t, "b's store_run_usage (in a thread)")
            return out

        monkeypatch.setattr(rt.store, "calls", calls_then_b_records)
        run(a.pop_item())
        monkeypatch.undo()
        assert raced
        assert run(a.get_items()) == items[:3]
        got = [(t["turn"], t["requests"], t["input_tokens"]) for t in run(a.turn_usage())]
        assert got == [(1, 1, 5), (2, 1, 9)]
        run(a.add_items(items[3:]))
        got = [(t["turn"], t["requests"], t["input_tokens"]) for t in run(a.turn_usage())]
        assert got == [(1, 1, 5), (2, 1, 9)]
