"""A database that runs out of room says why, with the file and what to do, and is left
whole: for the open of a new file and for an append, through the API and ``srt``.

No small filesystem can be mounted without root, so the real kernel fault is
``RLIMIT_FSIZE`` in a child process (SIGXFSZ ignored: a write past the limit fails
with EFBIG, which SQLite reports as "disk I/O error"); ``SQLITE_FULL`` (what ENOSPC
gives) comes from the fault VFS of ``rel_support``, failing every write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import apsw
import pytest

import srt
from rel_support.common import child_env
from rel_support.faultvfs import FaultVFS, Plan
from srt.store.sqlite import SQLiteStore

#: A child that runs srt under a file size limit of LIMIT bytes: ``srt ARGS...`` or,
#: with ``api``, appends messages of SIZE bytes to session "s" until one fails.
_CHILD = """
import json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
import srt
from srt.cli import main
from rel_support.lifetime import end_by
end_by()  # an orphan ends by itself
if sys.argv[2] != "api":
    raise SystemExit(main(sys.argv[2:]))
stored = 0
try:
    with srt.Runtime(sys.argv[3]) as rt:
        s = rt.session("s")
        stored = len(s)
        while True:
            s.append({"role": "user", "content": f"{stored} " + "x" * int(sys.argv[4])})
            stored = len(s)
except srt.StoreError as exc:
    print(json.dumps({"stored": stored, "error": str(exc), "type": type(exc).__name__}))
"""


def _child(limit: int, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(limit), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )


def _limit_text(path: Path) -> str:
    return (
        f"{path} (or its -wal or -shm file) cannot grow past this process's file size "
        "limit (ulimit -f): raise the limit and try again (IOError: disk I/O error)"
    )


def _whole(path: Path) -> list[str]:
    """The session "s" as a new process reads it, after ``srt verify`` passed."""
    with srt.Runtime(str(path)) as rt:
        assert rt.store.verify().ok
        got = rt.store.get_session("s")
        return [] if got is None else [m["content"] for m in rt.session("s").messages()]


def test_opening_a_new_file_past_the_file_size_limit_says_so(tmp_path: Path) -> None:
    # It said "opening the database: IOError: disk I/O error".
    db = tmp_path / "new.db"
    p = _child(1000, "--db", str(db), "append", "s", "--role", "user", "hi")
    assert (p.returncode, p.stdout) == (1, ""), p
    assert p.stderr == f"srt: error: opening the database: {_limit_text(db)}\n"
    assert _whole(db) == []  # (the file opens, empty, once the limit is gone)


def test_an_append_past_the_file_size_limit_says_so_and_keeps_what_was_stored(
    tmp_path: Path,
) -> None:
    db = tmp_path / "srt.db"
    with srt.Runtime(str(db)) as rt:
        rt.session("s").append({"role": "user", "content": "first"})
    size = sum(f.stat().st_size for f in tmp_path.iterdir())
    p = _child(size + 300_000, "api", str(db), "40000")
    got = json.loads(p.stdout)
    assert got["type"] == "StoreError" and got["stored"] > 1, p
    assert got["error"].startswith("appending to a session: ")
    assert _limit_text(db) in got["error"]
    # Nothing half-written: exactly the acknowledged messages, and the file verifies.
    assert len(_whole(db)) == got["stored"]


def test_srt_append_past_the_file_size_limit_is_one_error_line(tmp_path: Path) -> None:
    db = tmp_path / "srt.db"
    with srt.Runtime(str(db)) as rt:
        rt.session("s").append({"role": "user", "content": "first"})
    size = max(f.stat().st_size for f in tmp_path.iterdir())
    p = _child(size, "--db", str(db), "append", "s", "--role", "user", "-", stdin="x" * 200_000)
    assert (p.returncode, p.stdout) == (1, ""), p
    assert p.stderr.startswith("srt: error: appending to a session: ") and p.stderr.count("\n") == 1
    assert _limit_text(db) in p.stderr
    assert _whole(db) == ["first"]


@pytest.fixture
def full_vfs() -> FaultVFS:
    vfs = FaultVFS("srt-test-disk-full")
    yield vfs
    vfs.unregister()


def _no_space(path: Path) -> str:
    return (
        f"no space left on the device holding {path}: free some space there and try again "
        "(SQLITE_FULL)"
    )


def test_opening_a_new_file_on_a_full_disk_says_so(tmp_path: Path, full_vfs: FaultVFS) -> None:
    db = tmp_path / "new.db"
    full_vfs.arm(Plan(op="write", k=1, forever=True, error=apsw.FullError))
    with pytest.raises(srt.StoreError) as info:
        srt.Runtime(store=SQLiteStore(str(db), vfs=full_vfs.name))
    assert str(info.value) == f"opening the database: {_no_space(db)}"
    assert full_vfs.counters.fired > 0
    full_vfs.reset()
    assert _whole(db) == []


def test_an_append_on_a_full_disk_says_so_and_keeps_what_was_stored(
    tmp_path: Path, full_vfs: FaultVFS
) -> None:
    db = tmp_path / "srt.db"
    with srt.Runtime(store=SQLiteStore(str(db), vfs=full_vfs.name)) as rt:
        session = rt.session("s")
        session.append({"role": "user", "content": "first"})
        full_vfs.arm(Plan(op="write", k=1, forever=True, error=apsw.FullError))
        with pytest.raises(srt.StoreError) as info:
            session.append({"role": "user", "content": "x" * 50_000})
        assert str(info.value) == f"appending to a session: {_no_space(db)}"
        full_vfs.reset()
    assert _whole(db) == ["first"]
    assert os.path.getsize(db) > 0
