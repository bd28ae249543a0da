"""``srt serve`` when the upstream refuses a prompt over its model's context window: an
OpenAI-shaped 400 with ``code: "context_length_exceeded"`` and the upstream's own
message (the refusal is ``ProviderContextOverflowError``, mapped by type), whichever
upstream and whether or not the client streams. Nothing is stored: the conversation
goes on from where it was."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from gateway_support import harness

UPSTREAM_WINDOW = 300
LONG = "a long question about gardens " * 120
# (model routed to the upstream, the message that upstream words its refusal in)
UPSTREAMS = {
    "chat": ("gpt-4o-mini", "maximum context length is 300 tokens"),
    "responses": ("responses/gpt-4o", "Your input exceeds the context window of this model"),
    "anthropic": ("claude-sonnet-4-6", "prompt is too long: "),
    "bedrock": ("bedrock/anthropic.claude-sonnet-4-6", "Input is too long for requested model"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("upstream", sorted(UPSTREAMS))
def test_an_upstream_refusal_is_a_context_length_exceeded_400(
    db_path: str, monkeypatch: pytest.MonkeyPatch, upstream: str, stream: bool
) -> None:
    model, words = UPSTREAMS[upstream]
    with harness(db_path, monkeypatch) as h:
        h.srv.context_window = UPSTREAM_WINDOW
        c = h.client()
        first = c.responses.create(model=model, input="hi")
        with pytest.raises(openai.BadRequestError) as caught:
            r = c.responses.create(
                model=model, input=LONG, previous_response_id=first.id, stream=stream
            )
            if stream:
                list(r)
        err = caught.value
        assert err.status_code == 400 and err.code == "context_length_exceeded"
        assert err.param == "input" and words in err.message
        assert "127.0.0.1" not in err.message  # the upstream's words, not srt's URL text
        again = c.responses.create(model=model, input="short", previous_response_id=first.id)
        assert again.status == "completed"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("upstream", sorted(UPSTREAMS))
def test_chat_completions_refused_for_its_length_is_a_400_before_any_chunk(
    db_path: str, monkeypatch: pytest.MonkeyPatch, upstream: str, stream: bool
) -> None:
    """As OpenAI's own server: an over-long Chat request is an HTTP 400 before any
    stream starts, streamed or not (not a 200 with a role chunk, then an error chunk)."""
    model, words = UPSTREAMS[upstream]
    with harness(db_path, monkeypatch) as h:
        h.srv.context_window = UPSTREAM_WINDOW
        c = h.client()
        msgs: list[Any] = [{"role": "user", "content": LONG}]
        with pytest.raises(openai.BadRequestError) as caught:
            # the SDK raises while opening the stream: no chunk is read
            c.chat.completions.create(model=model, messages=msgs, stream=stream)
        err = caught.value
        assert err.status_code == 400 and err.code == "context_length_exceeded"
        assert err.param == "messages" and words in err.message
        assert "127.0.0.1" not in err.message
        short: list[Any] = [{"role": "user", "content": "short"}]
        ok = c.chat.completions.create(model=model, messages=short)
        assert ok.choices[0].finish_reason == "stop"
