"""The suite's own children end by themselves (``rel_support.lifetime.end_by``): one
whose parent is gone, and one that runs past its deadline, each in the middle of a loop
with no end of its own (as the crash loop's writers are)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from rel_support.common import child_env
from rel_support.lifetime import EXIT_CODE
from rel_support.waits import WAIT_S, ended

_LOOP = "import time\nwhile True:\n    time.sleep(0.05)\n"

#: A parent that starts an endless child (watched by ``end_by``), waits for its word
#: that it is watched, prints its pid, and leaves it behind.
_CHILD = "from rel_support.lifetime import end_by\nend_by()\nprint('watched', flush=True)\n"
_PARENT = f"""
import subprocess, sys
child = subprocess.Popen(
    [sys.executable, "-c", {_CHILD + _LOOP!r}],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
)
assert child.stdout.readline() == "watched\\n"
print(child.pid, flush=True)
"""


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaps yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def test_an_orphaned_child_ends_by_itself() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", _PARENT],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=True,
    )
    pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + WAIT_S
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(pid):
        subprocess.run(["kill", "-9", str(pid)], check=False)
        raise AssertionError(f"the orphaned child {pid} did not end within {WAIT_S:.0f} s")


def test_a_child_past_its_deadline_ends_by_itself() -> None:
    code = "from rel_support.lifetime import end_by\nend_by(0.2)\n" + _LOOP
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert ended(proc) == EXIT_CODE
    assert proc.stderr is not None
    assert "ran past its 0.2 s" in proc.stderr.read()
    proc.stderr.close()
