"""``python -m srt`` runs the ``srt`` command, through the console script's entry point
(``_srt_entry``: Ctrl-C while the CLI loads ends it quietly, status 130). The ``srt``
package itself was imported before this module runs, outside any handler of ours."""

from _srt_entry import main

raise SystemExit(main())
