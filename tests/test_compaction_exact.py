"""Compaction and expand keep exactly what they replace and re-append, on both engines:
a summary of another span is a node of its own (its link is never another span's), and
partial replies stay partial through a compaction and its undo."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer


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


def _broken_reply(s: srt.Session) -> None:
    """A streamed reply cut off by a reset connection: stored as a partial reply."""
    with ProviderServer() as srv, closing(OpenAI("sk-test-000000", base_url=srv.url + "/v1")) as p:
        srv.script("*", ["a long answer that never ends " * 20])
        srv.fault("openai", "reset_after_events", n=5)
        with pytest.raises(srt.ProviderError):
            s.stream(p, model="gpt-4o").text()


def _statuses(s: srt.Session) -> list[str | None]:
    return [e.status for e in s.entries()]


def test_a_partial_reply_after_the_span_stays_partial_through_compact_and_expand(
    store_rt: srt.Runtime,
) -> None:
    s = store_rt.session("partial-after")
    _chat(s, 4)
    _broken_reply(s)
    before = _statuses(s)
    assert before[-1] is not None and before[:-1] == [None] * (len(before) - 1)
    sent = len(json.loads(s.request("openai.chat", model="gpt-4o", cache=False))["messages"])
    s.compact(6, "early turns")
    assert _statuses(s) == [None, None, None, *before[6:]]
    assert _statuses(store_rt.session("partial-after")) == _statuses(s)
    body = json.loads(s.request("openai.chat", model="gpt-4o", cache=False))
    assert len(body["messages"]) == sent - 4 + 1  # the span out, the summary in
    assert not str(body["messages"][-1]["content"]).startswith("a long answer")
    full = s.request("openai.chat", model="gpt-4o", cache=False, include_partial=True)
    assert "a long answer" in json.loads(full)["messages"][-1]["content"]
    s.expand()
    assert _statuses(s) == before
    assert _statuses(store_rt.session("partial-after")) == before


def test_a_partial_reply_inside_the_span_stays_partial_when_expanded(
    store_rt: srt.Runtime,
) -> None:
    s = store_rt.session("partial-inside")
    _chat(s, 2)
    _broken_reply(s)
    s.append({"role": "user", "content": "go on"})
    s.append({"role": "assistant", "content": "done"}, {"role": "user", "content": "thanks"})
    before = _statuses(s)
    partial = before.index(next(st for st in before if st is not None))
    assert 2 < partial < len(before) - 1
    original = s.messages_bytes()
    s.compact(partial + 2, "with a partial reply inside")
    assert _statuses(s) == [None] * len(s)
    s.expand()
    assert s.messages_bytes() == original
    assert _statuses(s) == before
    assert _statuses(store_rt.session("partial-inside")) == before
