"""One Runtime used on both sides of ``os.fork()`` (POSIX).

A runtime on a file appends; the process forks; the child goes on with the SAME
``Runtime`` object (and the parent's session handle it inherited): it appends turns to
a session of its own and reads the parent's session, then exits with ``os._exit(0)``,
having closed the runtime in even rounds and not in odd ones, while the parent keeps
appending to its session. Two pipes make them take turns (parent, child, parent, ...),
so every round has both processes' commits interleaved on the one file without relying
on timing. The store's pid guard (``srt.store.sqlite.database``) must give the child
connections of its own: SQLite forbids carrying a connection across ``fork()`` (the
child would act on the parent's lock and WAL-index state), and what that breaks depends
on timing, so the child also checks directly, by a TEMP table that only the parent's
connection has, that the store did not lend it the parent's connection.

Afterwards the file passes ``PRAGMA integrity_check`` and srt's own ``verify`` (and the
outsider's ``rel_support.common.verify_store``), and every turn either process was told
was stored (an ``append`` that returned) is in its session exactly once, in order, and
nothing else is.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import emit, verify_store
from rel_support.waits import WAIT_S, joined, waited

ROUNDS = 10
TURNS = 5  # turns each process appends per round, after the fork
CHILD_DEADLINE_S = 60.0  # a hang guard only: a child still running then is a failure
#: A TEMP table exists in the one connection that created it (SQLite's temp schema is
#: per connection): the parent marks its connection so the child can tell whose it uses.
MARKER = "CREATE TEMP TABLE IF NOT EXISTS srt_test_fork_marker(x)"
MARKER_SEEN = "SELECT count(*) FROM temp.sqlite_master WHERE name = 'srt_test_fork_marker'"


def turn(tid: str) -> tuple[dict[str, str], dict[str, str]]:
    return {"role": "user", "content": f"Q {tid}"}, {"role": "assistant", "content": f"A {tid}"}


def turn_ids(messages: list[dict[str, Any]]) -> list[str]:
    """The turn ids of a chain of ``turn`` pairs; anything else is named as such."""
    out = []
    for i in range(0, len(messages), 2):
        q, a = messages[i], messages[i + 1] if i + 1 < len(messages) else {}
        tid = str(q.get("content", ""))[2:]
        if q.get("content") != f"Q {tid}" or a.get("content") != f"A {tid}":
            out.append(f"<not a turn: {q!r} {a!r}>")
        else:
            out.append(tid)
    return out


@dataclass
class Pipes:
    """Two pipes, so that parent and child take turns appending (no timing involved)."""

    to_child: tuple[int, int] = field(default_factory=os.pipe)
    to_parent: tuple[int, int] = field(default_factory=os.pipe)

    def close(self) -> None:
        for fd in (*self.to_child, *self.to_parent):
            with contextlib.suppress(OSError):
                os.close(fd)


def child(
    rt: srt.Runtime, parent: srt.Session, rnd: int, close: bool, pipes: Pipes, report: Path
) -> None:  # pragma: no cover - runs in the forked child, which never returns
    """The child's whole life: append in turn with the parent, reading the parent's
    session each time; maybe close; exit with ``os._exit``."""
    out: dict[str, Any] = {"pid": os.getpid(), "acked": [], "parent_last": [], "error": None}
    code = 1
    try:
        os.close(pipes.to_child[1])
        os.close(pipes.to_parent[0])
        own = rt.session(f"child-{rnd}")
        for i in range(TURNS):
            if os.read(pipes.to_child[0], 1) != b"p":  # the parent has appended turn i
                raise RuntimeError("the parent went away")
            out["parent_last"].append(turn_ids(rt.session("parent", create=False).messages())[-1])
            tid = f"c{rnd}.{i}"
            own.append(*turn(tid))
            out["acked"].append(tid)
            os.write(pipes.to_parent[1], b"c")
        # The connection the store gives the child is one the child opened: the parent's
        # carries the parent's TEMP marker table, a connection of the child's own does not.
        out["parent_marker_seen"] = rt.store.db.connection().execute(MARKER_SEEN).get
        out["parent_fresh"] = turn_ids(rt.session("parent", create=False).messages())
        parent.refresh()  # the handle the child inherited from the parent
        out["parent_inherited"] = turn_ids(parent.messages())
        out["own_read_back"] = turn_ids(own.messages())
        if close:
            rt.close()
        code = 0
    except BaseException:
        out["error"] = traceback.format_exc()
    finally:
        try:
            report.write_text(json.dumps(out))
        finally:
            os._exit(code)


def hand_over(pipes: Pipes) -> bool:
    """Tell the child the parent appended, and whether the child then appended its turn
    (``False``: it is gone, or hung past the guard)."""
    try:
        os.write(pipes.to_child[1], b"p")
    except BrokenPipeError:
        return False
    ready, _, _ = select.select([pipes.to_parent[0]], [], [], CHILD_DEADLINE_S)
    return bool(ready) and os.read(pipes.to_parent[0], 1) == b"c"


def wait_child(pid: int) -> int:
    """The child's exit status; SIGKILL and a failure if it hangs past the guard."""
    deadline = time.monotonic() + CHILD_DEADLINE_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child {pid} hung (killed after {CHILD_DEADLINE_S} s)")
        time.sleep(0.005)


