"""The agent loop as a user writes it (send with tools, run the calls, append the results,
send again), through every provider kind, sync and async, streamed and not, against
``srt.testing`` over loopback; and the histories every provider refuses (a call left
without its result, a result for no call) refused by srt before anything is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from providers_support import MODELS as PROVIDER_MODELS
from srt.testing import ProviderServer
from support import provider_on

KEY = "sk-agentloop-0123456789abcdef"
#: A model for each provider kind (one Bedrock: its signing is not what is tried here).
MODELS = {k: m for k, m in PROVIDER_MODELS.items() if k != "bedrock-sigv4"}
KINDS = sorted(MODELS)
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
#: Two parallel calls, arguments with escapes, a quote, a backslash and astral characters
#: (the server streams them in 16-character pieces).
TWO_CALLS = {
    "text": "Looking ✓",
    "tool_calls": [
        {"name": "weather", "arguments": {"city": "Paris"}},
        {"name": "weather", "arguments": {"city": 'Zürich "q" \\ 😀 \\u00e9'}},
    ],
}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def _weather(call: dict[str, Any]) -> str:
    return "sunny in " + json.loads(call["function"]["arguments"])["city"]


def _sent(srv: ProviderServer) -> int:
    return sum(srv.requests.values())


def _turn(s: srt.Session, p: Any, kind: str, stream: bool, **kw: Any) -> srt.Reply:
    if not stream:
        return s.send(p, model=MODELS[kind], tools=[WEATHER], **kw)
    st = s.stream(p, model=MODELS[kind], tools=[WEATHER], **kw)
    text = "".join(st)
    assert st.reply is not None
    assert text == (st.reply.message.get("content") or "")
    return st.reply


async def _aturn(s: srt.Session, p: Any, kind: str, stream: bool, **kw: Any) -> srt.Reply:
    if not stream:
        return await s.asend(p, model=MODELS[kind], tools=[WEATHER], **kw)
    st = s.astream(p, model=MODELS[kind], tools=[WEATHER], **kw)
    async for _ in st:
        pass
    assert st.reply is not None
    return st.reply


def _results(reply: srt.Reply) -> list[dict[str, Any]]:
    """The tool messages answering ``reply``'s calls, in the reverse order of the calls."""
    calls = reply.message["tool_calls"]
    return [{"role": "tool", "tool_call_id": c["id"], "content": _weather(c)} for c in calls[::-1]]


