"""Context windows against hostile and careful use: every policy parameter at its edges,
``select``'s inputs, the newest step never left out, and a kept prefix that stays
byte-stable turn after turn (tool pairs, pins, system messages, partial replies, every
wire format, after fork, rewind and edit)."""

from __future__ import annotations

import json
import math
from contextlib import closing
from typing import Any

import pytest

import srt
from srt.context import WindowPolicy, _units, select
from srt.providers import OpenAI
from srt.testing import ProviderServer
from srt.tokens import GENERIC_ESTIMATE

FORMATS = ["openai.chat", "openai.responses", "anthropic.messages", "bedrock.converse"]


class _Unhashable:
    """A tokenizer-shaped object that cannot be a dict key (it defines ``__eq__``)."""

    name = "mine"
    exact = False

    def count(self, text: str) -> int:
        return len(text)

    def __eq__(self, other: object) -> bool:
        return other is self

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("kw", "named"),
    [
        ({"budget": True}, "budget"),
        ({"budget": False}, "budget"),
        ({"budget": 0}, "budget"),
        ({"budget": -1}, "budget"),
        ({"budget": 1.5}, "budget"),
        ({"budget": math.nan}, "budget"),
        ({"budget": "1000"}, "budget"),
        ({"budget": None}, "budget"),
        ({"low_water": True}, "low_water"),
        ({"low_water": "0.5"}, "low_water"),
        ({"low_water": None}, "low_water"),
        ({"low_water": math.nan}, "low_water"),
        ({"low_water": 0}, "low_water"),
        ({"low_water": -0.5}, "low_water"),
        ({"low_water": 1.01}, "low_water"),
        ({"low_water": math.inf}, "low_water"),
        ({"compact_at": math.nan}, "compact_at"),
        ({"compact_at": -1}, "compact_at"),
        ({"compact_at": False}, "compact_at"),
        ({"tokenizer": "cl100k_base"}, "tokenizer"),
        ({"tokenizer": ["x"]}, "tokenizer"),
        ({"tokenizer": _Unhashable()}, "tokenizer"),
        ({"summary_model": 5}, "summary_model"),
        ({"summary_model": ""}, "summary_model"),
        ({"summarizer": "openai"}, "summarizer"),
    ],
)
def test_every_policy_parameter_at_its_edges_is_a_config_error(
    kw: dict[str, Any], named: str
) -> None:
    args = {"budget": 1000, **kw}
    for kind in ("error", "sliding", "cache_aware"):
        with pytest.raises(srt.ConfigError, match=named):
            WindowPolicy(kind, **args)


@pytest.mark.parametrize("kind", ["", "Sliding", None, 3, ["sliding"]])
def test_an_unknown_kind_is_a_config_error(kind: Any) -> None:
    with pytest.raises(srt.ConfigError, match="window policy must be one of"):
        WindowPolicy(kind, 1000)


def test_the_edges_that_are_allowed() -> None:
    huge = WindowPolicy("cache_aware", 10**30, low_water=1.0, compact_at=1)
    kept, cut = select(huge, [5, 5, 5], ["user", "assistant", "user"], bytearray(3))
    assert (kept, cut) == ([0, 1, 2], 1)
    tiny = WindowPolicy("cache_aware", 12, low_water=1e-9)
    roles = ["user", "assistant", "user", "assistant", "user"]
    kept, cut = select(tiny, [4, 4, 4, 4, 4], roles, bytearray(5))
    assert kept[0] == 0 and kept[-1] == 4 and 4 * len(kept) <= 12
    assert hash(WindowPolicy("sliding", 10, tokenizer=GENERIC_ESTIMATE))  # a dict key


