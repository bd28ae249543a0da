"""What the single-process bench scripts share: their command line's ``--json`` and the
file it writes."""

from __future__ import annotations

import argparse
import json
from typing import Any


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring's first line, with
    ``--json PATH`` (write the results there too)."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    ap.add_argument("--json", help="write the results here too")
    return ap


def dump(path: str | None, data: Any) -> None:
    """``data`` as indented JSON at ``path`` (nothing when ``path`` is not given)."""
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
