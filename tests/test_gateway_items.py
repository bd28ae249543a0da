"""Item pages render only the messages they hold, and equal the whole list sliced."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srt import _core
from srt.gateway import items as it
from srt.gateway.errors import ApiError
from srt.message import canonicalize

_CALL = {"type": "function", "function": {"name": "f", "arguments": "{}"}}


def _message(kind: int, i: int) -> dict[str, Any]:
    if kind == 0:
        return {"role": "user", "content": f"question {i}"}
    if kind == 1:
        return {"role": "assistant", "content": f"answer {i}"}
    calls = [{**_CALL, "id": f"call_{i}_{k}"} for k in range(kind - 1)]
    return {"role": "assistant", "content": f"calling {i}", "tool_calls": calls}


def _whole(
    bodies: list[bytes], before: list[bytes], lead: int, order: str, ids: it.Ids = it.PLAIN
) -> list[Any]:
    n = len(bodies)
    out = [x for i in range(lead, n) for x in it.items_of(bodies[i], before[i], "", ids=ids)]
    return out if order == "asc" else out[::-1]


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(st.integers(0, 3), min_size=0, max_size=12),
    lead=st.integers(0, 1),
    limit=st.integers(1, 5),
    order=st.sampled_from(["asc", "desc"]),
    pick=st.integers(0, 40),
    scoped=st.booleans(),
)
def test_a_page_is_the_whole_list_sliced(
    kinds: list[int], lead: int, limit: int, order: str, pick: int, scoped: bool
) -> None:
    scope = it.Ids.of("t", "conv/c") if scoped else it.PLAIN
    bodies = [canonicalize(_message(k, i))[0] for i, k in enumerate(kinds)]
    before = [_core.ROOT, *it.chain(_core.ROOT, bodies)][: len(bodies)]
    lead = min(lead, len(bodies))
    whole = _whole(bodies, before, lead, order, scope)
    ids = [x["id"] for x in whole]
    after = ids[pick % len(ids)] if ids and pick % 3 else None
    start = ids.index(after) + 1 if after is not None else 0
    got = it.page(bodies, before, lead, "", after, limit, order, scope)
    assert got["data"] == whole[start : start + limit]
    assert got["has_more"] == (start + limit < len(whole))
    if after is not None:
        found = it.locate(bodies, before, lead, "", after, scope)
        assert found is not None and found[1]["id"] == after
        other = it.Ids.of("t", "conv/other")  # another scope never finds it
        assert it.locate(bodies, before, lead, "", after, other) is None


def test_an_unknown_after_is_404() -> None:
    bodies = [canonicalize(_message(k, i))[0] for i, k in enumerate([0, 2, 0, 1])]
    before = [_core.ROOT, *it.chain(_core.ROOT, bodies)][:4]
    for bad in ("msg_" + "ff" * 17, "nonsense", "fc_" + before[2].hex() + "07"):
        with pytest.raises(ApiError) as e:
            it.page(bodies, before, 0, "", bad, 5, "desc")
        assert e.value.status == 404
