"""The chain read's parts of ``srt._core`` (``heap_spans``) against their pure-Python
twins in ``reference_core``, on well-formed and damaged node rows."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_core as ref
from srt import _core

#: What a damaged file's node row may hold where a body's place should be.
_VALUES = st.one_of(
    st.integers(0, 200),
    st.integers(-(1 << 64), 1 << 64),
    st.sampled_from([-1, (1 << 60) + 1, 1 << 60]),
    st.none(),
    st.binary(max_size=3),
    st.text(max_size=3),
    st.floats(allow_nan=False),
)


@settings(max_examples=2000)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 60)), max_size=40),
    st.integers(0, 40),
    st.booleans(),
)
def test_heap_spans_matches_reference(
    places: list[tuple[int, int]], gap: int, shuffled: bool
) -> None:
    """Places in chain order (ascending, as one writer appends) or any order: the same
    merged ranges as the reference, every place inside one of them."""
    rows: list[tuple[Any, ...]] = [
        (i, None, i + 1, b"h", b"p", at, n)
        for i, (at, n) in enumerate(places if shuffled else sorted(places))
    ]
    got = _core.heap_spans(rows, 5, 6, gap)
    assert got == ref.heap_spans(rows, 5, 6, gap)
    for at, n in places:
        assert any(lo <= at and at + n <= hi for lo, hi in got)


@settings(max_examples=2000)
@given(st.lists(st.tuples(_VALUES, _VALUES), max_size=12), st.integers(0, 40))
def test_heap_spans_on_damaged_places(places: list[tuple[Any, Any]], gap: int) -> None:
    """A place that is not two ints within [0, 2**60] (a damaged file's node row) raises
    the reference's error, never anything else, whatever the values."""
    rows = list(places)
    try:
        want = ref.heap_spans(rows, 0, 1, gap)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            _core.heap_spans(rows, 0, 1, gap)
        return
    assert _core.heap_spans(rows, 0, 1, gap) == want


def test_heap_spans_refuses_what_is_not_a_row() -> None:
    with pytest.raises(TypeError):
        _core.heap_spans(["not a tuple"], 0, 1, 0)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        _core.heap_spans([(1,)], 0, 1, 0)
    with pytest.raises(ValueError):
        _core.heap_spans([(1, 2)], 0, 1, -1)
    assert _core.heap_spans([], 0, 1, 0) == []
