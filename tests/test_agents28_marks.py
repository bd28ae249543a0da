"""``SrtSession``'s usage marks (``usage@<branch>``, see ``srt.integrations._usage``) on
SQLite and PostgreSQL: written in the transaction of the pop, clear or replacement
they go with (a process killed right after that write leaves both or neither), by
compare-and-swap (two handles popping on one branch, in two threads or two processes,
lose neither's marks), and bounded however many pops (2,000 pop/add cycles; the usage
the same as ``AdvancedSQLiteSession``'s throughout); and ``Session.rewind(objects=)``, the
write they go in."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession

import srt
from agents_support import joined, run
from srt.errors import ConfigError, ConflictError
from srt.integrations import _usage
from srt.integrations.agents import SrtSession
from srt.store import ObjectPut
from support import agents_run, agents_turns

#: A child process: opens session ``s`` of the store at argv[1] and does argv[2]
#: ("pop", "clear", or "replace" with the JSON items argv[3]). With argv[4] "kill", it
#: is killed (SIGKILL) as soon as a write that moves the head or writes the usage marks
#: returns: the seam between the two, when they were two writes.
CHILD = r"""
import asyncio, json, os, signal, sys
from srt.integrations import _usage
from srt.integrations.agents import SrtSession

url, op, items, how = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
s = SrtSession("s", url)
store = s._store

def kill_after(name, when):
    real = getattr(store, name)
    def hooked(*args, **kw):
        out = real(*args, **kw)
        if when(args):
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    setattr(store, name, hooked)

if how == "kill":
    kill_after("append", lambda a: True)
    kill_after("move_head", lambda a: True)
    kill_after("put_object", lambda a: a[2].startswith("usage@"))
if op == "pop":
    asyncio.run(s.pop_item())
elif op == "clear":
    asyncio.run(s.clear_session())
else:
    asyncio.run(s.replace_items(items))
s.close()
"""


def child(url: str, op: str, items: Any = (), how: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, url, op, json.dumps(list(items)), how],
        capture_output=True,
        text=True,
        timeout=120,
    )


def tokens(s: SrtSession) -> list[tuple[int, int, int]]:
    """(turn, requests, input tokens) per turn of the current branch."""
    return [(t["turn"], t["requests"], t["input_tokens"]) for t in run(s.turn_usage())]


def two_turns(s: SrtSession) -> list[Any]:
    """Turn 1 (5 input tokens against its reply), then turn 2's user message (7) and
    its reply (9), each recorded against itself by one run (a run's second request
    adds to its turn; another run's would replace it, as the SDK's): the items."""
    items = agents_turns(2)
    run(s.add_items(items[:2], wrapper=agents_run(5, 1)))
    second = agents_run(7, 1)
    run(s.add_items(items[2:3], wrapper=second))
    second.usage.add(agents_run(9, 1).usage)
    run(s.add_items(items[3:], wrapper=second))
    return items


@pytest.mark.parametrize("op", ["pop", "clear", "replace"])
def test_a_process_killed_after_the_head_moves_left_the_marks_with_it(
    store_url: str, op: str
) -> None:
    """Killed right after the write that moves the head (or writes the marks): the
    items and their usage agree. Items that went and come back (the same nodes) bring
    no usage back; items still there keep theirs."""
    with srt.Runtime(store_url) as rt:
        s = SrtSession("s", rt)
        items = two_turns(s)
        run(s.pop_item())  # (turn 2's usage: all at its user message)
        assert tokens(s) == [(1, 1, 5), (2, 2, 16)]
    done = child(store_url, op, items[:2], "kill")
    assert done.returncode == -signal.SIGKILL, done.stderr
    with srt.Runtime(store_url) as rt:
        s = SrtSession("s", rt)
        left = run(s.get_items())
        if op == "clear" and not left:
            run(s.add_items(items[:3]))
            assert tokens(s) == []
        elif op == "clear":
            assert tokens(s) == [(1, 1, 5), (2, 2, 16)]
        elif len(left) == 2:  # (the pop or the replacement happened: turn 2 went)
            run(s.add_items(items[2:3]))
            assert tokens(s) == [(1, 1, 5)]
        else:
            assert tokens(s) == [(1, 1, 5), (2, 2, 16)]


@pytest.mark.parametrize("other", ["thread", "process"])
def test_two_handles_popping_at_once_lose_no_marks(
    store_url: str, other: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handle ``a`` pops while handle ``b`` (another runtime: in a thread, or another
    process) pops between ``a`` reading the marks and writing them: both pops' marks
    hold, so turn 2 added back (the same nodes) has no usage, as after two pops one
    after the other."""
    with srt.Runtime(store_url) as rt:
        a = SrtSession("s", rt)
        items = two_turns(a)
        read = _usage.marks
        raced: list[bool] = []

        def pop() -> None:
            with srt.Runtime(store_url) as rt2:
                run(SrtSession("s", rt2).pop_item())

        def marks_then_b_pops(*args: Any) -> Any:
            out = read(*args)
            if not raced:  # (a's first read: b pops now)
                raced.append(True)
                if other == "process":
                    assert child(store_url, "pop").returncode == 0
                else:
                    t = threading.Thread(target=pop, daemon=True)
                    t.start()
                    joined(t, "b's pop (in a thread)")
            return out

        monkeypatch.setattr(_usage, "marks", marks_then_b_pops)
        run(a.pop_item())
        assert raced
        monkeypatch.undo()
        assert len(run(a.get_items())) == 2
        run(a.add_items(items[2:]))
        assert tokens(a) == [(1, 1, 5)]


