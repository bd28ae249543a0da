"""Compaction and expand keep exactly what they replace and re-append, on both engines:
a summary of another span is a node of its own (its link is never another span's)."""

from __future__ import annotations

import srt


def _chat(s: srt.Session, turns: int) -> None:
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
    for i in range(turns):
        s.append({"role": "assistant", "content": f"a{i}"})
        s.append({"role": "user", "content": f"q{i}"})


def _contents(s: srt.Session) -> list[str]:
    return [str(m["content"]) for m in s.messages()]


def test_the_same_summary_of_an_edited_span_expands_to_the_edited_messages(
    store_rt: srt.Runtime,
) -> None:
    """The summary message of an edited span is not the earlier summary's node (whose
    link names the span before the edit): ``expand`` brings back the edited messages."""
    s = store_rt.session("edited")
    _chat(s, 4)
    original = s.messages_bytes()
    s.compact(6, "same")
    s.expand()
    assert s.messages_bytes() == original
    s.edit(3, {"role": "user", "content": "q0 edited"})
    for i in range(1, 4):
        s.append({"role": "assistant", "content": f"a{i} again"})
        s.append({"role": "user", "content": f"q{i} again"})
    edited = s.messages_bytes()
    s.compact(6, "same")
    replaced = [m["content"] for m in s.entries()[2].replaced]
    assert replaced == ["a0", "q0 edited", "a1 again", "q1 again"]
    s.expand()
    assert s.messages_bytes() == edited
    assert _contents(store_rt.session("edited"))[3] == "q0 edited"  # as the store has it


def test_equal_summaries_of_equal_spans_still_share_one_node(store_rt: srt.Runtime) -> None:
    """Content addressing: the same span summarized the same way in two forks is one node."""
    s = store_rt.session("one")
    _chat(s, 3)
    f = s.fork("two")
    assert s.compact(6, "same") == f.compact(6, "same")
    assert s.messages_bytes() == f.messages_bytes()
    assert s.entries()[2].replaced == f.entries()[2].replaced
