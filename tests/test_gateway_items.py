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


def test_an_unknown_id_renders_no_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """Looking an id up renders only the message its id names and those whose bytes hold
    it (a provider's id): an unknown id in a long history renders none."""
    given: list[Any] = [_message(k % 3, k) for k in range(300)]
    bodies = [canonicalize(m)[0] for m in given]
    bodies += it.canonical_bodies(
        [
            {"type": "reasoning", "id": "rs_provider1", "summary": [], "encrypted_content": "z"},
            {"role": "assistant", "content": "thought"},
        ],
        "gpt-5",
    )
    before = [_core.ROOT, *it.chain(_core.ROOT, bodies)][: len(bodies)]
    scope = it.Ids.of("t", "conv/c")
    rendered: list[bytes] = []
    real = it.items_of

    def counting(body: bytes, *a: Any, **kw: Any) -> list[dict[str, Any]]:
        rendered.append(body)
        return real(body, *a, **kw)

    monkeypatch.setattr(it, "items_of", counting)
    wrong_place = it.item_id("message", before[7], 5, scope)  # names message 7, no item 5
    for bad in ("nonsense", "msg_" + "ab" * 17, wrong_place, "rs_provider2"):
        assert it.locate(bodies, before, 0, "gpt-5", bad, scope) is None
    assert rendered == [bodies[7]]  # only the message the misplaced id names
    # an id JSON would escape is looked for in every message (rendered: slower, found)
    assert it.locate(bodies, before, 0, "gpt-5", 'a"b', scope) is None
    found = it.locate(bodies, before, 0, "gpt-5", "rs_provider1", scope)
    assert found is not None and found[0] == 300 and found[1]["type"] == "reasoning"
    mine = real(bodies[150], before[150], "", ids=scope)[0]["id"]
    found = it.locate(bodies, before, 0, "", mine, scope)
    assert found is not None and found[0] == 150


@pytest.mark.parametrize(
    "url", ["data:image/bmp;base64,Qk0=", "file:///srv/a.png", "https://example.com/a.bmp"]
)
def test_a_stored_image_openai_would_refuse_is_still_listed(url: str) -> None:
    """A compatible upstream's session may hold an image OpenAI refuses (a BMP, vLLM's
    file:// URLs): its items are listed as stored, not refused as a request would be."""
    part = {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}
    body = canonicalize({"role": "user", "content": [{"type": "text", "text": "see"}, part]})[0]
    (item,) = it.items_of(body, _core.ROOT, "")
    assert item["content"][1]["image_url"] == url
