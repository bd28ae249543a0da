"""The suite's own layout: any of its directories can be named together on one pytest
command line. Its directories have no ``__init__.py``, so pytest imports every test
module and ``conftest.py`` by its bare name: a module that imported ``conftest`` got
whichever directory's ``conftest`` pytest had imported last, and
``pytest tests/store tests/testing_server`` failed to collect ``tests/store``
(``cannot import name 'EngineUnderTest' from 'conftest'``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from rel_support.common import child_env

TESTS = Path(__file__).resolve().parent


def _modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_imports_a_conftest_by_name() -> None:
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "conftest" for n in names):
                found.append(f"{path.relative_to(TESTS)}:{node.lineno}")
    assert found == [], f"import from a *_support module instead: {found}"


def test_every_importable_module_name_is_the_suites_only_one() -> None:
    """Two ``helpers.py`` in two directories would be one module to pytest: the second
    directory's tests would get the first one's."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in _modules():
        if path.name not in ("conftest.py", "__init__.py"):
            where[path.stem].append(str(path.relative_to(TESTS)))
    assert {k: v for k, v in where.items() if len(v) > 1} == {}


def test_the_store_and_server_suites_collect_on_one_command_line() -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "-q"),
            *("--collect-only", "tests/store", "tests/testing_server"),
        ],
        cwd=TESTS.parent,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " error" not in proc.stdout.splitlines()[-1], proc.stdout[-3000:]
