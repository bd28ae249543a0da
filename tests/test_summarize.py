"""Compaction with the model's own summary (``srt.summarize``): by hand with
``compact(end, summarizer=..., model=...)``, and automatically at a window's
``compact_at`` during a long task; tool calls stay paired under windows and compaction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import srt
from srt.context import WindowPolicy
from srt.summarize import INSTRUCTIONS
from srt.testing import ProviderServer
from srt.testing.tasks import SUMMARY_MARKER, ScriptedTask, plan
from srt.tokens import GENERIC_ESTIMATE
from task_support import MODELS, SideFile, assert_paired, chain_pairs, make, server, three_tools

SYSTEM = {"role": "system", "content": "You are a careful analyst. " * 200}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s
        assert s.errors == []


def chat(s: srt.Session, turns: int) -> None:
    s.append(SYSTEM, {"role": "user", "content": "first question"})
    for i in range(turns):
        s.append({"role": "assistant", "content": f"answer {i} " * 40})
        s.append({"role": "user", "content": f"question {i} " * 40})


def test_the_instructions_are_what_the_scripted_model_recognises() -> None:
    assert INSTRUCTIONS.startswith(SUMMARY_MARKER)


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
def test_compact_with_the_models_summary(kind: str, srv: ProviderServer, rt: srt.Runtime) -> None:
    p = make(kind, srv.url)
    model = MODELS[kind]
    s = rt.session("by-hand")
    chat(s, 8)
    s.send(p, model=model)  # an ordinary turn: the provider now caches this history
    n = len(s)
    original = s.messages_bytes()
    span_id = s.prefix_hashes()[-1].hex()[:12]  # the span's end names it in the header
    srv.script("*", ["Summary: eight questions about X, all answered with Y."])
    head = s.compact(n, summarizer=p, model=model)
    p.close()
    assert head == s.head
    msgs = s.messages()
    assert len(msgs) == 3  # system, first question, summary
    assert msgs[2]["content"] == (
        f"[Summary of {n - 2} earlier messages, span {span_id}]\n"
        "Summary: eight questions about X, all answered with Y."
    )
    # The request: the whole history, then the instructions; read from the cache.
    rec = srv.log[-1]
    assert INSTRUCTIONS in json.dumps(rec.body, ensure_ascii=False)
    assert rec.cache is not None and rec.cache.read >= 0.9 * srv.log[-2].cache.total
    # Its ledger row is this session's, written with the compaction (node = new head).
    rows = s.calls()
    assert len(rows) == 2
    row = rows[-1]
    assert row["status"] == "ok" and row["node"] == s.head and row["session_name"] == "by-hand"
    assert row["input_tokens"] == rec.cache.total and row["cache_read_tokens"] == rec.cache.read
    link = json.loads(rt.store.node_meta(rt.store.chain(s.head)[2][0]) or b"{}")
    by = link["srt_compacted"]["by"]
    assert by["model"] == model and by["body_hash"] == row["body_hash"].hex()
    # The short-lived fork is gone; the compaction is reversible.
    assert [i.name for i in rt.sessions()] == ["by-hand"]
    s.expand()
    assert s.messages_bytes() == original


def test_a_failed_or_unusable_summary_leaves_the_session_as_it_was(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = make("anthropic", srv.url)
    model = MODELS["anthropic"]
    s = rt.session("fail")
    chat(s, 4)
    before = s.messages_bytes()
    srv.fault("anthropic", "status", code=400, message="bad request")
    with pytest.raises(srt.ProviderResponseError):
        s.compact(len(s), summarizer=p, model=model)
    srv.script("*", [{"tool_calls": [{"name": "f", "arguments": {}}]}])
    with pytest.raises(srt.SessionError, match="calls a tool"):
        s.compact(len(s), summarizer=p, model=model)
    p.close()
    assert s.messages_bytes() == before
    rows = s.calls()  # both attempts are in this session's ledger
    assert [r["status"] for r in rows] == ["error", "ok"]
    assert [i.name for i in rt.sessions()] == ["fail"]
    with pytest.raises(srt.SessionError, match="model="):
        s.compact(len(s), summarizer=p)
    with pytest.raises(srt.SessionError, match="needs a summary"):
        s.compact(len(s))


def test_compact_at_must_be_a_share() -> None:
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(srt.ConfigError, match="compact_at"):
            WindowPolicy("cache_aware", 1000, compact_at=bad)


LONG = plan(30, ["lookup", "fetch", "compute"])


@pytest.mark.parametrize("kind", ["anthropic", "openai", "bedrock", "responses"])
def test_automatic_compaction_during_a_long_task(
    kind: str, srv: ProviderServer, rt: srt.Runtime, tmp_path: Path
) -> None:
    script = ScriptedTask(LONG)
    srv.respond("*", script)
    p = make(kind, srv.url)
    side = SideFile(str(tmp_path / "runs.log"))
    window = WindowPolicy("cache_aware", 2000, compact_at=0.8, tokenizer=GENERIC_ESTIMATE)
    s = rt.session("long")
    s.append(SYSTEM, {"role": "user", "content": "Run the thirty-step job."})
    result = s.run(p, model=MODELS[kind], tools=three_tools(side), window=window, max_steps=40)
    p.close()
    assert result.stopped == "done" and result.steps == 31
    assert script.summaries >= 3  # compacted again and again as the task grows
    msgs = s.messages()
    chain_pairs(msgs)
    assert any(str(m["content"]).startswith("[Summary of") for m in msgs)
    assert assert_paired(srv) == 31 + script.summaries
    # Every tool ran once, though most results were summarised away.
    assert sorted(side.lines()) == sorted({f"{n} {a['key']}" for st in LONG for n, a in st})
    rows = s.calls()
    assert len(rows) == 31 + script.summaries and {r["status"] for r in rows} == {"ok"}
    # A summary request reads the history from the cache (it ends where the last
    # request ended); its row is in the ledger, on the compacted head.
    summary_recs = [r for r in srv.log if SUMMARY_MARKER in json.dumps(r.body)]
    assert len(summary_recs) == script.summaries
    for rec in summary_recs:
        assert rec.cache is not None and rec.cache.read >= 0.8 * rec.cache.total
    # The newest summary on the chain links to its request's ledger row.
    store = rt.store
    metas = [json.loads(r[5]) for r in store.chain(s.head) if r[5]]
    (link,) = [m["srt_compacted"] for m in metas if "srt_compacted" in m]
    (row,) = [r for r in rows if r["body_hash"].hex() == link["by"]["body_hash"]]
    assert row["session_name"] == "long" and row["model"] == MODELS[kind]
    assert row["cache_read_tokens"] >= 0.8 * row["input_tokens"]


def test_a_cache_aware_window_keeps_tool_pairs_in_a_long_task(
    srv: ProviderServer, rt: srt.Runtime, tmp_path: Path
) -> None:
    srv.respond("*", ScriptedTask(LONG))
    p = make("anthropic", srv.url)
    side = SideFile(str(tmp_path / "runs.log"))
    window = WindowPolicy("cache_aware", 2500, tokenizer=GENERIC_ESTIMATE)
    s = rt.session("windowed")
    s.append(SYSTEM, {"role": "user", "content": "Run the thirty-step job."})
    result = s.run(
        p, model=MODELS["anthropic"], tools=three_tools(side), window=window, max_steps=40
    )
    p.close()
    assert result.stopped == "done"
    assert assert_paired(srv) == 31  # the server also refuses an orphaned result
    cut = [len(json.loads(json.dumps(r.body))["messages"]) for r in srv.log]
    assert min(cut[5:]) < max(cut)  # the window did cut old steps


def test_async_task_with_automatic_compaction(
    srv: ProviderServer, rt: srt.Runtime, tmp_path: Path
) -> None:
    script = ScriptedTask(plan(20, ["lookup", "fetch", "compute"]))
    srv.respond("*", script)
    side = SideFile(str(tmp_path / "runs.log"))
    window = WindowPolicy("sliding", 3000, compact_at=0.5, tokenizer=GENERIC_ESTIMATE)
    s = rt.session("async")
    s.append(SYSTEM, {"role": "user", "content": "Run the job."})

    async def main() -> srt.TaskResult:
        p = make("anthropic", srv.url)
        try:
            return await s.arun(
                p, model=MODELS["anthropic"], tools=three_tools(side), window=window
            )
        finally:
            await p.aclose()

    result = asyncio.run(main())
    assert result.stopped == "done" and script.summaries >= 1
    chain_pairs(s.messages())
