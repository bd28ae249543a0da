"""PostgreSQL gives a ledger row its id when it is inserted, not when it commits: a pop
that folds the usage marks (``srt.integrations._usage.fold``) while another handle's
write of a ledger row is still open must not draw a void range over that row's id.
Here the other handle's write is held open, its row inserted, by a trigger waiting on
an advisory lock the test holds (the second connection), while the first handle adds
and pops a turn; the held row, recorded against a turn that stays, counts (a run's
usage stored by ``store_run_usage``: the turn's, replacing what it had)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace

import psycopg

import srt
from agents_support import joined, run
from pg_support import fresh_url, server_url
from srt.integrations.agents import SrtSession
from support import agents_run, agents_turns

_KEY = 4242
_HELD = 777  # (the input tokens of the row the trigger holds)


def _until(done: Callable[[], bool]) -> None:
    """Wait until ``done()`` (polled; a bound, not a timing: the test fails after it)."""
    for _ in range(2400):
        if done():
            return
        threading.Event().wait(0.05)
    raise AssertionError("the other connection never got there")


def test_a_fold_spares_a_ledger_row_still_to_commit() -> None:
    with fresh_url() as url, srt.Runtime(url) as rt:
        schema = url.rsplit("schema=", 1)[1]
        a = SrtSession("s", rt)
        items = agents_turns(1)
        run(a.add_items(items, wrapper=agents_run(5, 1)))  # (turn 1: it stays)
        extra = [{"content": "question x", "role": "user"}]
        run(a.add_items(extra, wrapper=agents_run(6, 1)))
        run(a.pop_item())  # (its row void: a void run that a later one can join)
        with psycopg.connect(server_url(), autocommit=True) as held:
            held.execute(
                f'CREATE FUNCTION "{schema}".hold() RETURNS trigger LANGUAGE plpgsql AS $$ '
                f"BEGIN IF NEW.input_tokens = {_HELD} THEN "
                f"PERFORM pg_advisory_xact_lock({_KEY}); END IF; RETURN NEW; END $$"
            )
            held.execute(
                f'CREATE TRIGGER hold AFTER INSERT ON "{schema}".calls '
                f'FOR EACH ROW EXECUTE FUNCTION "{schema}".hold()'
            )
            held.execute("SELECT pg_advisory_lock(%s)", (_KEY,))

            def waiting(advisory: bool) -> bool:
                row = held.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                    + ("locktype = 'advisory'" if advisory else "locktype <> 'advisory'")
                ).fetchone()
                return bool(row and row[0])

            def b_records() -> None:  # (the write held open: its row has its id)
                with srt.Runtime(url) as rt2:
                    b = SrtSession("s", rt2)
                    result = SimpleNamespace(context_wrapper=agents_run(_HELD, 1))
                    run(b.store_run_usage(result))

            def a_adds_and_pops() -> None:
                run(a.add_items(extra, wrapper=agents_run(8, 1)))
                run(a.pop_item())

            tb = threading.Thread(target=b_records, daemon=True)
            tb.start()
            _until(lambda: waiting(advisory=True))
            ta = threading.Thread(target=a_adds_and_pops, daemon=True)
            ta.start()
            _until(lambda: not ta.is_alive() or waiting(advisory=False))
            held.execute("SELECT pg_advisory_unlock(%s)", (_KEY,))
            joined(tb, "b's store_run_usage")
            joined(ta, "a's add and pop")
        assert run(a.get_items()) == items
        turns = run(a.turn_usage())
        # (b's run is a new one in turn 1: its usage replaces the turn's, as the SDK's
        # store_run_usage does)
        assert [(t["turn"], t["requests"], t["input_tokens"]) for t in turns] == [(1, 1, _HELD)]
        a.close()
