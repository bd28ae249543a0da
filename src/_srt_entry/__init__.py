"""The ``srt`` console script's entry point, outside the ``srt`` package on purpose.

Importing anything under ``srt`` first runs ``srt/__init__.py`` (the runtime, the
store, the Cython core: about 0.1-0.3 s), and a console script's wrapper does that
import outside any ``try``: Ctrl-C then printed a ``KeyboardInterrupt`` traceback
before the CLI's own handling existed. This module imports nothing, so the interrupt
is caught around the import and the call alike, and ends the command the way the CLI
ends an interrupted one: nothing printed, status 130.
``python -m srt`` comes here too (``srt/__main__.py``), past the package's import.
"""

from __future__ import annotations

__all__ = ["INTERRUPTED", "main"]

#: The exit status of an interrupted command: 128 + SIGINT, as a shell shows it.
INTERRUPTED = 130


def main() -> int:
    """Run ``srt`` with ``sys.argv[1:]``; status 130, quietly, if interrupted."""
    try:
        from srt.cli import main as run

        return run()
    except KeyboardInterrupt:
        return INTERRUPTED
