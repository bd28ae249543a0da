"""Every file a page names in its prose exists (test_docs_commands.py checks the ones in
the commands it shows): README.md and every page of docs/ name tests, bench scripts and
modules as ``tests/test_local_hostile.py``, ``bench/gc_objects.py``,
``src/srt/_tool_pairs.py`` or, inside the package, ``store/sqlite/db.py`` and
``gateway/timing.py``; a name with ``*`` is a glob that must match a file. The old paths
docs/reliability.md's table of fixes gives as they were "then" are not there on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "srt"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# what a file was called when a fix in reliability.md's tables was made ("then; now ...")
THEN = {
    "src/srt/_db.py",
    "src/srt/store.py",
    "srt/providers/streams.py",
    "providers/_llama_slots.py",
}
# a path from the repository's root, or one inside the package (its folders)
PATH = re.compile(
    r"(?<![\w./*-])((?:src/srt/|srt/|tests/|bench/|docs/"
    r"|(?:store|wire|providers|local|gateway|integrations|cli|testing)/)"
    r"[\w/*.-]*[\w*]\.(?:py|pyx|pxi|pyi|h|md|toml|json))(?![\w/])"
)


def paths() -> list[tuple[str, str]]:
    out = set()
    for page in PAGES:
        for path in PATH.findall(page.read_text(encoding="utf-8")):
            if path not in THEN:
                out.add((page.name, path))
    return sorted(out)


def exists(path: str) -> bool:
    """``path`` names a file (a glob: some file) from the root, or inside the package."""
    inside = path.removeprefix("src/srt/").removeprefix("srt/")
    return any(
        any(base.glob(p)) if "*" in p else (base / p).is_file()
        for base, p in ((ROOT, path), (PACKAGE, inside))
    )


PATHS = paths()


def test_the_pages_name_files() -> None:
    named = {p for _, p in PATHS}
    assert {"tests/test_local_hostile.py", "store/sqlite/db.py", "gateway/timing.py"} <= named
    assert "tests/test_pgbouncer*.py" in named
    assert len(PATHS) >= 150


@pytest.mark.parametrize(("page", "path"), PATHS, ids=[f"{p}:{f}" for p, f in PATHS])
def test_every_file_a_page_names_exists(page: str, path: str) -> None:
    assert exists(path), f"{page} names {path}, which is not there"


def test_the_check_finds_what_is_not_there() -> None:
    assert exists("tests/test_docs_paths.py")
    assert exists("store/sqlite/gc_once.py") and exists("src/srt/store/sqlite/gc_once.py")
    assert exists("tests/wire_reference_*.py")
    assert not exists("tests/test_no_such_thing.py")
    assert not exists("store/sqlite/nothing.py")
    assert not exists("tests/test_nothing_*.py")
    assert PATH.findall("see `tests/test_x.py`, `store/a/b.py` and bench/y.py.") == [
        "tests/test_x.py",
        "store/a/b.py",
        "bench/y.py",
    ]
