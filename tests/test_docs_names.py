"""Every srt name the docs use exists (issue 14, item 8).

Two kinds of use are checked in README.md and every page of docs/:

* the Python code blocks: each ``import``/``from ... import`` of srt runs, and each
  dotted name read from ``srt`` (``srt.Runtime``, ``srt.OpenAI``...) resolves;
* dotted ``srt.*`` names anywhere in the text (``srt.testing.ProviderServer``,
  ``srt.providers.local.missing``...): each resolves to a module or an attribute.

``srt.db``, the default database file's name, ``srt.stores``, the storage engines'
entry-point group, and ``srt.sweep``, the kind of the store's sweep leases, are the
``srt.`` words that are not names.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_NAMES = {"srt.db", "srt.stores", "srt.sweep"}  # the database file's default name; the
# storage engines' entry-point group (srt.providers, the providers' group, is a module as
# well); an object kind (store.sweeps' leases)
DOTTED = re.compile(r"(?<![\w./-])srt(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted``, then read the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _attribute_chain(node: ast.AST) -> str | None:
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "srt":
        return ".".join(["srt", *reversed(names)])
    return None


def code_names(code: str) -> set[str]:
    """The srt names a code block imports or reads."""
    out: set[str] = set()
    inner = set()  # srt.a of srt.a.b: resolving the longer name checks it too
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "srt")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "srt":
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Attribute) and id(node) not in inner:
            chain = _attribute_chain(node)
            if chain is not None:
                out.add(chain)
    return out


def _uses() -> list[tuple[str, str]]:
    uses: set[tuple[str, str]] = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in _python_blocks(text):
            uses.update((page.name, n) for n in code_names(block))
        uses.update((page.name, m) for m in DOTTED.findall(text) if m not in NOT_NAMES)
    return sorted(uses)


USES = _uses()


def test_the_docs_use_names_at_all() -> None:
    names = {n for _, n in USES}
    assert {"srt.Runtime", "srt.OpenAI", "srt.testing.ProviderServer"} <= names


@pytest.mark.parametrize(("page", "name"), USES, ids=[f"{p}:{n}" for p, n in USES])
def test_every_name_the_docs_use_exists(page: str, name: str) -> None:
    assert resolve(name) is not None, f"{page} uses {name}"


def test_the_check_finds_a_missing_name() -> None:
    with pytest.raises(AttributeError):
        resolve("srt.providers.OpenAI.nothing_here")
    with pytest.raises(AttributeError):
        resolve("srt.NoSuchThing")
    assert code_names("import srt\nfrom srt.x import a, b\nsrt.y.z()") == {
        "srt",
        "srt.x.a",
        "srt.x.b",
        "srt.y.z",
    }
