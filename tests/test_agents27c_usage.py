"""``SrtSession``'s usage after ``clear_session()`` and ``pop_item()``, as the SDK's
``AdvancedSQLiteSession`` keeps it: usage recorded before a clear, or for a turn whose
user message was popped, never counts for items added after it, even the same items
again (srt's messages are content-addressed, so they come back as the same nodes); and
popping only a turn's reply keeps the turn's usage until its user message goes. Driven by
the SDK's ``Runner`` against ``srt.testing.ProviderServer``, on SQLite and PostgreSQL,
each beside the same calls on ``AdvancedSQLiteSession``."""

from __future__ import annotations

from pathlib import Path

import srt
from agents_support import both, run, usage
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer
from support import agents_run, agents_turns


def test_a_clear_drops_the_usage_of_what_comes_back(
    store_rt: srt.Runtime, server: ProviderServer, tmp_path: Path
) -> None:
    """The same turn after a clear is the same srt nodes: only the new run's request
    counts, as in the SDK."""
    got, expected, _ = both(store_rt, server, tmp_path, ["hello", "hello"], ["hi", "clear", "hi"])
    assert expected[0] == [(1, *expected[0][0][1:])] and expected[1]["requests"] == 1
    assert got == expected


def test_a_popped_turn_drops_its_usage_when_it_comes_back(
    store_rt: srt.Runtime, server: ProviderServer, tmp_path: Path
) -> None:
    """Popping a turn whole (reply, then user message) and running it again: its usage
    is the new run's alone."""
    got, expected, _ = both(
        store_rt,
        server,
        tmp_path,
        ["hello", "fine", "fine"],
        ["hi", "how are you?", "pop", "pop", "how are you?"],
    )
    assert [t[:2] for t in expected[0]] == [(1, 1), (2, 1)]
    assert got == expected


def test_popping_a_reply_keeps_the_turns_usage(
    store_rt: srt.Runtime, server: ProviderServer, tmp_path: Path
) -> None:
    """Popping only the reply leaves the turn (its user message) and so its usage, as the
    SDK; popping the user message too takes it."""
    got, expected, ours = both(
        store_rt, server, tmp_path, ["hello", "fine"], ["hi", "how are you?", "pop"]
    )
    assert [t[:2] for t in expected[0]] == [(1, 1), (2, 1)]
    assert got == expected
    run(ours.pop_item())
    assert [t[:2] for t in usage(ours)[0]] == [(1, 1)]
    assert usage(ours)[1]["requests"] == 1


def test_a_reply_popped_and_added_back_counts_once(store_rt: srt.Runtime) -> None:
    """A reply popped and added again (no new request) keeps the turn's one request; a
    new reply's request replaces it (as ``AdvancedSQLiteSession``: test_agents29_usage);
    clearing leaves nothing, and the same turn added back
    afterwards without a run context has no usage."""
    s = SrtSession("w", store_rt)
    turn = agents_turns(1)
    run(s.add_items(turn, wrapper=agents_run(5, 2)))
    reply = run(s.pop_item())
    run(s.add_items([reply]))
    assert [t["requests"] for t in run(s.turn_usage())] == [1]
    run(s.pop_item())
    run(s.add_items([reply], wrapper=agents_run(7, 3)))
    assert run(s.turn_usage()) == [
        {"turn": 1, "requests": 1, "input_tokens": 7, "cached_tokens": 0, "output_tokens": 3}
    ]
    run(s.clear_session())
    run(s.add_items(turn))
    assert run(s.turn_usage()) == []
    assert run(s.session_usage()) is None


def test_a_branch_keeps_its_own_pops(store_rt: srt.Runtime) -> None:
    """A pop on a branch voids that branch's usage only: main's same turn keeps its own,
    and a branch deleted and made again under its name starts with none."""
    s = SrtSession("b", store_rt)
    run(s.add_items(agents_turns(1), wrapper=agents_run(5, 2)))
    run(s.fork(name="alt"))
    run(s.add_items(agents_turns(2)[2:], wrapper=agents_run(9, 4)))
    run(s.pop_item())
    run(s.pop_item())
    run(s.add_items(agents_turns(2)[2:]))
    assert run(s.turn_usage()) == []
    run(s.switch_to("main"))
    run(s.add_items(agents_turns(2)[2:], wrapper=agents_run(8, 1)))
    assert [(t["turn"], t["input_tokens"]) for t in run(s.turn_usage())] == [(1, 5), (2, 8)]
    run(s.delete_branch("alt"))
    run(s.fork(name="alt"))
    assert run(s.session_usage("alt")) is None


def test_replaced_items_are_popped_for_usage(store_rt: srt.Runtime) -> None:
    """``replace_items`` removes what it replaces as pops do: a turn whose reply it
    replaced keeps its usage, one it replaced whole loses it, and the old items put back
    bring none back."""
    s = SrtSession("r", store_rt)
    turn = agents_turns(1)
    run(s.add_items(turn, wrapper=agents_run(5, 2)))
    run(s.replace_items([turn[0], agents_turns(2)[3]]))
    assert [(t["turn"], t["requests"]) for t in run(s.turn_usage())] == [(1, 1)]
    run(s.replace_items([{"content": "a summary", "role": "user"}]))
    assert run(s.turn_usage()) == []
    run(s.replace_items(turn))
    assert run(s.turn_usage()) == []
    assert run(s.session_usage()) is None
