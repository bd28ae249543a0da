"""An APSW VFS over the default one that counts, fails or kills at the k-th write or sync.

``FaultVFS(name)`` registers a VFS called ``name`` whose files forward every call to
the default VFS. Its ``plan`` decides what happens at the k-th ``xWrite`` or the
k-th ``xSync`` (counted separately, over every file the VFS opened: database,
``-wal`` and ``-shm`` alike, since ``-shm`` is written through ``xShmMap``, not
``xWrite``):

* ``Plan()``: only count;
* ``Plan(op="write", k=3, error=apsw.FullError)``: the 3rd write raises ``SQLITE_FULL``;
  ``forever=True`` fails every write from the 3rd on, until the plan is cleared;
* ``Plan(budget=n)``: a disk of n bytes: a write that would pass it raises ``SQLITE_FULL``;
* ``Plan(op="any", k=5, kill=True)``: the process SIGKILLs itself on its 5th write or
  sync (counted together), for the crash tests.

Nothing is written by a failed call: the fault is raised before the default VFS
is called. (apsw's own ``ErrorVFS`` test helper was the model; this is written anew.)
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import apsw


@dataclass
class Plan:
    op: str = "none"  # "write", "sync", "any" (writes and syncs counted together), "none"
    k: int = 0
    forever: bool = False
    error: type[BaseException] = apsw.IOError
    kill: bool = False
    #: a disk of this many bytes: a write that would pass it raises ``FullError``
    budget: int | None = None


@dataclass
class Counters:
    writes: int = 0
    syncs: int = 0
    ops: int = 0
    fired: int = 0
    bytes_written: int = 0
    #: the kind of each I/O call in order ("w" or "s") while ``trace`` is on
    trace: list[str] | None = None
    files: set[str] = field(default_factory=set)


class FaultVFS(apsw.VFS):
    """The default VFS with a fault plan. ``arm(plan)``, ``reset()``, ``unregister()``."""

    def __init__(self, name: str, *, default: bool = False, base: str = "unix") -> None:
        self.name = name
        #: the VFS every call goes on to (``"multipleciphers-unix"``: SQLite3 Multiple
        #: Ciphers' cipher layer, so an encrypted file is still encrypted)
        self.base = base
        self.plan = Plan()
        self.counters = Counters()
        self.lock = threading.Lock()
        # ``default=True`` makes it SQLite's default VFS: only in a child process, since
        # it cannot be undone cleanly (unregistering a default VFS picks any other one).
        super().__init__(name, base, makedefault=default)

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> apsw.VFSFile:
        return _File(self, name, flags)

    def arm(self, plan: Plan) -> None:
        with self.lock:
            self.plan = plan
            self.counters = Counters()

    def reset(self) -> None:
        """Clear the plan (the fault clears) and zero the counters."""
        self.arm(Plan())

    def _check(self, kind: str) -> None:
        with self.lock:
            c = self.counters
            c.ops += 1
            if kind == "w":
                c.writes += 1
                n = c.writes
            else:
                c.syncs += 1
                n = c.syncs
            if c.trace is not None:
                c.trace.append(kind)
            p = self.plan
            if p.op == "none":
                return
            if p.op == "any":
                n = c.ops
            elif p.op != {"w": "write", "s": "sync"}[kind]:
                return
            hit = n == p.k or (p.forever and n > p.k)
            if not hit:
                return
            c.fired += 1
            if p.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            error = p.error
        raise error(f"injected {'write' if kind == 'w' else 'sync'} fault #{n}")


class _File(apsw.VFSFile):
    def __init__(self, vfs: FaultVFS, name: str | apsw.URIFilename | None, flags: list[int]):
        self._vfs = vfs
        super().__init__(vfs.base, name, flags)
        filename = name.filename() if isinstance(name, apsw.URIFilename) else name
        vfs.counters.files.add(os.path.basename(str(filename)))

    def xWrite(self, data: bytes, offset: int) -> None:
        vfs = self._vfs
        vfs._check("w")
        budget = vfs.plan.budget
        if budget is not None and vfs.counters.bytes_written + len(data) > budget:
            vfs.counters.fired += 1
            raise apsw.FullError("injected: the disk is full")
        vfs.counters.bytes_written += len(data)
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        self._vfs._check("s")
        super().xSync(flags)


_MAIN_DB = apsw.mapping_open_flags["SQLITE_OPEN_MAIN_DB"]


class CheckpointVFS(apsw.VFS):
    """The default VFS, watching the main database file to tell when a checkpoint runs.

    In WAL mode the database file itself is written only by a checkpoint (which
    copies pages from the ``-wal``, page 1 first) and synced at its end. So the
    first write to it after a sync begins a checkpoint, and the next sync of it
    ends one. Once armed, ``on_change(True/False)`` is called at both moments (the
    crash child prints ``CKPT+``/``CKPT-`` from it, before the write goes ahead).
    ``kill_at``: the process SIGKILLs itself at that write to the database file
    (counted from ``arm``), so the kill lands inside a checkpoint.
    """

    def __init__(
        self,
        name: str,
        on_change: Callable[[bool], None],
        *,
        default: bool = False,
    ) -> None:
        self.name = name
        self.on_change = on_change
        self.in_checkpoint = False
        self.db_writes = 0
        self.checkpoints = 0
        self.kill_at: int | None = None
        self.armed = False
        super().__init__(name, "unix", makedefault=default)

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> apsw.VFSFile:
        return _WatchedFile(self, name, flags)

    def arm(self, kill_at: int | None) -> None:
        """Report checkpoints from now on; SIGKILL at the ``kill_at``-th database write."""
        self.db_writes = 0
        self.kill_at = kill_at
        self.armed = True

    def _change(self, on: bool) -> None:
        self.in_checkpoint = on
        if on:
            self.checkpoints += 1
        if self.armed:
            self.on_change(on)


class _WatchedFile(apsw.VFSFile):
    def __init__(self, vfs: CheckpointVFS, name: str | apsw.URIFilename | None, flags: list[int]):
        self._vfs = vfs
        self._main = bool(flags[0] & _MAIN_DB)
        super().__init__("unix", name, flags)

    def xWrite(self, data: bytes, offset: int) -> None:
        if self._main:
            vfs = self._vfs
            if not vfs.in_checkpoint:
                vfs._change(True)
            vfs.db_writes += 1
            if vfs.kill_at is not None and vfs.db_writes >= vfs.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        super().xSync(flags)
        if self._main and self._vfs.in_checkpoint:
            self._vfs._change(False)
