"""Packaging metadata that tools read before any code runs (issue 14, item 8)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

# tomllib is in the standard library from Python 3.11; on 3.10 its twin is tomli.
tomllib: Any = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

PYPROJECT = tomllib.loads(
    (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
)


def _requires(name: str, section: list[str]) -> SpecifierSet:
    for text in section:
        req = Requirement(text)
        if req.name == name:
            return req.specifier
    raise AssertionError(f"{name} is not required")


def test_the_licence_string_has_the_setuptools_that_reads_it() -> None:
    """``license = "Apache-2.0"`` is an SPDX expression (PEP 639), which setuptools reads
    from version 77 on; older ones reject it. The build must ask for 77 or later."""
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    spec = _requires("setuptools", PYPROJECT["build-system"]["requires"])
    assert "77.0" in spec and "76.9" not in spec and "68" not in spec


def test_prices_come_from_a_maintained_library() -> None:
    spec = _requires("genai-prices", PYPROJECT["project"]["dependencies"])
    assert "0.2.5" in spec