def test_select_refuses_what_is_not_one_history() -> None:
    w = WindowPolicy("sliding", 100)
    roles = ["user", "assistant", "user"]
    with pytest.raises(srt.ConfigError, match="one token count, role and pinned flag"):
        select(w, [10, 10, 10], roles, [False, False])
    with pytest.raises(srt.ConfigError, match="one token count, role and pinned flag"):
        select(w, [10, 10], roles, [False] * 3)
    with pytest.raises(srt.ConfigError, match="token counts"):
        select(w, [10, -500, 10], roles, [False] * 3)
    with pytest.raises(srt.ConfigError, match="token counts"):
        select(w, [10, 1.5, 10], roles, [False] * 3)
    with pytest.raises(srt.ConfigError, match="WindowPolicy"):
        select("sliding", [10, 10, 10], roles, [False] * 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("stale", [4, 50, 10**20, -3, True, 2.5])
def test_a_cut_that_is_not_this_historys_is_ignored(stale: Any) -> None:
    """A previous cut past the end (a shorter history now) or of the wrong type is a fresh
    start, never an IndexError."""
    w = WindowPolicy("cache_aware", 100)
    roles = ["user", "assistant", "user"]
    assert select(w, [40, 20, 30], roles, [False] * 3, stale) == select(
        w, [40, 20, 30], roles, [False] * 3
    )
    big = [40, 40, 40]
    assert select(w, big, roles, [False] * 3, stale) == select(w, big, roles, [False] * 3)


@pytest.mark.parametrize("kind", ["sliding", "cache_aware"])
def test_the_newest_step_is_never_left_out(kind: str) -> None:
    """A newest message (or a call with its results) that does not fit beside the pins is
    refused: a request without it would have the model answer an older question."""
    w = WindowPolicy(kind, 100)
    roles = ["system", "user", "assistant", "user"]
    with pytest.raises(srt.ContextOverflowError, match="newest step"):
        select(w, [10, 10, 10, 500], roles, [False] * 4)
    # A tool call whose results do not fit with it: the whole step is refused.
    roles = ["user", "assistant", "user", "assistant", "tool", "tool"]
    with pytest.raises(srt.ContextOverflowError, match="last 3 message"):
        select(w, [10, 10, 10, 10, 50, 50], roles, [False] * 6)
    # It fits: it is kept, with its call, and older messages go.
    kept, _ = select(w, [10, 30, 10, 10, 30, 30], roles, [False] * 6)
    assert kept[0] == 0 and kept[-3:] == [3, 4, 5] and 1 not in kept


def test_the_newest_step_refusal_reaches_request(rt: srt.Runtime) -> None:
    s = rt.session("big")
    s.append({"role": "user", "content": "q"}, {"role": "assistant", "content": "a"})
    s.append({"role": "user", "content": "long " * 2000})
    for kind in ("sliding", "cache_aware"):
        with pytest.raises(srt.ContextOverflowError, match="newest step"):
            s.request("openai.chat", model="gpt-4o", window=WindowPolicy(kind, 300))


# -- the kept prefix, turn after turn ---------------------------------------------------------


def _call(i: int) -> list[dict[str, Any]]:
    cid = f"call_{i}"
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": "look", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": cid, "content": f"<<m{i}r>> " + "found " * 60},
    ]


def _turn(s: srt.Session, i: int) -> None:
    """One turn: a question, sometimes a tool call and its result, and an answer; a
    pinned question now and then."""
    meta = {"pinned": True} if i % 17 == 5 else None
    s.append({"role": "user", "content": f"<<m{i}q>> " + "ask " * 50, "metadata": meta})
    if i % 3 == 0:
        s.append(*_call(i))
    s.append({"role": "assistant", "content": f"<<m{i}a>> " + "say " * 50})


TOOLS = [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}]


