"""The Responses parameters a Chat, Anthropic or Bedrock upstream used to drop in
silence: ``text.verbosity`` is Chat's ``verbosity`` (and reaches a Responses upstream
without a ``text.format``), refused by name where the upstream has no such control; a
reasoning summary is refused by name on Chat, which has none; and the response echoes
``safety_identifier``, ``prompt_cache_retention`` and ``top_logprobs`` as OpenAI's does.
The official ``openai`` SDK is the client, srt.testing's server the upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_support import Harness, harness, last_sent, refused_400

CLAUDE = "claude-sonnet-4-5"
BEDROCK = "bedrock/anthropic.claude-3-7-sonnet"
#: Upstreams speaking OpenAI Chat: OpenAI's, an OpenAI-compatible server, Azure.
CHATS = ["gpt-4o-mini", "compat/llama-3", "azure/gpt-4o"]


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


# -- 1. text.verbosity ------------------------------------------------------------------


@pytest.mark.parametrize("model", CHATS)
def test_verbosity_is_chats_verbosity(gw: Harness, model: str) -> None:
    c = gw.client()
    r = c.responses.create(model=model, input="hi", text={"verbosity": "low"})
    assert r.status == "completed" and r.text is not None and r.text.verbosity == "low"
    assert last_sent(gw)["verbosity"] == "low" and "text" not in last_sent(gw)
    assert c.responses.retrieve(r.id).text.verbosity == "low"
    fmt = {"type": "json_object"}
    c.responses.create(model=model, input="json", text={"verbosity": "high", "format": fmt})
    assert last_sent(gw)["verbosity"] == "high"
    assert last_sent(gw)["response_format"] == {"type": "json_object"}
    c.responses.create(model=model, input="hi")
    assert "verbosity" not in last_sent(gw)


def test_verbosity_reaches_a_responses_upstream_without_a_format(gw: Harness) -> None:
    """A Responses upstream got ``text`` only with a structured format: a verbosity
    alone (or beside ``format: text``) was dropped."""
    c = gw.client()
    c.responses.create(model="responses/gpt-5", input="hi", text={"verbosity": "high"})
    assert last_sent(gw)["text"] == {"verbosity": "high"}
    text = {"format": {"type": "text"}, "verbosity": "low"}
    c.responses.create(model="responses/gpt-5", input="hi", text=text)
    assert last_sent(gw)["text"] == text
    c.responses.create(model="responses/gpt-5", input="hi", text={"format": {"type": "text"}})
    assert "text" not in last_sent(gw)


@pytest.mark.parametrize("model", [CLAUDE, BEDROCK])
def test_verbosity_other_than_the_default_is_refused_where_there_is_none(
    gw: Harness, model: str
) -> None:
    """Anthropic and Bedrock have no verbosity control: ``low`` or ``high`` is a 400
    naming ``text.verbosity``; ``medium``, OpenAI's default, is what they give."""
    for value in ("low", "high"):
        err = refused_400(
            gw, "text.verbosity", "unsupported_parameter", model=model, text={"verbosity": value}
        )
        assert f"text.verbosity '{value}'" in err.message
    r = gw.client().responses.create(model=model, input="hi", text={"verbosity": "medium"})
    assert r.status == "completed" and r.text is not None and r.text.verbosity == "medium"
    assert "verbosity" not in last_sent(gw) and "text" not in last_sent(gw)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "responses/gpt-5", CLAUDE])
def test_a_verbosity_not_openais_is_invalid(gw: Harness, model: str) -> None:
    refused_400(gw, "text.verbosity", "invalid_value", model=model, text={"verbosity": "terse"})


# -- 2. reasoning.summary on Chat --------------------------------------------------------


@pytest.mark.parametrize("model", CHATS)
def test_a_reasoning_summary_is_refused_by_chat(gw: Harness, model: str) -> None:
    """Chat Completions has a reasoning effort and no summaries: a summary asked of a
    Chat upstream is a 400 naming it, not a response without one."""
    for key in ("summary", "generate_summary"):
        for value in ("auto", "concise", "detailed"):
            reasoning = {"effort": "low", key: value}
            refused_400(
                gw, f"reasoning.{key}", "unsupported_parameter", model=model, reasoning=reasoning
            )
    r = gw.client().responses.create(
        model=model, input="hi", reasoning={"effort": "low", "summary": None}
    )
    assert r.status == "completed" and last_sent(gw)["reasoning_effort"] == "low"


def test_a_reasoning_summary_reaches_a_responses_upstream(gw: Harness) -> None:
    reasoning = {"effort": "low", "summary": "auto"}
    r = gw.client().responses.create(model="responses/o4-mini", input="hi", reasoning=reasoning)
    assert r.status == "completed" and last_sent(gw)["reasoning"] == reasoning
    assert r.reasoning is not None and r.reasoning.summary == "auto"


# -- 5. the fields the response echoes ---------------------------------------------------

_ECHOED = {"safety_identifier": "sha-of-user", "prompt_cache_retention": "24h", "top_logprobs": 0}


def _echoed(r: Any) -> dict[str, Any]:
    return {k: getattr(r, k) for k in _ECHOED}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "responses/gpt-4o-mini", CLAUDE])
def test_the_response_echoes_what_the_request_said(gw: Harness, model: str) -> None:
    c = gw.client()
    fields: dict[str, Any] = dict(_ECHOED)
    if model == CLAUDE:  # (Anthropic caches by breakpoint: no retention to send)
        fields.pop("prompt_cache_retention")
    r = c.responses.create(model=model, input="hi", **fields)
    want = {k: fields.get(k) for k in _ECHOED}
    assert _echoed(r) == want
    assert _echoed(c.responses.retrieve(r.id)) == want
    plain = c.responses.create(model=model, input="hi")
    assert _echoed(plain) == dict.fromkeys(_ECHOED)
    assert _echoed(c.responses.retrieve(plain.id)) == dict.fromkeys(_ECHOED)


def test_a_streamed_and_a_background_response_echo_them_too(gw: Harness) -> None:
    c = gw.client()
    with c.responses.stream(model="gpt-4o-mini", input="hi", **_ECHOED) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert _echoed(events[0].response) == _ECHOED
    assert _echoed(final) == _ECHOED and _echoed(c.responses.retrieve(final.id)) == _ECHOED
    bg = c.responses.create(model="gpt-4o-mini", input="hi", background=True, **_ECHOED)
    assert _echoed(bg) == _ECHOED and _echoed(c.responses.retrieve(bg.id)) == _ECHOED


def test_echoed_defaults_are_not_stored(gw: Harness) -> None:
    """A response is stored as what differs from a new one's defaults: the new fields
    left out cost it nothing, and given they are kept."""
    c = gw.client()
    plain = c.responses.create(model="gpt-4o-mini", input="hi")
    given = c.responses.create(model="gpt-4o-mini", input="hi", **_ECHOED)
    store = gw.gateway.records.store
    small = {}
    for r in (plain, given):
        row = store.get_object("gw.response", "default", r.id)
        assert row is not None
        small[r.id] = json.loads(row.value)
    assert not set(_ECHOED) & set(small[plain.id]["r"])
    assert {k: small[given.id]["r"][k] for k in _ECHOED} == _ECHOED
