"""Online backup (issue 13, item 9): ``rt.backup(dest)`` and ``srt backup DEST`` while
writers in other processes keep appending.

Two writer processes append turns and print each turn's id with the time its commit
returned. Backups are taken while they run (``BACKUPS``, in the API and in the CLI).
Pass, for every copy: ``integrity_check`` ok and the outside checker's chains intact;
it opens as an srt store; it holds every turn acknowledged before its backup began,
whole; the copy is 0600; no partial file is left; an existing file is never
overwritten. (The encrypted store's backup is in ``test_rel_encryption.py``.)
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import SOAK, child_env, emit, turn_payload, verify_store
from srt import cli

BACKUPS = 20 if SOAK else 4

_WRITER = """
import sys, time, srt
sys.path.insert(0, sys.argv[3])
from rel_support.common import turn_payload
from rel_support.lifetime import end_by
end_by()  # it writes until the parent kills it: an orphan ends by itself
with srt.Runtime(sys.argv[1]) as rt:
    s = rt.session(sys.argv[2])
    i = 0
    while True:
        tid = f"{sys.argv[2]}.{i}"
        q, a = turn_payload(tid, 8192)
        s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
        print(f"ACK {tid} {time.time():.6f}", flush=True)
        i += 1
"""


def _turns(chain: list[dict[str, Any]]) -> list[str]:
    """The turn ids of a chain, each checked whole against its payload."""
    out = []
    for q, a in zip(chain[::2], chain[1::2], strict=True):
        tid = str(q["content"])[2:].split(" ", 1)[0]
        assert (q["content"], a["content"]) == turn_payload(tid, 8192), tid
        out.append(tid)
    return out


def test_backups_while_writers_run(tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    path = str(tmp_path / "live" / "srt.db")
    srt.Runtime(path).close()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, path, f"w{n}", str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for n in range(2)
    ]
    lines: list[list[str]] = [[] for _ in writers]

    def read(n: int) -> None:
        stream = writers[n].stdout
        assert stream is not None
        lines[n].extend(line for line in stream)

    readers = [threading.Thread(target=read, args=(n,), daemon=True) for n in range(2)]
    for t in readers:
        t.start()
    copies: list[tuple[str, float, float]] = []
    reports: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 120
        while not all(len(x) >= 20 for x in lines):  # both writers are well under way
            assert time.monotonic() < deadline, [w.poll() for w in writers]
            time.sleep(0.05)
        for n in range(BACKUPS):
            dest = str(tmp_path / "backups" / f"copy-{n}.db")
            began = time.time()
            if n % 2:
                assert cli.main(["--db", path, "backup", dest]) == 0
            else:
                with srt.Runtime(path) as rt:
                    r = rt.backup(dest)
                reports.append({"pages": r.pages, "bytes": r.bytes, "seconds": r.seconds})
            copies.append((dest, began, time.time()))
            time.sleep(0.3)
    finally:
        for w in writers:
            w.send_signal(signal.SIGKILL)
    acks: list[tuple[str, float]] = []
    for w, t, out in zip(writers, readers, lines, strict=True):
        w.wait(60)
        t.join(60)
        assert w.stdout is not None and w.stderr is not None
        err = w.stderr.read()
        w.stdout.close()
        w.stderr.close()
        assert w.returncode == -signal.SIGKILL, err
        for line in out:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ACK":
                acks.append((parts[1], float(parts[2])))
    figures: dict[str, Any] = {"backups": len(copies), "api_reports": reports, "copies": []}
    for dest, began, ended in copies:
        rep = verify_store(dest)
        stored = {t for chain in rep.chains.values() for t in _turns(chain)}
        before = {t for t, at in acks if at < began}
        after = {t for t, at in acks if at > ended}
        with srt.Runtime(dest) as rt:
            via_srt = {i.name: rt.session(i.name).messages() for i in rt.sessions()}
        figures["copies"].append(
            {
                "integrity": rep.integrity,
                "problems": len(rep.problems),
                "turns_in_copy": len(stored),
                "acknowledged_before_it_began": len(before),
                "missing_of_those": len(before - stored),
                "acknowledged_after_it_ended_but_in_copy": len(stored & after),
                "mode": oct(stat.S_IMODE(os.stat(dest).st_mode)),
            }
        )
        assert rep.ok, (dest, rep.integrity, rep.problems[:3])
        assert before <= stored and not stored & after
        assert via_srt == rep.chains
        assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    leftovers = [p.name for p in (tmp_path / "backups").iterdir() if "partial" in p.name]
    figures["partial_files_left"] = leftovers
    figures["turns_acknowledged"] = len(acks)
    emit("backup_while_writing", figures, capsys, tmp_path_factory.getbasetemp())
    assert leftovers == []
    assert all(c["acknowledged_before_it_began"] > 0 for c in figures["copies"])


def test_a_backup_never_overwrites_and_refuses_bad_destinations(tmp_path: Path) -> None:
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path) as rt:
        rt.session("s").append({"role": "user", "content": "hi"})
        existing = tmp_path / "taken.db"
        existing.write_bytes(b"not yours")
        with pytest.raises(srt.ConfigError, match="never overwrites"):
            rt.backup(str(existing))
        assert existing.read_bytes() == b"not yours"
        with pytest.raises(srt.ConfigError, match="itself"):
            rt.backup(path)
        with pytest.raises(srt.ConfigError):
            rt.backup("a\x00b")
        with pytest.raises(srt.ConfigError):
            rt.backup(5)  # type: ignore[arg-type]
        r = rt.backup(str(tmp_path / "new" / "dir" / "copy.db"))
    assert oct(stat.S_IMODE(os.stat(tmp_path / "new").st_mode)) == "0o700"
    with srt.Runtime(r.path) as copy:
        assert copy.session("s").messages() == [{"role": "user", "content": "hi"}]
    assert sorted(os.listdir(tmp_path / "new" / "dir")) == ["copy.db"]
