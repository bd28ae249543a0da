"""Every file and folder srt makes, under umask 000: each new file 0600, each new folder 0700.

``test_rel_secrets.test_file_modes`` covers the store's database, ``-wal`` and ``-shm``;
``test_rel_modes`` covers ``srt copy``, ``srt backup`` and the bench's ``--json`` and
``--plot``. Here the rest of what srt writes to disk (docs/reliability.md lists them):

* the bench's work files (its temp databases, the naive and bare baselines, the
  gateway's TOML config, the forks database copied from the chain) and a user's
  ``--dir``, which keeps its own mode;
* ``srt serve`` (the bench's gateway runs it in a child process) on a new store;
* ``srt import``'s spooled copy of stdin, in the temp folder;
* ``Runtime()``'s default store under the user's data folder, made here;
* ``srt.local``'s saved-slot folder and its server's log file;
* the tokenizer's private tiktoken cache.

Each test walks the folders it watches before and after, and checks every new entry.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import srt
from srt import tokens
from srt.bench import __main__ as bench
from srt.cli import main as cli
from srt.local import server as local_server
from srt.local import slots


@pytest.fixture
def umask000() -> Iterator[None]:
    old = os.umask(0o000)  # the worst case: nothing masked
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: str | Path) -> str:
    """``p``'s type and mode as ``ls -l`` shows them: ``drwx------``, ``-rw-------``."""
    return stat.filemode(os.lstat(p).st_mode)


def _walk(root: str | Path) -> dict[str, str]:
    """Every entry under ``root`` (not ``root`` itself): its relative path -> its mode."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = _mode(p)
    return out


def _bad(modes: dict[str, str]) -> dict[str, str]:
    """The entries that are not a folder 0700 or a file 0600."""
    return {p: m for p, m in modes.items() if m not in ("drwx------", "-rw-------")}


class _Watched(tempfile.TemporaryDirectory):  # type: ignore[type-arg]
    """The bench's work folder, walked just before it is removed."""

    seen: ClassVar[dict[str, str]] = {}
    roots: ClassVar[list[Path]] = []

    def cleanup(self) -> None:
        root = Path(self.name)
        _Watched.roots.append(root)
        _Watched.seen |= {f"{root.name}/{p}": m for p, m in _walk(root).items()}
        _Watched.seen[root.name] = _mode(root)
        super().cleanup()


