"""The PostgreSQL chain read's parts of ``srt._core`` (``id_array``, ``join_bodies``)
against pure-Python twins, on well-formed rows, missing bodies and wrong types."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srt import _core


def ref_id_array(rows: list[tuple[Any, ...]], col: int) -> str:
    return "{" + ",".join(str(r[col]) for r in rows) + "}"


def ref_join_bodies(
    walked: list[tuple[Any, ...]], bodies: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]] | None:
    stored = {m[0]: m[1:] for m in bodies}
    try:
        return [(n[0], *stored[n[3]], n[4], n[5], n[6], n[2]) for n in walked]
    except KeyError:
        return None


_node = st.tuples(
    st.integers(1, 1 << 62),
    st.none() | st.integers(1, 1 << 62),
    st.integers(1, 1 << 30),
    st.integers(1, 40),
    st.binary(min_size=16, max_size=16),
    st.none() | st.sampled_from(["ok", "error"]),
    st.none() | st.binary(max_size=8),
)


@settings(max_examples=500)
@given(st.lists(_node, max_size=30), st.integers(-(1 << 63), 1 << 63))
def test_id_array_matches_reference(nodes: list[tuple[Any, ...]], extra: int) -> None:
    rows = [*nodes, (0, None, 1, extra, b"", None, None)]
    assert _core.id_array(rows, 3) == ref_id_array(rows, 3)
    assert _core.id_array([], 0) == "{}"


@settings(max_examples=500)
@given(st.lists(_node, max_size=30), st.sets(st.integers(1, 40)), st.randoms())
def test_join_bodies_matches_reference(
    walked: list[tuple[Any, ...]], have: set[int], rnd: Any
) -> None:
    bodies = [(m, bytes([m]) * 16, b"body %d" % m) for m in have]
    rnd.shuffle(bodies)
    got = _core.join_bodies(walked, bodies)
    assert got == ref_join_bodies(walked, bodies)
    if all(n[3] in have for n in walked):
        assert got is not None
        assert [r[0] for r in got] == [n[0] for n in walked]


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        _core.id_array([(1, "2")], 1)
    with pytest.raises(TypeError):
        _core.id_array([(1, True)], 1)
    with pytest.raises(TypeError):
        _core.id_array(["not a row"], 0)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _core.join_bodies([(1, None, 1, 7, b"p", None, None)], ["not a row"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _core.join_bodies([[1, None, 1, 7, b"p", None, None]], [])  # type: ignore[list-item]
