"""Bounded waits for tests: a thread, an event or a process that never finishes fails
the test with a message naming what did not finish, instead of holding the CI run
(and, through ``tests/conftest.py``'s ``_turn``, the other worker) until it times out.

* ``WAIT_S``: the generous bound (seconds) each wait takes unless told otherwise;
* ``joined``: join threads, fail naming any still alive;
* ``waited``: wait for an event, fail saying what it stood for;
* ``ended``: wait for a child process, kill it and fail if it does not end;
* ``line_of``: read a line from a child's pipe, fail saying what did not come.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import IO, AnyStr

WAIT_S = 300.0  # generous: a loaded two-core CI machine runs many times slower


def joined(
    *threads: threading.Thread,
    timeout: float = WAIT_S,
    stop: threading.Event | None = None,
    what: str = "",
) -> None:
    """Join every thread within ``timeout`` seconds in all; fail naming any left (and
    ``what`` they were doing), after setting ``stop`` so that loops waiting for it end."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threads if t.is_alive()]
    if alive:
        if stop is not None:
            stop.set()
        doing = f" ({what})" if what else ""
        raise AssertionError(f"thread(s) {alive}{doing} did not finish within {timeout:.0f} s")


def waited(event: threading.Event, what: str, timeout: float = WAIT_S) -> None:
    """Wait for ``event``; fail saying ``what`` did not happen within ``timeout``."""
    if not event.wait(timeout):
        raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def ended(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = WAIT_S) -> int:
    """Wait for ``proc`` to exit and return its code; kill it and fail if it does not."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        raise AssertionError(f"{proc.args!r} did not exit within {timeout:.0f} s") from None


def line_of(stream: IO[AnyStr], what: str, timeout: float = WAIT_S) -> AnyStr:
    """The next line of ``stream`` (a child's pipe; empty at its end); fail saying
    ``what`` did not come within ``timeout``. The read runs in a daemon thread, left
    blocked on a child that said nothing until the test's cleanup kills that child."""
    box: list[AnyStr] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        raise AssertionError(f"{what} did not come within {timeout:.0f} s")
    return box[0]
