"""A VFS that can simulate a power cut: every write not yet synced is lost.

``PowerCutVFS`` forwards every call to the default VFS, so the files on disk are
what SQLite wrote. For each file it also keeps an undo log of the writes (and
truncations) made since that file's last ``xSync``: the bytes each one overwrote and
the size before it. A ``xSync`` of a file empties its log: from then on those writes
are durable. ``cut()`` plays every log backwards, so each file holds exactly what
had been synced: what a disk keeps when the power goes (a disk may also keep some
unsynced writes; ``cut(keep=n)`` keeps the first n unsynced writes of each file, in
the order they were made, as a disk that flushes in order would). The process then
ends at once (``die()``): nothing after the cut reaches the files.

The ``-shm`` index is memory SQLite shares through ``xShmMap``, not ``xWrite``; after
a power cut SQLite rebuilds it (the first connection to open finds no other and
resets it), so it needs no undo.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

import apsw

_MAIN_DB = apsw.mapping_open_flags["SQLITE_OPEN_MAIN_DB"]
_WAL = apsw.mapping_open_flags["SQLITE_OPEN_WAL"]


@dataclass
class _Undo:
    offset: int
    before: bytes  # the bytes the write replaced (shorter than the write past the old end)
    size: int  # the file's size before the write (or truncation)


@dataclass
class _Log:
    path: str
    undo: list[_Undo] = field(default_factory=list)


class PowerCutVFS(apsw.VFS):
    """The default VFS with an undo log of unsynced writes; ``cut()`` plays it back.

    ``on_io(kind, file_kind)`` is called before each write (``"w"``) and sync
    (``"s"``) with the file's kind (``"db"``, ``"wal"`` or ``"other"``); the crash
    child cuts the power from it at its k-th I/O.
    """

    def __init__(self, name: str, *, default: bool = False) -> None:
        self.name = name
        self.logs: dict[str, _Log] = {}
        self.on_io: Callable[[str, str], None] | None = None
        self.writes = 0
        self.syncs = 0
        super().__init__(name, "unix", makedefault=default)

    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> apsw.VFSFile:
        return _File(self, name, flags)

    def cut(self, keep: int = 0) -> dict[str, int]:
        """Undo every unsynced write but each file's first ``keep``; return how many
        writes were undone per file."""
        undone: dict[str, int] = {}
        for log in self.logs.values():
            drop = log.undo[keep:]
            if not drop:
                continue
            fd = os.open(log.path, os.O_RDWR)
            try:
                for u in reversed(drop):
                    if u.before:
                        os.pwrite(fd, u.before, u.offset)
                    if os.fstat(fd).st_size != u.size:
                        os.ftruncate(fd, u.size)
                os.fsync(fd)
            finally:
                os.close(fd)
            undone[os.path.basename(log.path)] = len(drop)
            del log.undo[keep:]
        return undone

    @staticmethod
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class _File(apsw.VFSFile):
    def __init__(self, vfs: PowerCutVFS, name: str | apsw.URIFilename | None, flags: list[int]):
        self._vfs = vfs
        super().__init__("unix", name, flags)
        filename = name.filename() if isinstance(name, apsw.URIFilename) else str(name)
        self._kind = "db" if flags[0] & _MAIN_DB else "wal" if flags[0] & _WAL else "other"
        self._log = vfs.logs.setdefault(filename, _Log(filename))

    def _before(self, offset: int, length: int) -> _Undo:
        size = self.xFileSize()
        n = max(0, min(length, size - offset))
        return _Undo(offset, super().xRead(n, offset) if n else b"", size)

    def xWrite(self, data: bytes, offset: int) -> None:
        vfs = self._vfs
        vfs.writes += 1
        if vfs.on_io is not None:
            vfs.on_io("w", self._kind)
        self._log.undo.append(self._before(offset, len(data)))
        super().xWrite(data, offset)

    def xTruncate(self, newsize: int) -> None:
        size = self.xFileSize()
        if newsize < size:
            self._log.undo.append(_Undo(newsize, super().xRead(size - newsize, newsize), size))
        else:
            self._log.undo.append(_Undo(newsize, b"", size))
        super().xTruncate(newsize)

    def xSync(self, flags: int) -> None:
        vfs = self._vfs
        vfs.syncs += 1
        if vfs.on_io is not None:
            vfs.on_io("s", self._kind)
        super().xSync(flags)
        self._log.undo.clear()  # durable now
