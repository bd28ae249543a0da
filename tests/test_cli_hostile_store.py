"""The database file, its backup and its key files against hostile paths and faults:
``--db`` through a symbolic link, ``srt backup`` onto a full disk, key files that are
empty or cannot be read.

Every failure is one ``srt: error:`` line with status 1, the source is left intact,
nothing half-written stays behind (files, or folders made for them), and what srt
creates is 0600 (folders 0700). Real SQLite files throughout; the full disk is
``rel_support.faultvfs`` made SQLite's default VFS in a child process (the backup's
destination connection uses the default VFS).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import srt
from rel_support.common import child_env
from srt.cli import main
from srt.store.keyfile import read_key_file


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- --db through a symbolic link ---------------------------------------------------------


def test_a_new_database_through_a_dangling_symlink_is_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # create_private_file's O_EXCL does not follow the link, so it took the link for the
    # file and left SQLite to create the target with the umask's mode (0644 under the
    # usual 022): every message readable by every user.
    target = tmp_path / "real" / "chats.db"
    link = tmp_path / "chats.db"
    link.symlink_to(target)
    old = os.umask(0o022)
    try:
        code, out, err = _run(capsys, "--db", str(link), "append", "s", "--role", "user", "hi")
        assert (code, out, err) == (0, "1\n", "")
        with srt.Runtime(str(link)) as rt:  # while open: the -wal and -shm too
            assert rt.session("s", create=False).messages() == [{"role": "user", "content": "hi"}]
            made = sorted(p.name for p in target.parent.iterdir())
            modes = {p.name: _mode(p) for p in target.parent.iterdir()}
    finally:
        os.umask(old)
    assert made == ["chats.db", "chats.db-shm", "chats.db-wal"]
    assert modes == dict.fromkeys(made, 0o600)
    assert _mode(target.parent) == 0o700
    assert link.is_symlink()


# -- srt backup onto a full disk ----------------------------------------------------------

_FULL_DISK_CHILD = """
import json, os, sys
import apsw
from rel_support.faultvfs import FaultVFS, Plan
from srt.cli import main

db, dest = sys.argv[1], sys.argv[2]
vfs = FaultVFS("srt-hostile-full", default=True)
vfs.arm(Plan(op="write", k=1, forever=True, error=apsw.FullError))
code = main(["--db", db, "backup", dest])
print(json.dumps({"code": code, "fired": vfs.counters.fired}))
"""


def test_a_backup_onto_a_full_disk_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    # The error read "backing up the database: FullError: not an error" (SQLite's text
    # after a failed backup step), and the folder made for DEST stayed behind.
    db = tmp_path / "srt.db"
    with srt.Runtime(str(db)) as rt:
        rt.session("s").append(*({"role": "user", "content": f"m{i}" * 500} for i in range(40)))
    before = db.read_bytes()
    dest = tmp_path / "new" / "deeper" / "backup.db"
    p = subprocess.run(
        [sys.executable, "-c", _FULL_DISK_CHILD, str(db), str(dest)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["code"] == 1 and result["fired"] > 0, (p.stdout, p.stderr)
    assert p.stderr == (
        "srt: error: backing up the database: no space left on the device: free some space "
        "there and try again (SQLITE_FULL)\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["srt.db"]  # no partial copy, no new folder
    assert db.read_bytes() == before
    with srt.Runtime(str(db)) as rt:
        assert rt.store.verify().ok


def test_a_backup_to_an_existing_file_or_the_store_itself_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "srt.db"
    with srt.Runtime(str(db)) as rt:
        rt.session("s").append({"role": "user", "content": "hi"})
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"keep me")
    link = tmp_path / "link.db"
    link.symlink_to(db)
    for dest, says in (
        (taken, "exists; a backup never overwrites a file"),
        (db, "is the store itself"),
        (link, "is the store itself"),
        (tmp_path / "taken.db" / "x.db", "cannot create"),
    ):
        code, out, err = _run(capsys, "--db", str(db), "backup", str(dest))
        assert (code, out) == (1, "") and says in err and err.count("\n") == 1, (dest, err)
    assert taken.read_bytes() == b"keep me"
    assert sorted(os.listdir(tmp_path)) == ["link.db", "srt.db", "taken.db"]


# -- key files ------------------------------------------------------------------------------


def test_an_empty_key_file_says_it_is_empty(tmp_path: Path) -> None:
    # It said "key must not be empty", which reads like a --key-file usage error.
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name, data in (("empty", b""), ("newline", b"\n"), ("crlf", b"\r\n")):
        key = keys / name
        key.write_bytes(data)
        key.chmod(0o600)
        with pytest.raises(srt.ConfigError, match=r"^the key file is empty"):
            read_key_file(str(key), str(tmp_path / "db" / "srt.db"))


def test_a_key_file_that_cannot_be_read_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # /proc/self/mem is a regular file of mode 0600 whose read at offset 0 fails (EIO),
    # as a file of mode 0000 does for anyone but root: a plain OSError escaped.
    db = tmp_path / "srt.db"
    with pytest.raises(srt.ConfigError, match=r"^cannot read the key file: "):
        read_key_file("/proc/self/mem", str(db))
    key = ("--key-file", "/proc/self/mem")
    code, out, err = _run(capsys, "--db", str(db), *key, "append", "s", "--role", "user", "x")
    assert (code, out) == (1, "")
    assert err == "srt: error: cannot read the key file: Input/output error\n"
    assert not db.exists()
