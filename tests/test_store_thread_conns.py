"""A thread's SQLite connection ends with the thread. srt opens one connection per
thread that uses a store, and kept every one open until the store closed: a process that
calls srt from short-lived threads (``asyncio.to_thread`` under a new event loop each
call, as ``asyncio.run`` per call does; a thread per request) ran out of file
descriptors, and the Agents SDK session's race test then failed with "unable to open
database file"."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from pathlib import Path

import srt
from rel_support.waits import joined

THREADS = 150


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_short_lived_threads_leave_no_connection_open(tmp_path: Path) -> None:
    with srt.Runtime(str(tmp_path / "t.db")) as rt:
        s = rt.session("s")
        s.append({"role": "user", "content": "hi"})
        before = _fds()
        seen: list[int] = []

        def use() -> None:
            seen.append(len(rt.session("s").messages()))
            rt.session("s").append({"role": "assistant", "content": "yes"})

        for _ in range(THREADS):
            t = threading.Thread(target=use)
            t.start()
            joined(t)
        gc.collect()
        grown = _fds() - before
        # (each thread's connection holds the database and its WAL open: two or more)
        assert grown < 10, grown
        assert seen == list(range(1, THREADS + 1))  # (each saw the turns before it)
        assert len(rt.session("s").messages()) == 1 + THREADS


def test_a_new_event_loop_per_call_leaves_no_connection_open(tmp_path: Path) -> None:
    with srt.Runtime(str(tmp_path / "a.db")) as rt:
        rt.session("a").append({"role": "user", "content": "hi"})
        before = _fds()

        async def read() -> int:
            return await asyncio.to_thread(lambda: len(rt.session("a").messages()))

        assert all(asyncio.run(read()) == 1 for _ in range(THREADS))
        gc.collect()
        assert _fds() - before < 10
