"""gc's mark pass in ``srt._core`` (``mark_nodes``) against its pure-Python twin in
``reference_core``, on forests in id order, on parents stored after their children, and
on damaged node rows."""

from __future__ import annotations

from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_core as ref
from srt import _core
from test_core_reads import _VALUES


@st.composite
def _forests(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], set[int]]:
    """Node rows newest first (a parent's id below its child's, or not), some bodies
    shared, and roots among the ids and beyond them."""
    n = draw(st.integers(0, 40))
    rows: list[tuple[Any, ...]] = []
    for nid in range(1, n + 1):
        parent = draw(st.one_of(st.none(), st.integers(1, n + 2)))
        at = draw(st.integers(0, 30))
        rows.append((nid, parent, at, draw(st.integers(0, 8)), b"extra"))
    rows.reverse()
    roots = draw(st.sets(st.integers(0, n + 3), max_size=6))
    return rows, roots


@settings(max_examples=2000)
@given(_forests())
def test_mark_nodes_matches_reference(forest: tuple[list[tuple[Any, ...]], set[int]]) -> None:
    rows, roots = forest
    want = ref.mark_nodes(rows, roots)
    got = _core.mark_nodes(iter(rows), roots)
    assert got == want
    if got is not None:  # the dead are rows, in order; every body counted once
        dead, starts, lens, counts = got
        assert dead == [r for r in rows if r in dead]
        assert sum(counts) == len(rows) and list(starts) == sorted({r[2] for r in rows})
        assert all(
            n == max(r[3] for r in rows if r[2] == at) for at, n in zip(starts, lens, strict=True)
        )


def test_mark_nodes_follows_chains() -> None:
    """Two chains share a body; a fork point stays live; a dangling parent is no error."""
    rows = [(7, 3, 70, 1), (6, 5, 60, 2), (5, 4, 50, 3), (4, 99, 40, 4), (3, 1, 30, 5)]
    rows += [(2, 1, 30, 5), (1, None, 0, 6)]
    dead, starts, lens, counts = _core.mark_nodes(rows, {7})  # type: ignore[misc]
    assert dead == [(6, 5, 60, 2), (5, 4, 50, 3), (4, 99, 40, 4), (2, 1, 30, 5)]
    assert list(starts) == [0, 30, 40, 50, 60, 70]
    assert list(lens) == [6, 5, 4, 3, 2, 1]
    assert list(counts) == [1, 2, 1, 1, 1, 1]
    assert _core.mark_nodes([(2, 2, 0, 1)], {2}) is None  # a parent not below its child
    assert _core.mark_nodes([], {1}) == ([], array("q"), array("q"), array("q"))


@settings(max_examples=2000)
@given(st.lists(st.tuples(_VALUES, _VALUES, _VALUES, _VALUES), max_size=8), st.booleans())
def test_mark_nodes_on_damaged_rows(rows: list[tuple[Any, ...]], live: bool) -> None:
    """A row that is not an int id, an int or None parent and a place of two ints in
    [0, 2**60] raises the reference's error, never anything else."""
    roots = {r[0] for r in rows if type(r[0]) is int} if live else set()
    try:
        want = ref.mark_nodes(rows, roots)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            _core.mark_nodes(rows, roots)
        return
    assert _core.mark_nodes(rows, roots) == want


def test_mark_nodes_refuses_what_is_not_a_row() -> None:
    with pytest.raises(TypeError):
        _core.mark_nodes(["not a tuple"], set())  # type: ignore[list-item]
    with pytest.raises(ValueError):
        _core.mark_nodes([(1, None, 0)], set())
    with pytest.raises(TypeError):
        _core.mark_nodes([(1, 1.5, 0, 0)], set())
