"""Summaries the model writes, against what a provider may send back: a refusal, a reply
cut off at the output limit or withheld by a filter, text parts that are not text, a
summary too big to store, a provider failing mid-summary; the summary request's own
window; the ledger row each leaves. Every failure leaves the session as it was."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from rel_support.waits import WAIT_S, joined
from srt._types import Reply, Usage
from srt.context import WindowPolicy
from srt.summarize import _text, _unusable, due
from srt.testing import ProviderServer
from srt.tokens import GENERIC_ESTIMATE
from task_support import KEY, MODELS, make


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as s:
        yield s


def _chat(s: srt.Session, turns: int = 4) -> None:
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
    for i in range(turns):
        s.append({"role": "assistant", "content": f"answer {i}"})
        s.append({"role": "user", "content": f"question {i}"})


def _state(rt: srt.Runtime, s: srt.Session) -> tuple[Any, ...]:
    return (s.head, s.messages_bytes(), [i.name for i in rt.sessions()], len(s.history()))


def _anthropic_reply(text: str, stop: str) -> str:
    return json.dumps({
        "id": "msg_0123", "type": "message", "role": "assistant", "model": MODELS["anthropic"],
        "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 7},
    })  # fmt: skip


def _chat_reply(message: dict[str, Any], finish: str) -> str:
    return json.dumps({
        "id": "chatcmpl-0123", "object": "chat.completion", "created": 0, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47},
    })  # fmt: skip


UNUSABLE = [
    ("anthropic", _anthropic_reply("I can't help with summarizing this.", "refusal"), "refusal"),
    ("anthropic", _anthropic_reply("The task began with a lookup and th", "max_tokens"), "cut off"),
    ("openai", _chat_reply({"content": None, "refusal": "I can't do that."}, "stop"), "refusal"),
    ("openai", _chat_reply({"content": "Sorry.", "refusal": "No."}, "stop"), "refusal"),
    ("openai", _chat_reply({"content": "The task began wi"}, "length"), "cut off"),
    ("openai", _chat_reply({"content": ""}, "content_filter"), "content filter"),
    ("openai", _chat_reply({"content": "   \n "}, "stop"), "no text"),
    (
        "anthropic",
        _anthropic_reply("The task began with a lookup a", "model_context_window_exceeded"),
        "context window",
    ),
]


@pytest.mark.parametrize(("kind", "body", "why"), UNUSABLE)
def test_a_reply_that_is_no_summary_compacts_nothing_and_is_in_the_ledger(
    srv: ProviderServer, rt: srt.Runtime, kind: str, body: str, why: str
) -> None:
    p = make(kind, srv.url)
    s = rt.session("unusable")
    _chat(s)
    before = _state(rt, s)
    srv.fault(kind, "status", code=200, body=body, headers={"content-type": "application/json"})
    with pytest.raises(srt.SessionError, match=why):
        s.compact(len(s), summarizer=p, model=MODELS[kind])
    p.close()
    assert _state(rt, s) == before
    rows = s.calls()
    assert len(rows) == 1 and rows[0]["session_name"] == "unusable"
    assert rows[0]["output_tokens"] == 7  # billed: its usage is kept


def test_a_responses_reply_cut_at_max_output_tokens_is_no_summary(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = make("responses", srv.url)
    s = rt.session("capped")
    _chat(s)
    before = _state(rt, s)
    srv.script("*", ["The conversation covered many questions. " * 40])
    with pytest.raises(srt.SessionError, match="cut off at the output token limit"):
        s.compact(len(s), summarizer=p, model=MODELS["responses"], max_output_tokens=16)
    p.close()
    assert _state(rt, s) == before
    assert len(s.calls()) == 1


def test_text_parts_that_are_not_text_are_skipped() -> None:
    parts = [
        {"type": "text", "text": None},
        {"type": "text", "text": 5},
        {"type": "image"},
        "loose",
        {"type": "text", "text": " kept "},
    ]
    reply = Reply({"role": "assistant", "content": parts}, Usage())
    assert _text(reply) == "kept"  # was: TypeError
    assert _unusable(reply) is None
    empty = Reply({"role": "assistant", "content": [{"type": "text", "text": None}]}, Usage())
    assert _unusable(empty) == "has no text to use as the summary"


def test_a_summary_too_big_to_store_is_refused_and_in_the_ledger(
    srv: ProviderServer, db_path: str
) -> None:
    with srt.Runtime(db_path, max_message_bytes=4096) as rt:
        p = make("anthropic", srv.url)
        s = rt.session("huge")
        _chat(s)
        before = _state(rt, s)
        srv.script("*", ["word " * 2000])
        with pytest.raises(srt.SessionError, match="could not be stored"):
            s.compact(len(s), summarizer=p, model=MODELS["anthropic"])
        p.close()
        assert _state(rt, s) == before
        assert [r["status"] for r in s.calls()] == ["ok"]  # was: no row at all


@pytest.mark.parametrize(
    ("fault", "kw"),
    [("reset_before_headers", {}), ("status", {"code": 500, "message": "overloaded"})],
)
def test_a_provider_failing_mid_summary_leaves_the_session_as_it_was(
    srv: ProviderServer, rt: srt.Runtime, fault: str, kw: dict[str, Any]
) -> None:
    p = make("openai", srv.url)
    s = rt.session("failing")
    _chat(s)
    before = _state(rt, s)
    srv.fault("openai", fault, count=None, **kw)
    with pytest.raises(srt.ProviderError) as info:
        s.compact(len(s), summarizer=p, model=MODELS["openai"])
    assert getattr(info.value, "status", None) in (None, 500), info.value  # not our request's fault
    srv.clear()
    p.close()
    assert _state(rt, s) == before
    rows = s.calls()
    assert rows and all(r["status"] == "error" and r["session_name"] == "failing" for r in rows)


def test_the_summary_request_is_held_to_the_window(srv: ProviderServer, rt: srt.Runtime) -> None:
    """A long reply takes the history past the budget in one step; the automatic summary
    request is cut by the send's window (without compacting again), not sent whole to a
    model whose context window it exceeds."""
    with ProviderServer(api_key=KEY, context_window=2_200) as small:
        p = make("openai", small.url)
        model = MODELS["openai"]
        w = WindowPolicy("cache_aware", 2_000, tokenizer=GENERIC_ESTIMATE, compact_at=0.8)
        s = rt.session("window")
        s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
        small.script("*", ["a long answer " * 700])  # about 2,500 tokens
        s.send(p, model=model, window=w)
        s.append({"role": "user", "content": "and now?"})
        small.script("*", ["Summary: one long answer.", "short"])
        reply = s.send(p, model=model, window=w)  # was: ProviderContextOverflowError
        p.close()
        assert reply.message["content"] == "short"
        msgs = s.messages()
        assert msgs[2]["content"].endswith("Summary: one long answer.")
        assert msgs[-2:] == [{"role": "user", "content": "and now?"},
                             {"role": "assistant", "content": "short"}]  # fmt: skip
        rows = s.calls()
        assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
        assert max(r["input_tokens"] for r in rows) <= 2_200
        assert small.errors == []


def test_two_handles_summarising_at_once_one_compacts_the_other_writes_nothing(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """Both summary requests go out; the second to finish finds the head moved: a
    ConflictError, its ledger row kept, no summary fork left behind."""
    s = rt.session("both")
    _chat(s, 6)
    original = s.messages_bytes()
    handles = [rt.session("both"), rt.session("both")]
    for h in handles:
        h.messages_bytes()
    srv.script("*", ["Summary A.", "Summary B."])
    srv.fault("openai", "delay", count=2, seconds=0.3)  # both requests in flight at once
    providers = [make("openai", srv.url) for _ in handles]
    go = threading.Barrier(2, timeout=WAIT_S)
    results: list[Any] = [None, None]

    def run(k: int) -> None:
        go.wait()
        try:
            results[k] = handles[k].compact(len(original), summarizer=providers[k], model="gpt-4o")
        except srt.ConflictError as exc:
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    joined(*threads)
    for p in providers:
        p.close()
    lost = [k for k in range(2) if isinstance(results[k], srt.ConflictError)]
    assert len(lost) == 1, results
    final = rt.session("both")
    assert final.head == results[1 - lost[0]]
    assert len(final) == 3 and final.messages()[2]["content"].split("\n")[1] in (
        "Summary A.",
        "Summary B.",
    )
    assert [r["status"] for r in final.calls()] == ["ok", "ok"]  # both requests billed
    assert [i.name for i in rt.sessions()] == ["both"]
    final.expand()
    assert final.messages_bytes() == original


@pytest.mark.parametrize(
    "kw",
    [
        {"stream": True},
        {"append": [{"role": "user", "content": "x"}]},
        {"keep": False},
        {"objects": lambda reply, depth: []},
    ],
)
def test_sends_own_options_are_refused_by_compact_before_anything_is_sent(
    srv: ProviderServer, rt: srt.Runtime, kw: dict[str, Any]
) -> None:
    p = make("openai", srv.url)
    s = rt.session("options")
    _chat(s)
    before = _state(rt, s)
    with pytest.raises(srt.ConfigError, match="compact\\(\\) does not take"):
        s.compact(len(s), summarizer=p, model=MODELS["openai"], **kw)
    p.close()
    assert _state(rt, s) == before
    assert srv.log == [] and s.calls() == []  # was: sent (and billed) with them in its body


def test_an_automatic_summary_before_a_send_with_append_leaves_append_to_the_send(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = make("openai", srv.url)
    s = rt.session("auto-append")
    _chat(s, 6)
    w = WindowPolicy("cache_aware", 200, tokenizer=GENERIC_ESTIMATE, compact_at=0.2)
    srv.script("*", ["Summary: six questions.", "the answer"])
    reply = s.send(p, model=MODELS["openai"], window=w, append=[{"role": "user", "content": "new"}])
    p.close()  # was: the summary request sent "append" in its body, and the send failed
    assert reply.message["content"] == "the answer"
    msgs = s.messages()
    assert msgs[2]["content"].endswith("Summary: six questions.")
    assert msgs[-2:] == [{"role": "user", "content": "new"},
                         {"role": "assistant", "content": "the answer"}]  # fmt: skip
    assert all("append" not in rec.body for rec in srv.log)


def _cut_reply(srv: ProviderServer, s: srt.Session, p: Any) -> None:
    """A streamed reply cut off by a reset connection: stored as a partial reply."""
    srv.script("*", ["a long answer that never ends " * 20])
    srv.fault("openai", "reset_after_events", n=5)
    with pytest.raises(srt.ProviderError):
        s.stream(p, model=MODELS["openai"]).text()
    assert s.entries()[-1].status is not None


def test_a_partial_reply_the_send_leaves_out_does_not_make_a_summary_due(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """The send leaves partial replies out, so they count for nothing toward
    ``compact_at`` (unless ``include_partial=True``, which sends them)."""
    p = make("openai", srv.url)
    s = rt.session("partial-due")
    _chat(s, 2)  # 42 tokens
    _cut_reply(srv, s, p)  # 15 more
    w = WindowPolicy("cache_aware", 100, tokenizer=GENERIC_ESTIMATE, compact_at=0.5)
    sent, before = len(srv.log), s.messages()
    srv.script("*", ["the answer"])
    reply = s.send(p, model=MODELS["openai"], window=w)  # was: a summary first
    assert reply.message["content"] == "the answer"
    assert len(srv.log) == sent + 1
    assert s.messages()[:-1] == before
    s.rewind(2)  # the cut reply and the answer
    _cut_reply(srv, s, p)
    srv.script("*", ["Summary: two questions.", "again"])
    reply = s.send(p, model=MODELS["openai"], window=w, include_partial=True)
    p.close()
    assert reply.message["content"] == "again"
    assert len(srv.log) == sent + 4  # the cut reply, the summary and the send
    assert s.messages()[2]["content"].endswith("Summary: two questions.")


def test_a_partial_reply_at_the_end_is_not_the_newest_step_a_summary_keeps(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """The newest step a summary must leave whole is the last message the send sends:
    with a partial reply last, that is the question before it."""
    p = make("openai", srv.url)
    s = rt.session("partial-end")
    _chat(s, 6)
    _cut_reply(srv, s, p)
    w = WindowPolicy("cache_aware", 200, tokenizer=GENERIC_ESTIMATE, compact_at=0.2)
    srv.script("*", ["Summary: six questions.", "the answer"])
    reply = s.send(p, model=MODELS["openai"], window=w)
    p.close()
    assert reply.message["content"] == "the answer"
    last = srv.log[-1].body["messages"]
    assert last[-1] == {"role": "user", "content": "question 5"}  # was: the summary
    msgs = s.messages()  # the cut reply stays, after the question
    assert msgs[2]["content"].endswith("Summary: six questions.")
    assert [m["content"] for m in msgs[-3::2]] == ["question 5", "the answer"]


def test_a_summary_no_smaller_than_its_span_is_not_stored_nor_asked_for_every_turn(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """A model whose summaries are longer than the span they replace: the compaction is
    skipped (its ledger row says why), the send goes on, and the next turns ask for no
    summary until the span holds more tokens than the refused summary did."""
    p = make("openai", srv.url)
    model = MODELS["openai"]
    s = rt.session("long-summaries")
    _chat(s, 6)
    w = WindowPolicy("cache_aware", 400, tokenizer=GENERIC_ESTIMATE, compact_at=0.2)
    long = "Summary: " + "the user asked and the assistant answered. " * 12
    srv.script("*", [long, "the answer"])
    sent = len(srv.log)
    reply = s.send(p, model=model, window=w)
    assert reply.message["content"] == "the answer"
    assert len(srv.log) == sent + 2  # the summary request, then the send
    assert not any(m["content"].startswith("[Summary") for m in s.messages())  # was: stored
    assert not any(e.replaced for e in s.entries())
    summary_row = s.calls()[-2]
    assert summary_row["status"] == "ok"
    assert "not smaller than the 11 messages" in summary_row["error"]
    for i in range(2):  # was: a summary request before every send
        s.append({"role": "user", "content": f"more {i}"})
        srv.script("*", [f"answer {i}"])
        s.send(p, model=model, window=w)
        assert len(srv.log) == sent + 3 + i
    # Once the span outgrows the refused summary, a summary is asked for again.
    for i in range(6):
        s.append({"role": "user", "content": "a longer question about the work " * 3})
        if due(s, p, model, w) is not None:
            break
        srv.script("*", [f"later {i}"])
        s.send(p, model=model, window=w)
    else:
        raise AssertionError("no summary was due once the span had grown")
    srv.script("*", ["Summary: short.", "the last answer"])
    s.send(p, model=model, window=w)
    assert s.messages()[2]["content"].endswith("Summary: short.")
    p.close()
    assert s.entries()[2].replaced


def test_an_automatic_summary_no_smaller_is_skipped_by_asend_too(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    import asyncio

    p = make("openai", srv.url)
    s = rt.session("long-summaries-async")
    _chat(s, 6)
    w = WindowPolicy("cache_aware", 400, tokenizer=GENERIC_ESTIMATE, compact_at=0.2)
    srv.script("*", ["Summary: " + "all of it, at length. " * 30, "the answer", "again"])
    sent = len(srv.log)

    async def two() -> None:
        await s.asend(p, model=MODELS["openai"], window=w)
        s.append({"role": "user", "content": "next"})
        await s.asend(p, model=MODELS["openai"], window=w)
        await p.aclose()

    asyncio.run(two())
    assert len(srv.log) == sent + 3
    assert [m["content"] for m in s.messages()[-3:]] == ["the answer", "next", "again"]
    assert not any(e.replaced for e in s.entries())


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (_chat_reply({"content": "The task began wi"}, "length"), "cut off"),
        (_chat_reply({"content": None, "refusal": "I can't do that."}, "stop"), "refusal"),
    ],
)
def test_an_automatic_summary_that_is_no_summary_fails_no_send(
    srv: ProviderServer, rt: srt.Runtime, body: str, why: str
) -> None:
    """Under ``compact_at``, a summary reply cut off or refused compacts nothing, but the
    send goes on (was: every send raised SessionError, after paying for a summary), the
    row says why, and the next turns ask for none until the span has doubled."""
    p = make("openai", srv.url)
    model = MODELS["openai"]
    s = rt.session(f"no-summary-{why}")
    _chat(s, 6)
    w = WindowPolicy("cache_aware", 400, tokenizer=GENERIC_ESTIMATE, compact_at=0.2)
    srv.fault("openai", "status", code=200, body=body, headers={"content-type": "application/json"})
    srv.script("*", ["the answer"])
    sent = len(srv.log)
    assert s.send(p, model=model, window=w).message["content"] == "the answer"
    assert len(srv.log) == sent + 2
    assert not any(e.replaced for e in s.entries())
    assert why in s.calls()[-2]["error"]
    for i in range(2):
        s.append({"role": "user", "content": f"more {i}"})
        srv.script("*", [f"answer {i}"])
        s.send(p, model=model, window=w)
        assert len(srv.log) == sent + 3 + i  # no summary request
    p.close()


def test_an_automatic_summary_keeps_a_message_pinned_by_metadata(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """``"pinned": true`` means the window always sends the message: the automatic span
    starts after it (was: summarised away with the rest, so the model lost it)."""
    p = make("openai", srv.url)
    s = rt.session("pinned-doc")
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
    doc = {"role": "user", "content": "the key document", "metadata": {"pinned": True}}
    s.append({"role": "assistant", "content": "a0"}, doc)
    for i in range(5):
        s.append({"role": "assistant", "content": f"answer {i}"})
        s.append({"role": "user", "content": f"question {i}"})
    w = WindowPolicy("cache_aware", 200, tokenizer=GENERIC_ESTIMATE, compact_at=0.2)
    srv.script("*", ["Summary: five questions.", "the answer"])
    s.send(p, model=MODELS["openai"], window=w)
    p.close()
    contents = [m["content"] for m in s.messages()]
    assert contents[:4] == ["sys", "first", "a0", "the key document"]
    assert contents[4].endswith("Summary: five questions.")
    assert contents[5:] == ["question 4", "the answer"]
    assert s.entries()[3].metadata == {"pinned": True}
    assert len(s.entries()[4].replaced) == 9


@pytest.mark.parametrize("kind", ["openai", "anthropic", "responses"])
def test_a_reply_that_calls_a_tool_is_no_summary(
    srv: ProviderServer, rt: srt.Runtime, kind: str
) -> None:
    """Given tools, the model may call one with a line of text before it: that line is
    what it says before the call, not a summary (was: stored as the summary)."""
    p = make(kind, srv.url)
    s = rt.session(f"tool-call-{kind}")
    _chat(s)
    before = _state(rt, s)
    read = {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
    call = {"name": "read", "arguments": {"path": "notes.txt"}}
    srv.script("*", [{"text": "Let me read the notes first.", "tool_calls": [call]}])
    with pytest.raises(srt.SessionError, match="calls a tool"):
        s.compact(len(s), summarizer=p, model=MODELS[kind], tools=[read])
    p.close()
    assert _state(rt, s) == before
    assert "calls a tool" in s.calls()[-1]["error"]


def test_a_store_at_its_session_limit_still_gets_summaries(
    srv: ProviderServer, db_path: str
) -> None:
    """The summary request's fork is deleted right after it, so ``max_sessions`` does not
    count it (was: SessionLimitError from every compact(summarizer=...), and from every
    send under compact_at)."""
    with srt.Runtime(db_path, max_sessions=1) as rt:
        p = make("openai", srv.url)
        s = rt.session("only")
        _chat(s, 6)
        w = WindowPolicy("cache_aware", 200, tokenizer=GENERIC_ESTIMATE, compact_at=0.2)
        srv.script("*", ["Summary: six questions.", "the answer"])
        assert s.send(p, model=MODELS["openai"], window=w).message["content"] == "the answer"
        assert s.messages()[2]["content"].endswith("Summary: six questions.")
        s.append({"role": "user", "content": "once more"})
        srv.script("*", ["Summary: all of it."])
        s.compact(len(s), summarizer=p, model=MODELS["openai"])
        p.close()
        assert s.messages()[2]["content"].endswith("Summary: all of it.")
        assert [i.name for i in rt.sessions()] == ["only"]
        with pytest.raises(srt.SessionLimitError):
            rt.session("another")  # the limit still holds for the user's sessions


def test_a_tool_result_after_the_pinned_messages_goes_with_them(rt: srt.Runtime) -> None:
    """A result whose call is not stored (srt does not check for one) is no place to
    start a span: the automatic span starts after it, where it raised
    HistoryIndexError on every send before the provider could say anything."""
    from srt.summarize import due

    s = rt.session("orphan")
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"},
             {"role": "tool", "tool_call_id": "c1", "content": "orphan"})  # fmt: skip
    for i in range(4):
        s.append({"role": "assistant", "content": f"a {i}"}, {"role": "user", "content": f"q {i}"})
    w = WindowPolicy("cache_aware", 400, tokenizer=GENERIC_ESTIMATE, compact_at=0.1)
    p = make("openai", "http://127.0.0.1:9")  # (never called)
    assert due(s, p, MODELS["openai"], w) == (3, 10)
    s.compact(10, "early turns", start=3)
    assert [m["role"] for m in s.messages()] == ["system", "user", "tool", "user", "user"]
    p.close()
