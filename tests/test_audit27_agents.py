"""Audit 27, the Agents SDK session's input: an item whose message ``role`` or content
part ``type`` is an object or an array.

Before: ``TypeError: unhashable type`` from ``_items.canonical``'s lookup of the role
(and ``_input_content``'s of the part type) among the known ones, out of
``SrtSession.add_items`` and of ``replace_items`` (the compaction session's replacement,
ac0745e). Now each is kept as any other item srt does not read (an item whose role is a
number already was): stored, given back byte for byte, and nothing else moves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.integrations.agents import SrtSession

ODD = [
    {"type": "message", "role": {"a": 1}, "content": "x"},
    {"role": ["user"], "content": "x"},
    {"role": "user", "content": [{"type": {"a": 1}, "text": "x"}]},
    {
        "role": "user",
        "content": [{"type": ["input_text"], "text": "x"}, {"type": "input_text", "text": "y"}],
    },
]


@pytest.mark.parametrize("item", ODD)
@pytest.mark.parametrize("how", ["add_items", "replace_items"])
def test_an_item_whose_role_or_part_type_is_not_a_string_is_kept_as_given(
    tmp_path: Path, item: Any, how: str
) -> None:
    first = {"role": "user", "content": "first"}

    async def go(rt: srt.Runtime) -> list[Any]:
        s = SrtSession("odd", rt)
        await s.add_items([first])
        await getattr(s, how)([item])
        return await SrtSession("odd", rt).get_items()

    with srt.Runtime(tmp_path / "a.db") as rt:
        items = asyncio.run(go(rt))
    assert items == ([first, item] if how == "add_items" else [item])
