"""Cheap steps: each step of a task is built by delta assembly and keeps the cache warm.

Runs ``python -m srt.bench --workload tasks``'s task (``srt.bench.tasks``) under
OpenAI's and Anthropic's caching rules on the local provider server and checks the
ledger's counters step by step (never a time): at least 80% of every later step's
prompt is read from cache, and building a step's request serializes only the new
messages.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from srt.bench.tasks import TARGET, run_rule, run_tasks


@pytest.mark.parametrize("rule", ["openai", "anthropic"])
def test_every_later_step_reads_at_least_80_percent_from_cache(tmp_path: Path, rule: str) -> None:
    r = run_rule(str(tmp_path), rule, steps=10, seed=1, system_chars=12_000)
    steps = r["steps"]
    assert len(steps) == 11 and r["tool_calls"] == 19
    assert steps[0]["cache_read_tokens"] == 0  # the first request is cold
    for prev, step in itertools.pairwise(steps):
        assert step["read_share"] >= TARGET, step
        assert step["uncached_tokens"] == step["input_tokens"] - step["cache_read_tokens"]
        if rule == "anthropic":
            # The breakpoint at the previous request's end reads all of it back.
            assert step["cache_read_tokens"] == prev["input_tokens"]
            # Delta assembly: the previous reply and its results, nothing older.
            assert step["serialized"] == step["messages"] - prev["messages"]
        else:
            # OpenAI: the whole previous prompt, down to its 128-token step.
            assert prev["input_tokens"] - 128 < step["cache_read_tokens"] <= prev["input_tokens"]
            assert step["serialized"] == 0  # Chat fragments are the stored bytes
    assert r["min_later_share"] >= TARGET


def test_the_workload_without_cache_hints_reads_nothing(tmp_path: Path) -> None:
    r = run_tasks(str(tmp_path), rules=("anthropic", "anthropic.no_hints"))
    assert r["anthropic.no_hints"]["cache_read_tokens"] == 0
    assert r["anthropic"]["min_later_share"] >= TARGET
    assert r["min_later_share"] == r["anthropic"]["min_later_share"]
