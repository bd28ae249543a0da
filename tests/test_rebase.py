"""``append(rebase=True)``: it reads only what other writers appended, and it gives up
with a typed error at its deadline (issue 13, item 6)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import srt
from rel_support.waits import joined, waited


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[srt.Runtime]:
    runtime = srt.Runtime(str(tmp_path / "srt.db"))
    yield runtime
    runtime.close()


def test_a_rebase_reads_only_the_new_messages_and_builds_the_same_bytes(
    rt: srt.Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = rt.session("s"), rt.session("s")
    a.append(user("1"), {"role": "assistant", "content": "2", "metadata": {"pinned": True}})
    b.refresh()
    assert len(b) == 2  # b has loaded the chain
    b.request("anthropic.messages", model="claude-sonnet-4-5")
    a.append(user("3"), user("4"))

    def whole_chain(head: int | None) -> None:
        raise AssertionError("the rebase read the whole chain again")

    with monkeypatch.context() as m:
        m.setattr(rt.store, "chain", whole_chain)
        b.append(user("5"), rebase=True)
    want = [user("1"), {"role": "assistant", "content": "2"}, user("3"), user("4"), user("5")]
    assert b.messages() == want
    with srt.Runtime(str(tmp_path / "srt.db")) as fresh:
        f = fresh.session("s", create=False)
        assert f.messages() == want and f.prefix_hash == b.prefix_hash
        for fmt, model in (("openai.chat", "m"), ("anthropic.messages", "claude-sonnet-4-5")):
            assert b.request(fmt, model=model) == f.request(fmt, model=model)


def test_a_rebase_onto_another_branch_reloads_the_whole_chain(rt: srt.Runtime) -> None:
    a, b = rt.session("s"), rt.session("s")
    a.append(user("1"), user("2"))
    b.refresh()
    a.rewind(1)
    a.append(user("x"))  # the head is now on another branch than b's
    b.append(user("3"), rebase=True)
    assert b.messages() == [user("1"), user("x"), user("3")]


def test_a_rebase_with_no_time_left_gives_up_and_writes_nothing(rt: srt.Runtime) -> None:
    a, b = rt.session("s"), rt.session("s")
    a.append(user("1"))
    len(b)
    a.append(user("2"))
    with pytest.raises(srt.ConflictError, match="gave up rebasing"):
        b.append(user("3"), rebase=True, timeout=0)
    assert rt.session("s").messages() == [user("1"), user("2")]
    b.append(user("3"), rebase=True)  # with time to rebase, it goes on top
    assert rt.session("s").messages() == [user("1"), user("2"), user("3")]


def test_waiting_for_the_writer_lock_ends_at_the_deadline(rt: srt.Runtime) -> None:
    s = rt.session("s")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rt.store.db.write("holding the lock"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    waited(held, "the holder thread taking the writer lock", 30)
    try:
        with pytest.raises(srt.StoreBusyError):
            s.append(user("late"), rebase=True, timeout=0.2)
    finally:
        release.set()
        joined(t)
    assert s.messages() == []
    s.append(user("now"))
    assert s.messages() == [user("now")]


def test_waiting_for_another_process_ends_at_the_deadline(tmp_path: Path) -> None:
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path) as rt:
        s = rt.session("s")
        other = apsw.Connection(path)  # stands in for another process's writer
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(srt.StoreBusyError):
                s.append(user("late"), timeout=0.3)
        finally:
            other.execute("ROLLBACK")
            other.close()
        s.append(user("now"))
        assert s.messages() == [user("now")]


@pytest.mark.parametrize("timeout", [-1, "1", True, float("nan")])
def test_a_bad_timeout_is_a_config_error(rt: srt.Runtime, timeout: object) -> None:
    with pytest.raises(srt.ConfigError, match="timeout"):
        rt.session("s").append(user("x"), timeout=timeout)  # type: ignore[arg-type]


def test_the_wait_for_another_process_ends_by_the_clock_when_pauses_oversleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a loaded machine each pause sleeps longer than asked. SQLite's busy timeout adds
    up the pauses it asked for, so every oversleep went on top of the deadline (57 ms past
    a 1 s one in CI); srt's busy handler looks at the clock instead."""
    from srt.store.sqlite import database

    now = [100.0]

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return now[0]

        @staticmethod
        def sleep(seconds: float) -> None:
            now[0] += seconds + 0.02  # every pause oversleeps by 20 ms

    monkeypatch.setattr(database, "time", Clock)
    busy = database.busy_until(100.0 + 1.0)
    tries = 0
    while busy(tries):
        tries += 1
    assert 101.0 <= now[0] <= 101.0 + 0.02  # past the deadline by one oversleep at most
    assert tries < 30
    assert not busy(tries)
