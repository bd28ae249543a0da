"""The official SDKs' own models check srt's bodies and ``srt.testing``'s replies.

Request bodies (issue 14, item 1): every Responses body srt builds validates against
``openai.types.responses.ResponseCreateParams`` with unknown keys rejected (pydantic's
``TypeAdapter`` with ``extra="forbid"``; the SDK types ``tools`` and some content as
``Iterable``, which pydantic validates lazily, so the result is walked to the end). Chat
Completions and Anthropic Messages bodies get the same check against
``CompletionCreateParams`` and ``MessageCreateParams``.

Replies (item 2): every reply, stream event and error body the test server sends is
parsed with the SDKs' models: openai's ``ChatCompletion``, ``ChatCompletionChunk``,
``Response``, ``ResponseStreamEvent`` and ``ErrorObject``; anthropic's ``Message``,
``RawMessageStreamEvent``, ``MessageTokensCount`` and ``ErrorResponse``; and for
Bedrock, botocore's own ``bedrock-runtime`` service model: its rest-json parser and
event-stream parser (what boto3 hands a user) and its validator on each payload (the
``p`` padding key AWS adds to stream events is the one key it is told to ignore). Any
validation error fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import anthropic.types as at
import botocore.session
import httpx
import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import create_parser
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk, CompletionCreateParams
from openai.types.conversations import Conversation
from openai.types.responses import Response, ResponseCreateParams, ResponseStreamEvent
from openai.types.shared import ErrorObject
from pydantic import ConfigDict, TypeAdapter, ValidationError

import srt
from srt.message import canonicalize
from srt.providers import Anthropic, OpenAI
from srt.testing import ProviderServer
from srt.wire import build_body
from support import sse_events
from wire_reference_oa import MODELS, NAME, TEXT, conversation, tool_def

FORBID = ConfigDict(extra="forbid")
RESPONSES_PARAMS: TypeAdapter[Any] = TypeAdapter(ResponseCreateParams, config=FORBID)
CHAT_PARAMS: TypeAdapter[Any] = TypeAdapter(CompletionCreateParams, config=FORBID)
MESSAGES_PARAMS: TypeAdapter[Any] = TypeAdapter(at.MessageCreateParams, config=FORBID)
RESPONSE_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
ANTHROPIC_EVENT: TypeAdapter[Any] = TypeAdapter(at.RawMessageStreamEvent)
KEY = "sk-sdk-models-key"


def _drain(value: Any) -> Any:
    """Walk a validated value, consuming the lazy validators pydantic returns for
    ``Iterable`` fields (their items are only checked when iterated)."""
    if isinstance(value, dict):
        return {k: _drain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_drain(v) for v in value]
    if type(value).__name__ == "ValidatorIterator":
        return [_drain(v) for v in value]
    return value


def check_body(adapter: TypeAdapter[Any], body: bytes | dict[str, Any]) -> None:
    data = json.loads(body) if isinstance(body, bytes) else body
    _drain(adapter.validate_python(data))


def test_the_check_rejects_unknown_keys_and_the_old_strictless_tools() -> None:
    """The check itself: an unknown key anywhere, and a function tool without ``strict``
    (the body srt sent before issue 14), both fail."""
    good = {
        "model": "gpt-5",
        "input": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "name": "f", "parameters": None, "strict": False}],
    }
    check_body(RESPONSES_PARAMS, good)
    for bad in (
        {**good, "bogus": 1},
        {**good, "input": [{"role": "user", "content": "hi", "bogus": 1}]},
        {**good, "tools": [{"type": "function", "name": "f", "parameters": None}]},
        {**good, "tools": [{**good["tools"][0], "bogus": 1}]},  # type: ignore[dict-item]
    ):
        with pytest.raises(ValidationError):
            check_body(RESPONSES_PARAMS, bad)


# -- request bodies ---------------------------------------------------------------------

OPENAI_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "store": st.booleans(),
        "max_output_tokens": st.integers(16, 4096),
        "metadata": st.dictionaries(NAME, TEXT, max_size=2),
        "user": NAME,
        "prompt_cache_key": NAME,
        "stream": st.booleans(),
    },
)
RESPONSES_ONLY = st.fixed_dictionaries(
    {},
    optional={
        "instructions": TEXT,
        "previous_response_id": NAME.map(lambda s: "resp_" + s),
        "reasoning": st.just({"effort": "low"}),
        "truncation": st.sampled_from(["auto", "disabled"]),
        "prompt_cache_retention": st.sampled_from(["in_memory", "24h"]),
        "parallel_tool_calls": st.booleans(),
    },
)


def _bodies(msgs: list[dict[str, Any]]) -> list[bytes]:
    return [canonicalize(m)[0] for m in msgs]


@settings(max_examples=300)
@given(
    conversation(),
    st.sampled_from(MODELS),
    st.lists(tool_def(), max_size=3, unique_by=lambda t: t["function"]["name"]),
    OPENAI_PARAMS,
    RESPONSES_ONLY,
    st.sampled_from(["openai.responses", "azure.responses"]),
)
def test_every_responses_body_validates_against_the_sdk_params(
    msgs: list[dict[str, Any]],
    model: str,
    tools: list[dict[str, Any]],
    params: dict[str, Any],
    extra: dict[str, Any],
    fmt: str,
) -> None:
    body = build_body(fmt, _bodies(msgs), model=model, tools=tools, params={**params, **extra})
    check_body(RESPONSES_PARAMS, body)
    for tool, sent in zip(tools, json.loads(body).get("tools", []), strict=True):
        assert sent["strict"] is tool["function"].get("strict", False)


@settings(max_examples=200)
@given(
    conversation(),
    st.sampled_from(MODELS),
    st.lists(tool_def(), max_size=3, unique_by=lambda t: t["function"]["name"]),
    OPENAI_PARAMS.map(lambda p: {k: v for k, v in p.items() if k != "max_output_tokens"}),
)
def test_every_chat_body_validates_against_the_sdk_params(
    msgs: list[dict[str, Any]], model: str, tools: list[dict[str, Any]], params: dict[str, Any]
) -> None:
    check_body(
        CHAT_PARAMS,
        build_body("openai.chat", _bodies(msgs), model=model, tools=tools, params=params),
    )


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
STRICT = {"type": "function", "name": "clock", "parameters": {"type": "object"}, "strict": True}


def test_every_responses_body_srt_sends_validates(rt: srt.Runtime, srv: ProviderServer) -> None:
    """A session through the provider layer: tools, tool calls and results, streaming,
    ``previous_response_id`` deltas, ``store=false`` and the fallback after a lost
    response. Every body the server received passes the SDK's params check."""
    s = rt.session("responses")
    s.append({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Paris?"})
    call = {"id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}
    srv.script("openai.responses", [{"tool_calls": [call]}, "18 C.", "Yes.", "Sure.", "Ok."])
    with closing(OpenAI(KEY, base_url=srv.url + "/v1", api="responses")) as p:
        reply = s.send(p, model="gpt-5", tools=[WEATHER, STRICT])
        assert reply.message["tool_calls"][0]["id"] == "call_1"
        s.append({"role": "tool", "tool_call_id": "call_1", "content": "18 C"})
        assert s.stream(p, model="gpt-5", tools=[WEATHER, STRICT]).text()
        s.append({"role": "user", "content": "Warm?"})
        s.send(p, model="gpt-5", tools=[WEATHER], instructions="Terse.", max_output_tokens=64)
        srv.expire_responses()
        s.append({"role": "user", "content": "Again?"})
        s.send(p, model="gpt-5", metadata={"k": "v"})
        s.append({"role": "user", "content": "Last."})
        s.send(p, model="gpt-5", store=False, temperature=0.3)
    bodies = [r.body for r in srv.log]
    assert len(bodies) == 6 and any("previous_response_id" in b for b in bodies)
    for body in bodies:
        check_body(RESPONSES_PARAMS, body)
    sent = bodies[0]["tools"]
    assert [t["strict"] for t in sent] == [False, True]


def test_every_anthropic_body_srt_sends_validates(rt: srt.Runtime, srv: ProviderServer) -> None:
    s = rt.session("anthropic")
    s.append({"role": "system", "content": "Be brief. " * 400}, {"role": "user", "content": "Hi"})
    call = {"id": "toolu_1", "name": "weather", "arguments": {"city": "Paris"}}
    srv.script("anthropic.messages", [{"tool_calls": [call]}, "18 C.", "Yes."])
    with closing(Anthropic(KEY, base_url=srv.url)) as p:
        s.send(p, model="claude-sonnet-4-6", tools=[WEATHER], max_tokens=128)
        s.append({"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"})
        assert s.stream(p, model="claude-sonnet-4-6", tools=[WEATHER], max_tokens=128).text()
        s.append({"role": "user", "content": "Warm?"})
        s.send(p, model="claude-sonnet-4-6", max_tokens=128, temperature=0.5)
    assert len(srv.log) == 3
    for rec in srv.log:
        body = dict(rec.body)
        if rec.headers["anthropic-version"] == Anthropic.SAMPLING_VERSION:
            # anthropic 2.x types API 2026-10-21, which has no sampling parameters (it
            # takes them only through extra_body); srt sends them under 2023-06-01 only.
            assert body.pop("temperature") == 0.5
        check_body(MESSAGES_PARAMS, body)
    assert [r.headers["anthropic-version"] for r in srv.log] == [
        "2026-10-21",
        "2026-10-21",
        "2023-06-01",
    ]


# -- replies -----------------------------------------------------------------------------

REPLIES = {
    "text": "Hello there, a reply in a few words: naïve — 日本語 🎉.",
    "empty": "",
    "tool_calls": {"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]},
    "text_and_calls": {
        "text": "Checking two cities.",
        "tool_calls": [
            {"name": "weather", "arguments": {"city": "Paris"}},
            {"name": "weather", "arguments": {"city": "Köln", "unit": "C"}},
        ],
    },
}
OPENAI_H = {"authorization": f"Bearer {KEY}"}
ANTHROPIC_H = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}
BEDROCK_MODEL = "anthropic.claude-sonnet-4-6"
_BEDROCK = botocore.session.get_session().get_service_model("bedrock-runtime")
CONVERSE = _BEDROCK.operation_model("Converse")
CONVERSE_STREAM = _BEDROCK.operation_model("ConverseStream")
STREAM_SHAPE = CONVERSE_STREAM.output_shape.members["stream"]


def _post(srv: ProviderServer, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    with httpx.Client(timeout=30) as http:
        return http.post(srv.url + path, json=body, headers=headers)


class _Raw:
    """What botocore's parser expects as a streamed body: ``stream()`` and ``close()``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> Iterator[bytes]:
        yield self.data

    def close(self) -> None:
        pass


def _streamed(r: httpx.Response) -> dict[str, Any]:
    """A ConverseStream HTTP response as botocore's parser takes it from its endpoint."""
    return {
        "status_code": r.status_code,
        "headers": dict(r.headers),
        "body": _Raw(r.content),
        "context": {"operation_name": "ConverseStream"},
    }


def _botocore_valid(payload: dict[str, Any], shape: Any) -> None:
    report = ParamValidator().validate(payload, shape)
    assert not report.has_errors(), report.generate_report()


def check_chat(srv: ProviderServer, path: str, stream: bool, usage: bool) -> int:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
        if usage:
            body["stream_options"] = {"include_usage": True}
    r = _post(srv, path, body, OPENAI_H)
    assert r.status_code == 200, r.text
    if not stream:
        ChatCompletion.model_validate(r.json())
        return 1
    events = sse_events(r.content)
    assert events[-1] == (None, "[DONE]")
    if path.startswith("/openai/"):  # Azure's first chunk: its filter's prompt results
        first = json.loads(events.pop(0)[1])  # (object "", which the SDK's model refuses)
        assert first.pop("prompt_filter_results")[0]["prompt_index"] == 0
        assert first == {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
    for _, data in events[:-1]:
        ChatCompletionChunk.model_validate(json.loads(data))
    return len(events) - 1


def check_responses(srv: ProviderServer, path: str, stream: bool) -> int:
    body = {"model": "gpt-4o", "input": [{"role": "user", "content": "hi"}], "stream": stream}
    r = _post(srv, path, body, OPENAI_H)
    assert r.status_code == 200, r.text
    if not stream:
        resp = Response.model_validate(r.json())
        assert resp.usage is not None and resp.usage.input_tokens_details.cache_write_tokens >= 0
        return 1
    events = sse_events(r.content)
    for name, data in events:
        ev = RESPONSE_EVENT.validate_python(json.loads(data))
        assert ev.type == name
    return len(events)


def check_anthropic(srv: ProviderServer, stream: bool) -> int:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 256, "stream": stream}
    body["messages"] = [{"role": "user", "content": "hi"}]
    r = _post(srv, "/v1/messages", body, ANTHROPIC_H)
    assert r.status_code == 200, r.text
    if not stream:
        at.Message.model_validate(r.json())
        return 1
    n = 0
    for name, data in sse_events(r.content):
        if name == "ping":
            assert json.loads(data) == {"type": "ping"}
            continue
        ev = ANTHROPIC_EVENT.validate_python(json.loads(data))
        assert ev.type == name
        n += 1
    return n


def check_bedrock(srv: ProviderServer, stream: bool) -> int:
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    op = "converse-stream" if stream else "converse"
    r = _post(srv, f"/model/{BEDROCK_MODEL}/{op}", body, OPENAI_H)
    assert r.status_code == 200, r.text
    parser = create_parser("rest-json")
    if not stream:
        parsed = parser.parse(
            {"status_code": 200, "headers": dict(r.headers), "body": r.content},
            CONVERSE.output_shape,
        )
        assert parsed["output"]["message"]["role"] == "assistant"
        _botocore_valid(r.json(), CONVERSE.output_shape)
        return 1
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    buf = EventStreamBuffer()
    buf.add_data(r.content)
    n = 0
    for frame in buf:
        msg = frame.to_response_dict()
        kind = msg["headers"][":event-type"]
        payload = json.loads(msg["body"])
        assert isinstance(payload.pop("p"), str)  # AWS pads every event with "p"
        _botocore_valid(payload, STREAM_SHAPE.members[kind])
        n += 1
    parsed = parser.parse(_streamed(r), CONVERSE_STREAM.output_shape)
    kinds = [next(iter(ev)) for ev in parsed["stream"]]
    assert len(kinds) == n and kinds[0] == "messageStart" and kinds[-1] == "metadata"
    return n


REPLY_CASES = [
    pytest.param(endpoint, stream, kind, id=f"{endpoint}-{'stream' if stream else 'json'}-{kind}")
    for endpoint in (
        "openai.chat",
        "openai.chat+usage",
        "azure.chat",
        "openai.responses",
        "azure.responses",
        "anthropic.messages",
        "bedrock.converse",
    )
    for stream in (False, True)
    if not (endpoint == "openai.chat+usage" and not stream)
    for kind in REPLIES
]


@pytest.mark.parametrize(("endpoint", "stream", "kind"), REPLY_CASES)
def test_every_reply_and_stream_event_parses_with_the_sdk_models(
    srv: ProviderServer, endpoint: str, stream: bool, kind: str
) -> None:
    name = endpoint.split("+")[0]
    target = name if name != "bedrock.converse" or not stream else "bedrock.converse_stream"
    srv.script(target, [REPLIES[kind]])
    if name in ("openai.chat", "azure.chat"):
        path = "/v1/chat/completions" if name == "openai.chat" else "/openai/v1/chat/completions"
        n = check_chat(srv, path, stream, endpoint.endswith("+usage"))
    elif name.endswith(".responses"):
        n = check_responses(
            srv, "/v1/responses" if name == "openai.responses" else "/openai/v1/responses", stream
        )
    elif name == "anthropic.messages":
        n = check_anthropic(srv, stream)
    else:
        n = check_bedrock(srv, stream)
    assert n >= 1
    assert srv.log[-1].status in (None, 200)


@pytest.mark.parametrize("stream", [False, True])
def test_a_response_cut_at_its_output_cap_parses_as_incomplete(
    srv: ProviderServer, stream: bool
) -> None:
    """``max_output_tokens`` reached: a ``Response`` of status ``incomplete`` (reason
    ``max_output_tokens``), streamed as events ending with ``response.incomplete``."""
    srv.script("openai.responses", ["word " * 100])
    body = {"model": "gpt-4o", "input": "hi", "max_output_tokens": 16, "stream": stream}
    r = _post(srv, "/v1/responses", body, OPENAI_H)
    assert r.status_code == 200, r.text
    if stream:
        events = [RESPONSE_EVENT.validate_python(json.loads(d)) for _, d in sse_events(r.content)]
        assert [e.type for e in events][-1] == "response.incomplete"
        resp = events[-1].response
    else:
        resp = Response.model_validate(r.json())
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage is not None and resp.usage.output_tokens == 16
    assert 0 < len(resp.output_text) < len("word " * 100)


def test_a_conversation_parses_and_carries_its_responses_on(srv: ProviderServer) -> None:
    """``POST /v1/conversations`` answers a ``Conversation``; a response that names it
    sees its items and joins them, and naming ``previous_response_id`` too is a 400."""
    r = _post(srv, "/v1/conversations", {"items": [{"role": "user", "content": "hi"}]}, OPENAI_H)
    conv = Conversation.model_validate(r.json())
    assert conv.id.startswith("conv_") and conv.object == "conversation"
    first = _post(
        srv, "/v1/responses", {"model": "gpt-4o", "input": "one", "conversation": conv.id}, OPENAI_H
    )
    Response.model_validate(first.json())
    body = {"model": "gpt-4o", "input": "two", "conversation": {"id": conv.id}}
    second = _post(srv, "/v1/responses", body, OPENAI_H)
    Response.model_validate(second.json())
    # The second saw the conversation's item, the first input and its reply.
    assert srv.log[-1].cache.total > srv.log[-2].cache.total
    body["previous_response_id"] = first.json()["id"]
    both = _post(srv, "/v1/responses", body, OPENAI_H)
    assert both.status_code == 400 and "Mutually exclusive" in both.json()["error"]["message"]
    ErrorObject.model_validate(both.json()["error"])
    missing = _post(
        srv, "/v1/responses", {"model": "gpt-4o", "input": "x", "conversation": "conv_0"}, OPENAI_H
    )
    assert missing.status_code == 404
    ErrorObject.model_validate(missing.json()["error"])


def test_anthropic_count_tokens_parses(srv: ProviderServer) -> None:
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
    r = _post(srv, "/v1/messages/count_tokens", body, ANTHROPIC_H)
    assert at.MessageTokensCount.model_validate(r.json()).input_tokens > 0


# -- errors ------------------------------------------------------------------------------

OPENAI_PATHS = {
    "openai.chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    "openai.responses": ("/v1/responses", {"input": "hi"}),
}


@pytest.mark.parametrize("code", [400, 401, 429, 500, 503])
@pytest.mark.parametrize("endpoint", sorted(OPENAI_PATHS))
def test_openai_error_bodies_parse(srv: ProviderServer, endpoint: str, code: int) -> None:
    path, body = OPENAI_PATHS[endpoint]
    headers = OPENAI_H
    if code == 400:
        body = {"model": "gpt-4o"}  # a real validation error of the server, not a fault
    elif code == 401:
        headers = {"authorization": "Bearer sk-wrong"}
    else:
        srv.fault(endpoint, "status", code=code, retry_after=1)
    r = _post(srv, path, {"model": "gpt-4o", **body}, headers)
    assert r.status_code == code
    ErrorObject.model_validate(r.json()["error"])


@pytest.mark.parametrize("code", [400, 401, 429, 500, 529])
def test_anthropic_error_bodies_parse(srv: ProviderServer, code: int) -> None:
    body: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 16}
    body["messages"] = [{"role": "user", "content": "hi"}]
    headers = ANTHROPIC_H
    if code == 400:
        body["temperature"] = 0.5  # refused under anthropic-version 2026-10-21
    elif code == 401:
        headers = {**ANTHROPIC_H, "x-api-key": "sk-wrong"}
    else:
        srv.fault("anthropic.messages", "status", code=code)
    r = _post(srv, "/v1/messages", body, headers)
    assert r.status_code == code
    err = at.ErrorResponse.model_validate(r.json())
    assert err.type == "error"


@pytest.mark.parametrize(
    ("code", "shape"),
    [
        (400, "ValidationException"),
        (429, "ThrottlingException"),
        (500, "InternalServerException"),
        (503, "ServiceUnavailableException"),
    ],
)
def test_bedrock_error_bodies_parse(srv: ProviderServer, code: int, shape: str) -> None:
    path = f"/model/{BEDROCK_MODEL}/converse"
    if code == 400:
        body: dict[str, Any] = {"messages": []}
    else:
        body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
        srv.fault("bedrock.converse", "status", code=code)
    r = _post(srv, path, body, OPENAI_H)
    assert r.status_code == code
    assert r.headers["x-amzn-ErrorType"] == shape
    parsed = create_parser("rest-json").parse(
        {"status_code": code, "headers": dict(r.headers), "body": r.content},
        CONVERSE.output_shape,
    )
    assert parsed["Error"]["Code"] == shape
    _botocore_valid(r.json(), _BEDROCK.shape_for(shape))


@pytest.mark.parametrize(
    "endpoint", ["openai.chat", "openai.responses", "anthropic.messages", "bedrock.converse_stream"]
)
def test_mid_stream_error_events_parse(srv: ProviderServer, endpoint: str) -> None:
    srv.fault(endpoint, "malformed_sse", variant="error_event", after=2)
    srv.script(endpoint, ["one two three four five six seven eight nine ten eleven"])
    if endpoint == "bedrock.converse_stream":
        body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
        r = _post(srv, f"/model/{BEDROCK_MODEL}/converse-stream", body, OPENAI_H)
        buf = EventStreamBuffer()
        buf.add_data(r.content)
        frames = [f.to_response_dict() for f in buf]
        last = frames[-1]
        kind = last["headers"][":exception-type"]
        _botocore_valid(json.loads(last["body"]), STREAM_SHAPE.members[kind])
        parsed = create_parser("rest-json").parse(_streamed(r), CONVERSE_STREAM.output_shape)
        with pytest.raises(EventStreamError, match=kind):
            list(parsed["stream"])
        return
    if endpoint == "anthropic.messages":
        body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True}
        body["messages"] = [{"role": "user", "content": "hi"}]
        r = _post(srv, "/v1/messages", body, ANTHROPIC_H)
        name, data = [e for e in sse_events(r.content) if e[0] != "ping"][-1]
        assert name == "error"
        at.ErrorResponse.model_validate(json.loads(data))
        return
    path, body = OPENAI_PATHS[endpoint]
    r = _post(srv, path, {"model": "gpt-4o", **body, "stream": True}, OPENAI_H)
    name, data = sse_events(r.content)[-1]
    if endpoint == "openai.responses":
        assert RESPONSE_EVENT.validate_python(json.loads(data)).type == "error" == name
    else:
        ErrorObject.model_validate(json.loads(data)["error"])
