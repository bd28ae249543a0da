"""A response's status and how it ended, as api.openai.com says them, created, streamed
and retrieved alike, through the official ``openai`` SDK (srt.testing's server the
upstream; every event and object held to the SDK's models strictly).

- A reply an upstream's content filter stopped (OpenAI Chat's ``content_filter``, a
  Responses upstream's ``incomplete``/``content_filter``, Anthropic's ``refusal``,
  Bedrock's ``content_filtered`` and ``guardrail_intervened``) is ``incomplete`` with
  ``incomplete_details.reason`` ``content_filter`` (the gateway said ``completed``).
- An upstream stream cut short is ``failed`` with a ``server_error`` (the gateway said
  ``incomplete`` with no ``incomplete_details``, which OpenAI never sends).
- A ``background`` response starts ``queued`` (created and streamed: ``response.queued``),
  as OpenAI's lifecycle does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness
from test_gateway29_shapes import as_openai_response, check_stream, streamed


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    path = str(Path(tmp_path_factory.mktemp("gw30")) / "srt.db")
    with pytest.MonkeyPatch.context() as mp, harness(path, mp) as h:
        yield h


# -- a content filter's stop ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "model", "stop"),
    [
        ("chat", "gpt-4o-mini", "content_filter"),
        ("responses", "responses/gpt-4o-mini", "content_filter"),
        ("anthropic", "claude-sonnet-4-5", "content_filter"),
        ("bedrock", "bedrock/anthropic.claude-3-haiku", "content_filter"),
        ("bedrock", "bedrock/anthropic.claude-3-haiku", "guardrail_intervened"),
    ],
    ids=["chat", "responses", "anthropic-refusal", "bedrock-filtered", "bedrock-guardrail"],
)
def test_a_reply_stopped_by_a_content_filter_is_incomplete_for_content_filter(
    gw: Harness, target: str, model: str, stop: str
) -> None:
    c = gw.client()
    filtered = {"text": "I was saying", "stop": stop}
    gw.srv.script(target, [filtered])
    made = c.responses.with_raw_response.create(model=model, input="say it")
    resp = as_openai_response(made.http_response.json())
    assert resp.status == "incomplete", resp.status
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "content_filter"
    assert resp.error is None
    got = c.responses.with_raw_response.retrieve(resp.id).http_response.json()
    assert as_openai_response(got) == resp
    gw.srv.script(target, [filtered])
    evs = streamed(c, model=model, input="again")
    final = check_stream(evs)
    assert evs[-1]["type"] == "response.incomplete"
    assert (final["status"], final["incomplete_details"]) == (
        "incomplete",
        {"reason": "content_filter"},
    )
    assert final["error"] is None
    stored = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
    assert as_openai_response(stored).model_dump() == as_openai_response(final).model_dump()


# -- an upstream stream cut short -----------------------------------------------------------

CUT_MODELS = [
    ("chat", "gpt-4o-mini"),
    ("responses", "responses/gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("bedrock", "bedrock/anthropic.claude-3-haiku"),
]


def _ended(c: openai.OpenAI, rid: str) -> dict[str, Any]:
    """The response ``rid`` once it has ended, as sent (JSON)."""
    deadline = time.monotonic() + 30  # a bound on the wait, nothing timed asserted
    while True:
        got = c.responses.with_raw_response.retrieve(rid).http_response.json()
        if got["status"] not in ("queued", "in_progress"):
            return got  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"response {rid} did not end: {got['status']}"
        time.sleep(0.05)


@pytest.mark.parametrize(("target", "model"), CUT_MODELS, ids=[t for t, _ in CUT_MODELS])
def test_an_upstream_stream_cut_short_is_a_failed_response_as_openai_reports_one(
    gw: Harness, target: str, model: str
) -> None:
    """The upstream closes mid-reply. OpenAI's ``incomplete_details.reason`` is only
    ``max_output_tokens`` or ``content_filter`` (the spec), neither of which this is: an
    answer broken off by a server fault is ``failed`` with a ``server_error``, its
    ``incomplete_details`` null (the gateway said ``incomplete`` with no reason and an
    error, a response OpenAI never sends). Its partial message is kept, ``incomplete``;
    streamed, retrieved and a background response's alike."""
    c = gw.client()
    gw.srv.fault(target, "reset_after_events", n=6)
    evs = streamed(c, model=model, input="long " * 50)
    final = check_stream(evs)
    assert evs[-1]["type"] == "response.failed"
    assert (final["status"], final["incomplete_details"]) == ("failed", None)
    assert final["error"]["code"] == "server_error" and final["error"]["message"]
    assert [i["status"] for i in final["output"]] == ["incomplete"]
    stored = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
    assert as_openai_response(stored).model_dump() == as_openai_response(final).model_dump()
    gw.srv.fault(target, "reset_after_events", n=6)
    bg = c.responses.create(model=model, input="long " * 50, background=True)
    ended = as_openai_response(_ended(c, bg.id))
    assert (ended.status, ended.incomplete_details) == ("failed", None)
    assert ended.error is not None and ended.error.code == "server_error"


# -- background: queued first ---------------------------------------------------------------


