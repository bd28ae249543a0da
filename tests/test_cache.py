"""The cache planner's rules and the cache explain's verdicts."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt.cache import (
    MAX_BREAKPOINTS,
    MIN_SLACK,
    TTL_SECONDS,
    CachePolicy,
    Layout,
    estimate_tokens,
    min_cacheable_tokens,
    plan,
)

RENDER_ORDER = {"tools": 0, "system": 1, "message": 2}


@st.composite
def layouts(draw: st.DrawFn) -> tuple[Layout, int | None, int, CachePolicy]:
    n = draw(st.integers(0, 60))
    sizes = draw(st.lists(st.integers(1, 20_000), min_size=n, max_size=n))
    tool_count = draw(st.integers(0, 5))
    tool_bytes = draw(st.integers(1, 30_000)) if tool_count else 0
    system_count = draw(st.integers(0, min(n, 3)))
    cum = list(itertools.accumulate(sizes))
    blocks = list(itertools.accumulate(draw(st.lists(st.integers(1, 8), min_size=n, max_size=n))))
    tool_tokens = estimate_tokens(tool_bytes)
    toks = list(itertools.accumulate(estimate_tokens(x) for x in sizes))
    layout = Layout(
        tool_bytes,
        tool_tokens,
        tool_count,
        system_count,
        [c + tool_bytes for c in cum],
        [t + tool_tokens for t in toks],
        blocks,
    )
    prev = draw(st.none() | st.integers(0, n))
    min_tokens = draw(st.sampled_from([1024, 2048, 4096, 1]))
    static_ttl, ttl = draw(st.sampled_from([("5m", "5m"), ("1h", "5m"), ("1h", "1h")]))
    policy = CachePolicy(
        static_ttl=static_ttl,
        ttl=ttl,
        static=draw(st.booleans()),
        read=draw(st.booleans()),
        write=draw(st.booleans()),
    )
    return layout, prev, min_tokens, policy


@settings(max_examples=10_000, deadline=None)
@given(layouts())
def test_planner_rules(case: tuple[Layout, int | None, int, CachePolicy]) -> None:
    layout, prev, min_tokens, policy = case
    bps = plan(layout, prev, min_tokens, policy)
    assert len(bps) <= MAX_BREAKPOINTS
    positions = [(RENDER_ORDER[b.where], b.index) for b in bps]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    ttls = [TTL_SECONDS[b.ttl] for b in bps]
    assert ttls == sorted(ttls, reverse=True), "a longer TTL must come first"
    n = len(layout.cum_bytes)
    for b in bps:
        assert b.tokens >= min_tokens * MIN_SLACK, "never a breakpoint well below the minimum"
        if b.where == "message":
            assert layout.system_count <= b.index < n
            assert b.tokens == layout.cum_tokens[b.index]
        elif b.where == "system":
            assert b.index == layout.system_count - 1
        else:
            assert b.index == layout.tool_count - 1 and layout.system_count == 0
    # The write breakpoint sits on the last message whenever it is allowed and big enough.
    if policy.write and n > layout.system_count:
        last = layout.cum_tokens[n - 1]
        placed = any(b.reason == "write" and b.index == n - 1 for b in bps)
        assert (last >= min_tokens * MIN_SLACK) == placed


def test_policy_refuses_a_short_ttl_before_a_long_one() -> None:
    with pytest.raises(srt.ConfigError):
        CachePolicy(static_ttl="5m", ttl="1h")
    with pytest.raises(srt.ConfigError):
        CachePolicy(ttl="2h")


def test_minimums() -> None:
    assert min_cacheable_tokens("openai", "gpt-4o") == 1024
    assert min_cacheable_tokens("anthropic", "claude-haiku-4-5") == 4096
    assert min_cacheable_tokens("anthropic", "claude-3-5-haiku") == 2048
    assert min_cacheable_tokens("bedrock", "anthropic.claude-3-7-sonnet") == 1024


def _chat(path: Path) -> srt.Session:
    rt = srt.Runtime(str(path))
    s = rt.session("a")
    s.append({"role": "system", "content": "rules " * 2000}, {"role": "user", "content": "q1"})
    return s


def test_explain_hit_then_edit_fork_tools_and_model(tmp_path: Path) -> None:
    s = _chat(tmp_path / "c.db")
    first = s.explain("openai.chat", model="gpt-4o")
    assert first.reason == "cold" and not first.hit
    s.request("openai.chat", model="gpt-4o")
    assert s.last_build.cache.reason == "cold"
    s.append({"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"})

    e = s.explain("openai.chat", model="gpt-4o")
    assert e.reason == "hit" and e.cached_messages == 2
    assert e.cached_tokens % 128 == 0 and e.cached_tokens >= 1024
    assert e.cached_tokens <= estimate_tokens(e.cached_bytes)

    # Edit: message 1 is replaced; the explain names it and keeps the system prefix.
    s.edit(1, {"role": "user", "content": "q1, rephrased"})
    e = s.explain("openai.chat", model="gpt-4o")
    assert (e.reason, e.diverged_at, e.diverged_role) == ("edited", 1, "user")
    assert e.cached_messages == 1 and e.cached_tokens >= 1024

    # A fork shares the cache key; a fork that diverges earlier is named as edited.
    s.request("openai.chat", model="gpt-4o")
    fork = s.fork("b", at=1)
    fork.append({"role": "user", "content": "another question"})
    assert fork.cache_key == s.cache_key
    e = fork.explain("openai.chat", model="gpt-4o")
    assert (e.reason, e.diverged_at) == ("edited", 1)

    # Rewinding gives "truncated".
    s.rewind(1)
    e = s.explain("openai.chat", model="gpt-4o")
    assert (e.reason, e.diverged_at) == ("truncated", 1)

    # Tools changed, and a model switch.
    e = s.explain(
        "openai.chat", model="gpt-4o", tools=[{"type": "function", "function": {"name": "f"}}]
    )
    assert (e.reason, e.diverged_at) == ("tools_changed", 0)
    e = s.explain("openai.chat", model="gpt-4.1")
    assert e.reason == "model_switched" and "gpt-4o" in e.detail


def test_explain_reordered_and_below_minimum(tmp_path: Path) -> None:
    rt = srt.Runtime(str(tmp_path / "r.db"))
    s = rt.session("s")
    m = [{"role": "user", "content": f"m{i} " * 600} for i in range(3)]
    s.append(*m)
    s.request("openai.chat", model="gpt-4o")
    s.rewind(3)
    s.append(m[0], m[2], m[1])
    e = s.explain("openai.chat", model="gpt-4o")
    assert (e.reason, e.diverged_at) == ("reordered", 1)

    small = rt.session("small")
    small.append({"role": "user", "content": "hi"})
    small.request("openai.chat", model="gpt-4o")
    small.append({"role": "assistant", "content": "hello"})
    e = small.explain("openai.chat", model="gpt-4o")
    assert e.reason == "below_minimum" and e.cached_tokens == 0


def test_explain_ttl_elapsed(tmp_path: Path) -> None:
    s = _chat(tmp_path / "t.db")
    s.request("openai.chat", model="gpt-4o")
    rec = s._shared.records[("openai.chat", "gpt-4o", s.cache_key)]  # age the record
    rec.at -= 3600
    assert s.explain("openai.chat", model="gpt-4o").reason == "ttl_elapsed"


def test_explain_counts_only_the_breakpoints_still_alive(tmp_path: Path) -> None:
    """Anthropic, a 1-hour static breakpoint and 5-minute ones after it: ten minutes on,
    only the static entry can be read, so the prediction stops there; two hours on,
    nothing is left."""
    s = _chat(tmp_path / "b.db")
    for turn in range(4):
        s.append({"role": "assistant", "content": f"a{turn} " * 300})
        s.append({"role": "user", "content": f"q{turn + 2} " * 300})
    policy = CachePolicy(static_ttl="1h", ttl="5m")
    s.request("anthropic.messages", model="claude-sonnet-4-6", cache=policy)
    marks = {b.ttl: b.index for b in s.last_build.breakpoints}
    assert set(marks) == {"1h", "5m"} and marks["5m"] > marks["1h"]
    s.append({"role": "assistant", "content": "a4"}, {"role": "user", "content": "q6"})
    rec = s._shared.records[("anthropic.messages", "claude-sonnet-4-6", s.cache_key)]
    fresh = s.explain("anthropic.messages", model="claude-sonnet-4-6", cache=policy)
    rec.at -= 600
    later = s.explain("anthropic.messages", model="claude-sonnet-4-6", cache=policy)
    rec.at -= 7200
    gone = s.explain("anthropic.messages", model="claude-sonnet-4-6", cache=policy)
    assert fresh.reason == later.reason == "hit" and gone.reason == "ttl_elapsed"
    assert fresh.cached_messages == marks["5m"] + 1
    assert later.cached_messages == marks["1h"] + 1 < fresh.cached_messages
    assert 0 < later.cached_tokens < fresh.cached_tokens and gone.cached_tokens == 0


def test_explain_follows_openais_24h_retention(tmp_path: Path) -> None:
    """``prompt_cache_retention="24h"`` keeps an idle prefix a day, not minutes."""
    for retention, alive in ((None, False), ("in_memory", False), ("24h", True)):
        s = _chat(tmp_path / f"r-{retention}.db")
        params = {} if retention is None else {"prompt_cache_retention": retention}
        s.request("openai.chat", model="gpt-4o", **params)
        s.append({"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"})
        rec = s._shared.records[("openai.chat", "gpt-4o", s.cache_key)]
        rec.at -= 3600  # an hour idle
        e = s.explain("openai.chat", model="gpt-4o")
        assert (e.reason == "hit" and e.cached_tokens > 0) is alive, (retention, e)
        rec.at -= 86400  # a day and an hour
        assert s.explain("openai.chat", model="gpt-4o").reason == "ttl_elapsed"


def test_prompt_cache_key_is_shared_by_forks_and_optional(tmp_path: Path) -> None:
    s = _chat(tmp_path / "k.db")
    import json

    body = json.loads(s.request("openai.chat", model="m"))
    assert body["prompt_cache_key"] == s.cache_key
    assert s.fork("f", at=1).cache_key == s.cache_key
    assert "prompt_cache_key" not in json.loads(s.request("openai.chat", model="m", cache=False))
    assert (
        json.loads(s.request("openai.chat", model="m", prompt_cache_key="mine"))["prompt_cache_key"]
        == "mine"
    )
