"""A usage count of ``1e999`` (JSON that Python reads as infinity) is a malformed usage:
a ``ProviderResponseError`` like any other count that is no count, never a bare
``OverflowError`` (``int(inf)``) that the gateway answered with a plain 500."""

from __future__ import annotations

import json

import pytest

from srt.errors import ProviderResponseError
from srt.wire import get_format

_TEXT = '"role": "assistant"'
REPLIES = {
    "openai.chat": '{"id": "c", "object": "chat.completion", "created": 1, "model": "m", '
    '"choices": [{"index": 0, "finish_reason": "stop", "message": {' + _TEXT + ", "
    '"content": "hi"}}], "usage": {"prompt_tokens": N, "completion_tokens": 1}}',
    "openai.responses": '{"id": "resp_1", "object": "response", "created_at": 1, '
    '"model": "m", "status": "completed", "output": [{"type": "message", "id": "msg_1", '
    + _TEXT
    + ', "status": "completed", "content": [{"type": "output_text", "text": "hi", '
    '"annotations": []}]}], "usage": {"input_tokens": N, "output_tokens": 1}}',
    "anthropic.messages": '{"id": "msg_1", "type": "message", ' + _TEXT + ', "model": "m", '
    '"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn", '
    '"usage": {"input_tokens": N, "output_tokens": 1}}',
    "bedrock.converse": '{"output": {"message": {' + _TEXT + ', "content": [{"text": "hi"}]}}, '
    '"stopReason": "end_turn", "usage": {"inputTokens": N, "outputTokens": 1, '
    '"totalTokens": 2}}',
}


@pytest.mark.parametrize("fmt", sorted(REPLIES))
def test_an_infinite_usage_count_is_a_malformed_usage(fmt: str) -> None:
    wire = get_format(fmt)
    fine = wire.parse_reply(json.loads(REPLIES[fmt].replace("N", "7")), model="m")
    assert fine.usage is not None and fine.usage.input_tokens == 7
    for count in ("1e999", "-1e999"):
        data = json.loads(REPLIES[fmt].replace("N", count))
        with pytest.raises(ProviderResponseError, match="usage"):
            wire.parse_reply(data, model="m")