def _replayed(c: openai.OpenAI, rid: str, after: int | None = None) -> list[dict[str, Any]]:
    extra = {} if after is None else {"starting_after": after}
    with c.responses.with_streaming_response.retrieve(rid, stream=True, **extra) as r:
        return [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: ")]


def test_a_background_response_starts_queued_as_openais_lifecycle_does(gw: Harness) -> None:
    """api.openai.com answers a ``background`` create with the response ``queued``, no
    output (the openai-dotnet recordings' ``CanCancelBackgroundResponses``), and streams
    one as ``response.created`` and ``response.queued`` (both ``queued``), then
    ``response.in_progress`` (``CanStreamBackgroundResponses``, whose replay from
    ``starting_after=1`` begins at that ``in_progress``, number 2). The gateway answered
    ``in_progress`` (or whatever the run had reached) and streamed no ``queued``."""
    c = gw.client()
    gw.srv.fault("chat", "endless", interval=0.05)
    made = c.responses.with_raw_response.create(model="gpt-4o-mini", input="bg", background=True)
    queued = as_openai_response(made.http_response.json())
    assert (queued.status, queued.output, queued.background) == ("queued", [], True)
    assert c.responses.cancel(queued.id).status == "cancelled"
    gw.srv.clear()
    evs = streamed(c, input="bg", background=True)
    final = check_stream(evs)
    assert final["status"] == "completed"
    head = [(e["type"], e["response"]["status"]) for e in evs[:3]]
    assert head == [
        ("response.created", "queued"),
        ("response.queued", "queued"),
        ("response.in_progress", "in_progress"),
    ]
    again = _replayed(c, final["id"])
    assert check_stream(again) == final
    assert [(e["type"], e["response"]["status"]) for e in again[:3]] == head
    tail = _replayed(c, final["id"], after=1)
    assert (tail[0]["type"], tail[0]["sequence_number"]) == ("response.in_progress", 2)
    plain = streamed(c, input="not in the background")  # unchanged: no queued
    assert [e["type"] for e in plain[:3]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ]
    assert plain[0]["response"]["status"] == "in_progress"


# -- reasoning first ------------------------------------------------------------------------


def test_a_reply_with_reasoning_streams_its_items_in_the_order_openai_sends_them(
    gw: Harness,
) -> None:
    """A Responses upstream's reply with a reasoning item: api.openai.com streams the
    reasoning item first (``output_index`` 0: added, its summary's parts, done), then the
    message (1), each item's ``output_item.added`` before its parts, no index reused or
    skipped (openai-dotnet's ``StreamingResponsesWithReasoningSummary`` recording). The
    gateway numbered the message 0, as the final response's reasoning item, and
    announced the reasoning item after it."""
    c = gw.client()
    model = "responses/o4-mini"
    gw.srv.script("responses", [{"text": "the answer is four", "reasoning": "add two and two"}])
    evs = streamed(c, model=model, input="2+2?")
    final = check_stream(evs)
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    kinds = [(e["type"], e.get("output_index")) for e in evs]
    assert kinds[2:5] == [
        ("response.output_item.added", 0),
        ("response.reasoning_summary_part.added", 0),
        ("response.reasoning_summary_text.delta", 0),
    ]
    assert kinds.index(("response.output_item.done", 0)) < kinds.index(
        ("response.output_item.added", 1)
    )
    got = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
    assert as_openai_response(got).output == as_openai_response(final).output
    made = c.responses.create(model=model, input="again", previous_response_id=final["id"])
    assert made.status == "completed"
    again = _replayed(c, final["id"])
    assert check_stream(again) == final


def test_a_reply_with_reasoning_cut_short_keeps_its_items_where_it_streamed_them(
    gw: Harness,
) -> None:
    """The upstream closes mid-text, after its reasoning item: the failed response holds
    the reasoning item at 0 and the partial message at 1, where the stream put them (a
    cut reply's partial kept only the message, which the stream had numbered 1)."""
    c = gw.client()
    said = {"text": "the answer is " + "four " * 40, "reasoning": "add two and two"}
    gw.srv.script("responses", [said])
    gw.srv.fault("responses", "reset_after_events", n=12)
    evs = streamed(c, model="responses/o4-mini", input="2+2?")
    final = check_stream(evs)
    assert evs[-1]["type"] == "response.failed"
    assert [(i["type"], i.get("status")) for i in final["output"]] == [
        ("reasoning", None),
        ("message", "incomplete"),
    ]
    got = c.responses.with_raw_response.retrieve(final["id"]).http_response.json()
    assert as_openai_response(got).output == as_openai_response(final).output


@pytest.mark.parametrize(
    ("target", "model"),
    [
        ("chat", "gpt-4o-mini"),
        ("responses", "responses/gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
        ("bedrock", "bedrock/anthropic.claude-3-haiku"),
    ],
)
def test_a_reply_cut_where_the_context_window_ends_is_incomplete_for_max_output_tokens(
    gw: Harness, target: str, model: str
) -> None:
    """Anthropic's and Bedrock's ``model_context_window_exceeded`` (OpenAI Chat's
    ``length``, the Responses API's own ``max_output_tokens``): the reply was cut off,
    so the response is ``incomplete`` for ``max_output_tokens`` (the gateway said
    ``completed`` for the first two)."""
    c = gw.client()
    cut = {"text": "I was saying", "stop": "model_context_window_exceeded"}
    gw.srv.script(target, [cut])
    made = c.responses.with_raw_response.create(model=model, input="say it")
    resp = as_openai_response(made.http_response.json())
    assert resp.status == "incomplete", resp.status
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    gw.srv.script(target, [cut])
    final = check_stream(streamed(c, model=model, input="again"))
    assert (final["status"], final["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
