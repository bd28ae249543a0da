"""A response's output items as api.openai.com marks them, created, retrieved, streamed
and replayed alike, through the official ``openai`` SDK (srt.testing's server the
upstream; every event and object held to the SDK's models strictly).

- An ``incomplete`` response (the reply cut at ``max_output_tokens``) has its message
  ``incomplete`` too: the spec's output message ``status`` is ``in_progress``,
  ``completed`` or ``incomplete``, and a message the model did not finish is not
  ``completed`` (the gateway said ``completed`` while the response said ``incomplete``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness
from test_gateway29_shapes import as_openai_response, check_stream, streamed

LONG = "word " * 200  # 250 of the test server's tokens: cut at 16
MODELS = [
    "responses/gpt-4o-mini",
    "claude-sonnet-4-5",
    "bedrock/anthropic.claude-3-haiku",
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    path = str(Path(tmp_path_factory.mktemp("gw31")) / "srt.db")
    with pytest.MonkeyPatch.context() as mp, harness(path, mp) as h:
        yield h


def _replayed(c: openai.OpenAI, rid: str) -> list[dict[str, Any]]:
    with c.responses.with_streaming_response.retrieve(rid, stream=True) as r:
        return [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ")]


def _statuses(resp: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i["type"], i.get("status")) for i in resp["output"]]


@pytest.mark.parametrize("store", [True, False], ids=["stored", "not-stored"])
@pytest.mark.parametrize("model", MODELS)
def test_an_incomplete_responses_message_is_incomplete(
    gw: Harness, model: str, store: bool
) -> None:
    c = gw.client()
    gw.srv.script("*", [LONG])
    made = c.responses.with_raw_response.create(
        model=model, input="say it all", max_output_tokens=16, store=store
    )
    resp = made.http_response.json()
    as_openai_response(resp)
    assert resp["status"] == "incomplete"
    assert _statuses(resp) == [("message", "incomplete")]
    if store:
        got = c.responses.with_raw_response.retrieve(resp["id"]).http_response.json()
        assert _statuses(got) == [("message", "incomplete")]
        assert as_openai_response(got) == as_openai_response(resp)
        again = _replayed(c, resp["id"])
        assert check_stream(again)["status"] == "incomplete"
        done = [e["item"] for e in again if e["type"] == "response.output_item.done"]
        assert [i["status"] for i in done] == ["incomplete"]
    gw.srv.script("*", [LONG])
    evs = streamed(c, model=model, input="again", max_output_tokens=16, store=store)
    final = check_stream(evs)
    assert evs[-1]["type"] == "response.incomplete"
    assert _statuses(final) == [("message", "incomplete")]
    done = [e["item"] for e in evs if e["type"] == "response.output_item.done"]
    assert [i["status"] for i in done] == ["incomplete"]
    if store:
        got = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
        assert as_openai_response(got).model_dump() == as_openai_response(final).model_dump()


def test_a_completed_responses_message_stays_completed(gw: Harness) -> None:
    c = gw.client()
    gw.srv.script("*", ["short"])
    r = c.responses.create(model="claude-sonnet-4-5", input="be brief", max_output_tokens=16)
    assert r.status == "completed"
    assert [i.status for i in r.output if i.type == "message"] == ["completed"]
    assert [i.status for i in c.responses.retrieve(r.id).output if i.type == "message"] == [
        "completed"
    ]


# -- an upstream's NaN or infinity ----------------------------------------------------------

#: The test server's Responses reply with a reasoning item carrying a number JSON has no
#: word for (Python's ``json`` reads ``NaN`` and ``Infinity``; a client's parser does not).
NONFINITE = ["NaN", "Infinity", "-Infinity"]


def _strict_json(raw: bytes) -> Any:
    def refuse(word: str) -> Any:
        raise AssertionError(f"the gateway sent {word}, which is not JSON: {raw[:300]!r}")

    return json.loads(raw, parse_constant=refuse)


@pytest.mark.parametrize("word", NONFINITE)
def test_an_upstreams_non_finite_number_is_a_502_never_invalid_json(gw: Harness, word: str) -> None:
    """A Responses upstream's reasoning item carries ``NaN`` (or an infinity): the
    gateway answers OpenAI's shape of an upstream failure (502 ``upstream_error``), not
    the number as a bare word (invalid JSON) nor a 400 blaming the client's input;
    streamed, the stream ends ``response.failed`` (a ``server_error``), every event JSON;
    nothing of the turn is kept."""
    c = gw.client()
    gw.srv.script("responses", [{"text": "hi", "reasoning": "thinking it over"}])
    old = '"type": "reasoning"'  # (the server's JSON body: spaced; its events: compact)
    gw.srv.fault("responses", "rewrite", old=old, new=f'{old}, "x_score": {word}')
    with pytest.raises(openai.APIStatusError) as caught:
        c.responses.create(model="responses/gpt-4o-mini", input="think")
    assert caught.value.status_code == 502, caught.value
    err = _strict_json(caught.value.response.content)["error"]
    assert err["code"] == "upstream_error" and "NaN and infinity" in err["message"]
    gw.srv.script("responses", [{"text": "hi", "reasoning": "thinking it over"}])
    old = '"type":"reasoning"'
    gw.srv.fault("responses", "rewrite", old=old, new=f'{old},"x_score":{word}')
    with c.responses.with_streaming_response.create(
        model="responses/gpt-4o-mini", input="think", stream=True
    ) as r:
        raw = [x for x in r.iter_lines() if x.startswith("data: ")]
    evs = [_strict_json(x[6:].encode()) for x in raw]
    final = check_stream(evs)
    assert evs[-1]["type"] == "response.failed"
    assert final["error"]["code"] == "server_error"
    assert "NaN and infinity" in final["error"]["message"]
    got = c.responses.with_raw_response.retrieve(final["id"]).http_response
    assert _strict_json(got.content)["status"] == "failed"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_chat_completion_never_carries_an_upstreams_non_finite_number(
    gw: Harness, stream: bool
) -> None:
    """The Chat Completions endpoint over a Chat upstream whose tool call carries
    ``NaN``: every byte the client gets is JSON (a 502 ``upstream_error``; streamed, the
    call as Chat's chunks carry it), never the bare word (a guard: this held already)."""
    c = gw.client()
    gw.srv.script("chat", [{"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}])
    old = '"type":"function"' if stream else '"type": "function"'
    gw.srv.fault("chat", "rewrite", old=old, new=old + (',"x":NaN' if stream else ', "x": NaN'))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "call f"}]}
    if not stream:
        with pytest.raises(openai.APIStatusError) as caught:
            c.chat.completions.create(**body)
        assert caught.value.status_code == 502
        assert _strict_json(caught.value.response.content)["error"]["code"] == "upstream_error"
        return
    with c.chat.completions.with_streaming_response.create(stream=True, **body) as r:
        lines = [x[6:] for x in r.iter_lines() if x.startswith("data: ") and x != "data: [DONE]"]
    for x in lines:
        _strict_json(x.encode())


# -- a cancelled response's stream ----------------------------------------------------------


def test_a_cancelled_background_stream_ends_response_cancelled(gw: Harness) -> None:
    """A streamed ``background`` response cancelled mid-reply (``POST .../cancel``): its
    stream closes the message (``incomplete``) and ends ``response.cancelled`` with the
    response ``cancelled`` (it ended ``response.incomplete``, an event OpenAI sends for a
    token cap or a content filter only); its replay ends the same, and retrieve agrees."""
    c = gw.client(timeout=30)
    gw.srv.fault("openai.chat", "endless", interval=0.05, after=3)
    gw.srv.script("chat", ["word " * 200])
    with c.responses.with_streaming_response.create(
        model="gpt-4o-mini", input="slowly", background=True, stream=True
    ) as r:
        evs: list[dict[str, Any]] = []
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            evs.append(json.loads(line[6:]))
            deltas = [e for e in evs if e["type"] == "response.output_text.delta"]
            if deltas == evs[-1:]:  # the first text: cancel it
                assert c.responses.cancel(evs[0]["response"]["id"]).status == "cancelled"
    final = check_stream(evs)
    assert evs[-1]["type"] == "response.cancelled"
    assert final["status"] == "cancelled" and final["error"] is None
    assert _statuses(final) == [("message", "incomplete")]
    got = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
    assert as_openai_response(got).model_dump() == as_openai_response(final).model_dump()
    again = _replayed(c, final["id"])
    assert again[-1]["type"] == "response.cancelled"
    assert check_stream(again) == got


# -- an Anthropic or Bedrock upstream's reasoning -------------------------------------------

THINKERS = [("anthropic", "claude-sonnet-4-5"), ("bedrock", "bedrock/anthropic.claude-3-haiku")]


@pytest.mark.parametrize(("target", "model"), THINKERS, ids=[t for t, _ in THINKERS])
def test_an_upstreams_thinking_is_a_reasoning_item_before_the_message(
    gw: Harness, target: str, model: str
) -> None:
    """Claude's ``thinking`` block (Bedrock's ``reasoningContent``) is shown as OpenAI
    shows a reasoning model's: a ``reasoning`` item before the message, its text the
    summary; created, retrieved, streamed (announced first, ``output_index`` 0, its
    summary's events) and replayed alike (it was not shown at all). A follow-up turn
    sends the thinking back as the provider requires (Anthropic: with its signature,
    which srt.testing's server checks)."""
    c = gw.client()
    thought = "The user greets me; I greet back."
    gw.srv.script(target, [{"text": "hello!", "reasoning": thought}])
    made = c.responses.with_raw_response.create(model=model, input="hi")
    resp = made.http_response.json()
    as_openai_response(resp)
    assert _statuses(resp) == [("reasoning", None), ("message", "completed")]
    assert resp["output"][0]["summary"] == [{"type": "summary_text", "text": thought}]
    got = c.responses.with_raw_response.retrieve(resp["id"]).http_response.json()
    assert got["output"] == resp["output"]
    again = _replayed(c, resp["id"])
    assert check_stream(again)["output"] == resp["output"]
    gw.srv.script(target, [{"text": "hello again!", "reasoning": thought}])
    evs = streamed(c, model=model, input="hi again")
    final = check_stream(evs)
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": thought}]
    first = next(e for e in evs if e["type"] == "response.output_item.added")
    assert (first["output_index"], first["item"]["type"]) == (0, "reasoning")
    stored = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
    assert stored["output"] == final["output"]
    more = c.responses.create(model=model, input="and?", previous_response_id=final["id"])
    assert more.status == "completed"
    sent = gw.srv.log[-1].body
    blocks = [b for m in sent["messages"] if isinstance(m["content"], list) for b in m["content"]]
    if target == "anthropic":
        thinking = [b for b in blocks if b.get("type") == "thinking"]
        assert thinking and thinking[-1]["thinking"] == thought and thinking[-1]["signature"]
    else:
        said = [b["reasoningContent"]["reasoningText"] for b in blocks if "reasoningContent" in b]
        assert said and said[-1] == {"text": thought, "signature": "sig=="}
