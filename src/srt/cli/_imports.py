"""``srt import --from SOURCE PATH``: conversations from another tool's store
(``srt.integrations.importers``); without ``--from``, a file made by ``srt export``."""

from __future__ import annotations

import argparse

from ._common import CommandError, escape_line, runtime

#: The ``--from`` names (``srt.integrations.importers.SOURCES``, listed here so that
#: ``srt --help`` imports no adapter).
SOURCES = ("agents-sqlite", "langgraph", "llm-logs")


def import_(args: argparse.Namespace) -> None:
    if args.source is None:
        from ._import_file import import_file  # (what it reads with: only when it runs)

        import_file(args)
        return
    if args.name is not None or args.format is not None or args.extra_keys is not None:
        raise CommandError(
            "--name, --format and --extra-keys are for files made by srt export, not --from"
        )
    from ..integrations import importers

    with runtime(args, create=True) as rt:
        report = importers.run(rt, args.source, args.file)
    for line in report.lines():
        print(escape_line(line))
