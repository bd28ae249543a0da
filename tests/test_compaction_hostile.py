"""Compaction against hostile and careful use: every kind of span, bad arguments and bad
summaries (nothing written), metadata after the span kept, concurrent compaction from two
handles, a span that gc freed, links that are not srt's, and undo to the exact bytes."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import srt
from rel_support.waits import WAIT_S, joined
from srt.message import own_metadata


def _chat(s: srt.Session, turns: int = 5, tag: str = "") -> None:
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": f"first{tag}"})
    for i in range(turns):
        s.append({"role": "assistant", "content": f"a{i}{tag}"})
        s.append({"role": "user", "content": f"q{i}{tag}"})


def _state(rt: srt.Runtime, s: srt.Session) -> tuple[Any, ...]:
    """Everything a failed compaction must leave as it was."""
    return (s.head, s.messages_bytes(), len(s.history()), len(s.calls()), rt.store.chain(s.head))


@pytest.mark.parametrize(
    ("end", "start"),
    [
        ("3", None),
        (None, None),
        (3.0, None),
        (True, None),
        (4, "1"),
        (4, 1.5),
        (4, True),
        (4, [2]),
    ],
)
def test_a_span_that_is_not_two_ints_is_a_history_index_error(
    rt: srt.Runtime, end: Any, start: Any
) -> None:
    s = rt.session("types")
    _chat(s)
    before = _state(rt, s)
    with pytest.raises(srt.HistoryIndexError, match="must be an int"):
        s.compact(end, "summary", start=start)
    assert _state(rt, s) == before


@pytest.mark.parametrize(
    ("end", "start"),
    [(0, None), (2, None), (1, 2), (-1, None), (5, 5), (5, -1), (10**20, None), (13, None)],
)
def test_an_empty_or_outside_span_is_refused(rt: srt.Runtime, end: int, start: Any) -> None:
    s = rt.session("empty")
    _chat(s)
    before = _state(rt, s)
    with pytest.raises(srt.HistoryIndexError, match="cannot compact"):
        s.compact(end, "summary", start=start)
    assert _state(rt, s) == before


@pytest.mark.parametrize("summary", ["", "   \n\t ", b"bytes", 5, None, ["x"]])
def test_a_bad_summary_value_writes_nothing(rt: srt.Runtime, summary: Any) -> None:
    s = rt.session("bad")
    _chat(s)
    before = _state(rt, s)
    with pytest.raises(srt.SessionError, match="non-empty text"):
        s.compact(6, lambda span: summary)
    if summary is not None:
        with pytest.raises(srt.SessionError, match="non-empty text"):
            s.compact(6, summary)
    assert _state(rt, s) == before


def test_a_summarizer_that_raises_writes_nothing(rt: srt.Runtime) -> None:
    s = rt.session("raises")
    _chat(s)
    before = _state(rt, s)

    def broken(span: list[dict[str, Any]]) -> str:
        raise RuntimeError("the summarizer broke")

    with pytest.raises(RuntimeError, match="summarizer broke"):
        s.compact(6, broken)
    assert _state(rt, s) == before
    assert rt.session("raises").messages_bytes() == before[1]


def test_every_kind_of_span_round_trips_to_the_exact_bytes(rt: srt.Runtime) -> None:
    s = rt.session("spans")
    _chat(s, 4)
    original, head = s.messages_bytes(), s.head
    n = len(s)
    for start, end in [(2, 3), (1, n), (1, 2), (2, n), (n - 1, n), (1, n - 1)]:  # (0: refused)
        s.compact(end, f"summary of {start}:{end}", start=start)
        assert len(s) == n - (end - start) + 1
        s.expand()
        assert s.messages_bytes() == original and s.head == head


def test_compaction_twice_nested_and_undone(rt: srt.Runtime) -> None:
    s = rt.session("nested")
    _chat(s, 6)
    original = s.messages_bytes()
    s.compact(8, "inner")
    after_inner = s.messages_bytes()
    s.compact(5, "outer", start=2)  # the first summary is part of this span
    assert [e.message["content"].split("\n")[-1] for e in s.entries()[2:3]] == ["outer"]
    assert s.entries()[2].replaced[0]["content"].endswith("inner")
    s.compact(3, "again", start=2)  # the same place again: a summary of one summary
    s.expand()
    s.expand()
    assert s.messages_bytes() == after_inner
    s.expand()
    assert s.messages_bytes() == original
    with pytest.raises(srt.SessionError, match="no compaction"):
        s.expand()


def test_a_span_before_an_earlier_summary_keeps_that_summary_expandable(
    rt: srt.Runtime,
) -> None:
    """Compaction appends what follows its span again; the later summary keeps its link to
    the span it replaced, and a message's metadata and pin are kept too."""
    s = rt.session("before")
    _chat(s, 6)
    s.append({"role": "user", "content": "tagged", "metadata": {"ticket": 9, "pinned": True}})
    original = s.messages_bytes()
    s.compact(10, "later part", start=6)
    s.compact(4, "earlier part", start=2)
    entries = s.entries()
    assert [len(e.replaced) for e in entries] == [0, 0, 2, 0, 0, 4, 0, 0, 0, 0, 0]
    assert entries[-1].metadata == {"ticket": 9, "pinned": True}
    s.expand()  # the newest compaction in the history: the later part, now at index 5
    s.expand()
    assert s.messages_bytes() == original
    assert s.entries()[-1].metadata == {"ticket": 9, "pinned": True}