def _bench(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Run the bench with ``--dir`` a folder of the user's (0755, kept); the modes of
    everything it made in its work folder, seen before the folder went."""
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    user_dir.chmod(0o755)
    _Watched.seen, _Watched.roots = {}, []
    monkeypatch.setattr(tempfile, "TemporaryDirectory", _Watched)
    assert bench.main([*argv, "--dir", str(user_dir)]) == 0
    assert _mode(user_dir) == "drwxr-xr-x"  # the user's: kept
    assert list(user_dir.iterdir()) == []  # and the work folder is gone from it
    assert len(_Watched.roots) == 1
    return _Watched.seen


def test_the_bench_makes_its_databases_private(
    umask000: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The naive baseline (``NaiveStore``), the writes' naive file and the bare APSW
    writer opened their files with apsw directly: 0666 under umask 000 (and their
    ``-wal``/``-shm`` with them)."""
    seen = _bench(
        [
            "--workload",
            "chat",
            "--workload",
            "reads",
            "--turns",
            "12",
            "--tail",
            "3",
            "--reads-reps",
            "1",
        ],
        tmp_path,
        monkeypatch,
    )
    names = {p.rsplit("/", 1)[-1] for p in seen}
    assert {"naive.db", "reads-naive.db", "writes-naive.db"} <= names, sorted(names)
    assert any("bare" in n for n in names) or any(n.endswith("-srt.db") for n in names)
    assert _bad(seen) == {}, seen


def test_the_bench_gateway_config_and_forks_copy_are_private(
    umask000: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``srt serve`` in a child process on new stores, its TOML config (``open(cfg,
    "w")``: 0666) and the forks database (``shutil.copyfile``: 0666)."""
    seen = _bench(
        [
            "--workload",
            "gateway",
            "--gw-parts",
            "storage",
            "--turns",
            "4",
            "--tail",
            "2",
            "--gw-forks",
            "1",
        ],
        tmp_path,
        monkeypatch,
    )
    names = {p.rsplit("/", 1)[-1] for p in seen}
    assert {"storage-chain.db", "storage-forks.db"} <= names, sorted(names)
    assert any(n.startswith("gw-") and n.endswith(".toml") for n in names), sorted(names)
    assert _bad(seen) == {}, seen


class _Pipe(io.BytesIO):
    def seekable(self) -> bool:  # as stdin from a pipe: read once
        return False


def test_srt_import_spools_stdin_privately(
    umask000: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Piped stdin larger than a batch is copied into a temporary file: unnamed, 0600."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    rolled: list[str] = []
    real = tempfile.SpooledTemporaryFile

    class Spy(real):  # type: ignore[misc,valid-type]
        def __exit__(self, *exc: object) -> None:
            if self._rolled:  # (fileno() would roll it over)
                rolled.append(stat.filemode(os.fstat(self.fileno()).st_mode))
            super().__exit__(*exc)

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", Spy)
    big = [{"role": "user", "content": f"{'x' * 4000} {i}"} for i in range(1200)]
    text = json.dumps(big)  # one document, 4.8 MB: read twice, so copied
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(_Pipe(text.encode())))
    db = tmp_path / "new" / "s.db"
    assert cli(["--db", str(db), "import", "-", "--name", "big"]) == 0
    assert rolled == ["-rw-------"]  # it went to a file, private
    assert _walk(tmp) == {}  # and left nothing behind
    new = tmp_path / "new"
    assert _mode(new) == "drwx------"
    assert _bad(_walk(new)) == {}


def test_the_default_store_folder_is_made_private(
    umask000: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with srt.Runtime() as rt:
        rt.session("s").append({"role": "user", "content": "hi"})
    modes = _walk(tmp_path)
    assert modes and _bad(modes) == {}, modes


def test_the_local_server_log_and_slot_folder_are_private(umask000: None, tmp_path: Path) -> None:
    states = tmp_path / "a" / "b" / "states"
    slots.private_dir(str(states))
    log = local_server._private_log(  # noqa: SLF001 (the log Server.start opens)
        str(tmp_path / "llama.log")
    )
    log.write(b"a line\n")
    log.close()
    modes = _walk(tmp_path)
    assert set(modes) == {"a", "a/b", "a/b/states", "llama.log"}, modes
    assert _bad(modes) == {}, modes


def test_the_tiktoken_cache_is_private(umask000: None, tmp_path: Path) -> None:
    with tokens._bpe_cache_dir("cl100k_base") as path:  # noqa: SLF001 (tiktoken's cache)
        seen = {".": _mode(path), **_walk(path)}
    assert len(seen) == 2 and _bad(seen) == {}, seen
    assert not os.path.exists(path)


def test_the_test_postgresql_servers_folders_and_files() -> None:
    """``pgserver.py start DIR`` (what ``.ci/run`` and the PostgreSQL tests use) under
    umask 000, with DIR's parents missing: the parents it makes, DIR, the cluster and its
    files are 0700 / 0600 (the server's socket aside: PostgreSQL makes it, in a 0700 folder)."""
    import subprocess

    script = Path(srt.__file__).parent / "testing" / "pgserver.py"
    # Not pytest's tmp_path: under root the server runs as another account, which must
    # be able to reach the folder (this test's own, searchable; what srt makes is below).
    tmp_path = Path(tempfile.mkdtemp(prefix="srt-pgmodes-", dir="/tmp"))
    tmp_path.chmod(0o711)
    root = tmp_path / "a" / "b" / "pg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def run(command: str) -> None:
        subprocess.run(
            [sys.executable, str(script), command, str(root)],
            check=True,
            capture_output=True,
            env=env,
            preexec_fn=lambda: os.umask(0o000),
            timeout=120,
        )

    run("start")
    try:
        modes = _walk(tmp_path)
        sockets = {p for p in modes if stat.S_ISSOCK(os.lstat(tmp_path / p).st_mode)}
    finally:
        run("stop")
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert {"a", "a/b", "a/b/pg", "a/b/pg/port", "a/b/pg/data"} <= set(modes)
    assert _bad({p: m for p, m in modes.items() if p not in sockets}) == {}
