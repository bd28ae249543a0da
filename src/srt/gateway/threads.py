"""Live histories: srt sessions kept open between requests, one request at a time each.

A *thread* is an srt session named ``gw/<tenant>/<id>``: a conversation's history, or
the history a chain of responses grows. Each worker keeps the sessions it used last in
memory (``Live``), so a turn reuses the session's assembled request and costs the new
messages, not the history. A live session serves one request at a time; a second
request on a busy conversation gets 409 at once, and a second continuation of the same
response forks.

Before a turn the thread's stored head is read (one small query): when another worker
moved it, this worker reloads. The turn itself commits its input and reply in one
compare-and-swap (``Session.send(append=...)``), so two workers racing on one
conversation give one success and one ``ConflictError`` (409), never interleaved turns.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConflictError, SessionNotFoundError
from ..runtime import Runtime
from ..session import Session
from ..store.heads import delete_session
from .errors import ApiError
from .records import thread_name

__all__ = ["Live", "Threads", "thread_name"]


@dataclass
class Live:
    """One open session and the instructions its history starts with."""

    name: str
    session: Session
    lead: int = 0  # 1 when the history starts with the instructions message
    instructions: str | None = None
    busy: threading.Lock = field(default_factory=threading.Lock)


class Threads:
    """The worker's open sessions, least recently used dropped beyond ``capacity``."""

    def __init__(self, rt: Runtime, capacity: int = 4096) -> None:
        self.rt = rt
        self.capacity = capacity
        self._open: OrderedDict[str, Live] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def _remember(self, live: Live) -> None:
        with self._lock:
            self._insert(live)

    def _insert(self, live: Live) -> None:
        """Keep ``live`` as the open session of its name (the caller holds the lock)."""
        self._open[live.name] = live
        self._open.move_to_end(live.name)
        while len(self._open) > self.capacity:
            _, old = self._open.popitem(last=False)
            if not old.busy.locked():
                continue
            self._open[old.name] = old  # in use: keep it, drop another later
            break

    def forget(self, name: str) -> None:
        with self._lock:
            self._open.pop(name, None)

    def take(self, name: str, lead: int, instructions: str | None, *, create: bool) -> Live | None:
        """The live session ``name``, reserved for the caller (``release`` it), brought up
        to date with the store; ``None`` if it is in use by another request.

        One name has one open session: two requests opening it at once (or one taking it
        while another replaces it) settle on one, and the second is told it is in use."""
        while True:
            with self._lock:
                live = self._open.get(name)
                if live is not None:
                    self._open.move_to_end(name)
            if live is None:
                session = self.rt.session(name, create=create)
                fresh = Live(name, session, lead, instructions)
                fresh.busy.acquire()
                with self._lock:
                    if name not in self._open:
                        self._insert(fresh)
                        return fresh
                fresh.busy.release()  # another request opened it meanwhile: theirs counts
                continue
            if not live.busy.acquire(blocking=False):
                return None
            with self._lock:
                current = self._open.get(name)
            if current is not live:  # replaced while this request reserved it
                live.busy.release()
                continue
            break
        row = self.rt.store.get_session(name)
        if row is None:
            live.busy.release()
            self.forget(name)
            return self.take(name, lead, instructions, create=create)
        if row.head != live.session.head:
            live.session.refresh()  # another worker moved it
        live.lead, live.instructions = lead, instructions
        return live

    def conversation(self, conv: dict[str, Any], *, create: bool = False) -> Live:
        """The live session of a conversation record, reserved; 409 while another
        request works on it."""
        live = self.take(conv["thread"], conv["lead"], conv.get("instructions"), create=create)
        if live is None:
            raise ApiError(
                409,
                "Another request is in progress on this conversation; retry when it ends.",
                param="conversation",
                code="conversation_locked",
            )
        return live

    def adopt(self, name: str, session: Session, lead: int, instructions: str | None) -> Live:
        """A session made by this request (a fork or a new history), reserved."""
        live = Live(name, session, lead, instructions)
        live.busy.acquire()
        self._remember(live)
        return live

    def claim(
        self, name: str, session: Session, lead: int, instructions: str | None
    ) -> Live | None:
        """``adopt``, unless another request holds an open session of that name (it took
        the name this request made in the store): then ``None``."""
        live = Live(name, session, lead, instructions)
        live.busy.acquire()
        with self._lock:
            old = self._open.get(name)
            if old is None or not old.busy.locked():
                self._insert(live)
                return live
        live.busy.release()
        return None

    def drop(self, name: str, head: int | None = None, *, any_head: bool = False) -> bool:
        """Delete the session ``name`` (a thread nothing needs any more: what a live
        record reaches, it names itself), unless a request here works on it (its turn
        moves the head on, and its record names that) or, without ``any_head``, its head
        is not ``head`` (a later response's history holds the thread). Either way the
        delete is conditional on the head just read (with ``any_head``, whichever it
        was), checked by the delete itself, so another worker's turn that lands after
        the read keeps it. Whether it went."""
        with self._lock:
            live = self._open.get(name)
        if live is not None and not live.busy.acquire(blocking=False):
            return False
        try:
            row = self.rt.store.get_session(name)
            if row is None or (not any_head and row.head != head):
                return False
            # Deleted only while its head is the one just checked (a compare-and-swap): a
            # turn another worker adds meanwhile keeps the thread (``any_head`` too).
            try:
                delete_session(self.rt.store, name, if_head=row.head)
            except ConflictError:
                return False
            except SessionNotFoundError:
                pass
            self.forget(name)
            return True
        finally:
            if live is not None:
                live.busy.release()

    @staticmethod
    def release(live: Live) -> None:
        if live.busy.locked():
            live.busy.release()
