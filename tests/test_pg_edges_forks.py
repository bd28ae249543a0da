"""Forks survive deletes under concurrency, on PostgreSQL: one process keeps forking a
session off a shared history, deleting the original and running ``gc``, while another
process appends to a fork of it. Every acknowledged turn stays, and ``verify`` finds
every chain whole.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import srt

_APPENDER = textwrap.dedent(
    """
    import sys, srt
    url, n = sys.argv[1], int(sys.argv[2])
    with srt.Runtime(url) as rt:
        s = rt.session("fork")
        for i in range(n):
            s.append({"role": "user", "content": f"turn {i}"}, rebase=True)
            print(i, flush=True)
    """
)


def test_a_fork_stays_whole_while_its_origin_is_deleted_and_collected(pg_url: str) -> None:
    turns = 120
    with srt.Runtime(pg_url) as rt:
        origin = rt.session("origin")
        origin.append(*({"role": "user", "content": f"shared {i}"} for i in range(10)))
        origin.fork("fork", at=6)
        child = subprocess.Popen(
            [sys.executable, "-c", _APPENDER, pg_url, str(turns)],
            stdout=subprocess.PIPE,
            text=True,
        )
        rounds = collected = 0
        while child.poll() is None or rounds < 3:
            name = f"origin-{rounds}"
            rt.session("fork").fork(name, at=3)  # a new origin sharing the fork's start
            rt.session(name).append({"role": "user", "content": f"only in {name}"})
            rt.store.delete_session(name)
            if rounds == 0:
                rt.store.delete_session("origin")
            collected += rt.store.gc().nodes
            rounds += 1
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        acknowledged = [int(line) for line in out.split()]
        assert acknowledged == list(range(turns))
        contents = [m["content"] for m in rt.session("fork").messages()]
        assert contents == [f"shared {i}" for i in range(6)] + [f"turn {i}" for i in range(turns)]
        report = rt.store.verify()
        assert report.ok, report
        assert [i.name for i in rt.store.list_sessions()] == ["fork"]
        assert collected >= rounds  # each round's own message went
