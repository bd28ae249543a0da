"""A streamed Chat Completions tool call's ``function.name``: read as the official SDK's
``ChatCompletionStreamState`` reads it (pieces appended), except a piece that repeats the
whole name so far, which some OpenAI-compatible servers (MiniMax M2.7 through NVIDIA NIM)
send in every delta of a call: appended, it became ``get_weatherget_weather``."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import openai.types.chat as oc
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer
from srt.wire import get_format

SSE_HEADERS = {"Content-Type": "text/event-stream"}


def _chunks(pieces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat chunks: one per tool-call delta ``pieces`` (call 0), then the finish."""
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    for i, piece in enumerate(pieces):
        call: dict[str, Any] = {"index": 0, "function": piece}
        if i == 0:
            call |= {"id": "call_1", "type": "function"}
        out.append({**head, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    out.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return out


def _srt(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    fmt = get_format("openai.chat")
    dec = fmt.stream_decoder()
    for frame in fmt.encode_stream([(None, c) for c in chunks] + [(None, "[DONE]")]):
        dec.feed(frame)
    (call,) = dec.reply().message["tool_calls"]
    fn: dict[str, Any] = call["function"]
    return fn


def _sdk(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for c in chunks:
        state.handle_chunk(oc.ChatCompletionChunk.model_validate(c))
    fn = state.get_final_completion().choices[0].message.tool_calls[0].function  # type: ignore[index,union-attr]
    return {"name": fn.name, "arguments": fn.arguments}


ARGS = [{"arguments": '{"city":'}, {"arguments": '"Oslo"}'}]


@pytest.mark.parametrize(
    "pieces",
    [
        # OpenAI: the name whole in the first delta, then none (null, or left out)
        [{"name": "get_weather", "arguments": ""}, *ARGS],
        [{"name": "get_weather", "arguments": ""}, *[{**a, "name": None} for a in ARGS]],
        # a server that splits the name
        [{"name": "get_"}, {"name": "weather"}, *ARGS],
        [{"name": "get_"}, {"name": "weather", "arguments": '{"city":'}, ARGS[1]],
    ],
)
def test_a_name_sent_once_or_in_pieces_is_read_as_the_sdk_reads_it(
    pieces: list[dict[str, Any]],
) -> None:
    chunks = _chunks(pieces)
    want = {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert _sdk(chunks) == want
    assert _srt(chunks) == want


@pytest.mark.parametrize("empty", ["", None])
def test_a_name_sent_again_in_every_delta_is_read_once(empty: str | None) -> None:
    """Before: ``get_weatherget_weatherget_weather`` (the SDK's state still says so)."""
    pieces = [{"name": "get_weather", "arguments": empty}]
    pieces += [{"name": "get_weather", **a} for a in ARGS]
    assert _srt(_chunks(pieces)) == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}


def test_a_name_that_is_not_a_string_is_a_provider_response_error() -> None:
    fmt = get_format("openai.chat")
    dec = fmt.stream_decoder()
    frames = fmt.encode_stream([(None, c) for c in _chunks([{"name": 7}])])
    with pytest.raises(srt.ProviderResponseError, match="tool call name is not a string"):
        for frame in frames:
            dec.feed(frame)


def test_a_resent_name_through_a_real_stream_is_stored_once(tmp_path: Any) -> None:
    pieces = [{"name": "get_weather", "arguments": ""}]
    pieces += [{"name": "get_weather", **a} for a in ARGS]
    events = [(None, c) for c in _chunks(pieces)] + [(None, "[DONE]")]
    body = b"".join(get_format("openai.chat").encode_stream(events))
    with ProviderServer() as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("names")
        s.append({"role": "user", "content": "weather in Oslo?"})
        srv.fault("openai.chat", "status", code=200, body=body, headers=SSE_HEADERS)
        provider = OpenAI(api="chat", api_key="sk-x", base_url=srv.url + "/v1")
        with closing(provider):
            assert list(s.stream(provider, model="gpt-4o-mini")) == []
        (call,) = s.messages()[-1]["tool_calls"]
        assert call == {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
