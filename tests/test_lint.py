"""Linters as tests: ruff (check and format), mypy (strict on src/srt) and stubtest.

Nothing is skipped: ruff and mypy come with the ``test`` extra
(``pip install -e '.[test]'``), and a missing tool fails with that hint.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(
            f"{module} is not importable by {sys.executable}; it is part of the test "
            "extra: pip install -e '.[test]'",
            pytrace=False,
        )


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _check(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"{' '.join(proc.args)}\n{proc.stdout}\n{proc.stderr}"


def test_ruff_check() -> None:
    _require("ruff")
    _check(_run("ruff", "check", "--no-cache", "src", "tests"))


def test_ruff_format() -> None:
    _require("ruff")
    _check(_run("ruff", "format", "--check", "--no-cache", "src", "tests"))


def test_mypy_strict() -> None:
    _require("mypy")
    proc = _run("mypy", "--no-incremental")
    _check(proc)
    assert "Success" in proc.stdout


def test_stubtest_core() -> None:
    _require("mypy")
    proc = _run("mypy.stubtest", "srt._core", "--allowlist", str(ALLOWLIST))
    _check(proc)
