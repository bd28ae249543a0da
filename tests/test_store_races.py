"""The content-addressed store under concurrency: threads, runtimes and processes racing
on one head or one file; one winner, the losers conflict, nothing lost.

Rows are inspected by opening the file with ``apsw`` (see ``support.connect``)."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest

import srt
from rel_support.waits import WAIT_S
from store_support import HISTORY, assistant, user
from support import connect, process_worker, snapshot


@pytest.fixture
def rt(store_rt: srt.Runtime) -> srt.Runtime:
    """The session tests of this module run once per engine (SQLite, PostgreSQL)."""
    return store_rt


# -- concurrency ---------------------------------------------------------------------------


def _race(handles: list[srt.Session], turns: list[tuple[dict[str, str], ...]]) -> list[Any]:
    """Append ``turns[i]`` through ``handles[i]``, all released by one barrier."""
    barrier = threading.Barrier(len(handles), timeout=WAIT_S)
    results: list[Any] = [None] * len(handles)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = handles[i].append(*turns[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    return results


def _check_one_winner(
    a: srt.Session, b: srt.Session, results: list[Any], turns: list[tuple[dict[str, str], ...]]
) -> None:
    conflicts = [i for i, r in enumerate(results) if isinstance(r, srt.ConflictError)]
    winners = [i for i, r in enumerate(results) if isinstance(r, int)]
    assert len(conflicts) == 1, results
    assert len(winners) == 1, results
    w, loser = winners[0], conflicts[0]
    handles = [a, b]
    assert handles[w].messages() == [*HISTORY, *turns[w]]
    assert handles[loser].messages() == HISTORY  # the loser wrote nothing
    handles[loser].append(*turns[loser], rebase=True)
    expected = [*HISTORY, *turns[w], *turns[loser]]
    assert handles[loser].messages() == expected
    handles[w].refresh()
    assert handles[w].messages() == expected


_TURNS = [
    (user("from A"), assistant("reply A")),
    (user("from B"), assistant("reply B")),
]


def test_two_threads_race_on_one_head(rt: srt.Runtime) -> None:
    for attempt in range(5):
        name = f"same-{attempt}"
        rt.session(name).append(*HISTORY)
        a = rt.session(name)
        b = rt.session(name)
        assert a.head == b.head is not None
        results = _race([a, b], list(_TURNS))
        _check_one_winner(a, b, results, list(_TURNS))
        assert rt.session(name).messages() == a.messages()


def test_two_runtimes_race_on_one_head(db_path: str) -> None:
    with srt.Runtime(db_path) as one, srt.Runtime(db_path) as two:
        one.session("same").append(*HISTORY)
        a = one.session("same")
        b = two.session("same")
        results = _race([a, b], list(_TURNS))
        _check_one_winner(a, b, results, list(_TURNS))
    with srt.Runtime(db_path) as three:
        assert len(three.session("same").messages()) == len(HISTORY) + 4


def test_stale_handle_conflicts_without_a_race(rt: srt.Runtime) -> None:
    a = rt.session("s")
    b = rt.session("s")
    a.append(user("first"))
    before = snapshot(rt.path)
    with pytest.raises(srt.ConflictError):
        b.append(user("second"))
    with pytest.raises(srt.ConflictError):
        b.rewind(0)
    assert snapshot(rt.path) == before
    b.refresh()
    b.append(user("second"))
    assert rt.session("s").messages() == [user("first"), user("second")]


def test_many_threads_rebase_onto_one_session(rt: srt.Runtime) -> None:
    rt.session("shared")
    n_threads, n_appends = 8, 50
    barrier = threading.Barrier(n_threads, timeout=WAIT_S)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        s = rt.session("shared")
        barrier.wait()
        try:
            for j in range(n_appends):
                s.append(user(f"t{k} m{j}"), rebase=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive()
    assert errors == []
    got = [m["content"] for m in rt.session("shared").messages()]
    assert len(got) == n_threads * n_appends
    expected = {f"t{k} m{j}" for k in range(n_threads) for j in range(n_appends)}
    assert sorted(got) == sorted(expected)
    # Each thread's own messages stay in its order.
    for k in range(n_threads):
        mine = [c for c in got if c.startswith(f"t{k} ")]
        assert mine == [f"t{k} m{j}" for j in range(n_appends)]


def test_many_processes_share_one_file(db_path: str) -> None:
    n_procs, turns = 4, 50
    # The file does not exist yet: the children also race to create and migrate it.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=process_worker, args=(db_path, i, turns)) for i in range(n_procs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * n_procs

    with srt.Runtime(db_path) as rt:
        shared = rt.session("shared", create=False).messages()
        assert len(shared) == n_procs * turns * 2
        for q, a in zip(shared[::2], shared[1::2], strict=True):
            # A turn is atomic: its answer follows its question directly.
            assert q["role"] == "user"
            assert a == assistant(q["content"].replace("question", "answer"))
        expected = {f"p{i} t{t} question" for i in range(n_procs) for t in range(turns)}
        assert {m["content"] for m in shared if m["role"] == "user"} == expected
        for i in range(n_procs):
            own = rt.session(f"own-{i}", create=False).messages()
            assert [m["content"] for m in own] == [
                f"p{i} t{t} {kind}" for t in range(turns) for kind in ("question", "answer")
            ]
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").get == "ok"
