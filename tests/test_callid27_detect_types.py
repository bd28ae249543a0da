"""``srt.wire.convert.detect`` given a part's or an item's ``type`` that is an object or an
array: a typed ``InvalidMessageError`` naming the field, not a bare ``TypeError`` (which
``srt import`` showed as a vague "(TypeError)")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.errors import InvalidMessageError
from srt.wire.convert import detect
from support import run_cli

ODD: list[Any] = [{"a": 1}, ["text"], []]


@pytest.mark.parametrize("odd", ODD)
def test_a_part_type_that_is_not_a_string_is_named(odd: Any) -> None:
    msg = {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": odd}]}
    with pytest.raises(InvalidMessageError, match=r"content\[1\]\.type must be a string") as e:
        detect(msg)
    assert type(odd).__name__ in str(e.value)
    with pytest.raises(InvalidMessageError, match=r"content\[1\]\.type"):
        detect([{"role": "user", "content": "x"}, msg])


@pytest.mark.parametrize("odd", ODD)
def test_an_item_type_that_is_not_a_string_is_named(odd: Any) -> None:
    for item in ({"type": odd, "role": "user", "content": "x"}, {"type": odd}):
        with pytest.raises(InvalidMessageError, match=r"'type' must be a string") as e:
            detect(item)
        assert type(odd).__name__ in str(e.value)


@pytest.mark.parametrize("odd", ODD)
def test_append_refuses_it_and_stores_nothing(rt: srt.Runtime, odd: Any) -> None:
    s = rt.session("s")
    with pytest.raises(InvalidMessageError, match="must be a string"):
        s.append({"role": "user", "content": [{"type": odd, "text": "x"}]})
    with pytest.raises(InvalidMessageError, match="must be a string"):
        s.append([{"type": odd, "role": "user", "content": "x"}])
    assert s.messages() == []


def test_srt_import_names_the_field(db_path: str, tmp_path: Path) -> None:
    doc = tmp_path / "odd.json"
    part = {"type": {"nested": True}, "text": "x"}
    doc.write_text(json.dumps({"messages": [{"role": "user", "content": [part]}]}))
    code, out, err = run_cli("--db", db_path, "import", str(doc))
    assert code == 1 and out == ""
    assert "content[0].type must be a string, got dict" in err
    assert "TypeError" not in err
