"""Where ``srt`` writes its output, and what it does when stdout cannot take it.

Like coreutils: output that cannot be written (a closed stdout, a full disk behind
``>``) is one line on stderr, ``srt: write error: <reason>``, and status 1; a reader
that went away (``srt ls | head -1``) ends the command quietly with status 141
(128 + SIGPIPE, what a shell reports for a command SIGPIPE ended).
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["EPIPE_STATUS", "guard_stdout", "write_failed"]

#: The status after a broken pipe: 128 + SIGPIPE (13), as ``sh`` shows for ``ls | head``.
EPIPE_STATUS = 141


def guard_stdout() -> None:
    """Give a closed stdout (``srt ls >&-``) a stand-in whose writes fail as the closed
    descriptor's would (EBADF). Python sets ``sys.stdout`` to None there and ``print``
    then writes nothing, so the command "succeeded". The descriptor is taken by
    ``/dev/null`` opened read-only, so no file the command opens becomes fd 1."""
    if sys.stdout is not None:
        return
    try:
        os.fstat(1)
    except OSError:
        fd = os.open(os.devnull, os.O_RDONLY)
        if fd != 1:
            os.dup2(fd, 1)
            os.close(fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115


def write_failed(exc: OSError) -> int:
    """Report output that could not be written and return the exit status: nothing for
    a broken pipe, else ``srt: write error: <reason>``. What is still buffered for stdout
    goes nowhere, so the flush at interpreter exit neither fails again nor prints
    "Exception ignored ..."."""
    _drop_output()
    if isinstance(exc, BrokenPipeError):
        return EPIPE_STATUS
    with contextlib.suppress(AttributeError, OSError):  # stderr gone too: the status says it
        print(f"srt: write error: {exc.strerror or exc}", file=sys.stderr, flush=True)
    return 1


def _drop_output() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
