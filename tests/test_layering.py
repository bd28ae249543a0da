"""The layering of ``src/srt`` (docs: /work/shared/STYLE.md), checked by parsing imports.

Bottom to top, every top-level module or package on a rank of its own::

    _version, errors, _types, tools, message, pricing <- _core <- _hashing <- tokens,
        store, history, entries, wire <- local <- providers <- context, cache, savings
        <- _shared <- _chain_state <- _chain <- _pieces <- _fragments <- _cachekeys <- _builder
        <- compaction <- exchange <- drivers <- ledger, summarize, _task_session, _task_owner,
        _task, tasks
        <- _session_edits, _session_tasks <- session <- runtime
        <- testing, gateway, integrations, cli, bench

Nothing imports upward, and nothing imports in a cycle: not between top-level
modules, and not between the modules inside a package, not even under
``if TYPE_CHECKING:``. Imports inside functions count: they still create the
dependency.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "srt"

#: Bottom first; a module may import only what comes before it (and itself: the
#: modules inside one package import each other, without cycles).
ORDER = [
    "_version",
    "errors",
    "_types",
    # Tools from Python callables: a JSON schema from the signature and docstring.
    "tools",
    "message",
    # Prices (genai-prices, overrides, local models) and the cost of ledger rows.
    "pricing",
    "_core",
    # How a store hashes (XXH3 or keyed BLAKE2b), over _core.
    "_hashing",
    # Token counting: canonical bytes -> counts; no I/O.
    "tokens",
    # The Store protocol and its engines (srt.store.sqlite, srt.store.postgres: set-up,
    # migrations, gc, verify, search, vacuum); nothing outside it writes SQL.
    "store",
    # Earlier heads (store objects) and the per-message view of a chain.
    "history",
    "entries",
    # Wire formats: pure codecs (requests, replies, streams), no I/O.
    "wire",
    # llama.cpp in a child process srt owns, and its slots.
    "local",
    # Providers: HTTP transport, auth, stream framing; they import wire, never store.
    "providers",
    "context",
    # The prompt-cache planner: the "cache breakpoints" part of the context layer.
    "cache",
    # What prefix reuse saved against the two baselines, over ledger rows.
    "savings",
    # What a runtime's sessions share: store, caches, settings.
    "_shared",
    # What a session's history in memory holds, and how it is read (Chain's base).
    "_chain_state",
    # A session's history in memory and its compare-and-swap commit.
    "_chain",
    # A request's glued pieces per format and model (the builder's state).
    "_pieces",
    # Messages made into one format's fragments for an assembly.
    "_fragments",
    # The prompt-cache key a request sends, in its CachePolicy's scope.
    "_cachekeys",
    # Assembly, windows, the cache plan, the request bytes.
    "_builder",
    "compaction",
    # What a provider call holds and the ledger row it makes of it (Call's base).
    "_call_state",
    # The newest step's tool calls and results, checked before a call sends them.
    "_tool_pairs",
    # A provider call on a session: build, send, stream, persist.
    "exchange",
    # The I/O around a call (send, asend and their streams).
    "drivers",
    # Rebuilding every ledger row's body from the stored history (srt verify).
    "ledger",
    # Compaction with the model's own summary (by hand, or at a window's compact_at).
    "summarize",
    # What import srt needs of the tool loop: what a task uses of its session, run's
    # defaults, the kind of its call records (the loop loads with the first run).
    "_task_session",
    # Who started a tool call (a process as its start records name it), and whether it runs.
    "_task_owner",
    # The tool loop (Session.run): model calls, tool runs, resume after a crash.
    "_task",
    "tasks",
    # Session's methods that rewrite its history, and its tool-loop methods (written
    # apart, taken into Session's namespace).
    "_session_edits",
    "_session_tasks",
    "session",
    "runtime",
    # The local provider server for tests and the bench (plays the remote side).
    "testing",
    # srt serve: the OpenAI Responses/Conversations API over the runtime (ASGI).
    "gateway",
    # Adapters for other frameworks (Agents SDK, LangGraph, LangChain) and the importers
    # from their stores: users of Runtime, Session and the Store protocol's objects.
    "integrations",
    "cli",
    "bench",
    "__init__",
    "__main__",
]
RANKS = {name: rank for rank, name in enumerate(ORDER)}


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


def _runtime_nodes(tree: ast.AST, typing: bool = False) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks (with ``typing``,
    those too)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if not typing and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports(dotted: str, path: Path, typing: bool = False) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import that runs, relative ones resolved
    (with ``typing``, also those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    for node in _runtime_nodes(tree, typing):
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


def _srt_imports(typing: bool = False) -> list[tuple[str, int, str]]:
    out = []
    for dotted, path in modules():
        for line, target in imports(dotted, path, typing):
            if target == "srt" or target.startswith("srt."):
                out.append((dotted, line, target))
    return out


def test_the_package_is_where_we_parse() -> None:
    names = {d for d, _ in modules()}
    assert {"srt", "srt.errors", "srt.store", "srt.store.sqlite.db", "srt.session"} <= names
    assert any(n.startswith("srt.wire") for n in names)
    # The resolver sees relative imports: _chain.py imports the store and the core.
    chain_imports = {t for d, _, t in _srt_imports() if d == "srt._chain"}
    assert {"srt.store", "srt._core", "srt.message"} <= chain_imports
    # ... and ``from . import x`` (x a module) and ``from .. import y`` in a package.
    assert "srt.exchange" in {t for d, _, t in _srt_imports() if d == "srt.session"}
    assert "srt._core" in {t for d, _, t in _srt_imports() if d == "srt.bench.chat"}


def test_every_module_has_a_layer() -> None:
    unknown = sorted({layer(d) for d, _ in modules()} - set(RANKS))
    assert not unknown, f"modules without a layer; add them to ORDER in {__file__}: {unknown}"
    assert len(set(ORDER)) == len(ORDER)  # every module on a rank of its own


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


def _graph() -> dict[str, set[str]]:
    """Module -> the srt modules it imports, also for type checking only (a package's
    ``__init__`` is the package)."""
    known = {d for d, _ in modules()}
    graph: dict[str, set[str]] = {d: set() for d in known}
    for dotted, _line, target in _srt_imports(typing=True):
        if _is_submodule(target):  # the Cython core is a module with no .py file
            known.add(target)
            graph.setdefault(target, set())
        while target not in known and "." in target:
            target = target.rpartition(".")[0]  # ``from .x import name`` of a module x
        if target in known and target != dotted:
            graph[dotted].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """Over the real import graph of every module, type-checking imports included (a
    cycle there is a cycle of design even when Python never runs it)."""
    graph = _graph()
    assert sum(len(v) for v in graph.values()) > 100  # the parse found the imports
    assert not _cycles(graph), "import cycles:\n" + "\n".join(map(str, _cycles(graph)))


def test_a_cycle_would_be_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


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
        ("srt.local", ("apsw", "sqlite3", "srt.store", "srt.providers")),
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


#: Outside ``srt.store``, only the bench and the importers touch a database library: the
#: bench's naive baselines (a one-row-per-message SQLite client, bare APSW writes), its
#: header and the gateway workload's measure of the bytes a file uses; the importers
#: read other frameworks' SQLite files (the Agents SDK's sessions, LangGraph's saver).
_DB_LIBRARY_USERS = (
    "srt.bench.chat",
    "srt.bench.many",
    "srt.bench.naive",
    "srt.bench.reads",
    "srt.bench.writes",
    "srt.bench.__main__",
    "srt.bench.gateway",
    "srt.bench.gwserve",
    "srt.integrations.importers",
)


def test_nothing_outside_the_store_touches_a_database() -> None:
    found = [
        f"{d} line {line} imports {t}"
        for d, path in modules()
        if not (d == "srt.store" or d.startswith("srt.store.")) and d not in _DB_LIBRARY_USERS
        for line, t in imports(d, path, typing=True)
        if t.split(".")[0] in ("apsw", "sqlite3", "psycopg", "psycopg_pool")
        or t.startswith("srt.store.sqlite")
    ]
    assert not found, "\n".join(found)


def test_the_core_has_no_sql_no_io_and_no_srt_imports() -> None:
    parts = [SRC / "_core.pyx", *sorted(SRC.glob("_core_*.pxi"))]
    assert len(parts) > 1  # the .pxi parts are found (_core.pyx includes them)
    text = "\n".join(p.read_text(encoding="utf-8") for p in parts)
    imported = re.findall(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+(\S+))", text, re.M)
    names = {a or b for a, b in imported}
    assert "xxhash" in names
    bad = {n for n in names if n.split(".")[0] in {"srt", "apsw", "sqlite3", "httpx", "os", "io"}}
    assert not bad
    assert not any(n.startswith(".") for n in names)


ARCHITECTURE = SRC.parents[1] / "docs" / "architecture.md"


def _doc_layers() -> list[list[str]]:
    """The layer diagram of docs/architecture.md ("The layers"), top first: each rank's
    module names (a rank's names run over lines while a line ends in a comma)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## The layers", 1)[1]
    diagram = section.split("```", 2)[1]
    groups: list[list[str]] = []
    more = False
    for line in diagram.splitlines():
        left = line[:34].strip()
        if left in ("", "│"):
            more = False
            continue
        names = [part.split()[0] for part in left.split(",") if part.strip()]
        if more:
            groups[-1].extend(names)
        else:
            groups.append(names)
        more = left.endswith(",")
    return groups


def test_the_architecture_diagram_is_this_order() -> None:
    """Every layer of ORDER is in the doc's diagram (the package's own ``__init__`` and
    ``__main__`` aside), and a rank drawn below another is below it in ORDER."""
    groups = _doc_layers()
    drawn = [name for group in groups for name in group]
    assert sorted(drawn) == sorted(set(ORDER) - {"__init__", "__main__"})
    for upper, lower in itertools.pairwise(groups):
        assert max(RANKS[n] for n in lower) < min(RANKS[n] for n in upper), (upper, lower)


def _doc_module_map() -> dict[str, set[str]]:
    """docs/architecture.md's "Every module, by folder": folder -> the files it names."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("### Every module, by folder", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[str]] = {}
    for bullet in re.split(r"\n- ", section)[1:]:
        folders = re.findall(r"`([\w./]+/)`", bullet.split(":", 1)[0])
        files = set(re.findall(r"`(\w+\.(?:py|pyx|pxi|pyi|h))`", bullet.split(":", 1)[1]))
        assert folders and files, bullet
        for folder in folders:
            out.setdefault(folder, set()).update(files)
    return out


def test_the_architecture_module_map_is_the_tree() -> None:
    """Every source file under src/srt is placed in the doc's map, and every file the map
    names exists, in the folder it is named under."""
    tree: dict[str, set[str]] = {}
    for path in SRC.rglob("*"):
        if path.suffix in (".py", ".pyx", ".pxi", ".pyi", ".h") and "__pycache__" not in str(path):
            folder = path.parent.relative_to(SRC).as_posix()
            tree.setdefault("./" if folder == "." else folder + "/", set()).add(path.name)
    assert _doc_module_map() == tree
