"""A provider's refusal of a prompt longer than the model's context window.

Every provider, sync and async, streamed or not, against ``srt.testing`` answering as the
real service does: ``srt.ProviderContextOverflowError`` (caught as ``ContextOverflowError``
and as ``ProviderResponseError``), with the sizes the provider states, sent once (never
retried), one ledger row of status ``error``, and nothing appended to the session, not
even the message given with ``append=``. Before, each was a plain
``ProviderResponseError`` (and a streamed Responses call's ``error`` event stored an
empty partial reply with the user's message).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import srt
from srt.providers import Provider
from srt.testing import ProviderServer
from support import (  # noqa: F401  (close_made: an autouse fixture)
    call_in,
    close_made,
    made,
    provider_on,
)

KEY = "sk-CANARY-overflow-0123456789"
WINDOW = 60
BIG = {"role": "user", "content": "many words in a long question " * 40}
MODELS = {
    "openai": "gpt-4o",
    "responses": "gpt-4o",
    "azure": "gpt-4o",
    "anthropic": "claude-sonnet-4-6",
    "bedrock": "anthropic.claude-sonnet-4-6",
    "llama.cpp": "local-model",
    "vllm": "local-model",
}
ENDPOINT = {
    "openai": "openai.chat",
    "responses": "openai.responses",
    "azure": "azure.chat",
    "anthropic": "anthropic.messages",
    "bedrock": "bedrock.converse",
    "llama.cpp": "openai.chat",
    "vllm": "openai.chat",
}
#: Which sizes each provider's refusal states (prompt, limit).
STATES = {
    "openai": (True, True),
    "responses": (False, False),
    "azure": (True, True),
    "anthropic": (True, True),
    "bedrock": (False, False),
    "llama.cpp": (True, True),
    "vllm": (True, True),
}


def provider(kind: str, srv: ProviderServer) -> Provider:
    """llama.cpp's and vLLM's servers through ``OpenAICompatible``."""
    return made(provider_on("compatible" if kind in ("llama.cpp", "vllm") else kind, srv.url, KEY))


@pytest.fixture(params=sorted(MODELS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def srv(kind: str) -> Iterator[ProviderServer]:
    imitate = kind if kind in ("llama.cpp", "vllm") else "openai"
    with ProviderServer(api_key=KEY, context_window=WINDOW, imitate=imitate) as server:
        yield server
        assert server.errors == []


@pytest.mark.parametrize("how", ["send", "stream", "asend", "astream"])
def test_a_prompt_over_the_window_is_a_typed_refusal_and_nothing_is_appended(
    kind: str, how: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = provider(kind, srv)
    s = rt.session("long")
    s.append({"role": "system", "content": "Be brief."})
    before = s.messages()
    with pytest.raises(srt.ProviderContextOverflowError) as caught:
        call_in(how, s, p, model=MODELS[kind], append=BIG)
    err = caught.value
    assert isinstance(err, srt.ContextOverflowError) and isinstance(err, srt.ProviderResponseError)
    rec = srv.log[-1]
    assert len(srv.log) == 1  # sent once: a refusal is not retried
    stream_refused = kind == "responses" and how in ("stream", "astream")
    # (a streamed Responses call is refused after its head, by an ``error`` event)
    assert err.status == (None if stream_refused else 400)
    assert err.provider_message and err.provider_message in str(err)
    says_prompt, says_limit = STATES[kind]
    assert err.prompt_tokens == (rec.prompt_tokens if says_prompt else None)
    assert err.limit == (WINDOW if says_limit else None)
    assert rec.prompt_tokens > WINDOW
    assert s.messages() == before and rt.session("long").messages() == before
    (row,) = s.calls()
    assert row["status"] == "error" and row["input_tokens"] is None
    assert KEY not in str(err) and KEY not in (row["error"] or "")


def test_the_window_is_per_model_and_the_refused_prompt_can_go_elsewhere(
    kind: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """``context_windows`` gives one model a larger window; the session that was refused
    on the small one is sent, unchanged, to the large one."""
    srv.context_window = None
    srv.context_windows = {"small": WINDOW, "large": 10 * WINDOW}
    p = provider(kind, srv)
    s = rt.session("per-model")
    s.append(BIG)
    with pytest.raises(srt.ContextOverflowError):
        s.send(p, model=MODELS[kind] + "-small")
    assert len(s.messages()) == 1
    s.send(p, model=MODELS[kind] + "-large")
    assert [m["role"] for m in s.messages()] == ["user", "assistant"]
    assert [r["status"] for r in s.calls()] == ["error", "ok"]


def test_other_client_errors_are_not_overflows(
    kind: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """A 400 that is not about the window (a bad parameter) and a 413 (Anthropic's
    ``request_too_large`` is bytes, not tokens) stay plain ``ProviderResponseError``s."""
    p = provider(kind, srv)
    s = rt.session("other")
    s.append({"role": "user", "content": "hi"})
    for code, message in ((400, "Invalid value for 'temperature'."), (413, "Request too large")):
        srv.fault(ENDPOINT[kind], "status", code=code, message=message)
        with pytest.raises(srt.ProviderResponseError) as caught:
            s.send(p, model=MODELS[kind])
        assert not isinstance(caught.value, srt.ContextOverflowError)
        assert caught.value.status == code


@pytest.mark.parametrize("kind", ["responses"])
def test_a_refusal_event_that_echoes_the_key_is_scrubbed(
    kind: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """A streamed refusal's text comes from the event: a key it quotes is scrubbed from
    the error, its ``provider_message`` and the ledger row."""
    from srt.wire import get_format

    fmt = get_format("openai.responses")
    error = {"type": "invalid_request_error", "code": "context_length_exceeded"}
    error["message"] = f"Your input exceeds the context window (key {KEY})."
    body = b"".join(fmt.encode_stream([("error", {"type": "error", "error": error})]))
    headers = {"Content-Type": "text/event-stream; charset=utf-8"}
    srv.fault("openai.responses", "status", code=200, body=body, headers=headers)
    s = rt.session("echo")
    with pytest.raises(srt.ProviderContextOverflowError) as caught:
        "".join(
            s.stream(provider(kind, srv), model="gpt-4o", append={"role": "user", "content": "x"})
        )
    err = caught.value
    assert "context window" in err.provider_message
    for text in (str(err), err.provider_message, s.calls()[0]["error"]):
        assert KEY not in text
    assert s.messages() == []
