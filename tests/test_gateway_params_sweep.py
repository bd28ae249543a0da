"""Every Responses parameter a client sends is either served (it reaches the upstream in
the upstream's own words, or the gateway does what it asks) or refused with an OpenAI
400 naming it: none is accepted and then dropped in silence. The official ``openai`` SDK
is the client and srt.testing's server the upstream (its log holds what it received)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness, last_sent, refused_400

CLAUDE = "claude-sonnet-4-5"
BEDROCK = "bedrock/anthropic.claude-3-7-sonnet"


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


@pytest.mark.parametrize("model", ["gpt-4o-mini", "responses/gpt-4o-mini", "azure/gpt-4o"])
def test_prompt_cache_key_replaces_srts_own_key(gw: Harness, model: str) -> None:
    c = gw.client()
    plain = c.responses.create(model=model, input="hi")
    own = last_sent(gw).get("prompt_cache_key")
    r = c.responses.create(model=model, input="hi", prompt_cache_key="tenant-7/agent")
    assert r.prompt_cache_key == "tenant-7/agent" and plain.prompt_cache_key is None
    if model.startswith("azure/"):  # Azure takes a key only where configured to
        assert own is None and "prompt_cache_key" not in last_sent(gw)
    else:
        assert own is not None and own != "tenant-7/agent"
        assert last_sent(gw)["prompt_cache_key"] == "tenant-7/agent"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "responses/gpt-4o-mini"])
def test_user_and_safety_identifier_reach_an_openai_upstream(gw: Harness, model: str) -> None:
    r = gw.client().responses.create(
        model=model, input="hi", user="u-1", safety_identifier="sha-of-user"
    )
    assert r.status == "completed" and r.user == "u-1"
    sent = last_sent(gw)
    assert sent["user"] == "u-1" and sent["safety_identifier"] == "sha-of-user"


def test_safety_identifier_is_anthropics_metadata_user_id(gw: Harness) -> None:
    c = gw.client()
    c.responses.create(model=CLAUDE, input="hi", user="u-1", safety_identifier="sha-of-user")
    assert last_sent(gw)["metadata"] == {"user_id": "sha-of-user"}
    c.responses.create(model=CLAUDE, input="hi", user="u-1")
    assert last_sent(gw)["metadata"] == {"user_id": "u-1"}


def test_chat_completions_user_reaches_the_upstream(gw: Harness) -> None:
    gw.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], user="u-2"
    )
    assert last_sent(gw)["user"] == "u-2"


def test_chat_completions_verbosity_reaches_the_upstream_or_isrefused_400(gw: Harness) -> None:
    """``verbosity`` on ``/v1/chat/completions`` is Chat's own, sent to a Chat upstream as
    ``text.verbosity`` is; a value OpenAI does not take is a 400 naming it; Anthropic has
    no such control (a 400 unless ``medium``, its default)."""
    c = gw.client()
    msgs: Any = [{"role": "user", "content": "hi"}]
    c.chat.completions.create(model="gpt-4o-mini", messages=msgs, verbosity="low")
    assert last_sent(gw)["verbosity"] == "low"
    before = gw.srv.requests.total()
    for model, value, code in (
        ("gpt-4o-mini", "loud", "invalid_value"),
        ("claude-sonnet-4-5", "high", "unsupported_parameter"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            c.chat.completions.create(model=model, messages=msgs, verbosity=value)  # type: ignore[arg-type]
        assert caught.value.code == code, caught.value.body
        assert "verbosity" in str(caught.value.body)
    assert gw.srv.requests.total() == before


def test_token_logprobs_are_refused_by_name(gw: Harness) -> None:
    """srt's replies carry no log probabilities from any upstream: asking for them is a
    400, not a response whose ``logprobs`` are silently empty."""
    refused_400(gw, "top_logprobs", "unsupported_parameter", top_logprobs=5)
    refused_400(gw, "include", "unsupported_parameter", include=["message.output_text.logprobs"])
    r = gw.client().responses.create(model="gpt-4o-mini", input="hi", top_logprobs=0)
    assert r.status == "completed"


def test_max_tool_calls_is_kept_on_the_response(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="hi", max_tool_calls=3)
    assert r.max_tool_calls == 3
    assert c.responses.retrieve(r.id).max_tool_calls == 3


def test_encrypted_reasoning_is_asked_of_a_responses_upstream(gw: Harness) -> None:
    c = gw.client()
    c.responses.create(model="responses/o4-mini", input="hi")
    assert "include" not in last_sent(gw)
    c.responses.create(
        model="responses/o4-mini", input="hi", include=["reasoning.encrypted_content"]
    )
    assert last_sent(gw)["include"] == ["reasoning.encrypted_content"]


@pytest.mark.parametrize("model", [CLAUDE, BEDROCK])
def test_what_anthropic_and_bedrock_cannot_express_is_refused_by_name(
    gw: Harness, model: str
) -> None:
    refused_400(
        gw, "reasoning.effort", "unsupported_parameter", model=model, reasoning={"effort": "low"}
    )
    refused_400(
        gw, "reasoning.summary", "unsupported_parameter", model=model, reasoning={"summary": "auto"}
    )
    refused_400(gw, "service_tier", "unsupported_parameter", model=model, service_tier="priority")
    fmt = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    refused_400(gw, "text.format", "unsupported_parameter", model=model, text={"format": fmt})
    refused_400(gw, "temperature", "unsupported_parameter", model=model, temperature=1.5)
    r = gw.client().responses.create(
        model=model, input="hi", service_tier="auto", reasoning={"effort": None}, temperature=1
    )
    assert r.status == "completed"
    sent = last_sent(gw)
    assert (sent.get("inferenceConfig") or sent)["temperature"] == 1


def test_bedrock_refuses_parallel_tool_calls_off(gw: Harness) -> None:
    refused_400(
        gw, "parallel_tool_calls", "unsupported_parameter", model=BEDROCK, parallel_tool_calls=False
    )


def test_service_tier_is_one_of_openais(gw: Harness) -> None:
    refused_400(gw, "service_tier", "invalid_value", service_tier="gold")
    r = gw.client().responses.create(model="gpt-4o-mini", input="hi", service_tier="flex")
    assert r.service_tier == "flex" and last_sent(gw)["service_tier"] == "flex"
