"""The worker slots a ``background`` response waits for, after its create is answered.

api.openai.com answers a ``background`` create ``queued`` at once and runs it later. A
background response here runs on a thread of its own (``asgi.State.waiting``): it stores
its record, answers ``queued`` (its ``response.created``), then takes a thread of the
app's pool, the slot every upstream call runs in, and holds it until its run is over. So
a create is answered while every slot is busy; the backlog is bounded
(``server.background_queue``): a create past it is OpenAI's 429 ``rate_limit_exceeded``,
and nothing of it is stored or sent.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor

from .errors import ApiError

__all__ = ["Slots"]

#: How often a response waiting for a slot looks whether it was cancelled meanwhile.
POLL_S = 0.05


class Slots:
    """The pool's threads as slots for background runs, and their bounded backlog."""

    def __init__(self, pool: Executor, backlog: int) -> None:
        self._pool = pool
        self.backlog = backlog
        self._lock = threading.Lock()
        self._queued: set[str] = set()  # admitted, no slot yet
        self._held: dict[str, threading.Event] = {}  # a slot's release, by response
        self._closed = threading.Event()

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queued)

    def admit(self, rid: str) -> None:
        """Count ``rid`` in the backlog, or refuse it (429) when the backlog is full."""
        with self._lock:
            if len(self._queued) >= self.backlog:
                raise ApiError(
                    429,
                    f"Too many background responses are queued ({self.backlog}, every "
                    "worker slot busy); retry shortly.",
                    code="rate_limit_exceeded",
                    headers={"retry-after": "1"},
                )
            self._queued.add(rid)

    def take(self, rid: str, cancel: threading.Event) -> bool:
        """Wait (on the response's own thread) for a slot and hold it until ``release``;
        False: ``cancel`` was set (or the app closed) while it waited, and no slot is held."""
        started, done = threading.Event(), threading.Event()

        def hold() -> None:  # a pool thread, the response's until it is released
            started.set()
            done.wait()

        with self._lock:
            self._held[rid] = done
        try:
            self._pool.submit(hold)
        except RuntimeError:  # the pool is shut down: the app is closing
            self.release(rid)
            return False
        while not started.wait(POLL_S):
            if cancel.is_set() or self._closed.is_set():
                self.release(rid)  # (``hold`` returns at once if it ever starts)
                return False
        with self._lock:
            self._queued.discard(rid)
        return True

    def release(self, rid: str) -> None:
        """``rid``'s run is over: its slot (if it held one) is free, and it leaves the
        backlog (if it never reached a slot). Safe to call more than once."""
        with self._lock:
            self._queued.discard(rid)
            done = self._held.pop(rid, None)
        if done is not None:
            done.set()

    def close(self) -> None:
        """The app is closing: a response waiting for a slot stops waiting."""
        self._closed.set()
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for done in held:
            done.set()
