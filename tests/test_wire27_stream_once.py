"""A streamed call builds its response object once at the stream's end (the usage check
and the stored reply read the same object; it was built twice), and a streamed reply is
stored as the same call not streamed stores it: message, usage and ledger row."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import pytest

import srt
from srt.providers import Anthropic, Bedrock, OpenAI
from srt.testing import ProviderServer
from srt.wire import get_format
from srt.wire.base import StreamDecoder

REPLY = {"text": "Let me look. " * 40, "tool_calls": [{"name": "weather", "arguments": {"q": "x"}}]}
PROVIDERS = {
    "chat": lambda url: (OpenAI(api="chat", api_key="sk-x", base_url=url + "/v1"), "gpt-4o-mini"),
    "responses": lambda url: (
        OpenAI(api="responses", api_key="sk-x", base_url=url + "/v1"),
        "gpt-4o-mini",
    ),
    "anthropic": lambda url: (Anthropic(api_key="sk-ant-x", base_url=url), "claude-opus-4-8"),
    "bedrock": lambda url: (
        Bedrock(region="us-east-1", api_key="k", endpoint_url=url),
        "anthropic.claude-x",
    ),
}

KW = {"anthropic": {"max_tokens": 500}}


def _row(s: srt.Session) -> tuple[Any, ...]:
    (row,) = s.calls()
    keys = ("status", "input_tokens", "output_tokens", "model", "reply_model", "format")
    return tuple(row[k] for k in keys)


@pytest.mark.parametrize("which", sorted(PROVIDERS))
def test_a_streamed_reply_is_stored_as_the_same_reply_not_streamed(
    tmp_path: Any, which: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []

    with ProviderServer() as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        provider, model = PROVIDERS[which](srv.url)
        decoder = type(get_format(provider.format).stream_decoder(model))
        response = decoder.response

        def counted(self: StreamDecoder) -> dict[str, Any]:
            built.append(1)
            out: dict[str, Any] = response(self)
            return out

        monkeypatch.setattr(decoder, "response", counted)
        with closing(provider):
            plain, streamed = rt.session("plain"), rt.session("streamed")
            for s in (plain, streamed):
                s.append({"role": "user", "content": "weather?"})
                srv.script("*", [REPLY])
            sent = plain.send(provider, model=model, **KW.get(which, {}))
            assert built == []
            text = "".join(streamed.stream(provider, model=model, **KW.get(which, {})))
        assert built == [1]  # (twice before)
        assert text == REPLY["text"]
        # the tool call ids differ (the server numbers them per request); all else is equal
        got = [s.messages()[-1] for s in (plain, streamed)]
        for m in got:
            (call,) = m["tool_calls"]
            call["id"] = "-"
        assert got[0] == got[1] == {**sent.message, "tool_calls": got[0]["tool_calls"]}
        assert _row(plain) == _row(streamed)
