"""File modes end to end, under a permissive umask: what srt writes outside the store.

``test_rel_secrets.test_file_modes`` covers the database with its ``-wal`` and ``-shm``
(opened, recovered, recreated by another process) and the folders made for it. Here
the other files srt writes, each under umask 000 (the worst: nothing masked) and 022:

* ``srt copy SRC DEST`` into a store not there yet, in folders not there yet;
* ``srt backup DEST`` (the CLI), in folders not there yet;
* ``python -m srt.bench --json FILE --plot FILE.png``: the figures and the picture.

Each file must be 0600 and each folder srt made 0700.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import srt
from srt.bench import __main__ as bench
from srt.bench import plot
from srt.cli import main as cli


def _mode(p: str | Path) -> str:
    return oct(stat.S_IMODE(os.stat(p).st_mode))


def _store(path: Path) -> None:
    with srt.Runtime(str(path)) as rt:
        rt.session("s").append(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
        )


def _files_of(path: Path) -> dict[str, str]:
    return {
        path.name + s: _mode(f"{path}{s}")
        for s in ("", "-wal", "-shm")
        if os.path.exists(f"{path}{s}")
    }


def test_srt_copy_writes_a_private_store_in_private_folders(
    umask: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dest = tmp_path / "src.db", tmp_path / "new" / "deeper" / "dest.db"
    _store(src)
    assert cli(["copy", str(src), str(dest)]) == 0
    assert "copied 1 session" in capsys.readouterr().out
    modes = _files_of(dest)
    modes |= {d.name: _mode(d) for d in (tmp_path / "new", tmp_path / "new" / "deeper")}
    assert modes == {"dest.db": "0o600", "new": "0o700", "deeper": "0o700"}, modes
    with srt.Runtime(str(dest)) as rt:  # and the copy is the store, opened under the umask
        assert len(rt.session("s").messages()) == 2
        assert set(_files_of(dest).values()) == {"0o600"}


def test_srt_backup_writes_a_private_file_in_private_folders(
    umask: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dest = tmp_path / "src.db", tmp_path / "b1" / "b2" / "copy.db"
    _store(src)
    assert cli(["--db", str(src), "backup", str(dest)]) == 0
    capsys.readouterr()
    modes = {p.name: _mode(p) for p in (dest.parent.parent, dest.parent, *dest.parent.iterdir())}
    assert modes == {"b1": "0o700", "b2": "0o700", "copy.db": "0o600"}, modes


def test_the_bench_writes_its_figures_and_picture_private(umask: int, tmp_path: Path) -> None:
    """The bench's ``--json`` and ``--plot`` files were made with ``open(..., "w")`` and
    matplotlib's ``savefig(path)``: 0666 and 0644 under umask 000 and 022."""
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    out.write_text("an older run's figures, 0644\n")  # an existing file is rewritten private
    out.chmod(0o644)
    argv = ["--workload", "formats", "--turns", "20", "--tail", "5", "--json", str(out)]
    assert bench.main([*argv, "--plot", str(png), "--dir", str(tmp_path)]) == 0
    assert out.read_text().startswith("{") and _mode(out) == "0o600"
    assert png.exists() == plot.available()
    if png.exists():
        assert png.read_bytes().startswith(b"\x89PNG") and _mode(png) == "0o600"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("srt-bench-")] == []
