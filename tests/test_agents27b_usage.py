"""``SrtSession``'s usage per turn and per session, as the SDK's ``AdvancedSQLiteSession``
keeps it: a branch counts the requests of its own turns only (the SDK copies a branch's
messages but not their usage rows), ``turn_usage()`` lists only the turns that have
usage, and ``session_usage(branch=None)`` (alias ``get_session_usage``) sums the whole
session or one branch in the SDK's shape. Driven by the SDK's ``Runner`` against
``srt.testing.ProviderServer``, on SQLite and PostgreSQL; the last test runs the same
conversation through ``AdvancedSQLiteSession`` and compares the two."""

from __future__ import annotations

from pathlib import Path

import pytest
from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession

import srt
from agents_support import REPLIES, converse, run
from srt.errors import ConfigError, SessionNotFoundError
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer
from support import agents_run, agents_turns


def billed(server: ProviderServer, *which: int) -> tuple[int, int, int]:
    """(requests, input tokens, output tokens) of the server's requests ``which``."""
    rows = [server.log[i] for i in which]
    usage = [r.usage or {} for r in rows]
    return len(rows), sum(u["input_tokens"] for u in usage), sum(u["output_tokens"] for u in usage)


def test_a_branch_counts_only_its_own_turns(store_rt: srt.Runtime, server: ProviderServer) -> None:
    """The fork shares main's turn 1 (two requests, recorded by main): its turn usage is
    its own turn 2 alone, and the branches' turn usage adds up to the server's requests,
    each once."""
    s = SrtSession("s", store_rt)
    server.script("responses", REPLIES)
    run(converse(server.url, s, lambda: s.fork(at_turn=2, name="alt"), s.switch_to))
    assert len(server.log) == 5

    def turns() -> list[tuple[int, int, int, int]]:
        return [
            (t["turn"], t["requests"], t["input_tokens"], t["output_tokens"])
            for t in run(s.turn_usage())
        ]

    assert turns() == [(1, *billed(server, 0, 1)), (2, *billed(server, 2)), (3, *billed(server, 4))]
    run(s.switch_to("alt"))
    assert turns() == [(2, *billed(server, 3))]  # (not main's turn 1 as well)
    everything = billed(server, 0, 1, 2, 3, 4)
    per_branch = []
    for b in ("main", "alt"):
        run(s.switch_to(b))
        per_branch += [t[1:] for t in turns()]
    assert tuple(sum(col) for col in zip(*per_branch, strict=True)) == everything


def test_a_fork_of_the_whole_branch_starts_with_no_usage(store_rt: srt.Runtime) -> None:
    """A fork at the end shares every turn and has recorded none: no usage until a run
    of its own (the SDK's branch has no ``turn_usage`` row either)."""
    s = SrtSession("w", store_rt)
    run(s.add_items(agents_turns(1), wrapper=agents_run(5, 2)))
    run(s.fork(name="copy"))
    assert run(s.turn_usage()) == []
    assert run(s.session_usage("copy")) is None
    run(s.add_items(agents_turns(2)[2:], wrapper=agents_run(9, 4)))
    assert run(s.turn_usage()) == [
        {"turn": 2, "requests": 1, "input_tokens": 9, "cached_tokens": 0, "output_tokens": 4}
    ]
    assert run(s.session_usage()) == {
        "requests": 2,
        "input_tokens": 14,
        "output_tokens": 6,
        "total_tokens": 20,
        "total_turns": 2,
    }


def test_turns_without_usage_are_not_listed(store_rt: srt.Runtime) -> None:
    """Turns written without a run context have no usage: ``turn_usage()`` leaves them
    out (the SDK lists only turns with a ``turn_usage`` row) and ``session_usage()`` is
    ``None`` until a turn has some, as the SDK's ``get_session_usage``."""
    s = SrtSession("z", store_rt)
    run(s.add_items(agents_turns(2)))
    assert run(s.turn_usage()) == []
    assert run(s.session_usage()) is None
    assert run(s.get_session_usage("main")) is None
    run(s.add_items(agents_turns(3)[4:], wrapper=agents_run(11, 3)))
    assert run(s.turn_usage()) == [
        {"turn": 3, "requests": 1, "input_tokens": 11, "cached_tokens": 0, "output_tokens": 3}
    ]
    assert run(s.session_usage()) == {
        "requests": 1,
        "input_tokens": 11,
        "output_tokens": 3,
        "total_tokens": 14,
        "total_turns": 1,
    }


def test_session_usage_refuses_a_bad_branch(store_rt: srt.Runtime) -> None:
    s = SrtSession("e", store_rt)
    with pytest.raises(SessionNotFoundError, match="no branch 'nope'"):
        run(s.session_usage("nope"))
    for bad in (3, b"main", ""):
        with pytest.raises(ConfigError, match="branch"):
            run(s.session_usage(bad))  # type: ignore[arg-type]


def test_as_the_sdks_advanced_session(server: ProviderServer, tmp_path: Path) -> None:
    """The same conversation through ``SrtSession`` and ``AdvancedSQLiteSession``
    (``store_run_usage`` after each run): the same usage per session, per branch and
    per turn of each branch."""
    ours = SrtSession("s", str(tmp_path / "srt.db"))
    sdk = AdvancedSQLiteSession(session_id="s", db_path=tmp_path / "sdk.db", create_tables=True)
    server.script("responses", REPLIES)
    run(converse(server.url, ours, lambda: ours.fork(at_turn=2, name="alt"), ours.switch_to))
    server.script("responses", REPLIES)
    run(
        converse(
            server.url, sdk, lambda: sdk.create_branch_from_turn(2, "alt"), sdk.switch_to_branch
        )
    )
    # Both sent the same histories (the server's item ids aside) and were billed the same.
    assert [r.labels for r in server.log[:5]] == [r.labels for r in server.log[5:]]
    assert [r.usage for r in server.log[:5]] == [r.usage for r in server.log[5:]]

    expected = run(sdk.get_session_usage())
    assert expected is not None and expected["requests"] == 5 and expected["total_turns"] == 4
    assert run(ours.session_usage()) == expected
    assert run(ours.get_session_usage()) == expected
    for b in ("main", "alt"):
        assert run(ours.session_usage(b)) == run(sdk.get_session_usage(b))
        run(ours.switch_to(b))
        run(sdk.switch_to_branch(b))
        assert [
            (t["turn"], t["requests"], t["input_tokens"], t["output_tokens"])
            for t in run(ours.turn_usage())
        ] == [
            (t["user_turn_number"], t["requests"], t["input_tokens"], t["output_tokens"])
            for t in run(sdk.get_turn_usage())
        ]
    ours.close()
    sdk.close()