def test_the_marks_stay_small_over_600_pops(tmp_path: Path) -> None:
    """600 cycles of a turn added with usage then popped (every third, its reply
    popped and added back without usage first) after a turn that stays: the marks stay
    a few bytes, and the usage per turn and overall is ``AdvancedSQLiteSession``'s after
    the same calls, checked every 150 cycles (the old marks were 3,167
    bytes after 250 cycles; 2,000 cycles, as first written, cost ~65 s)."""
    sdk = AdvancedSQLiteSession(session_id="s", db_path=tmp_path / "sdk.db", create_tables=True)
    items = agents_turns(2)
    sizes: list[int] = []

    async def add(session: Any, new: list[Any], wrapper: Any) -> None:
        if isinstance(session, AdvancedSQLiteSession):
            await session.add_items(new)
            if wrapper is not None:
                await session.store_run_usage(SimpleNamespace(context_wrapper=wrapper))
        else:
            await session.add_items(new, wrapper=wrapper)

    async def cycles(rt: srt.Runtime, ours: SrtSession, n: int) -> None:
        for session in (ours, sdk):
            await add(session, items[:2], agents_run(5, 1))
        for i in range(n):
            for session in (ours, sdk):
                await add(session, items[2:], agents_run(10 + i % 7, 1 + i % 3))
                if i % 3 == 0:
                    await session.pop_item()
                    await add(session, items[3:], None)
                await session.pop_item()
                await session.pop_item()
            if i % 150 == 149:
                row = rt.store.get_object("agents.state", "s", "usage@main")
                sizes.append(len(row.value) if row is not None else 0)
                assert sizes[-1] < 100, sizes
                got = [
                    {k: v for k, v in t.items() if k != "input_tokens_details"}
                    for t in await ours.get_turn_usage()
                ]
                want = [
                    {k: v for k, v in t.items() if k != "input_tokens_details"}
                    for t in await sdk.get_turn_usage()
                ]
                assert got == want and len(got) == 1
                assert await ours.get_session_usage() == await sdk.get_session_usage()
        for session in (ours, sdk):  # (turn 2 kept at last)
            await add(session, items[2:], agents_run(40, 4))
        assert await ours.get_turn_usage() == await sdk.get_turn_usage()
        assert await ours.get_session_usage() == await sdk.get_session_usage()

    with srt.Runtime(tmp_path / "srt.db") as rt:
        ours = SrtSession("s", rt)
        run(cycles(rt, ours, 600))
        assert len(rt.store.calls(session_name="s")) == 1 + 600 + 1
    sdk.close()
    assert len(sizes) == 4


def test_a_rewind_writes_its_objects_with_it(store_rt: srt.Runtime) -> None:
    """``Session.rewind(n, objects=...)``, the write the marks go in: the objects with
    the head move, and an object whose condition fails is a ``ConflictError`` that
    leaves the head where it was and writes nothing."""
    s = store_rt.session("r")
    s.append([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])
    put = ObjectPut("t.k", "r", "x", b"1", if_absent=True)
    s.rewind(1, objects=[put])
    assert len(s) == 1 and store_rt.store.get_object("t.k", "r", "x").value == b"1"
    with pytest.raises(ConflictError):
        s.rewind(1, objects=[ObjectPut("t.k", "r", "x", b"2", expect=b"0")])
    for bad in (None, [b"x"], put):
        with pytest.raises(ConfigError, match="ObjectPut"):
            s.rewind(1, objects=bad)  # type: ignore[arg-type]
    s.refresh()
    assert len(s) == 1 and store_rt.store.get_object("t.k", "r", "x").value == b"1"
