"""One thread that enforces the total-time cap of every sync response in the process.

A ``threading.Timer`` per response started a thread per call, and ``Thread.start`` waits
for the new thread to run: a hand-off on every request (about 0.15 ms at the median on a
2-core VM, 2 ms at the 90th percentile when the machine was idle). Here a response only
files its deadline (a dict entry under a lock); one daemon thread looks every
``POLL_S`` seconds and expires what is due, so a cap fires at most ``POLL_S`` late. It
holds responses by weak reference: a response nobody holds is not kept alive by it.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["POLL_S", "unwatch", "watch"]

#: How often the watchdog looks for responses past their deadline (seconds).
POLL_S = 0.25

_lock = threading.Lock()
_watched: dict[int, tuple[float, weakref.WeakMethod[Callable[[], None]]]] = {}
_tokens = itertools.count(1)
_thread: list[threading.Thread] = []


def watch(expire: Callable[[], None], deadline: float) -> int:
    """Call ``expire`` (a bound method, held weakly) once ``time.monotonic()`` passes
    ``deadline``, unless ``unwatch``-ed first; returns the token ``unwatch`` takes."""
    with _lock:
        token = next(_tokens)
        _watched[token] = (deadline, weakref.WeakMethod(expire))
        if not _thread or not _thread[0].is_alive():
            t = threading.Thread(target=_run, daemon=True, name="srt-transport-watchdog")
            _thread[:] = [t]
            t.start()
    return token


def unwatch(token: int) -> None:
    with _lock:
        _watched.pop(token, None)


def _run() -> None:
    while True:
        time.sleep(POLL_S)
        now = time.monotonic()
        with _lock:
            due = [t for t, (deadline, _) in _watched.items() if deadline <= now]
            refs = [_watched.pop(t)[1] for t in due]
        for ref in refs:
            _fire(ref)


def _fire(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    # In a function of its own: a local of the loop above would keep the last response
    # it expired alive (with its body) for as long as the thread sleeps.
    expire = ref()
    if expire is not None:
        expire()
