"""``srt log``'s LAST MESSAGE column cut a long message without a mark: it now ends
with "…" when cut (as ``srt show --tree`` does), at 60 characters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import cli_env


def _srt(db: Path, *args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "srt", *args],
        env=cli_env(db),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def test_a_cut_last_message_ends_with_an_ellipsis(tmp_path: Path) -> None:
    db = tmp_path / "srt.db"
    long = "user: " + "word " * 20  # (over 60 characters)
    fits = "x" * (60 - len("assistant: "))  # (60 characters exactly: not cut)
    _srt(db, "append", "a", "--role", "user", long.removeprefix("user: "))
    _srt(db, "append", "a", "--role", "assistant", fits)
    _srt(db, "rewind", "a")
    _srt(db, "rewind", "a")
    lines = _srt(db, "log", "a").splitlines()
    assert lines[0] == "a: 0 messages now; earlier heads:"
    cut, whole = lines[2], lines[3]
    shown = long[:59] + "…"
    assert cut.endswith("  " + shown), cut
    assert whole.endswith("  assistant: " + fits), whole
    assert not whole.endswith("…")
