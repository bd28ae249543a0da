"""What the single-process bench scripts share: their command line's ``--json`` and the
files they write, each through ``srt.bench.report.open_private`` (0600 whatever the
umask, as every file srt writes: ``tests/test_rel_bench_files.py`` checks that no
script opens a file to write any other way)."""

from __future__ import annotations

import argparse
import json
import shutil
from typing import IO, Any


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring's first line, with
    ``--json PATH`` (write the results there too)."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    ap.add_argument("--json", help="write the results here too")
    return ap


def open_private(path: str) -> IO[bytes]:
    """``path`` opened to be written anew, 0600 (``srt.bench.report.open_private``,
    imported only here: a script that writes nothing never imports srt for it)."""
    from srt.bench.report import open_private

    return open_private(str(path))


def write_text(path: str, text: str) -> None:
    """``text`` as UTF-8 at ``path``, a file readable by its owner only."""
    with open_private(path) as f:
        f.write(text.encode("utf-8"))


def dump(path: str | None, data: Any) -> None:
    """``data`` as indented JSON at ``path`` (nothing when ``path`` is not given)."""
    if path:
        write_text(path, json.dumps(data, indent=1))


def copy_private(src: str, dst: str) -> None:
    """A copy of the file ``src`` at ``dst``, readable by its owner only
    (``shutil.copyfile`` would create it with the umask's mode)."""
    with open(src, "rb") as f, open_private(dst) as out:
        shutil.copyfileobj(f, out)
