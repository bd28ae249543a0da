"""An empty text through the gateway, per upstream format. OpenAI takes one; Anthropic
("messages: text content blocks must be non-empty") and Bedrock ("The text field in the
ContentBlock object ... is blank") refuse an empty text block anywhere, and srt.testing
refuses it as they do. So to those two an empty text part beside other content is left
out (the model sees the same; before, the request was refused), and a message with
nothing else is refused up front: a 400 in OpenAI's shape, nothing sent or stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from gateway_support import UPSTREAM_KEY, Harness, harness, last_sent, refused_400

BLOCK_MODELS = ["claude-sonnet-4-5", "bedrock/anthropic.claude-x"]


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _texts(h: Harness, model: str) -> list[list[Any]]:
    """The text blocks of each message the upstream was last sent."""
    key = "text"
    return [
        [b[key] for b in m["content"] if key in b and b.get("type", "text") == "text"]
        for m in last_sent(h)["messages"]
    ]


@pytest.mark.parametrize("model", BLOCK_MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_an_empty_text_part_beside_others_is_left_out(
    gw: Harness, model: str, stream: bool
) -> None:
    parts = [
        {"type": "input_text", "text": ""},
        {"type": "input_text", "text": "hi"},
        {"type": "input_text", "text": ""},
    ]
    given: Any = [
        {"role": "user", "content": "first"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": ""}]},
        {"role": "user", "content": parts},
    ]
    c = gw.client()
    if stream:
        with c.responses.stream(model=model, input=given) as s:
            r = s.get_final_response()
    else:
        r = c.responses.create(model=model, input=given)
    assert r.status == "completed" and r.output_text.startswith("reply")
    # the empty assistant message is left out, the user turns merge; no empty block went
    assert _texts(gw, model) == [["first", "hi"]]
    # stored as given: the next turn (to a Chat upstream) sends the empty parts
    again = c.responses.create(model="gpt-4o-mini", previous_response_id=r.id, input="more")
    assert again.status == "completed"
    sent = last_sent(gw)["messages"]
    assert sent[1] == {"role": "assistant", "content": [{"type": "text", "text": ""}]}
    assert sent[2]["content"] == [
        {"type": "text", "text": ""},
        {"type": "text", "text": "hi"},
        {"type": "text", "text": ""},
    ]


@pytest.mark.parametrize("model", BLOCK_MODELS)
@pytest.mark.parametrize(
    "content", ["", [{"type": "input_text", "text": ""}, {"type": "input_text", "text": ""}]]
)
def test_a_message_of_empty_text_alone_is_refused_up_front(
    gw: Harness, model: str, content: Any
) -> None:
    err = refused_400(
        gw, "input", "invalid_value", model=model, input=[{"role": "user", "content": content}]
    )
    assert "cannot express an empty text block" in err.message


def test_an_empty_text_goes_to_openai_as_it_is(gw: Harness) -> None:
    r = gw.client().responses.create(
        model="gpt-4o-mini",
        input=[{"role": "user", "content": ""}, {"role": "user", "content": "x"}],
    )
    assert r.status == "completed"
    assert last_sent(gw)["messages"][0] == {"role": "user", "content": ""}


def test_srt_testing_refuses_an_empty_text_block_as_the_providers_do(gw: Harness) -> None:
    blocks = [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]
    a = anthropic.Anthropic(base_url=gw.srv.url, api_key=UPSTREAM_KEY, max_retries=0)
    with a, pytest.raises(anthropic.BadRequestError, match="blocks must be non-empty"):
        a.messages.create(
            model="claude-opus-4-8",
            max_tokens=16,
            messages=[{"role": "user", "content": blocks}],  # type: ignore[misc]
        )
    converse = httpx.post(
        f"{gw.srv.url}/model/anthropic.claude-x/converse",
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        json={"messages": [{"role": "user", "content": [{"text": ""}, {"text": "hi"}]}]},
    )
    assert converse.status_code == 400 and "is blank" in converse.json()["message"]
