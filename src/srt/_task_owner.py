"""Who started a tool call: this process as a task's start records name it, and whether
the process a record names still runs (``srt._task`` reads them; ``srt scratch`` too).

An owner is ``"<pid>:<process start time>"``. The start time (Linux ``/proc``) tells a
reused pid from the original; without ``/proc`` the pid alone is checked, and where
processes cannot be probed (Windows) an owner is taken as gone. A call's start record
names the run too (``claimant``: ``"<pid>:<start time>:<token>"``, a token per claim), so
a run takes back only its own record, never another run's of the same process.
"""

from __future__ import annotations

import os
import secrets
import sys

__all__ = ["alive", "claimant", "owner"]


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner() -> str:
    """This process, as recorded on the calls it starts."""
    pid = os.getpid()
    return f"{pid}:{_start_time(pid)}"


def claimant() -> str:
    """This process and one claim of it (a new token each call): a start record's value."""
    return f"{owner()}:{secrets.token_hex(8)}"


def alive(who: str) -> bool:
    """Whether the process ``who`` (another one than this; an ``owner`` or a
    ``claimant``) is still running."""
    pid_text, _, rest = who.partition(":")
    start = rest.partition(":")[0]
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid() or pid <= 0 or sys.platform == "win32":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return False
    return not start or _start_time(pid) in ("", start)