def test_messages_appended_after_a_compaction_keep_their_metadata_through_expand(
    rt: srt.Runtime,
) -> None:
    s = rt.session("after")
    _chat(s, 4)
    s.compact(6, "summary")
    s.append({"role": "assistant", "content": "later", "metadata": {"pinned": True, "n": 1}})
    s.expand()
    assert s.entries()[-1].metadata == {"pinned": True, "n": 1}
    assert s.messages(metadata=True)[-1]["metadata"] == {"pinned": True, "n": 1}


def test_a_tool_call_pair_is_never_split(rt: srt.Runtime) -> None:
    s = rt.session("tools")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    s.append({"role": "user", "content": "go"})
    s.append({"role": "assistant", "content": None, "tool_calls": [call]})
    s.append({"role": "tool", "tool_call_id": "c1", "content": "r"})
    s.append({"role": "assistant", "content": "done"}, {"role": "user", "content": "next"})
    before = _state(rt, s)
    for end, start in [(2, None), (3, 2), (4, 2)]:
        with pytest.raises(srt.HistoryIndexError, match="split a tool call"):
            s.compact(end, "x", start=start)
    assert _state(rt, s) == before
    s.compact(3, "the call and its result", start=1)
    s.expand()
    assert s.messages_bytes() == before[1]


def test_compaction_in_a_fork_leaves_the_parent_alone(rt: srt.Runtime) -> None:
    s = rt.session("parent")
    _chat(s, 5)
    original = s.messages_bytes()
    f = s.fork("child", at=8)
    f.compact(6, "fork summary")
    assert s.messages_bytes() == original
    assert len(f) == 8 - 4 + 1
    f.expand()
    assert f.messages_bytes() == original[:8]


@pytest.mark.parametrize("via", ["compact", "expand"])
def test_two_handles_compacting_at_once_one_wins_the_other_writes_nothing(
    store_rt: srt.Runtime, via: str
) -> None:
    rt = store_rt
    s = rt.session("race")
    _chat(s, 8)
    if via == "expand":
        s.compact(10, "first")
    h1, h2 = rt.session("race"), rt.session("race")
    for h in (h1, h2):
        h.messages_bytes()  # both loaded at the same head
    go = threading.Barrier(2, timeout=WAIT_S)
    results: dict[int, Any] = {}

    def run(k: int, h: srt.Session) -> None:
        go.wait()
        try:
            if via == "compact":
                results[k] = h.compact(10, f"summary {k}")
            else:
                results[k] = h.expand()
        except srt.ConflictError as exc:
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k, h)) for k, h in enumerate((h1, h2))]
    for t in threads:
        t.start()
    joined(*threads)
    lost = [k for k, r in results.items() if isinstance(r, srt.ConflictError)]
    assert len(lost) == 1, results
    won = 1 - lost[0]
    final = rt.session("race")
    assert final.head == results[won]
    if via == "compact":
        assert final.messages()[2]["content"].endswith(f"summary {won}")
        assert len(final) == 18 - 8 + 1
    else:
        assert len(final) == 18
    loser = (h1, h2)[lost[0]]
    loser.refresh()
    assert loser.head == final.head  # the loser's handle sees the winner's whole result


def test_a_span_freed_by_gc_is_reported_not_called_corruption(db_path: str) -> None:
    with srt.Runtime(db_path, history_retention=0) as rt:
        s = rt.session("gone")
        _chat(s, 5)
        s.compact(8, "summary")
        assert len(s.entries()[2].replaced) == 6
        rt.gc()
        assert s.entries()[2].replaced == ()  # was: CorruptionError, "the file is damaged"
        with pytest.raises(srt.SessionError, match="gc freed it"):
            s.expand()
        assert len(s) == 2 + 1 + 4
        assert rt.store.verify().ok


