"""Compaction as a user meets it (docs/api.md, "Compaction and summaries"): a summary that
is no text says what it got, on both engines, and nothing is written."""

from __future__ import annotations

import pytest

import srt


@pytest.mark.parametrize(
    ("summary", "said"),
    [
        ("", "got an empty string"),
        (" \n", "got only whitespace"),
        (5, "got int"),
        (lambda _messages: "", "got an empty string"),
    ],
)
def test_a_summary_that_is_no_text(store_url: str, summary: object, said: str) -> None:
    with srt.Runtime(store_url) as rt:
        s = rt.session("c")
        s.append({"role": "user", "content": "first ✓"})
        for i in range(3):
            s.append(
                {"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"u{i}"}
            )
        head = s.head
        with pytest.raises(srt.SessionError, match=f"must be non-empty text, {said}$"):
            s.compact(5, summary)  # type: ignore[arg-type]
        assert s.head == head and len(s) == 7
