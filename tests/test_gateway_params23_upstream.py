"""The Responses parameters a Chat, Anthropic or Bedrock upstream used to drop in
silence: ``text.verbosity`` is Chat's ``verbosity`` (and reaches a Responses upstream
without a ``text.format``), refused by name where the upstream has no such control; a
reasoning summary is refused by name on Chat, which has none. The official ``openai``
SDK is the client, srt.testing's server the upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, count, harness

CLAUDE = "claude-sonnet-4-5"
BEDROCK = "bedrock/anthropic.claude-3-7-sonnet"
#: Upstreams speaking OpenAI Chat: OpenAI's, an OpenAI-compatible server, Azure.
CHATS = ["gpt-4o-mini", "compat/llama-3", "azure/gpt-4o"]


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _sent(gw: Harness) -> dict[str, Any]:
    body: dict[str, Any] = gw.srv.log[-1].body
    return body


def _refused(gw: Harness, param: str, code: str, **fields: Any) -> openai.BadRequestError:
    """The request is a 400 naming ``param``, with nothing sent upstream or stored."""
    before = gw.srv.requests.total()
    fields.setdefault("model", "gpt-4o-mini")
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().responses.create(input="hi", **fields)
    err = caught.value
    assert (err.status_code, err.param, err.code) == (400, param, code), err.body
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    assert gw.srv.requests.total() == before
    assert count(gw.rt.path, "messages") == 0
    return err


# -- 1. text.verbosity ------------------------------------------------------------------


@pytest.mark.parametrize("model", CHATS)
def test_verbosity_is_chats_verbosity(gw: Harness, model: str) -> None:
    c = gw.client()
    r = c.responses.create(model=model, input="hi", text={"verbosity": "low"})
    assert r.status == "completed" and r.text is not None and r.text.verbosity == "low"
    assert _sent(gw)["verbosity"] == "low" and "text" not in _sent(gw)
    assert c.responses.retrieve(r.id).text.verbosity == "low"
    fmt = {"type": "json_object"}
    c.responses.create(model=model, input="json", text={"verbosity": "high", "format": fmt})
    assert _sent(gw)["verbosity"] == "high"
    assert _sent(gw)["response_format"] == {"type": "json_object"}
    c.responses.create(model=model, input="hi")
    assert "verbosity" not in _sent(gw)


def test_verbosity_reaches_a_responses_upstream_without_a_format(gw: Harness) -> None:
    """A Responses upstream got ``text`` only with a structured format: a verbosity
    alone (or beside ``format: text``) was dropped."""
    c = gw.client()
    c.responses.create(model="responses/gpt-5", input="hi", text={"verbosity": "high"})
    assert _sent(gw)["text"] == {"verbosity": "high"}
    text = {"format": {"type": "text"}, "verbosity": "low"}
    c.responses.create(model="responses/gpt-5", input="hi", text=text)
    assert _sent(gw)["text"] == text
    c.responses.create(model="responses/gpt-5", input="hi", text={"format": {"type": "text"}})
    assert "text" not in _sent(gw)


@pytest.mark.parametrize("model", [CLAUDE, BEDROCK])
def test_verbosity_other_than_the_default_is_refused_where_there_is_none(
    gw: Harness, model: str
) -> None:
    """Anthropic and Bedrock have no verbosity control: ``low`` or ``high`` is a 400
    naming ``text.verbosity``; ``medium``, OpenAI's default, is what they give."""
    for value in ("low", "high"):
        err = _refused(
            gw, "text.verbosity", "unsupported_parameter", model=model, text={"verbosity": value}
        )
        assert f"text.verbosity '{value}'" in err.message
    r = gw.client().responses.create(model=model, input="hi", text={"verbosity": "medium"})
    assert r.status == "completed" and r.text is not None and r.text.verbosity == "medium"
    assert "verbosity" not in _sent(gw) and "text" not in _sent(gw)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "responses/gpt-5", CLAUDE])
def test_a_verbosity_not_openais_is_invalid(gw: Harness, model: str) -> None:
    _refused(gw, "text.verbosity", "invalid_value", model=model, text={"verbosity": "terse"})


# -- 2. reasoning.summary on Chat --------------------------------------------------------


@pytest.mark.parametrize("model", CHATS)
def test_a_reasoning_summary_is_refused_by_chat(gw: Harness, model: str) -> None:
    """Chat Completions has a reasoning effort and no summaries: a summary asked of a
    Chat upstream is a 400 naming it, not a response without one."""
    for key in ("summary", "generate_summary"):
        for value in ("auto", "concise", "detailed"):
            reasoning = {"effort": "low", key: value}
            _refused(
                gw, f"reasoning.{key}", "unsupported_parameter", model=model, reasoning=reasoning
            )
    r = gw.client().responses.create(
        model=model, input="hi", reasoning={"effort": "low", "summary": None}
    )
    assert r.status == "completed" and _sent(gw)["reasoning_effort"] == "low"


def test_a_reasoning_summary_reaches_a_responses_upstream(gw: Harness) -> None:
    reasoning = {"effort": "low", "summary": "auto"}
    r = gw.client().responses.create(model="responses/o4-mini", input="hi", reasoning=reasoning)
    assert r.status == "completed" and _sent(gw)["reasoning"] == reasoning
    assert r.reasoning is not None and r.reasoning.summary == "auto"
