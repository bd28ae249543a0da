"""A child process a test starts ends by itself: a test's children run loops until the
parent kills them (the crash loop's writers, the kill-and-resume task runner) or wait
for the parent's word, and an orphan (its parent killed, or lost by a test that failed
before its cleanup) used to run on for good, holding its files, its database
connections and a core of a two-core CI machine.

``end_by()``, called first thing in a child, starts a daemon thread that ends the
process (``os._exit(EXIT_CODE)``, a note on stderr) as soon as its parent is gone or
once ``seconds`` have passed, whichever comes first. The parents keep their own
timeouts; this bounds the child when nobody is left to apply them. Standard library
only, so that any child (``python -c``) with ``tests/`` on its path can call it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

#: The longest a test's child may live: the suite's limit on one test (pyproject's
#: ``timeout = 900``), four hours under ``SRT_SOAK=1`` (as ``tests/conftest.py`` lifts
#: that limit). No test waits on a child longer than the test itself may run.
LIFETIME_S = 4 * 3600.0 if os.environ.get("SRT_SOAK") == "1" else 900.0
#: How often the watch looks for its parent.
POLL_S = 0.5
#: The exit status of a child ended by its watch (as ``timeout(1)``'s).
EXIT_CODE = 124


def end_by(seconds: float = LIFETIME_S) -> threading.Thread:
    """Watch this process: end it once its parent is gone or ``seconds`` have passed."""
    parent = os.getppid()
    deadline = time.monotonic() + seconds

    def watch() -> None:
        while True:
            # (pid 1 adopts orphans: a parent gone before this call left it that)
            if os.getppid() != parent or parent == 1:
                why = f"its parent (pid {parent}) is gone"
            elif time.monotonic() >= deadline:
                why = f"it ran past its {seconds:g} s (rel_support.lifetime)"
            else:
                time.sleep(POLL_S)
                continue
            with contextlib.suppress(OSError):
                os.write(2, f"test child {os.getpid()} ends: {why}\n".encode())
            os._exit(EXIT_CODE)

    thread = threading.Thread(target=watch, name="end_by", daemon=True)
    thread.start()
    return thread