def _check_turns(s: srt.Session, fmt: str, w: WindowPolicy, first: int, turns: int) -> int:
    """Run ``turns`` turns, building a request after each; whenever the window keeps what
    it kept before and more, the new body starts with every byte of the old one up to its
    last message. Returns how many times the cut moved."""
    prev: tuple[bytes, range | tuple[int, ...]] | None = None
    moves = 0
    for i in range(first, first + turns):
        _turn(s, i)
        body = s.request(fmt, model="claude-sonnet-4-6", window=w, cache=False, tools=TOOLS)
        lb = s.last_build
        assert lb is not None
        kept = lb.window
        msgs = s.messages()
        shown = range(len(msgs)) if kept is None else kept
        roles = [msgs[k]["role"] for k in shown]
        # Never a result without its call, nor a call without its results.
        for j, k in enumerate(shown):
            if msgs[k]["role"] == "tool":
                assert roles[j - 1] in ("assistant", "tool")
            if msgs[k].get("tool_calls"):
                assert j + 1 < len(roles) and roles[j + 1] == "tool"
        assert shown[-1] == len(msgs) - 1  # the newest message is always sent
        if prev is not None:
            old_body, old = prev
            if list(shown[: len(old)]) == list(old):
                last = json.loads(s.messages_bytes()[old[-1]])
                marker = str(last.get("content") or "")[:9].encode() or b"<<m"
                if marker == b"<<m":  # a tool call: the result before it holds no marker
                    marker = json.dumps(last["tool_calls"][0]["id"]).encode()
                upto = old_body.rindex(marker)
                assert body[:upto] == old_body[:upto], f"turn {i}: the kept prefix changed"
            else:
                moves += 1
        prev = (body, shown)
    return moves


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_kept_prefix_is_byte_stable_while_the_cut_holds(fmt: str, rt: srt.Runtime) -> None:
    s = rt.session("stable")
    s.append({"role": "system", "content": "Be brief. " * 20})
    w = WindowPolicy("cache_aware", 6000, tokenizer=GENERIC_ESTIMATE)
    moves = _check_turns(s, fmt, w, 0, 60)
    # About 0.4 of the budget is dropped at each step; 60 turns hold about 60 * 230 tokens.
    assert 2 <= moves <= 8, moves


@pytest.mark.parametrize("fmt", ["openai.chat", "anthropic.messages"])
def test_the_prefix_stays_stable_after_rewind_edit_and_fork(fmt: str, rt: srt.Runtime) -> None:
    s = rt.session("moves")
    s.append({"role": "system", "content": "Be brief."})
    w = WindowPolicy("cache_aware", 5000, tokenizer=GENERIC_ESTIMATE)
    _check_turns(s, fmt, w, 0, 40)
    s.rewind(4)
    assert _check_turns(s, fmt, w, 100, 10) <= 2
    s.edit(len(s) - 1, {"role": "assistant", "content": "<<m999a>> edited"})
    assert _check_turns(s, fmt, w, 200, 10) <= 2
    f = s.fork("moves-fork")
    assert _check_turns(f, fmt, w, 300, 20) <= 3
    assert _check_turns(s, fmt, w, 400, 20) <= 3  # the parent's cut is its own


def test_partial_replies_and_pins_under_a_window(rt: srt.Runtime) -> None:
    """A partial reply (left out unless asked for) and pinned messages under a cut: pins
    are sent wherever they are, the partial reply only with ``include_partial``."""
    with ProviderServer() as srv, closing(OpenAI("sk-test-000000", base_url=srv.url + "/v1")) as p:
        s = rt.session("partial")
        s.append({"role": "system", "content": "sys"})
        for i in range(30):
            _turn(s, i)
        s.append({"role": "user", "content": "<<tail>> go on"})
        srv.fault("openai", "reset_after_events", n=3)
        with pytest.raises(srt.ProviderError):
            s.stream(p, model="gpt-4o", window=WindowPolicy("sliding", 3000)).text()
    assert s.entries()[-1].partial
    w = WindowPolicy("cache_aware", 3000, tokenizer=GENERIC_ESTIMATE)
    without = json.loads(s.request("openai.chat", model="gpt-4o", window=w, cache=False))
    with_partial = json.loads(
        s.request("openai.chat", model="gpt-4o", window=w, cache=False, include_partial=True)
    )
    assert len(with_partial["messages"]) == len(without["messages"]) + 1
    texts = [str(m.get("content")) for m in without["messages"]]
    pinned = [m for m in s.messages(metadata=True) if (m.get("metadata") or {}).get("pinned")]
    assert pinned and all(str(m["content"]) in texts for m in pinned)
    assert texts[-1].startswith("<<tail>>")
    units = _units([m["role"] for m in without["messages"]])
    assert units[0] == 0  # the kept list starts with a whole unit


