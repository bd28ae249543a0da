"""Anthropic's thinking tokens are read back as the reply's reasoning tokens.

The Messages API reports the output tokens a model spent thinking as
``usage.output_tokens_details.thinking_tokens`` (the SDK's ``Usage`` and
``MessageDeltaUsage``: ``OutputTokensDetails.thinking_tokens``, at most
``output_tokens``). srt read OpenAI's ``reasoning_tokens`` into ``Usage.reasoning_tokens``
(and the ledger's column) but never Anthropic's, so a thinking model's rows said 0. Now
the reply, the stream and the ledger row carry them; a report of more thinking tokens
than output tokens is a malformed usage (``ProviderResponseError``).
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import anthropic
import pytest

import srt
from srt.errors import ProviderResponseError
from srt.providers import Anthropic
from srt.testing import ProviderServer
from srt.wire import get_format

FMT = get_format("anthropic.messages")
KEY = "sk-ant-test-wire31"


def _message(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


USAGE = {
    "input_tokens": 10,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 120,
    "output_tokens_details": {"thinking_tokens": 100},
}


def test_the_sdk_reads_the_same_field() -> None:
    # (the reference: the official SDK's model of the reply srt parses below)
    msg = anthropic.types.Message.model_validate(_message(USAGE))
    assert msg.usage.output_tokens_details is not None
    assert msg.usage.output_tokens_details.thinking_tokens == 100


def test_a_reply_s_thinking_tokens_are_its_reasoning_tokens() -> None:
    reply = FMT.parse_reply(_message(USAGE))
    assert reply.usage.reasoning_tokens == 100
    assert reply.usage.output_tokens == 120


def test_a_streamed_reply_s_thinking_tokens_are_its_reasoning_tokens() -> None:
    start = _message({"input_tokens": 10, "output_tokens": 1})
    start["content"], start["stop_reason"] = [], None
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 120, "output_tokens_details": {"thinking_tokens": 100}},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    dec = FMT.stream_decoder("claude-sonnet-4-5")
    for chunk in FMT.encode_stream(events):
        dec.feed(chunk)
    assert dec.done
    usage = dec.reply().usage
    assert (usage.output_tokens, usage.reasoning_tokens) == (120, 100)


@pytest.mark.parametrize("thinking", [121, -1, "many", [1]])
def test_a_malformed_thinking_count_is_a_malformed_usage(thinking: Any) -> None:
    usage = {**USAGE, "output_tokens_details": {"thinking_tokens": thinking}}
    with pytest.raises(ProviderResponseError, match="malformed usage"):
        FMT.parse_reply(_message(usage))


def test_the_ledger_row_keeps_the_thinking_tokens(tmp_path: Path) -> None:
    body = anthropic.types.Message.model_validate(_message(USAGE)).model_dump_json().encode()
    with ProviderServer(api_key=KEY) as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("think")
        s.append({"role": "user", "content": "Hi?"})
        srv.fault(
            "anthropic.messages",
            "status",
            code=200,
            body=body,
            headers={"content-type": "application/json"},
        )
        provider = Anthropic(api_key=KEY, base_url=srv.url)
        with closing(provider):
            reply = s.send(provider, model="claude-sonnet-4-5")
        assert reply.usage.reasoning_tokens == 100
        (row,) = s.calls()
        assert (row["output_tokens"], row["reasoning_tokens"]) == (120, 100)