@pytest.mark.parametrize("stream", [False, True], ids=["send", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_agent_loop_results_in_any_order(
    rt: srt.Runtime, srv: ProviderServer, kind: str, stream: bool
) -> None:
    p = provider_on(kind, srv.url, KEY)
    with p:
        s = rt.session("loop")
        s.append({"role": "user", "content": "Weather in Paris and Zürich?"})
        srv.script("*", [TWO_CALLS, "Both sunny."])
        reply = _turn(s, p, kind, stream)
        calls = reply.message["tool_calls"]
        assert [json.loads(c["function"]["arguments"]) for c in calls] == [
            {"city": "Paris"},
            {"city": 'Zürich "q" \\ 😀 \\u00e9'},
        ]
        assert len({c["id"] for c in calls}) == 2
        s.append(*_results(reply))
        final = _turn(s, p, kind, stream)
        assert final.message["content"] == "Both sunny."
        roles = [m["role"] for m in s.messages()]
        assert roles == ["user", "assistant", "tool", "tool", "assistant"]


@pytest.mark.parametrize("stream", [False, True], ids=["asend", "astream"])
@pytest.mark.parametrize("kind", KINDS)
def test_async_agent_loop_with_append(
    rt: srt.Runtime, srv: ProviderServer, kind: str, stream: bool
) -> None:
    async def main() -> None:
        p = provider_on(kind, srv.url, KEY)
        async with p:
            s = rt.session("aloop")
            srv.script("*", [TWO_CALLS, "Both sunny."])
            reply = await _aturn(s, p, kind, stream, append={"role": "user", "content": "Weather?"})
            final = await _aturn(s, p, kind, stream, append=_results(reply))
            assert final.message["content"] == "Both sunny."
            assert len(s) == 5

    asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_tool_calls_stored_as_the_non_streamed_reply(
    rt: srt.Runtime, srv: ProviderServer, kind: str
) -> None:
    p = provider_on(kind, srv.url, KEY)
    with p:
        stored = []
        for stream in (False, True):
            s = rt.session(f"same-{stream}")
            s.append({"role": "user", "content": "Weather?"})
            calls = [{**c, "id": f"call_{i}"} for i, c in enumerate(TWO_CALLS["tool_calls"])]
            srv.script("*", [{**TWO_CALLS, "tool_calls": calls}])
            _turn(s, p, kind, stream)
            stored.append(s.messages_bytes()[-1])
        assert stored[0] == stored[1]


# -- histories every provider refuses: srt refuses them first, nothing sent ---------------


def _pending(rt: srt.Runtime, srv: ProviderServer, p: Any, kind: str, name: str) -> srt.Session:
    s = rt.session(name)
    s.append({"role": "user", "content": "Weather?"})
    srv.script("*", [TWO_CALLS, "Both sunny."])
    s.send(p, model=MODELS[kind], tools=[WEATHER])
    return s


def _refused(s: srt.Session, p: Any, kind: str, srv: ProviderServer, **kw: Any) -> str:
    before, length = _sent(srv), len(s)
    with pytest.raises(srt.InvalidMessageError) as info:
        s.send(p, model=MODELS[kind], tools=[WEATHER], **kw)
    assert _sent(srv) == before  # nothing went out
    s.refresh()
    assert len(s) == length  # nothing written
    return str(info.value)


@pytest.mark.parametrize("stream", [False, True], ids=["send", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_call_without_its_result_is_refused_before_sending(
    rt: srt.Runtime, srv: ProviderServer, kind: str, stream: bool
) -> None:
    p = provider_on(kind, srv.url, KEY)
    with p:
        s = _pending(rt, srv, p, kind, "missing")
        first, second = (c["id"] for c in s.messages()[-1]["tool_calls"])
        s.append({"role": "tool", "tool_call_id": second, "content": "sunny"})
        before = _sent(srv)
        with pytest.raises(srt.InvalidMessageError, match=repr(first)) as info:
            _turn(s, p, kind, stream)
        assert "no result" in str(info.value) and repr(second) not in str(info.value)
        assert _sent(srv) == before
        # the results given with the send: refused with the call named, none written
        message = _refused(s, p, kind, srv, append={"role": "user", "content": "and?"})
        assert repr(first) in message and "no result" in message
        assert len(s) == 3
        # answered, the loop goes on
        s.append({"role": "tool", "tool_call_id": first, "content": "sunny"})
        assert _turn(s, p, kind, stream).message["content"] == "Both sunny."


@pytest.mark.parametrize("kind", KINDS)
def test_a_result_for_no_call_is_refused_before_sending(
    rt: srt.Runtime, srv: ProviderServer, kind: str
) -> None:
    p = provider_on(kind, srv.url, KEY)
    with p:
        s = _pending(rt, srv, p, kind, "unknown")
        ids = [c["id"] for c in s.messages()[-1]["tool_calls"]]
        answers = [{"role": "tool", "tool_call_id": i, "content": "ok"} for i in ids]
        stray = {"role": "tool", "tool_call_id": "call_nobody_made", "content": "?"}
        message = _refused(s, p, kind, srv, append=[*answers, stray])
        assert "'call_nobody_made'" in message and "made no such call" in message
        twice = _refused(s, p, kind, srv, append=[*answers, answers[0]])
        assert repr(ids[0]) in twice and "answers that call already" in twice
        # a result after a user message: the call it answers is left without one before it
        late = _refused(s, p, kind, srv, append=[answers[0], {"role": "user", "content": "?"}])
        assert repr(ids[1]) in late and "no result" in late
        # a result with no assistant message before it at all
        fresh = rt.session("no-call")
        fresh.append({"role": "user", "content": "hi"}, stray)
        orphan = _refused(fresh, p, kind, srv)
        assert "'call_nobody_made'" in orphan and "does not follow" in orphan
        s.append(*answers)
        assert s.send(p, model=MODELS[kind], tools=[WEATHER]).message["content"] == "Both sunny."


def test_a_partial_reply_left_out_is_not_the_step_checked(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    """A stream cut off after its tool calls is stored as a partial reply, left out of
    the next request: its calls need no results, and results for them are refused (they
    would follow the previous message in the request)."""
    p = provider_on("openai", srv.url, KEY)
    with p:
        s = rt.session("partial")
        s.append({"role": "user", "content": "Weather?"})
        srv.script("*", [TWO_CALLS, "Fine."])
        srv.fault("*", "reset_after_events", n=12)
        st = s.stream(p, model="gpt-4o", tools=[WEATHER])
        with pytest.raises(srt.ProviderError):
            list(st)
        assert st.status == "incomplete" and len(s) == 2
        assert s.entries()[-1].status == "incomplete"
        assert s.send(p, model="gpt-4o", append={"role": "user", "content": "again"})
