"""Context windows: pins, tool pairs, one cut for every format, and what each policy
does to the provider's prompt cache (against the local provider server)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt.context import WindowPolicy, _units, pinned_prefix, select
from srt.providers import Anthropic, OpenAI
from srt.testing import ProviderServer
from srt.tokens import GENERIC_ESTIMATE


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[str], list[int], list[bool]]:
    roles = ["system"] if draw(st.booleans()) else []
    roles.append("user")
    for _ in range(draw(st.integers(0, 25))):
        step = draw(st.sampled_from(["chat", "tools"]))
        if step == "chat":
            roles += ["assistant", "user"]
        else:
            roles += ["assistant"] + ["tool"] * draw(st.integers(1, 3)) + ["assistant", "user"]
    tokens = draw(st.lists(st.integers(1, 900), min_size=len(roles), max_size=len(roles)))
    pinned = draw(st.lists(st.booleans(), min_size=len(roles), max_size=len(roles)))
    pinned = [p and draw(st.integers(0, 9)) == 0 for p in pinned]  # rare
    return roles, tokens, pinned


def _calls(roles: list[str]) -> dict[int, int]:
    """tool message index -> index of the assistant message that called it."""
    owner, out = -1, {}
    for i, r in enumerate(roles):
        if r == "assistant":
            owner = i
        elif r == "tool":
            out[i] = owner
    return out


@settings(max_examples=3_000, deadline=None)
@given(
    histories(),
    st.sampled_from(["sliding", "cache_aware"]),
    st.integers(500, 20_000),
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
)
def test_windows_keep_pins_and_tool_pairs(
    h: tuple[list[str], list[int], list[bool]], kind: str, budget: int, points: list[float]
) -> None:
    roles, tokens, pinned = h
    policy = WindowPolicy(kind, budget)
    head = pinned_prefix(roles)
    prev = None
    # The history grows turn by turn; check it at a few of its lengths, in order.
    sizes = sorted({max(1, round(p * len(roles))) for p in points} | {len(roles)})
    for n in sizes:
        try:
            kept, cut = select(policy, tokens[:n], roles[:n], pinned[:n], prev)
        except srt.ContextOverflowError:
            # Only when the pins (with their whole tool units) cannot fit, or they and
            # the newest step (a call with its results) together cannot.
            units = _units(roles[:n])
            pins = {i for i in range(n) if i < head or pinned[i]}
            full = {j for j in range(n) if units[j] in {units[i] for i in pins}}
            newest = {j for j in range(n) if units[j] == units[n - 1]}
            assert sum(tokens[j] for j in full | newest) > budget
            return
        prev = cut
        assert kept == sorted(set(kept))
        assert n - 1 in kept, "the newest message is always sent"
        assert all(i in kept for i in range(min(head, n))), "pinned prefix kept"
        assert all(i in kept for i in range(n) if pinned[i]), "marked pins kept"
        assert sum(tokens[i] for i in kept) <= budget or len(kept) == n
        calls = _calls(roles[:n])
        for i in kept:
            if roles[i] == "tool":
                assert calls[i] in kept, "a tool result is never kept without its call"
        for tool, call in calls.items():
            if call in kept:
                assert tool in kept, "a tool call is never kept without its results"


def test_error_policy_raises_with_the_counts() -> None:
    with pytest.raises(srt.ContextOverflowError, match="needs 300 tokens"):
        select(
            WindowPolicy("error", 200), [100, 100, 100], ["user", "assistant", "user"], [False] * 3
        )


def test_cache_aware_steps_and_then_holds() -> None:
    roles = ["system", "user"] + ["assistant", "user"] * 60
    tokens = [50, 50] + [100] * 120
    policy = WindowPolicy("cache_aware", 3000)
    cuts, prev = [], None
    for n in range(2, len(roles) + 1):
        _, prev = select(policy, tokens[:n], roles[:n], [False] * n, prev)
        cuts.append(prev)
    steps = sorted(set(cuts))
    # The cut moves rarely, in large steps (about 0.4 of the budget each).
    assert len(steps) <= 1 + (sum(tokens) // 1200) + 1
    assert all(b - a >= 10 for a, b in itertools.pairwise(steps[1:]))


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


def test_the_same_cut_for_every_format(tmp_path: object, rt: srt.Runtime) -> None:
    s = rt.session("fmt")
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
    for i in range(40):
        s.append({"role": "assistant", "content": f"reply {i} " * 30})
        s.append({"role": "user", "content": f"question {i} " * 30})
    w = WindowPolicy("cache_aware", 2000)
    chat = json.loads(s.request("openai.chat", model="m", window=w, cache=False))
    anth = json.loads(s.request("anthropic.messages", model="m", window=w, cache=False))
    chat_texts = [m["content"] for m in chat["messages"]]
    anth_texts = [b["text"] for m in anth["messages"] for b in m["content"]]
    assert chat_texts[1:] == anth_texts  # the system prompt is split out for Anthropic
    assert chat_texts[:2] == ["sys", "first"] and len(chat_texts) < 82


@pytest.mark.parametrize("provider", ["openai"])
def test_cache_aware_keeps_the_cache_warm_and_sliding_does_not(
    provider: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    shares = {}
    for kind in ("cache_aware", "sliding"):
        if provider == "openai":
            p = OpenAI("sk-test-key-000000", base_url=srv.url + "/v1")
            model = "gpt-4o"
        else:
            p = Anthropic("sk-test-key-000000", base_url=srv.url)
            model = "claude-sonnet-4-6"
        s = rt.session(f"{provider}-{kind}")
        s.append({"role": "system", "content": "Be brief."})
        # Count as the local server does (4 bytes a token), so the budget means the same.
        window = WindowPolicy(kind, 12_000, tokenizer=GENERIC_ESTIMATE)
        for t in range(140):
            s.append({"role": "user", "content": f"turn {t}: " + "a long question " * 150})
            s.send(p, model=model, window=window)
        rows = s.calls()
        shares[kind] = sum(r["cache_read_tokens"] for r in rows) / sum(
            r["input_tokens"] for r in rows
        )
        assert max(r["input_tokens"] for r in rows) <= 12_000 + 600  # window + reply estimate
        p.close()
    assert shares["cache_aware"] >= 0.80, shares
    assert shares["sliding"] < 0.10, shares


def test_cache_aware_keeps_the_newest_message_when_it_fits() -> None:
    """The low-water target alone would keep only the pinned prefix; the budget keeps the end."""
    roles = ["user", "assistant"] * 3 + ["user"]
    tokens = [86, 35, 86, 35, 86, 35, 105]
    kept, _cut = select(WindowPolicy("cache_aware", 300), tokens, roles, bytearray(7))
    assert kept[0] == 0 and kept[-1] == 6
    assert sum(tokens[i] for i in kept) <= 300
