"""The local provider server's OpenAI endpoints (Chat Completions, Responses, prompt
caching) against the official ``openai`` SDK and raw HTTP (Azure's routes:
``test_testing_server_azure``).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from testing_server_support import (
    CHAT,
    LONG,
    OPENAI_H,
    oai,
)

from srt.testing import (
    ProviderServer,
    count_tokens,
    ntokens,
)

# -- OpenAI Chat Completions -----------------------------------------------------------


def test_chat_completion_and_usage(srv: ProviderServer) -> None:
    r = oai(srv).chat.completions.create(**CHAT)  # type: ignore[call-overload]
    text = r.choices[0].message.content
    assert text.startswith("reply 1 to hello: ")
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop"
    expected = count_tokens("openai.chat", CHAT)
    assert expected == ntokens(json.dumps(CHAT["messages"][0], separators=(",", ":")))
    assert r.usage.prompt_tokens == expected == srv.log[-1].prompt_tokens
    assert r.usage.completion_tokens == ntokens(text)
    assert r.usage.total_tokens == expected + ntokens(text)
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    rec = srv.log[-1]
    assert rec.endpoint == "openai.chat" and rec.status == 200 and rec.body == CHAT
    assert rec.headers["authorization"] == "Bearer <redacted>"
    assert srv.requests["openai.chat"] == 1


def test_chat_stream_with_usage(srv: ProviderServer) -> None:
    srv.script("chat", ["streamed ünïcode reply in several small pieces"])
    stream = oai(srv).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed ünïcode reply in several small pieces"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == ntokens(text)
    assert srv.wait_streams_closed() and srv.max_open_streams == 1


def test_chat_tool_call_round(srv: ProviderServer) -> None:
    client = oai(srv)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    srv.script(
        "openai.chat", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}]
    )
    msgs: list[Any] = [{"role": "user", "content": "weather?"}]
    r = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools)  # type: ignore[arg-type]
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Oslo"
    }
    msgs += [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    srv.script("chat", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Bergen"}}]}])
    stream = client.chat.completions.create(model="gpt-4o", messages=msgs, tools=tools, stream=True)  # type: ignore[arg-type]
    args = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in stream
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"city": "Bergen"}
    assert srv.log[-1].labels == ["tool:0", "message:0", "message:1", "message:2"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({**CHAT, "temperatur": 1}, "Unrecognized request argument supplied: temperatur"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "Invalid value: 'robot'"),
        ({"model": "m", "messages": [{"role": "user", "content": None}]}, "content"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "expected one of a string"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x", "metadata": {}}]},
            "'metadata' was unexpected",
        ),
        (
            {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c1", "content": "x"}]},
            "tool_calls",
        ),
        ({**CHAT, "stream_options": {"include_usage": True}}, "stream_options"),
        ({**CHAT, "tools": [{"type": "function", "function": {}}]}, "tools[0]"),
        ({**CHAT, "temperature": 3}, "temperature"),
        ([CHAT], "JSON object"),
    ],
)
def test_chat_validation(srv: ProviderServer, http: httpx.Client, body: Any, needle: str) -> None:
    r = http.post(srv.url + "/v1/chat/completions", json=body, headers=OPENAI_H)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and needle in err["message"] + str(err["param"])
    assert set(err) == {"message", "type", "param", "code"}


def test_chat_assistant_null_content_needs_tool_calls(srv: ProviderServer) -> None:
    with pytest.raises(openai.BadRequestError):
        oai(srv).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": None}],
        )


def test_openai_auth(srv: ProviderServer, http: httpx.Client) -> None:
    r = http.post(srv.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    with ProviderServer(api_key="sk-right") as strict:
        r = http.post(strict.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H)
        assert r.status_code == 401
        r = http.post(
            strict.url + "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": "Bearer sk-right"},
        )
        assert r.status_code == 200
    assert http.post(srv.url + "/v1/nope", json=CHAT, headers=OPENAI_H).status_code == 404


# -- OpenAI Responses ------------------------------------------------------------------


def test_responses_chain_bills_the_whole_chain(srv: ProviderServer) -> None:
    client = oai(srv)
    r1 = client.responses.create(model="gpt-4o", input="first question", instructions="be brief")
    assert r1.status == "completed" and r1.output_text.startswith("reply 1 to first question")
    assert r1.store is True and r1.id.startswith("resp_")
    r2 = client.responses.create(model="gpt-4o", input="second", previous_response_id=r1.id)
    assert r2.previous_response_id == r1.id
    rec = srv.log[-1]
    assert rec.labels == ["item:0", "item:1", "item:2"]  # instructions are not carried forward
    user1 = {"role": "user", "content": "first question"}
    out1 = r1.output[0].model_dump(mode="json", exclude_none=True)
    chain = [user1, out1, {"role": "user", "content": "second"}]
    expected = sum(ntokens(json.dumps(i, ensure_ascii=False, separators=(",", ":"))) for i in chain)
    assert r2.usage.input_tokens == expected == rec.prompt_tokens
    assert r2.usage.input_tokens > r1.usage.input_tokens + r1.usage.output_tokens - ntokens(
        '{"instructions":"be brief"}'
    )
    assert r2.usage.input_tokens_details.cached_tokens == 0  # under 1,024 tokens
    assert (
        srv.count_tokens(
            "openai.responses",
            {"model": "gpt-4o", "input": "second", "previous_response_id": r1.id},
        )
        == expected
    )


def test_previous_response_not_found(srv: ProviderServer) -> None:
    client = oai(srv)

    def chained(prev: str) -> openai.BadRequestError:
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model="gpt-4o", input="x", previous_response_id=prev)
        assert info.value.code == "previous_response_not_found"
        assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
        return info.value

    assert "'resp_unknown' not found" in chained("resp_unknown").message
    unstored = client.responses.create(model="gpt-4o", input="x", store=False)
    chained(unstored.id)
    kept = client.responses.create(model="gpt-4o", input="x")
    client.responses.create(model="gpt-4o", input="y", previous_response_id=kept.id)
    srv.expire_responses([kept.id])
    chained(kept.id)
    with ProviderServer(responses_ttl_s=60) as short:
        c2 = oai(short)
        r = c2.responses.create(model="gpt-4o", input="x")
        short.advance(61)
        with pytest.raises(openai.BadRequestError) as info:
            c2.responses.create(model="gpt-4o", input="x", previous_response_id=r.id)
        assert info.value.code == "previous_response_not_found"


def test_responses_stream_events(srv: ProviderServer) -> None:
    srv.script("responses", ["stream me please, in pieces"])
    events = list(oai(srv).responses.create(model="gpt-4o", input="hi", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    for t in (
        "response.output_item.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_item.done",
    ):
        assert t in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "stream me please, in pieces"
    final = events[-1].response
    assert final.usage.input_tokens == srv.log[-1].prompt_tokens and final.output_text == text
    with oai(srv).responses.stream(model="gpt-4o", input="again") as stream:
        for _ in stream:
            pass
        assert stream.get_final_response().output_text.startswith("reply 2 to again")


def test_responses_function_calls(srv: ProviderServer, http: httpx.Client) -> None:
    client = oai(srv)
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    srv.script("responses", [{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}])
    r1 = client.responses.create(model="gpt-4o", input="find x", tools=tools)  # type: ignore[arg-type]
    call = r1.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"q": "x"}
    out = {"type": "function_call_output", "call_id": call.call_id, "output": "found"}
    r2 = client.responses.create(
        model="gpt-4o", input=[out], previous_response_id=r1.id, tools=tools
    )  # type: ignore[arg-type, list-item]
    assert r2.status == "completed"
    bad = {
        "model": "gpt-4o",
        "input": [{**out, "call_id": "call_other"}],
        "previous_response_id": r1.id,
    }
    r = http.post(srv.url + "/v1/responses", json=bad, headers=OPENAI_H)
    assert r.status_code == 400 and "call_other" in r.json()["error"]["message"]
    r = http.post(
        srv.url + "/v1/responses", json={"model": "m", "input": "x", "bogus": 1}, headers=OPENAI_H
    )
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]


# -- OpenAI prompt caching -------------------------------------------------------------


def test_openai_cache_in_a_growing_conversation(srv: ProviderServer) -> None:
    client = oai(srv)
    msgs: list[Any] = [{"role": "system", "content": "You are terse. " * 100}]
    seen = []
    prev_total = 0
    for turn in range(30):
        msgs.append(
            {"role": "user", "content": f"turn {turn}: " + "tell me more about caching. " * 8}
        )
        r = client.chat.completions.create(model="gpt-4o", messages=msgs)
        total, cached = r.usage.prompt_tokens, r.usage.prompt_tokens_details.cached_tokens
        assert total == srv.log[-1].prompt_tokens
        expected = prev_total // 128 * 128 if total >= 1024 and prev_total >= 1024 else 0
        assert cached == expected, (turn, total, prev_total)
        assert cached % 128 == 0 and cached <= total
        seen.append(cached)
        prev_total = total
        msgs.append({"role": "assistant", "content": r.choices[0].message.content})
    assert seen == sorted(seen) and seen[0] == 0 and seen[-1] > 3000
    assert 0 < seen.count(0) < 30
    # prompt_cache_key keeps a separate namespace; the same key finds its own entries.
    r = client.chat.completions.create(model="gpt-4o", messages=msgs[:-1], prompt_cache_key="other")
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    r = client.chat.completions.create(model="gpt-4o", messages=msgs[:-1], prompt_cache_key="other")
    assert r.usage.prompt_tokens_details.cached_tokens == r.usage.prompt_tokens // 128 * 128
    r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs[:-1])
    assert r.usage.prompt_tokens_details.cached_tokens == 0  # per model
    srv.advance(601)
    r = client.chat.completions.create(model="gpt-4o", messages=msgs[:-1])
    assert r.usage.prompt_tokens_details.cached_tokens == 0  # idle TTL passed


def test_openai_cache_for_responses_chains(srv: ProviderServer) -> None:
    client = oai(srv)
    r1 = client.responses.create(model="gpt-4o", input=LONG)
    assert r1.usage.input_tokens_details.cached_tokens == 0
    r2 = client.responses.create(model="gpt-4o", input="next", previous_response_id=r1.id)
    assert r2.usage.input_tokens_details.cached_tokens == r1.usage.input_tokens // 128 * 128 > 1024
    msgs = [{"role": "developer", "content": LONG}]
    for expect_hit in (False, True):
        stream = client.chat.completions.create(
            model="gpt-4o", messages=msgs, stream=True, stream_options={"include_usage": True}
        )  # type: ignore[arg-type]
        usage = list(stream)[-1].usage
        assert usage.prompt_tokens_details.cached_tokens == (
            usage.prompt_tokens // 128 * 128 if expect_hit else 0
        )
