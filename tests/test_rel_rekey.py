"""A rekey killed at any moment leaves a file srt opens with one of its two keys, whole.

For each way a rekey goes (plain -> key, key -> another key, key -> plain), a child
process (``rel_support/rekey_child.py``, with apsw-sqlite3mc's ``apsw``: see
``test_rel_encryption.py``) rekeys a copy of the same store and SIGKILLs itself at its
k-th write or sync, for k spread over the whole rekey (counted first by a rekey that is
not killed), the first ones and the last ones included. Then a checker opens each file
with the old key and with the new one:

* exactly one of them opens it, and reads every message of every session, and
  ``verify`` (``integrity_check`` included) is clean;
* the other is the ``EncryptionKeyError`` that names the file's real state ("is
  encrypted", "is not encrypted", "does not open");
* the file is under the old key up to some k and under the new one after (one switch,
  and the sweep sees both), and every file left is 0600 in its 0700 folder, under umask
  022 and under umask 000 (nothing masked): the file, the unfinished ``PATH-rekey`` copy
  and its ``-journal`` (the sweep under umask 000 must see both), their ``-wal`` and
  ``-shm``, and the file the rekey run again leaves;
* a rekey run again from the state found finishes the job and removes the unfinished copy.

An older srt rekeyed in place: killed after the first pages, the file was refused with
either key (the first pages under the new key, the rest and the ``-journal`` under the
old one). This test fails on that code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rel_support.common import SUPPORT, TESTS, child_env

CHILD = str(SUPPORT / "rekey_child.py")

#: For each mode: the error of a key that does not open the file, by the file's state.
REFUSED = {
    "plain->key": {"old": "is not encrypted", "new": "is encrypted"},
    "key->key": {"old": "does not open", "new": "does not open"},
    "decrypt": {"old": "is encrypted", "new": "is not encrypted"},
}


def run(mc_site: Path, *args: str, umask: int = 0o022) -> list[tuple[subprocess.Popen[str], str]]:
    env = child_env()
    env["PYTHONPATH"] = f"{mc_site}:{TESTS}"
    env["REKEY_UMASK"] = f"{umask:o}"
    cmd = [sys.executable, CHILD, *args]
    return [
        (
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            ),
            args[0],
        )
    ]


def finish(p: subprocess.Popen[str]) -> tuple[int, dict[str, Any] | None, str]:
    out, err = p.communicate(timeout=300)
    lines = out.strip().splitlines()
    return p.returncode, json.loads(lines[-1]) if lines else None, err


def result(mc_site: Path, *args: str, umask: int = 0o022) -> dict[str, Any]:
    ((p, _),) = run(mc_site, *args, umask=umask)
    code, out, err = finish(p)
    assert code == 0 and out is not None, err[-3000:]
    return out


def points(first: int, ops: int) -> list[int]:
    """Kill points after the ``first`` I/O calls: the next two, 10 spread over the rest,
    the last three, and 0 (just after the rename)."""
    spread = {first + round((ops - first) * i / 11) for i in range(1, 11)}
    return sorted({0, first + 1, first + 2, *spread, ops - 2, ops - 1, ops})


@pytest.fixture(scope="module")
def prepared(
    mc_site: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("rekey-base")
    return d, result(mc_site, "prepare", str(d))


#: Each mode under umask 022, and the two that leave an unfinished copy under a key
#: under umask 000 too.
CASES = [*((mode, 0o022) for mode in REFUSED), ("plain->key", 0o000), ("key->key", 0o000)]


@pytest.mark.parametrize(("mode", "umask"), CASES, ids=[f"{m}-umask{u:03o}" for m, u in CASES])
def test_a_rekey_killed_anywhere_leaves_a_file_one_key_opens_whole(
    mode: str,
    umask: int,
    mc_site: Path,
    tmp_path: Path,
    prepared: tuple[Path, dict[str, Any]],
) -> None:
    base, counted = prepared
    source = base / ("plain.db" if mode == "plain->key" else "keyed.db")
    # An encrypted file's -journal is encrypted only through SQLite3 Multiple Ciphers' own
    # VFS: through the Python FaultVFS over it, SQLite writes it in the clear, and a file
    # killed with it hot opens with no key. So the kills in an encrypted file's first
    # step, leaving WAL mode (SQLite's own journalled header write), would test the
    # harness: they run for the plain file only.
    first = counted["leaving_wal"][mode] if mode != "plain->key" else 0
    ks = points(first, counted["ops"][mode])
    assert len(ks) >= 12
    dirs = {}
    for k in ks:
        d = tmp_path / f"k{k:05d}"
        d.mkdir(mode=0o700)
        shutil.copy(source, d / "srt.db")
        dirs[k] = d
    for i in range(0, len(ks), 2):  # two children at a time (two cores)
        batch = [
            p
            for k in ks[i : i + 2]
            for p, _ in run(mc_site, "kill", str(dirs[k]), mode, str(k), umask=umask)
        ]
        for p in batch:
            code, out, err = finish(p)
            assert code == -9, (code, out, err[-2000:])  # every point lies inside the rekey
    found = result(mc_site, "check", mode, *(str(dirs[k]) for k in ks), umask=umask)
    states, seen = [], set()
    for k in ks:
        r = found[dirs[k].name]
        opened = [which for which in ("old", "new") if r[which]["opens"]]
        assert len(opened) == 1, (k, r)
        state = opened[0]
        other = "new" if state == "old" else "old"
        assert r[state]["messages_ok"] and r[state]["verify_ok"], (k, r)
        kind, text = r[other]["error"]
        assert kind == "EncryptionKeyError" and REFUSED[mode][state] in text, (k, r)
        for files in (r["files"], r["files_after"]):
            assert files.pop(".") == "0o700" and set(files.values()) == {"0o600"}, (k, files)
            seen |= set(files)
        assert r["finished"]["opens"] and r["finished"]["messages_ok"], (k, r)
        assert r["finished"]["verify_ok"] and not r["copy_left"], (k, r)
        states.append(state)
    # Killed just after the rename (k 0): the new file; at any I/O call before: the old one.
    assert states == ["new"] + ["old"] * (len(ks) - 1), list(zip(ks, states, strict=True))
    # The modes above were those of the copy and its journal too, not only the file's.
    assert {"srt.db", "srt.db-rekey", "srt.db-rekey-journal"} <= seen, sorted(seen)
