"""srt opens what SQLite can recover: a file cut short inside a checkpoint (issue 13).

A checkpoint copies pages from the ``-wal`` into the database file, page 1 (the
header, with the new page count) first. Killed inside it, or cut short by a full
disk, it leaves a file shorter than its header says whose missing pages are still
in the ``-wal``. srt used to refuse such a file as truncated, by the API and the CLI,
although SQLite reads it whole. Now:

* a kill inside a checkpoint leaves a file srt opens, verifies and reads in full, and
  the header check itself changes neither the file nor its ``-wal``;
* the same short file without its ``-wal``, or with a ``-wal`` that does not hold the
  missing pages, is a ``CorruptionError`` and is left byte for byte as it was;
* the full-disk cycle of the issue, end to end: append until the disk is full (a
  typed error), free a little space, close (the checkpoint on close fails for lack
  of space and is swallowed), then reopen in a new process and in the CLI
  (``srt verify`` says ok) with every acknowledged turn readable, a copy on a normal
  disk opens too, and once the space is freed the next close completes the file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import (
    TINY,
    child_env,
    emit,
    header_short,
    sha256,
    tiny_disk,
    turn_payload,
    verify_store,
)
from rel_support.crashlib import run_child
from rel_support.faultvfs import FaultVFS, Plan
from srt import cli
from srt.store.sqlite import SQLiteStore
from srt.store.sqlite.files import check_header


def _turn(tid: str, limit: int | None = None) -> list[dict[str, str]]:
    q, a = turn_payload(tid, limit)
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def _killed_in_a_checkpoint(path: str) -> dict[str, list[dict[str, str]]]:
    """A fresh file whose writer was SIGKILLed at its 60th write to the database file,
    inside its first automatic checkpoint; returns what it acknowledged, by session."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    child = run_child(["ckpt", path, "c", "none,kill=60"], marker=None, delay=0, kill=False)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    want: dict[str, list[dict[str, str]]] = {}
    for line in child.lines:
        if line.startswith("ACK "):
            _, tid, name, _head = line.split(" ")
            want.setdefault(name, []).extend(_turn(tid))
    assert "CKPT+" in child.lines and "CKPT-" not in child.lines
    return want


def _bytes(path: str) -> dict[str, str]:
    return {s: sha256(path + s) for s in ("", "-wal") if os.path.exists(path + s)}


