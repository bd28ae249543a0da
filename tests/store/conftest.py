"""The store conformance suite's fixtures: ``engine`` runs every test in ``tests/store/``
once per engine of ``engines_support.ENGINES``, and ``store`` is a store on its empty
database. The engines themselves are in ``engines_support.py`` (tests import them from
there, never from ``conftest``, a name every test directory shares)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from engines_support import ENGINES, EngineUnderTest

from srt.store import Store


@pytest.fixture(params=sorted(ENGINES))
def engine(request: Any, tmp_path: Path) -> Iterator[EngineUnderTest]:
    with ENGINES[request.param](tmp_path) as under_test:
        opener = under_test.open

        def tracked() -> Store:
            store = opener()
            under_test.opened.append(store)
            return store

        under_test.open = tracked
        try:
            yield under_test
        finally:
            for store in under_test.opened:
                store.close()


@pytest.fixture
def store(engine: EngineUnderTest) -> Store:
    """A store on an empty database of the engine under test."""
    return engine.open()
