"""The same tool call id twice in one conversation. Some OpenAI-compatible servers number
their calls per reply (llama.cpp's ``call_0`` every turn); Anthropic refuses a request
holding one ``tool_use`` id twice ("`tool_use` ids must be unique"), and srt.testing's
Anthropic server does as it does. srt stores a reply's call id that the conversation
holds already as ``<id>-srt<index>`` (``index``: the reply's message), returns the reply
with that id, and the caller's tool result pairs with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import srt
from gateway_support import Harness, harness
from srt import _tool_pairs as tool_pairs
from support import SRV_KEY, made, provider_on

TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def _call(cid: str = "call_0") -> dict[str, Any]:
    return {"tool_calls": [{"id": cid, "name": "get_weather", "arguments": {"city": "Oslo"}}]}


def _stored_ids(s: srt.Session) -> list[str]:
    return [c["id"] for m in s.messages() for c in m.get("tool_calls") or ()]


def _tool_turns(s: srt.Session, p: Any, turns: int) -> list[str]:
    """``turns`` rounds of a user turn, a tool call, its result: the ids replied."""
    ids = []
    for t in range(turns):
        r = s.send(p, model="m", tools=TOOLS, append=[{"role": "user", "content": f"q{t}"}])
        (call,) = r.message["tool_calls"]
        ids.append(call["id"])
        s.append({"role": "tool", "tool_call_id": call["id"], "content": "sunny"})
    return ids


def test_a_repeated_call_id_is_stored_unique_and_anthropic_takes_the_history(
    rt: srt.Runtime, srv: Any
) -> None:
    compat = made(provider_on("compatible", srv.url, SRV_KEY))
    claude = made(provider_on("anthropic", srv.url, SRV_KEY))
    srv.script("*", [_call(), _call(), _call()])
    s = rt.session("a")
    ids = _tool_turns(s, compat, 3)
    # message 1 and message 4 and 7 are the replies (user, call, result, user, ...)
    assert ids == ["call_0", "call_0-srt4", "call_0-srt7"]
    assert _stored_ids(s) == ids
    r = s.send(
        claude,
        model="claude-sonnet-4-5",
        tools=TOOLS,
        append=[{"role": "user", "content": "and now?"}],
    )
    assert r.message["role"] == "assistant"
    sent = srv.log[-1].body["messages"]
    uses = [b["id"] for m in sent for b in m["content"] if b.get("type") == "tool_use"]
    results = [
        b["tool_use_id"] for m in sent for b in m["content"] if b.get("type") == "tool_result"
    ]
    assert uses == results == ids


def test_a_new_handle_and_a_rewind_see_the_ids_the_store_holds(
    rt: srt.Runtime, db_path: str, srv: Any
) -> None:
    compat = made(provider_on("compatible", srv.url, SRV_KEY))
    srv.script("*", [_call(), _call(), _call(), _call()])
    s = rt.session("b")
    assert _tool_turns(s, compat, 1) == ["call_0"]
    # another handle reads the history from the store: it knows call_0 already
    with srt.Runtime(db_path) as other:
        assert _tool_turns(other.session("b"), compat, 1) == ["call_0-srt4"]
    s = rt.session("b")
    s.rewind(3)  # back to [user, call_0, result]: call_0-srt4 is gone
    assert _tool_turns(s, compat, 1) == ["call_0-srt4"]
    s.rewind(6)  # nothing left: call_0 is free again
    assert _tool_turns(s, compat, 1) == ["call_0"]


def test_two_calls_with_one_id_in_one_reply_are_told_apart(rt: srt.Runtime, srv: Any) -> None:
    compat = made(provider_on("compatible", srv.url, SRV_KEY))
    two = {"tool_calls": _call()["tool_calls"] * 2}
    srv.script("*", [two])
    s = rt.session("c")
    r = s.send(compat, model="m", tools=TOOLS, append=[{"role": "user", "content": "q"}])
    assert [c["id"] for c in r.message["tool_calls"]] == ["call_0", "call_0-srt1"]


def test_a_streamed_reply_is_renamed_too(rt: srt.Runtime, srv: Any) -> None:
    compat = made(provider_on("compatible", srv.url, SRV_KEY))
    srv.script("*", [_call(), _call()])
    s = rt.session("d")
    _tool_turns(s, compat, 1)
    with s.stream(
        compat, model="m", tools=TOOLS, append=[{"role": "user", "content": "again"}]
    ) as st:
        for _ in st:
            pass
    assert [c["id"] for c in st.reply.message["tool_calls"]] == ["call_0-srt4"]
    assert _stored_ids(s) == ["call_0", "call_0-srt4"]


def test_the_ids_are_kept_per_turn_not_read_again(rt: srt.Runtime, srv: Any) -> None:
    """The chain keeps its call ids as it grows: a turn counts only its new messages."""
    compat = made(provider_on("compatible", srv.url, SRV_KEY))
    srv.script("*", [_call(), _call()])
    s = rt.session("e")
    _tool_turns(s, compat, 2)
    chain = s.parts.chain
    known = chain.call_ids
    assert known is not None and known.ids == {"call_0"}  # (counted up to the 2nd reply)
    seen = known.n
    assert tool_pairs.CallIds.of(chain) is known and known.n == len(chain) > seen
    assert known.ids == {"call_0", "call_0-srt4"}


def test_a_renamed_responses_reply_is_not_chained_from(rt: srt.Runtime, srv: Any) -> None:
    """A server that keeps its responses knows a call by the id it gave: the next request
    sends the whole history (with the new id) instead of ``previous_response_id``."""
    resp = made(provider_on("compatible", srv.url, SRV_KEY, api="responses", server_state=True))
    srv.script("*", [_call(), _call(), "done", "again"])
    s = rt.session("f")
    assert _tool_turns(s, resp, 2) == ["call_0", "call_0-srt4"]
    r = s.send(resp, model="m", tools=TOOLS)
    assert r.message["content"] == "done"
    body = srv.log[-1].body
    assert "previous_response_id" not in body
    outs = [i["call_id"] for i in body["input"] if i.get("type") == "function_call_output"]
    assert outs == ["call_0", "call_0-srt4"]
    s.append({"role": "user", "content": "more"})
    s.send(resp, model="m", tools=TOOLS)  # (chained again: the newest reply kept its ids)
    assert "previous_response_id" in srv.log[-1].body


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


@pytest.mark.parametrize("stream", [False, True])
def test_the_gateway_returns_the_unique_id_and_anthropic_takes_it(
    gw: Harness, stream: bool
) -> None:
    gw.srv.script("*", [_call(), _call()])
    c: openai.OpenAI = gw.client()
    messages: list[Any] = [{"role": "user", "content": "weather?"}]
    ids = []
    for _ in range(2):
        if stream:
            calls: dict[int, Any] = {}
            for ch in c.chat.completions.create(
                model="compat/m", messages=messages, tools=TOOLS, stream=True
            ):
                for tc in ch.choices[0].delta.tool_calls or () if ch.choices else ():
                    calls.setdefault(tc.index, {"id": tc.id})
            cid = calls[0]["id"]
            call = {"id": cid, "type": "function", "function": {"name": "get_weather"}}
            call["function"]["arguments"] = json.dumps({"city": "Oslo"})
        else:
            r = c.chat.completions.create(model="compat/m", messages=messages, tools=TOOLS)
            (tc,) = r.choices[0].message.tool_calls or ()
            cid, call = tc.id, tc.model_dump()
        ids.append(cid)
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": cid, "content": "sunny"},
        ]
    assert ids == ["call_0", "call_0-srt3"]  # (user, call, result, call)
    r = c.chat.completions.create(model="claude-sonnet-4-5", messages=messages, tools=TOOLS)
    assert r.choices[0].message.content
    sent = gw.srv.log[-1].body["messages"]
    uses = [b["id"] for m in sent for b in m["content"] if b.get("type") == "tool_use"]
    assert uses == ids


def test_unique_calls_keeps_a_message_with_new_ids_as_it_is() -> None:
    msg = {"role": "assistant", "tool_calls": [{"id": "a"}, {"id": "b"}]}
    assert tool_pairs.unique_calls(msg, {"c"}, 3) is msg
    taken = {"a", "a-srt3"}
    out = tool_pairs.unique_calls(msg, taken, 3)
    assert [c["id"] for c in out["tool_calls"]] == ["a-srt3-2", "b"]
