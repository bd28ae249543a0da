"""``SrtSession.get_turn_usage(user_turn_number=None, branch_id=None)``, the per-turn
usage getter of the SDK's ``AdvancedSQLiteSession`` with its return shapes: the same
conversation (a tool call, a fork, turns on both branches, a pop) through both,
against ``srt.testing.ProviderServer``, gives equal answers for every branch and turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agents.extensions.memory.advanced_sqlite_session import AdvancedSQLiteSession

import srt
from agents_support import REPLIES, converse, run
from srt.errors import ConfigError, SessionNotFoundError
from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer
from support import agents_run, agents_turns


def test_as_the_sdks_advanced_session(server: ProviderServer, tmp_path: Path) -> None:
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
    assert [r.usage for r in server.log[:5]] == [r.usage for r in server.log[5:]]

    def answers(session: Any) -> list[Any]:
        out = [run(session.get_turn_usage())]
        for b in ("main", "alt"):
            out.append(run(session.get_turn_usage(branch_id=b)))
            out += [run(session.get_turn_usage(n, b)) for n in (1, 2, 3, 4)]
        return out

    expected = answers(sdk)
    assert len(expected[0]) == 3 and expected[0][0]["requests"] == 2  # (the tool call)
    assert expected[0][0]["input_tokens_details"] is not None
    assert expected[2]["requests"] == 2 and expected[5] == {}  # (main has no turn 4)
    assert answers(ours) == expected
    # After a pop of main's last reply (the turn keeps its usage) and of its user
    # message (the turn goes), on both.
    for _ in range(2):
        run(ours.pop_item())
        run(sdk.pop_item())
        assert answers(ours) == answers(sdk)
    assert run(ours.get_turn_usage(3)) == {}
    ours.close()
    sdk.close()


def test_the_details_sum_the_ledger(store_rt: srt.Runtime) -> None:
    """A turn of two requests (of one run): its totals and details are their sums (the
    cached and reasoning tokens the SDK's usage carried included)."""
    s = SrtSession("d", store_rt)
    first = agents_run(10, 3)
    first.usage.request_usage_entries[0].input_tokens_details.cached_tokens = 4
    first.usage.request_usage_entries[0].output_tokens_details.reasoning_tokens = 2
    run(s.add_items(agents_turns(1)[:1], wrapper=first))
    first.usage.add(agents_run(20, 5).usage)
    run(s.add_items(agents_turns(1)[1:], wrapper=first))
    want = {
        "requests": 2,
        "input_tokens": 30,
        "output_tokens": 8,
        "total_tokens": 38,
        "input_tokens_details": {
            "cache_write_tokens": 0,
            "cached_tokens": 4,
            "cache_write_tokens_details": None,
        },
        "output_tokens_details": {"reasoning_tokens": 2},
    }
    assert run(s.get_turn_usage(1)) == want
    assert run(s.get_turn_usage()) == [{"user_turn_number": 1, **want}]
    assert run(s.get_turn_usage(2)) == {}


def test_bad_arguments(store_rt: srt.Runtime) -> None:
    s = SrtSession("e", store_rt)
    with pytest.raises(SessionNotFoundError, match="no branch 'nope'"):
        run(s.get_turn_usage(branch_id="nope"))
    for bad in (0, -1, True, "1", 1.0):
        with pytest.raises(ConfigError, match="user_turn_number"):
            run(s.get_turn_usage(bad))  # type: ignore[arg-type]
    for name in (3, b"main", ""):
        with pytest.raises(ConfigError, match="branch_id"):
            run(s.get_turn_usage(branch_id=name))  # type: ignore[arg-type]
    assert run(s.get_turn_usage()) == [] and run(s.get_turn_usage(1)) == {}