@pytest.mark.parametrize(
    "meta",
    [
        {"note": "srt_compacted"},
        {"srt_compacted": "not a link"},
        {"srt_compacted": {"first": 1}},
        {"srt_compacted": {"first": 1, "last": "2", "count": 1}},
        {"srt_compacted": {"first": 1, "last": 1, "count": 0}},
        {"srt_compacted": {"first": 1, "last": 10**6, "count": 1}},
        {"srt_compacted": {"first": 2, "last": 1, "count": 5}},
    ],
)
def test_metadata_that_looks_like_a_link_is_no_compaction(
    rt: srt.Runtime, meta: dict[str, Any]
) -> None:
    s = rt.session("forged")
    _chat(s, 2, tag=json.dumps(meta))  # a history of its own: nodes are not shared
    with own_metadata():  # (a user's append is refused srt's keys: a file may hold them)
        s.append({"role": "user", "content": "look", "metadata": meta})
    before = _state(rt, s)
    entries = s.entries()  # was: KeyError
    assert all(e.replaced == () for e in entries)
    with pytest.raises(srt.SessionError, match=r"no compaction|no longer stored"):
        s.expand()
    assert _state(rt, s) == before


@pytest.mark.parametrize("start", [0, 1])
def test_a_span_may_not_start_inside_the_leading_instructions(rt: srt.Runtime, start: int) -> None:
    """The summary is a user message: in place of the system/developer messages it would
    turn the model's instructions into something the user said."""
    s = rt.session("instructions")
    s.append({"role": "system", "content": "sys"}, {"role": "developer", "content": "dev"})
    for i in range(3):
        s.append({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"})
    before = _state(rt, s)
    with pytest.raises(srt.HistoryIndexError, match="system/developer"):
        s.compact(6, "summary", start=start)  # was: the system message became the summary
    assert _state(rt, s) == before
    s.compact(6, "summary", start=2)  # from the first message after them: allowed
    assert [m["role"] for m in s.messages()[:3]] == ["system", "developer", "user"]
    assert s.messages()[2]["content"].endswith("summary")


@pytest.mark.parametrize("key", ["srt_compacted", "srt_tool", "srt_anything"])
def test_srt_metadata_keys_are_refused_at_append(rt: srt.Runtime, key: str) -> None:
    """Metadata keys starting with ``srt_`` are srt's own: a user's is refused whole
    (through append, edit and send's append=), so srt never reads it as its own."""
    s = rt.session("reserved")
    _chat(s, 2)
    before = _state(rt, s)
    bad = {"role": "user", "content": "look", "metadata": {"note": 1, key: {"first": 1}}}
    with pytest.raises(srt.InvalidMessageError, match=f"{key}.*reserved"):
        s.append(bad)  # was: stored, then stripped by entries() or read as a link
    with pytest.raises(srt.InvalidMessageError, match="reserved"):
        s.append({"role": "user", "content": "fine"}, bad)  # nothing of the batch is written
    with pytest.raises(srt.InvalidMessageError, match="reserved"):
        s.edit(3, bad)
    assert _state(rt, s) == before
    s.append({"role": "user", "content": "ok", "metadata": {"srt": 1, "my_srt_x": 2}})
    assert s.entries()[-1].metadata == {"my_srt_x": 2, "srt": 1}


def test_srt_writes_its_own_keys_and_a_summary_keeps_its_link(rt: srt.Runtime) -> None:
    s = rt.session("own")
    _chat(s, 3)
    s.compact(6, "summary")
    assert len(s.entries()[2].replaced) == 4  # the link was written (own_metadata)
    s.expand()
    assert len(s) == 8


@pytest.mark.parametrize(
    "move",
    [
        lambda s: s.append({"role": "assistant", "content": "written meanwhile"}),
        lambda s: s.rewind(2),
        lambda s: s.compact(4, "inner"),
    ],
)
def test_a_summary_function_that_writes_to_its_session_compacts_nothing(
    rt: srt.Runtime, move: Any
) -> None:
    """The summary function runs under the handle's lock, so it can write to the same
    session: the span it was given is then stale (was: an append it made vanished from
    the history, a rewind raised a bare IndexError)."""
    s = rt.session("reentrant")
    _chat(s, 3)

    def summary(_msgs: list[dict[str, Any]]) -> str:
        move(s)
        return "summary"

    with pytest.raises(srt.ConflictError, match="summary function changed"):
        s.compact(5, summary)
    after = s.messages_bytes()
    assert not any(b"summary\\n" in b or b.endswith(b'summary"}') for b in after)
    assert rt.session("reentrant").messages_bytes() == after  # what the move left, stored
