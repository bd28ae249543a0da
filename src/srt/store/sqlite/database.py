"""``Database``: one srt SQLite file's connections (one per thread, new ones after
``os.fork()``), its in-process writer lock, and the scopes every read and write runs in.
How a connection is opened, checked and migrated is ``db``'s.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import apsw

from ... import _hashing
from ..._hashing import Hashing
from ...errors import ConfigError, StoreBusyError, StoreError
from . import keys as _keys
from .db import connect, reserved_bytes, room_error, translate
from .files import BUSY_TIMEOUT_MS, check_header, create_private_file, describe

#: A write given this much time or more waits as if given the whole busy timeout.
_NEAR_FULL_WAIT_S = BUSY_TIMEOUT_MS / 1000 - 0.01

#: The pauses between a waiting writer's tries for the file's write lock, in seconds
#: (SQLite's own, as from ``sqlite3_busy_timeout``; the last one repeats).
_BUSY_PAUSES_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1)


def busy_until(deadline: float) -> Callable[[int], bool]:
    """A busy handler that waits for other processes' writers until ``deadline`` (a
    ``time.monotonic()`` value) by the clock. SQLite's busy timeout adds up the pauses it
    asked for, not the time that passed, so each pause's oversleep went on top of the
    timeout: 2-5 ms in a 1 s wait on an idle machine, more on a loaded one."""

    def busy(tries: int) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, _BUSY_PAUSES_S[min(tries, len(_BUSY_PAUSES_S) - 1)]))
        return True

    return busy


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


#: How many forks this process descends from (counted in each child): what
#: ``Database.begin`` compares instead of asking for the pid (a system call) every append.
_forks = 0


def _forget_locks() -> None:
    """In a forked child: the writer locks start anew. A lock another thread of the
    parent held at the fork stays held in the child, where no thread will release it."""
    global _LOCKS_GUARD, _forks
    _LOCKS.clear()
    _LOCKS_GUARD = threading.Lock()
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks)


def file_lock(path: str) -> threading.Lock:
    """The in-process writer lock of the file at ``path`` (one per file, shared)."""
    key = os.path.realpath(path) if path != ":memory:" else f":memory:{id(object())}"
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class Database:
    """One SQLite file: a connection per thread (new ones after ``os.fork()``), the
    file's writer lock, and how every connection is opened.

    ``vfs`` names a registered SQLite VFS (``None``: the default); the tests use it
    to inject disk faults. ``key`` decrypts an encrypted file (``keys``); ``hashing``
    is how the file's messages and prefix chain are hashed (``srt._hashing``; the file
    records it); ``durability`` is ``"normal"`` or ``"full"`` (``SYNCHRONOUS``).
    """

    def __init__(
        self,
        path: str,
        *,
        vfs: str | None = None,
        key: _keys.Key | None = None,
        hashing: Hashing = _hashing.XXH3,
        durability: str = "normal",
    ) -> None:
        self.path = path
        self.vfs = vfs
        self.key = key
        self.hashing = hashing
        self.durability = durability
        #: Taken by every writer of this file in this process, before BEGIN IMMEDIATE.
        self.lock = file_lock(path)
        self._local = threading.local()
        self._pid = os.getpid()
        self._forks = _forks  # (``_forks`` when ``_pid`` was taken)
        #: Every thread's connection, to close them all at ``close``; weakly held, so a
        #: thread's connection is closed when the thread ends (its ``_local`` value goes)
        #: rather than kept open until the store closes: one per thread ever used
        #: (``asyncio.to_thread`` under a new event loop each call, a thread per request)
        #: ran a process out of file descriptors.
        self._conns: weakref.WeakSet[apsw.Connection] = weakref.WeakSet()
        self._conns_guard = threading.Lock()
        #: Bytes SQLite reserves at the end of each page (header byte 20; 0 for most files;
        #: an encrypted file's header is not readable here, and its rows are sized as if 0).
        self.reserved = 0
        if key is not None:
            _keys.require()
            if path == ":memory:":
                raise ConfigError("an in-memory store cannot be encrypted")
        header = None
        if path != ":memory:":
            header = check_header(path, vfs=vfs, key=key)
            create_private_file(path)
        #: The file's header said WAL (its format version bytes 18-19 are 2): WAL is a
        #: property of the file, so its connections need no switch (``connect``).
        self.wal = header is not None and header[18] == 2 and header[19] == 2
        self.connection()  # verify identity and migrate now, so errors surface at open
        if path != ":memory:" and key is None:
            self.reserved = header[20] if header is not None else reserved_bytes(path)

    def open(self) -> apsw.Connection:
        """A new connection to the file, keyed, checked and configured like every other
        (the caller closes it)."""
        self._in_this_process()
        return connect(
            self.path,
            self.lock,
            migrate=True,
            vfs=self.vfs,
            key=self.key,
            hashing=self.hashing,
            durability=self.durability,
            wal=self.wal,
        )

    def _in_this_process(self) -> None:
        """In a forked child, the first time: forget the parent's connections (a child
        must never use them) and take a writer lock and guard of its own (a thread of
        the parent may have held them at the fork, and no thread would release them)."""
        if os.getpid() != self._pid:
            self._local = threading.local()
            self._conns = weakref.WeakSet()
            self._conns_guard = threading.Lock()
            self.lock = file_lock(self.path)
            self._pid = os.getpid()
        self._forks = _forks

    def connection(self) -> apsw.Connection:
        """This thread's connection, opened (and the file migrated) on first use."""
        self._in_this_process()
        conn: apsw.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.open()
            self._local.conn = conn
            with self._conns_guard:
                self._conns.add(conn)
        return conn

    def close(self) -> None:
        with self._conns_guard:
            conns, self._conns = list(self._conns), weakref.WeakSet()
        self._local = threading.local()
        for conn in conns:
            with contextlib.suppress(apsw.Error):
                conn.close()

    def write(self, action: str, deadline: float | None = None) -> Write:
        """A write transaction: the writer lock, then ``BEGIN IMMEDIATE``; commit or roll back.

        Waiting for other writers (this process's, then other processes') ends at
        ``deadline`` (a ``time.monotonic()`` value; default: the busy timeout from now)
        with ``StoreBusyError``.
        """
        return Write(self, action, deadline)

    def begin(self, action: str, deadline: float | None = None) -> apsw.Connection:
        """``write`` without the scope object, for the append after every reply (where
        each Python call costs several times what it costs hot): the writer lock, then
        ``BEGIN IMMEDIATE`` on this thread's connection, which it returns. The caller
        ends the transaction with ``commit``, or with ``abort`` on any exception."""
        conn: apsw.Connection | None = None
        if self._forks == _forks:  # (not forked since: ``connection`` checks the pid)
            conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connection()
        if deadline is not None and deadline - time.monotonic() > _NEAR_FULL_WAIT_S:
            deadline = None  # (within 10 ms of a full busy timeout: SQLite's own will do)
        lock = self.lock
        if deadline is not None or not lock.acquire(blocking=False):
            deadline = self._wait(action, deadline)
        try:
            if deadline is not None:
                conn.set_busy_handler(busy_until(deadline))
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                if deadline is not None:
                    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        except BaseException as exc:
            lock.release()
            if isinstance(exc, _TRANSLATED):
                with translate(action):
                    raise
            raise
        return conn

    def _wait(self, action: str, deadline: float | None) -> float:
        """Take the writer lock, waiting until ``deadline`` (default: the busy timeout
        from now), which it returns for the wait for other processes' writers."""
        if deadline is None:
            deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        if not self.lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise StoreBusyError(
                f"{action}: another writer in this process held the database too long"
            )
        return deadline

    def commit(self, conn: apsw.Connection, action: str) -> None:
        """End ``begin``'s transaction: commit, and release the writer lock.

        A disk error in the commit leaves its outcome unknown: the WAL may hold the
        whole transaction, and a later open of the file recovers it (after a crash,
        say), though this process was told it failed; the error says so."""
        try:
            conn.execute("COMMIT")
        except apsw.IOError as exc:
            cause = room_error(exc, conn, self.path)
            raise StoreError(
                f"{action}: the disk did not confirm the commit"
                f"{': ' + cause if cause else ''} ({describe(exc)}); what it "
                "wrote may still be stored (opening the file again can recover it): read "
                "the session again (Session.refresh()) before writing it a second time"
            ) from exc
        except apsw.Error:
            with translate(action, conn, self.path):
                raise
        finally:
            self.lock.release()

    def abort(self, conn: apsw.Connection, exc: BaseException, action: str) -> None:
        """End ``begin``'s transaction after ``exc`` was raised in it: roll back (if
        SQLite has not), release the writer lock, and raise ``exc`` as an srt error if it
        is an apsw one (the caller re-raises any other)."""
        try:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
        except apsw.Error:
            with translate(action, conn, self.path):
                raise
        finally:
            self.lock.release()
        if isinstance(exc, _TRANSLATED):
            with translate(action, conn, self.path):
                raise exc

    def read(self, action: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with translate(action):
            return self.connection().execute(sql, args).fetchall()

    @contextlib.contextmanager
    def job(self, action: str, pragmas: Sequence[str] = ()) -> Iterator[apsw.Connection]:
        """A connection of a maintenance job's own (closed afterwards), so the job's
        pragmas never leak into the connections the store lends to sessions."""
        if self.path == ":memory:":
            raise ConfigError(f"{action} needs a database file, not :memory:")
        conn = self.open()
        try:
            with translate(action):
                for pragma in pragmas:
                    conn.execute(pragma).fetchall()
            yield conn
        finally:
            with contextlib.suppress(apsw.Error):
                conn.close()


#: What ``translate`` turns into srt errors (an apsw error; apsw decoding a damaged file's text).
_TRANSLATED = (apsw.Error, UnicodeDecodeError)


class Write:
    """``Database.write``'s scope: ``with db.write(action) as conn:`` (``Database.begin``,
    then ``commit``, or ``abort`` on an exception)."""

    __slots__ = ("_action", "_conn", "_db", "_deadline")

    def __init__(self, db: Database, action: str, deadline: float | None) -> None:
        self._db = db
        self._action = action
        self._deadline = deadline
        self._conn: apsw.Connection | None = None

    def __enter__(self) -> apsw.Connection:
        self._conn = self._db.begin(self._action, self._deadline)
        return self._conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None
        if exc is None:
            self._db.commit(conn, self._action)
        else:
            self._db.abort(conn, exc, self._action)
