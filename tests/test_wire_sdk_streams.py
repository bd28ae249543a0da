"""Every stream event type the official SDKs define, through srt's stream decoders.

Each event is built from the SDK's own model (``test_wire_sdk_build.build``: a minimal
valid instance) and put into a normal stream of the reply "Hello world", between its
events. Expected: the reply (and the text deltas) equal those of the stream without it,
unless the event carries what srt keeps (text, refusals, tool calls, reasoning) or is an
error, which is a typed ``ProviderError``. Bedrock's event and delta types come from
botocore's ``bedrock-runtime`` service model. The last tests send such streams through a
real loopback HTTP stream (``srt.testing``'s server with a raw 200 body).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from contextlib import closing
from typing import Any

import anthropic.types as at
import botocore.session
import openai.types.chat as oc
import openai.types.responses as orr
import pytest

import srt
from srt._types import Reply, Usage
from srt.providers import Anthropic, Bedrock, OpenAI
from srt.testing import ProviderServer
from srt.wire import get_format
from srt.wire.base import Event, WireFormat
from srt.wire.bedrock import event_frame
from srt.wire.eventstream import encode_frame
from test_wire_sdk_build import build, members, type_of

TEXT = "Hello world"
CHUNKS = ["Hello", " world"]
MODEL = {"openai": "gpt-5", "anthropic": "claude-sonnet-4-5", "bedrock": "anthropic.claude-x"}


def normal(name: str) -> list[Event]:
    fmt = get_format(name)
    model = MODEL[fmt.provider]
    reply = Reply({"role": "assistant", "content": TEXT}, Usage(5, 2, 0, 0), model, None, None)
    return fmt.encode_events(fmt.encode_reply(reply, id="r_1"), chunks=CHUNKS)


def run(name: str, events: list[Event], *, final: bool = True) -> tuple[str, Reply]:
    fmt = get_format(name)
    dec = fmt.stream_decoder()
    deltas: list[str] = []
    for frame in fmt.encode_stream(events):
        deltas += dec.feed(frame)
    return "".join(deltas), dec.reply() if final else dec.partial()


def _insert(events: list[Event], before: str, extra: list[Event]) -> list[Event]:
    i = next(k for k, (n, d) in enumerate(events) if (n or d.get("type")) == before)
    return events[:i] + extra + events[i:]


# -- OpenAI Responses -------------------------------------------------------------------

RESPONSE_EVENTS = {type_of(m): m for m in members(orr.ResponseStreamEvent)}
_ERRORS = {"error", "response.failed"}


@pytest.mark.parametrize("kind", sorted(RESPONSE_EVENTS))
def test_every_responses_event_is_read_or_ignored(kind: str) -> None:
    base = normal("openai.responses")
    want = run("openai.responses", base)
    ev = build(RESPONSE_EVENTS[kind], sequence_number=99)
    stream = _insert(base, "response.completed", [(kind, ev)])
    if kind in _ERRORS:
        with pytest.raises(srt.ProviderError, match="mid-stream"):
            run("openai.responses", stream)
        return
    text, reply = run("openai.responses", stream)
    assert reply == want[1]  # response.completed carries the whole response
    assert text == TEXT + ("x" if kind == "response.output_text.delta" else "")
    if kind in ("response.completed", "response.incomplete"):
        return  # (a final event: what precedes it is no longer partial)
    # Cut off before response.completed: the partial reply keeps the text (and a refusal).
    cut = _insert(base, "response.output_text.done", [(kind, ev)])[:-1]
    _, part = run("openai.responses", cut, final=False)
    assert part.message["content"] == text
    assert part.message.get("refusal") == ("x" if kind == "response.refusal.delta" else None)


# -- Anthropic Messages -------------------------------------------------------------------

BLOCKS = {type_of(m): m for m in members(at.ContentBlock)}
KEPT_BLOCKS = {"text", "thinking", "redacted_thinking", "tool_use"}


def _block(i: int, block: dict[str, Any], deltas: Sequence[dict[str, Any]] = ()) -> list[Event]:
    out: list[Event] = [
        ("content_block_start", {"type": "content_block_start", "index": i, "content_block": block})
    ]
    out += [
        ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": d})
        for d in deltas
    ]
    return [*out, ("content_block_stop", {"type": "content_block_stop", "index": i})]


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_every_anthropic_content_block_streamed_is_kept_or_a_typed_error(kind: str) -> None:
    base = normal("anthropic.messages")
    _, want = run("anthropic.messages", base)
    stream = _insert(base, "message_delta", _block(1, build(BLOCKS[kind])))
    if kind not in KEPT_BLOCKS:
        with pytest.raises(srt.ProviderResponseError, match=f"'{kind}' content block"):
            run("anthropic.messages", stream)
        return
    text, reply = run("anthropic.messages", stream)
    assert text == TEXT
    if kind == "text":
        assert reply.message["content"] == TEXT + "x"
    elif kind == "tool_use":
        assert reply.message["tool_calls"][0]["function"] == {"name": "x", "arguments": "{}"}
    else:
        (art,) = reply.message["artifacts"]
        assert art["type"] == kind and art["data"] == build(BLOCKS[kind])
        assert reply.message["content"] == want.message["content"]


#: The block each delta type belongs to, as the API sends it.
DELTA_BLOCKS = {
    "text_delta": {"type": "text", "text": ""},
    "citations_delta": {"type": "text", "text": ""},
    "thinking_delta": {"type": "thinking", "thinking": "", "signature": ""},
    "signature_delta": {"type": "thinking", "thinking": "", "signature": ""},
    "input_json_delta": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
}


@pytest.mark.parametrize("kind", [type_of(m) for m in members(at.RawContentBlockDelta)])
def test_every_anthropic_delta_type_lands_in_its_block(kind: str) -> None:
    model = next(m for m in members(at.RawContentBlockDelta) if type_of(m) == kind)
    delta = build(model)
    if kind == "input_json_delta":
        delta["partial_json"] = '{"a": 1}'
    base = normal("anthropic.messages")
    stream = _insert(base, "message_delta", _block(1, DELTA_BLOCKS[kind], [delta]))
    text, reply = run("anthropic.messages", stream)
    msg = reply.message
    assert text == TEXT + ("x" if kind == "text_delta" else "")
    if kind in ("text_delta", "citations_delta"):
        assert msg["content"] == text  # (citations are not kept)
    elif kind == "input_json_delta":
        assert msg["tool_calls"][0]["function"]["arguments"] == '{"a":1}'
    else:
        data = msg["artifacts"][0]["data"]
        assert data[kind.removesuffix("_delta")] == "x"


@pytest.mark.parametrize("kind", [type_of(m) for m in members(at.RawMessageStreamEvent)])
def test_every_anthropic_event_type_is_read(kind: str) -> None:
    """A second event of each type (minimal) between the text block and message_delta."""
    model = next(m for m in members(at.RawMessageStreamEvent) if type_of(m) == kind)
    ev = build(model)
    base = normal("anthropic.messages")
    text, reply = run("anthropic.messages", _insert(base, "message_delta", [(kind, ev)]))
    _, want = run("anthropic.messages", base)
    if kind == "content_block_start":  # a text block at index 0 again: it starts over
        assert reply.message["content"] == ev["content_block"]["text"]
    elif kind == "content_block_delta":
        assert reply.message["content"] == TEXT + "x" and text == TEXT + "x"
    elif kind == "message_start":  # the model and id of the last start win
        assert (reply.model, reply.response_id) == (ev["message"]["model"], ev["message"]["id"])
        assert reply.message == want.message
    else:
        assert (text, reply) == (TEXT, want)


def test_unknown_anthropic_events_and_deltas_are_ignored() -> None:
    base = normal("anthropic.messages")
    want = run("anthropic.messages", base)
    extra: list[Event] = [
        ("future_event", {"type": "future_event", "x": {"y": [1]}}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "z"}},
        ),
    ]
    assert run("anthropic.messages", _insert(base, "content_block_stop", extra)) == want


# -- OpenAI Chat Completions ------------------------------------------------------------


def _chunk(delta: dict[str, Any], index: int = 0) -> Event:
    body = build(oc.ChatCompletionChunk, id="r_1", model="gpt-5")
    body["choices"] = [{"index": index, "delta": delta, "finish_reason": None}]
    oc.ChatCompletionChunk.model_validate(body)
    return (None, body)


def _chat_extra(field: str) -> tuple[Event, dict[str, Any]]:
    """A chunk carrying delta ``field`` and what the reply message gains from it."""
    if field == "refusal":
        return _chunk({"refusal": "I can't"}), {"refusal": "I can't"}
    if field == "tool_calls":
        call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f"}}
        return _chunk({"tool_calls": [call]}), {
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
    if field == "content":
        return _chunk({"content": "!"}), {"content": TEXT + "!"}
    # Not kept: the role (always assistant), audio, the deprecated function_call.
    model = oc.chat_completion_chunk.ChoiceDelta.model_fields[field].annotation
    (inner,) = [t for t in typing.get_args(model) if t is not type(None)]
    value = "assistant" if field == "role" else build(inner, id="a", data="QUJD", name="f")
    return _chunk({field: value}), {}


@pytest.mark.parametrize("field", sorted(oc.chat_completion_chunk.ChoiceDelta.model_fields))
def test_every_chat_delta_field_is_read_or_ignored(field: str) -> None:
    base = normal("openai.chat")
    _, want = run("openai.chat", base)
    extra, gains = _chat_extra(field)
    text, reply = run("openai.chat", [*base[:-2], extra, *base[-2:]])
    assert reply.message == {**want.message, **gains}
    assert text == (TEXT + "!" if field == "content" else TEXT)


def test_a_chat_refusal_streamed_is_kept_and_so_is_one_cut_off() -> None:
    base = normal("openai.chat")
    stream = [*base[:1], _chunk({"refusal": "I can"}), _chunk({"refusal": "'t"}), *base[-2:]]
    stream = [
        e
        for e in stream
        if not (e[1] != "[DONE]" and e[1]["choices"] and e[1]["choices"][0]["delta"].get("content"))
    ]
    text, reply = run("openai.chat", stream)
    assert text == "" and reply.message == {
        "role": "assistant",
        "content": "",
        "refusal": "I can't",
    }
    _, part = run("openai.chat", stream[:3], final=False)
    assert part.message["refusal"] == "I can't"


def test_other_chat_choices_and_a_usage_chunk_leave_the_reply_alone() -> None:
    base = normal("openai.chat")
    _, want = run("openai.chat", base)
    usage_only = build(oc.ChatCompletionChunk, id="r_1", model="gpt-5")
    usage_only["usage"] = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    extra = [_chunk({"content": "other"}, index=1), (None, usage_only)]
    text, reply = run("openai.chat", base[:-1] + extra + base[-1:])
    assert text == TEXT and reply.message == want.message
    assert reply.usage == Usage(5, 2, 0, 0) and want.usage == Usage()


# -- Bedrock ConverseStream ---------------------------------------------------------------

_SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
STREAM = _SERVICE.shape_for("ConverseStreamOutput")
EXCEPTIONS = sorted(k for k, v in STREAM.members.items() if v.metadata.get("exception"))
STARTS = sorted(_SERVICE.shape_for("ContentBlockStart").members)
DELTAS = sorted(_SERVICE.shape_for("ContentBlockDelta").members)

#: A minimal valid value of each delta and start member (botocore's validator checks them).
DELTA_VALUES: dict[str, Any] = {
    "text": "!",
    "toolUse": {"input": '{"a":1}'},
    "toolResult": [{"text": "r"}],
    "reasoningContent": {"text": "hm"},
    "citation": {"title": "t"},
    "image": {"source": {"bytes": "QUJD"}},
}
START_VALUES: dict[str, Any] = {
    "toolUse": {"toolUseId": "t1", "name": "f"},
    "toolResult": {"toolUseId": "t1"},
    "image": {"format": "png"},
}


def _bedrock_valid(payload: dict[str, Any], shape: str) -> None:
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(payload, _SERVICE.shape_for(shape))
    assert not report.has_errors(), report.generate_report()


def _bedrock_block(i: int, start: str | None, delta: str | None) -> list[Event]:
    out: list[Event] = []
    if start is not None:
        payload = {"contentBlockIndex": i, "start": {start: START_VALUES[start]}}
        _bedrock_valid(payload, "ContentBlockStartEvent")
        out.append(("contentBlockStart", payload))
    if delta is not None:
        payload = {"contentBlockIndex": i, "delta": {delta: DELTA_VALUES[delta]}}
        _bedrock_valid(payload, "ContentBlockDeltaEvent")
        out.append(("contentBlockDelta", payload))
    return [*out, ("contentBlockStop", {"contentBlockIndex": i})]


@pytest.mark.parametrize("delta", DELTAS)
def test_every_converse_delta_type_is_read_or_ignored(delta: str) -> None:
    assert set(DELTA_VALUES) >= set(DELTAS), "botocore knows a delta type this test does not"
    start = delta if delta in START_VALUES else None
    base = normal("bedrock.converse")
    stream = _insert(base, "messageStop", _bedrock_block(1, start, delta))
    fmt = get_format("bedrock.converse")
    dec = fmt.stream_decoder()
    text = "".join(d for f in fmt.encode_stream(stream) for d in dec.feed(f))
    reply = fmt.parse_reply(dec.response(), model=MODEL["bedrock"])
    assert text == TEXT + ("!" if delta == "text" else "")
    msg = reply.message
    if delta == "toolUse":
        assert msg["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    elif delta == "reasoningContent":
        assert msg["artifacts"][0]["data"] == {
            "reasoningContent": {"reasoningText": {"text": "hm"}}
        }
    else:
        assert msg == {"role": "assistant", "content": text}


def test_a_redacted_converse_reasoning_block_streamed_is_kept_whole() -> None:
    """``redactedContent`` arrives in one delta: kept as the block the non-streamed reply
    has, so it replays as the API sent it (it was dropped, leaving an empty
    ``reasoningText`` Bedrock refuses)."""
    base = normal("bedrock.converse")
    delta = {"contentBlockIndex": 0, "delta": {"reasoningContent": {"redactedContent": "QUJD"}}}
    _bedrock_valid(delta, "ContentBlockDeltaEvent")
    stream = [base[0], ("contentBlockDelta", delta), ("contentBlockStop", {"contentBlockIndex": 0})]
    stream += [
        (n, {**d, "contentBlockIndex": 1} if "contentBlockIndex" in d else d) for n, d in base[1:]
    ]
    fmt = get_format("bedrock.converse")
    dec = fmt.stream_decoder()
    for f in fmt.encode_stream(stream):
        dec.feed(f)
    block = {"reasoningContent": {"redactedContent": "QUJD"}}
    assert dec.response()["output"]["message"]["content"] == [block, {"text": TEXT}]
    reply = fmt.parse_reply(dec.response(), model=MODEL["bedrock"])
    assert reply.message["artifacts"][0]["data"] == block


@pytest.mark.parametrize("kind", EXCEPTIONS)
def test_every_converse_stream_exception_is_a_typed_error(kind: str) -> None:
    frame = encode_frame(
        {
            ":exception-type": kind,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": "boom"}).encode(),
    )
    dec = get_format("bedrock.converse").stream_decoder()
    dec.feed(event_frame("messageStart", {"role": "assistant"}))
    err = (
        srt.RateLimitError
        if kind in ("throttlingException", "serviceUnavailableException")
        else srt.ProviderResponseError
    )
    with pytest.raises(err, match=f"{kind} mid-stream: boom"):
        dec.feed(frame)


def test_unknown_converse_events_and_starts_are_ignored() -> None:
    base = normal("bedrock.converse")
    want = run("bedrock.converse", base)
    extra: list[Event] = [
        ("futureEvent", {"x": 1}),
        ("contentBlockStart", {"contentBlockIndex": 1, "start": {"future": {}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"future": {"y": 2}}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
    ]
    assert run("bedrock.converse", _insert(base, "messageStop", extra)) == want


# -- malformed events: typed errors -------------------------------------------------------

#: Events with members of the wrong JSON types, and what their error says: the format (for
#: Bedrock the ConverseStream event type) and the kind of Python error the event caused.
MALFORMED = [
    (
        "openai.chat",
        (None, {"id": "c", "choices": "abc"}),
        "a malformed openai.chat stream event (AttributeError)",
    ),
    (
        "openai.chat",
        (None, {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [1]}}]}),
        "a malformed openai.chat stream event (AttributeError)",
    ),
    (
        "openai.responses",
        ("response.created", {"type": "response.created", "response": [1]}),
        "a malformed openai.responses stream event (TypeError)",
    ),
    (
        "anthropic.messages",
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": [1]}),
        "a malformed anthropic.messages stream event (AttributeError)",
    ),
    (
        "anthropic.messages",
        ("content_block_start", {"type": "content_block_start", "index": "a"}),
        "a malformed anthropic.messages stream event (ValueError)",
    ),
    (
        "bedrock.converse",
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": 3}}),
        "a malformed ConverseStream contentBlockDelta event (AttributeError)",
    ),
    (
        "bedrock.converse",
        ("metadata", [1, 2]),
        "a malformed ConverseStream metadata event (AttributeError)",
    ),
]


@pytest.mark.parametrize(
    ("name", "event", "says"), MALFORMED, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(MALFORMED)]
)
def test_a_malformed_stream_event_is_a_provider_response_error(
    name: str, event: Event, says: str
) -> None:
    fmt: WireFormat = get_format(name)
    dec = fmt.stream_decoder()
    with pytest.raises(srt.ProviderResponseError, match="malformed") as caught:
        for frame in fmt.encode_stream([event]):
            dec.feed(frame)
    assert str(caught.value) == says
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


_TOOL_START = {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t", "name": "f"}}}


@pytest.mark.parametrize(
    ("frames", "says"),
    [
        (
            [
                event_frame("contentBlockStart", _TOOL_START),
                event_frame(
                    "contentBlockDelta",
                    {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{no"}}},
                ),
                event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            ],
            "a toolUse block streamed invalid JSON",
        ),
        (
            [
                encode_frame(
                    {":message-type": "event", ":event-type": "contentBlockDelta"}, b"{not json"
                )
            ],
            "event-stream payload of a 'contentBlockDelta' frame is not valid JSON",
        ),
    ],
    ids=["tool-input", "payload"],
)
def test_bedrocks_own_stream_errors_reach_the_caller_as_they_are(
    frames: list[bytes], says: str
) -> None:
    """An error the ConverseStream decoder raises itself is not renamed "malformed"."""
    dec = get_format("bedrock.converse").stream_decoder()
    with pytest.raises(srt.ProviderResponseError) as caught:
        for frame in frames:
            dec.feed(frame)
    assert str(caught.value) == says


# -- through a loopback HTTP stream ---------------------------------------------------------

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8"}


def _all_responses_events() -> list[Event]:
    base = normal("openai.responses")
    extra = [
        (k, build(m, sequence_number=99))
        for k, m in RESPONSE_EVENTS.items()
        if k
        not in _ERRORS | {"response.completed", "response.incomplete", "response.output_text.delta"}
    ]
    return _insert(base, "response.completed", extra)


def _all_anthropic_events() -> list[Event]:
    base = normal("anthropic.messages")
    extra: list[Event] = []
    for i, kind in enumerate(sorted(KEPT_BLOCKS - {"text"}), start=1):
        block = build(BLOCKS[kind])
        extra += _block(i, block)
    extra += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": build(at.CitationsDelta)},
        )
    ]
    extra += [("future_event", {"type": "future_event"}), ("ping", {"type": "ping"})]
    return _insert(base, "message_delta", extra)


@pytest.mark.parametrize("which", ["openai.responses", "anthropic.messages"])
def test_every_event_kind_through_a_real_stream(tmp_path: Any, which: str) -> None:
    events = _all_responses_events() if which == "openai.responses" else _all_anthropic_events()
    fmt = get_format(which)
    body = b"".join(fmt.encode_stream(events))
    _, want = run(which, events)
    with ProviderServer() as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("sdk")
        s.append({"role": "user", "content": "hi"})
        srv.fault(which, "status", code=200, body=body, headers=SSE_HEADERS)
        if which == "openai.responses":
            provider: Any = OpenAI(api="responses", api_key="sk-x", base_url=srv.url + "/v1")
        else:
            provider = Anthropic(api_key="sk-ant-x", base_url=srv.url)
        with closing(provider):
            text = "".join(
                s.stream(provider, model=MODEL[fmt.provider], max_tokens=64)
                if which != "openai.responses"
                else s.stream(provider, model=MODEL["openai"])
            )
        assert text == TEXT
        stored = s.messages()[-1]
        assert stored["content"] == want.message["content"]
        assert stored.get("artifacts", []) == want.message.get("artifacts", [])


def test_a_bedrock_stream_of_every_known_delta_through_a_real_stream(tmp_path: Any) -> None:
    base = normal("bedrock.converse")
    extra = _bedrock_block(1, "toolResult", "toolResult") + _bedrock_block(2, "image", "image")
    extra += [*_bedrock_block(0, None, "citation"), ("futureEvent", {"x": 1})]
    events = _insert(base, "messageStop", extra)
    body = b"".join(get_format("bedrock.converse").encode_stream(events))
    with ProviderServer() as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("sdk")
        s.append({"role": "user", "content": "hi"})
        srv.fault(
            "bedrock.converse_stream",
            "status",
            code=200,
            body=body,
            headers={"Content-Type": "application/vnd.amazon.eventstream"},
        )
        with closing(Bedrock(region="us-east-1", api_key="k", endpoint_url=srv.url)) as provider:
            assert "".join(s.stream(provider, model=MODEL["bedrock"])) == TEXT
        assert s.messages()[-1] == {"role": "assistant", "content": TEXT}


@pytest.mark.parametrize("how", ["stream", "astream"])
def test_a_whole_stream_whose_reply_cannot_be_stored_leaves_its_text_and_ledger_row(
    tmp_path: Any, how: str
) -> None:
    """The stream came whole (the caller saw its text) but holds a block srt does not keep
    (a server tool's): the error is raised as before, and the text the caller saw is
    stored as a partial reply of status ``error`` with its ledger row (the provider bills
    the call), which keeps the usage the events reported. Before, nothing was stored: no
    message, no ledger row (then a row of zero usage)."""
    import asyncio

    kind = "server_tool_use"
    events = _insert(normal("anthropic.messages"), "message_delta", _block(1, build(BLOCKS[kind])))
    body = b"".join(get_format("anthropic.messages").encode_stream(events))
    with ProviderServer() as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("sdk")
        s.append({"role": "user", "content": "hi"})
        srv.fault("anthropic.messages", "status", code=200, body=body, headers=SSE_HEADERS)
        provider = Anthropic(api_key="sk-ant-x", base_url=srv.url)
        seen: list[str] = []
        with closing(provider), pytest.raises(srt.ProviderResponseError, match=kind):
            if how == "stream":
                seen += s.stream(provider, model=MODEL["anthropic"], max_tokens=64)
            else:

                async def main() -> None:
                    try:
                        stream = s.astream(provider, model=MODEL["anthropic"], max_tokens=64)
                        async for delta in stream:
                            seen.append(delta)
                    finally:
                        await provider.aclose()

                asyncio.run(main())
        assert "".join(seen) == TEXT
        (row,) = rt.store.calls()
        assert row.status == "error" and kind in (row.error or "")
        assert (row.input_tokens, row.output_tokens) == (5, 2)  # the usage the events gave
        entries = s.entries()
        assert entries[-1].status == "error"
        assert entries[-1].message["content"] == TEXT