def test_a_pin_survives_a_compaction_under_a_window(rt: srt.Runtime) -> None:
    """Compaction re-appends what follows its span: a pinned message there stays pinned
    (and keeps its metadata), so the window still sends it."""
    s = rt.session("pin")
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
    for i in range(4):
        s.append({"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"q{i}"})
    s.append({"role": "user", "content": "KEEP ME", "metadata": {"pinned": True, "id": 7}})
    for i in range(40):
        s.append({"role": "assistant", "content": f"b{i} " * 40})
        s.append({"role": "user", "content": f"r{i} " * 40})
    s.compact(6, "early turns")
    assert s.messages(metadata=True)[7] == {
        "role": "user",
        "content": "KEEP ME",
        "metadata": {"pinned": True, "id": 7},
    }
    body = s.request(
        "openai.chat", model="gpt-4o", window=WindowPolicy("sliding", 800), cache=False
    )
    assert b"KEEP ME" in body
    fresh = rt.session("pin")  # read again from the store
    body = fresh.request(
        "openai.chat", model="gpt-4o", window=WindowPolicy("sliding", 800), cache=False
    )
    assert b"KEEP ME" in body


def test_a_partial_reply_the_request_leaves_out_counts_for_nothing(rt: srt.Runtime) -> None:
    """A stream cut off after a long partial reply: the next request leaves it out, so
    the window neither counts it nor takes it for the newest step (it was refused as one
    too big to fit, or the question before it was dropped)."""
    s = rt.session("cut")
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
    for i in range(10):
        s.append({"role": "assistant", "content": f"a{i} " * 50})
        s.append({"role": "user", "content": f"q{i} " * 50})
    s.append({"role": "user", "content": "NEWEST question"})
    with ProviderServer() as srv, closing(OpenAI("sk-test-000000", base_url=srv.url + "/v1")) as p:
        srv.script("*", ["long partial " * 3000])
        srv.fault("openai", "reset_after_events", n=1500)
        with pytest.raises(srt.ProviderError):
            s.stream(p, model="gpt-4o").text()
    assert s.entries()[-1].partial
    w = WindowPolicy("cache_aware", 800, tokenizer=GENERIC_ESTIMATE)
    body = json.loads(s.request("openai.chat", model="gpt-4o", window=w, cache=False))
    texts = [m["content"] for m in body["messages"]]
    assert texts[:2] == ["sys", "first"] and texts[-1] == "NEWEST question"
    assert 4 < len(texts) < 23
    # Sent, the partial reply is the newest step, and it does not fit.
    with pytest.raises(srt.ContextOverflowError, match="newest step"):
        s.request("openai.chat", model="gpt-4o", window=w, include_partial=True)


@pytest.mark.parametrize("cold", [False, True], ids=["appended", "loaded"])
def test_only_a_top_level_pin_pins(tmp_path: Any, cold: bool) -> None:
    """``{"pinned": true}`` at the top of a message's metadata pins it; the same words
    inside another key's value do not (the bytes matched anywhere before), whether the
    chain was appended in this process or read back from the file."""
    path = str(tmp_path / "pins.db")
    metas = [
        {"pinned": True},
        {"x": {"pinned": True}},
        {"list": [{"pinned": True}]},
        {"pinned": False, "y": {"pinned": True}},
        {"a": 1, "pinned": True},
    ]
    with srt.Runtime(path) as rt:
        s = rt.session("p")
        for i, meta in enumerate(metas):
            s.append({"role": "user", "content": f"m{i}", "metadata": meta})
        if not cold:
            assert list(s.parts.chain.pinned) == [1, 0, 0, 0, 1]
    if cold:
        with srt.Runtime(path) as rt:
            s = rt.session("p")
            len(s)
            assert list(s.parts.chain.pinned) == [1, 0, 0, 0, 1]