def test_one_runtime_used_across_fork_by_parent_and_child(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    path = str(tmp_path / "fork.db")
    rt = srt.Runtime(path)
    parent = rt.session("parent")
    parent_acked: list[str] = []
    child_acked: dict[int, list[str]] = {}
    exits: list[str] = []
    try:
        for rnd in range(ROUNDS):
            tid = f"p{rnd}.before"
            parent.append(*turn(tid))
            parent_acked.append(tid)
            rt.store.db.connection().execute(MARKER)
            close = rnd % 2 == 0
            report = tmp_path / f"child-{rnd}.json"
            pipes = Pipes()
            with warnings.catch_warnings():
                # Python 3.12+ warns that forking a multi-threaded process (pytest-xdist's
                # worker has threads) may deadlock the child; that is this test's business.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                child(rt, parent, rnd, close, pipes, report)
            try:
                os.close(pipes.to_child[0])
                os.close(pipes.to_parent[1])
                # The parent keeps appending meanwhile: p, c, p, c, ... on the one file.
                for i in range(TURNS):
                    tid = f"p{rnd}.{i}"
                    parent.append(*turn(tid))
                    parent_acked.append(tid)
                    if not hand_over(pipes):
                        break  # (the child's report says why)
            finally:
                pipes.close()
            status = wait_child(pid)
            got = json.loads(report.read_text()) if report.exists() else {}
            assert got.get("error") is None, f"round {rnd} child failed:\n{got['error']}"
            assert os.waitstatus_to_exitcode(status) == 0, (rnd, status, got)
            exits.append("closed" if close else "not closed")
            child_acked[rnd] = got["acked"]
            assert got["parent_marker_seen"] == 0, (
                f"round {rnd}: the child used the parent's connection"
            )
            assert got["acked"] == [f"c{rnd}.{i}" for i in range(TURNS)]
            assert got["own_read_back"] == got["acked"]
            # Each time, the child saw the turn the parent had just committed; at the end,
            # the parent's whole session as the parent acknowledged it, and nothing else.
            assert got["parent_last"] == [f"p{rnd}.{i}" for i in range(TURNS)]
            assert got["parent_fresh"] == parent_acked
            assert got["parent_inherited"] == parent_acked
        # The parent's runtime still works after all the children came and went, on the
        # connection it had (the children's exits closed nothing of the parent's).
        assert rt.store.db.connection().execute(MARKER_SEEN).get == 1
        assert turn_ids(rt.session("parent", create=False).messages()) == parent_acked
        live = rt.store.verify()
        assert live.ok, live.faults
    finally:
        rt.close()

    rep = verify_store(path)
    assert rep.integrity == "ok"
    assert rep.problems == []
    with srt.Runtime(path) as again:
        report_after = again.store.verify()
        assert report_after.ok, report_after.faults
        stored = {
            name: turn_ids(again.session(name).messages())
            for name in (i.name for i in again.sessions())
        }
    expected = {"parent": parent_acked} | {f"child-{r}": ids for r, ids in child_acked.items()}
    assert stored == expected
    assert {n: turn_ids(chain) for n, chain in rep.chains.items()} == expected
    everywhere = [tid for ids in stored.values() for tid in ids]
    assert len(everywhere) == len(set(everywhere))  # each acknowledged turn exactly once
    emit(
        "fork_one_runtime",
        {
            "rounds": ROUNDS,
            "child_exits": exits,
            "parent_turns": len(parent_acked),
            "child_turns": sum(len(v) for v in child_acked.values()),
            "integrity": rep.integrity,
            "verify_faults": len(report_after.faults),
        },
        capsys,
        tmp_path_factory.getbasetemp(),
    )


def test_a_fork_while_another_thread_holds_the_writer_lock_leaves_the_child_free(
    tmp_path: Path,
) -> None:
    """A thread of the parent holds the file's writer lock (it is inside an append) when
    another thread forks. That lock stays held in the child, where no thread will release
    it: the child now takes a lock of its own and writes at once (it waited the whole busy
    timeout, 10 s, then failed with ``StoreBusyError``). The parent's writer goes on."""
    path = str(tmp_path / "held.db")
    rt = srt.Runtime(path)
    rt.session("t").append(*turn("t0"))
    lock = rt.store.db.lock
    held, release = threading.Event(), threading.Event()

    def holder() -> None:  # as a writer of the parent between BEGIN and COMMIT
        with lock:
            held.set()
            release.wait(WAIT_S)

    statuses: list[int] = []
    for n in range(3):
        thread = threading.Thread(target=holder)
        thread.start()
        waited(held, "the holder thread taking the writer lock")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # (3.12+: fork with threads)
            pid = os.fork()
        if pid == 0:  # the child: the holder thread does not exist here
            code = 1
            try:
                rt.session(f"c{n}").append(*turn(f"c{n}"), timeout=1.0)
                rt.session("t").append(*turn(f"t-from-c{n}"), rebase=True, timeout=1.0)
                code = 0
            finally:
                os._exit(code)
        try:
            statuses.append(wait_child(pid))
        finally:  # a failed wait leaves no holder behind to keep the worker from exiting
            release.set()
            joined(thread)
        held.clear()
        release.clear()
        rt.session("t").append(*turn(f"t{n + 1}"), rebase=True)
    rt.close()
    assert statuses == [0, 0, 0]
    with srt.Runtime(path) as fresh:
        assert [turn_ids(fresh.session(f"c{n}").messages()) for n in range(3)] == [
            [f"c{n}"] for n in range(3)
        ]
        assert turn_ids(fresh.session("t").messages()) == [
            "t0",
            "t-from-c0",
            "t1",
            "t-from-c1",
            "t2",
            "t-from-c2",
            "t3",
        ]
        assert fresh.store.verify().ok
    assert verify_store(path).ok


def test_a_child_whose_first_store_call_is_an_append_opens_its_own_connection(
    tmp_path: Path,
) -> None:
    """The child's first use of the store is an append on the parent's handle (nothing
    else asked for a connection first): ``Database.begin``'s own fork check must give it
    a connection of its own, not the parent's (marked by a TEMP table only it has)."""
    path = str(tmp_path / "first.db")
    rt = srt.Runtime(path)
    s = rt.session("s")
    s.append(*turn("p0"))  # (the handle's history is loaded: the child reads nothing)
    rt.store.db.connection().execute(MARKER)
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (3.12+: fork with threads)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(r)
            s.append(*turn("c0"))
            # what begin used (asking connection() for it would reset it)
            used = rt.store.db._local.conn  # noqa: SLF001
            seen = used.execute(MARKER_SEEN).fetchone()[0]
            os.write(w, str(seen).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    status = wait_child(pid)
    with os.fdopen(r, "rb") as got:
        seen = got.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0
    assert seen == "0", "the child appended through the parent's connection"
    s.append(*turn("p1"), rebase=True)  # the parent goes on, on top of the child's turn
    assert turn_ids(rt.session("s").messages()) == ["p0", "c0", "p1"]
    rt.close()
    assert verify_store(path).ok
