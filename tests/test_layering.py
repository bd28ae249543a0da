"""The layering of ``src/srt`` (docs: /work/shared/STYLE.md), checked by parsing imports.

Bottom to top::

    errors, _types (and message) <- _core <- store, wire <- providers
        <- context, session <- runtime <- cli, bench, integrations

Nothing imports upward. Imports under ``if TYPE_CHECKING:`` are allowed, since
they never run. Imports inside functions count: they still create the dependency.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "srt"

RANKS = {
    "errors": 0,
    "_types": 0,
    "_version": 0,
    "message": 1,
    # Tools from Python callables: a JSON schema from the signature and docstring.
    "tools": 1,
    "_core": 1,
    # How a store hashes (XXH3 or keyed BLAKE2b), over _core.
    "_hashing": 1,
    # Token counting: canonical bytes -> counts; no I/O.
    "tokens": 2,
    # Prices (genai-prices, overrides, local models) and the cost of ledger rows.
    "pricing": 1,
    # The Store protocol and its engines (srt.store.sqlite: set-up, migrations, gc,
    # verify, search, vacuum); nothing outside it writes SQL.
    "store": 2,
    "wire": 2,
    "providers": 3,
    "context": 4,
    # The prompt-cache planner: the "cache breakpoints" part of the context layer.
    "cache": 4,
    # What prefix reuse saved against the two baselines, over ledger rows.
    "savings": 4,
    # Earlier heads (store objects) and the per-message view of a chain.
    "history": 4,
    "entries": 4,
    # Rebuilding every ledger row's body from the stored history (srt verify).
    "ledger": 5,
    "session": 4,
    # A provider call on a session: build, send, stream, persist (session's own layer).
    "exchange": 4,
    "compaction": 4,
    # The tool loop (Session.run): model calls, tool runs, resume after a crash.
    "tasks": 4,
    "_task": 4,
    # Compaction with the model's own summary (by hand, or at a window's compact_at).
    "summarize": 4,
    "_assembly": 4,
    "runtime": 5,
    "cli": 6,
    "bench": 6,
    # srt serve: the OpenAI Responses/Conversations API over the runtime (ASGI).
    "gateway": 6,
    # Adapters for other frameworks (Agents SDK, LangGraph, LangChain) and the importers
    # from their stores: users of Runtime, Session and the Store protocol's objects.
    "integrations": 6,
    # The local provider server for tests and the bench (plays the remote side).
    "testing": 6,
    "__init__": 7,
    "__main__": 7,
}


def modules() -> list[tuple[str, Path]]:
    """``(dotted name, path)`` of every Python module in the package."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def layer(dotted: str) -> str:
    """The layer of ``srt.x.y``: ``x``; the package itself is ``__init__``."""
    parts = dotted.split(".")
    assert parts[0] == "srt", dotted
    return parts[1] if len(parts) > 1 else "__init__"


def _is_submodule(dotted: str) -> bool:
    base = SRC.parent.joinpath(*dotted.split("."))
    return (
        base.with_suffix(".py").is_file()
        or base.with_suffix(".pyx").is_file()
        or (base / "__init__.py").is_file()
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports(dotted: str, path: Path) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import that runs, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if node.module is None or target == "srt":
                # ``from . import x``: x is a submodule or a name from the package.
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    yield node.lineno, sub if _is_submodule(sub) else target
            else:
                yield node.lineno, target


def _srt_imports() -> list[tuple[str, int, str]]:
    out = []
    for dotted, path in modules():
        for line, target in imports(dotted, path):
            if target == "srt" or target.startswith("srt."):
                out.append((dotted, line, target))
    return out


def test_the_package_is_where_we_parse() -> None:
    names = {d for d, _ in modules()}
    assert {"srt", "srt.errors", "srt.store", "srt.store.sqlite.db", "srt.session"} <= names
    assert any(n.startswith("srt.wire") for n in names)
    # The resolver sees relative imports: session.py imports the store and the core.
    session_imports = {t for d, _, t in _srt_imports() if d == "srt.session"}
    assert {"srt.store", "srt._core", "srt.message"} <= session_imports
    assert "srt.runtime" not in session_imports  # only under TYPE_CHECKING


def test_every_module_has_a_layer() -> None:
    unknown = sorted({layer(d) for d, _ in modules()} - set(RANKS))
    assert not unknown, f"modules without a layer; add them to RANKS in {__file__}: {unknown}"


def test_nothing_imports_upward() -> None:
    violations = []
    for dotted, line, target in _srt_imports():
        src, dst = layer(dotted), layer(target)
        if src in RANKS and dst in RANKS and RANKS[dst] > RANKS[src]:
            violations.append(
                f"{dotted} (layer {src}, rank {RANKS[src]}) line {line} imports "
                f"{target} (layer {dst}, rank {RANKS[dst]})"
            )
    assert not violations, "upward imports:\n" + "\n".join(violations)


def _third_party(prefix: str) -> list[tuple[str, int, str]]:
    out = []
    for dotted, path in modules():
        if dotted == prefix or dotted.startswith(prefix + "."):
            out.extend((dotted, line, t) for line, t in imports(dotted, path))
    return out


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("srt.store", ("httpx",)),
        ("srt.wire", ("apsw", "sqlite3", "httpx", "srt.store")),
        ("srt.providers", ("apsw", "sqlite3", "srt.store")),
        ("srt.message", ("apsw", "sqlite3", "httpx")),
        ("srt.errors", ("apsw", "httpx")),
    ],
)
def test_forbidden_imports(module: str, forbidden: tuple[str, ...]) -> None:
    found = [
        f"{d} line {line} imports {t}"
        for d, line, t in _third_party(module)
        if any(t == f or t.startswith(f + ".") for f in forbidden)
    ]
    assert not found, "\n".join(found)


def test_the_core_has_no_sql_no_io_and_no_srt_imports() -> None:
    text = (SRC / "_core.pyx").read_text(encoding="utf-8")
    imported = re.findall(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+(\S+))", text, re.M)
    names = {a or b for a, b in imported}
    assert "xxhash" in names
    bad = {n for n in names if n.split(".")[0] in {"srt", "apsw", "sqlite3", "httpx", "os", "io"}}
    assert not bad
    assert not any(n.startswith(".") for n in names)