def test_a_kill_inside_a_checkpoint_leaves_a_file_srt_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "k" / "srt.db")
    want = _killed_in_a_checkpoint(path)
    assert header_short(path)  # the state of the issue: the header is ahead of the file
    before = _bytes(path)
    check_header(path)  # no error, and it wrote nothing
    assert _bytes(path) == before
    assert cli.main(["--db", path, "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok:")
    assert cli.main(["--db", path, "show", next(iter(want))]) == 0
    with srt.Runtime(path) as rt:
        for name, msgs in want.items():
            got = rt.session(name, create=False).messages()
            assert got[: len(msgs)] == msgs  # every acknowledged turn (and maybe one more)
    assert not header_short(path)  # SQLite's next checkpoint completed the file
    assert verify_store(path).ok


def test_a_short_file_without_its_wal_is_refused_and_untouched(tmp_path: Path) -> None:
    src = str(tmp_path / "k" / "srt.db")
    _killed_in_a_checkpoint(src)
    path = str(tmp_path / "copy" / "srt.db")
    os.makedirs(os.path.dirname(path), mode=0o700)
    shutil.copy2(src, path)  # the database file only, as a careless copy would
    before = sha256(path)
    with pytest.raises(srt.CorruptionError, match="no -wal file"):
        srt.Runtime(path)
    assert sha256(path) == before
    assert sorted(os.listdir(os.path.dirname(path))) == ["srt.db"]


@pytest.mark.parametrize("wal", ["salts changed", "garbage", "header only"])
def test_a_short_file_whose_wal_lacks_the_pages_is_refused_and_untouched(
    tmp_path: Path, wal: str
) -> None:
    path = str(tmp_path / "k" / "srt.db")
    _killed_in_a_checkpoint(path)
    if wal == "salts changed":  # its frames no longer belong to it: SQLite ignores them
        with open(path + "-wal", "r+b") as f:
            f.seek(16)
            f.write(os.urandom(8))
    elif wal == "garbage":
        Path(path + "-wal").write_bytes(os.urandom(100_000))
    else:
        with open(path + "-wal", "r+b") as f:
            f.truncate(32)
    os.remove(path + "-shm")
    before = _bytes(path)
    with pytest.raises(srt.CorruptionError, match="truncated") as info:
        srt.Runtime(path)
    assert "-wal" in str(info.value)
    assert _bytes(path) == before


# -- the full-disk cycle -------------------------------------------------------------------

FILLER = 768 * 1024
LITTLE = 64 * 1024  # freed before close: too little for the checkpoint on close

_READ = """
import json, sys, srt
with srt.Runtime(sys.argv[1]) as rt:
    print(json.dumps(rt.session("s", create=False).messages()))
"""


def _srt(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=child_env(), timeout=120
    )


def test_the_full_disk_cycle_end_to_end(tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    d = tmp_path / "tiny"
    vfs: FaultVFS | None = None
    figures: dict[str, Any] = {}
    with tiny_disk(d) as kind:
        path = str(d / "srt.db")
        if kind == "vfs-budget":  # not root: the fault VFS stands in for the disk
            vfs = FaultVFS("srt-rel-full-cycle")
            vfs.arm(Plan(budget=TINY - FILLER - LITTLE))
            rt = srt.Runtime(store=SQLiteStore(path, vfs=vfs.name))
        else:
            (d / "filler").write_bytes(b"\0" * FILLER)
            (d / "little").write_bytes(b"\0" * LITTLE)
            rt = srt.Runtime(path)
        s = rt.session("s")
        want: list[dict[str, str]] = []
        error: BaseException | None = None
        while error is None:
            turn = _turn(f"full.{len(want) // 2}", 8192)
            try:
                s.append(*turn)
            except srt.SrtError as exc:
                error = exc
            else:
                want += turn
        assert isinstance(error, srt.StoreError) and "full" in str(error).lower()
        # Free a little space (or raise the budget as much), then close: the checkpoint
        # on close runs out of space again, and close() swallows it.
        if vfs is not None:
            vfs.plan.budget = TINY - FILLER
        else:
            os.remove(d / "little")
        rt.close()
        figures["turns_acknowledged"] = len(want) // 2
        figures["short_after_close"] = short = header_short(path)
        figures["wal_bytes_after_close"] = os.path.getsize(path + "-wal")
        assert short, "the checkpoint on close was meant to be cut short"
        # A copy of the three files on a normal disk opens and reads the same (first:
        # with the fault VFS, a new process below is a disk with space again).
        copy = tmp_path / "copy"
        copy.mkdir(mode=0o700)
        for suffix in ("", "-wal", "-shm"):
            shutil.copy2(path + suffix, copy / f"srt.db{suffix}")
        assert header_short(str(copy / "srt.db"))
        with srt.Runtime(str(copy / "srt.db")) as again:
            assert again.session("s", create=False).messages() == want
        # A new process reads every acknowledged turn; the CLI verifies and shows it.
        read = _srt("-c", _READ, path)
        assert read.returncode == 0, read.stderr
        assert json.loads(read.stdout) == want
        verify = _srt("-m", "srt", "--db", path, "verify")
        figures["srt_verify_on_the_full_disk"] = verify.stdout.strip() or verify.stderr.strip()
        assert verify.returncode == 0 and verify.stdout.startswith("ok:"), verify
        show = _srt("-m", "srt", "--db", path, "show", "s")
        assert show.returncode == 0, show.stderr
        # Free the space: the next open and close complete the file.
        if vfs is not None:
            vfs.reset()
        else:
            os.remove(d / "filler")
        with srt.Runtime(path) as fresh:
            assert fresh.session("s", create=False).messages() == want
            fresh.session("s").append(*_turn("after"))
        figures["short_after_space_freed"] = header_short(path)
        final = verify_store(path)
        figures["integrity_after"] = final.integrity
        assert not header_short(path) and not os.path.exists(path + "-wal")
        assert final.ok and final.chains["s"] == [*want, *_turn("after")]
    if vfs is not None:
        vfs.unregister()
    figures["disk"] = kind
    figures["error"] = f"{type(error).__name__}: {error}"
    emit("recovery_full_disk_cycle", figures, capsys, tmp_path_factory.getbasetemp())
