"""``python -m srt`` runs the ``srt`` command."""

from .cli import main

raise SystemExit(main())
