"""The gateway against OpenAI's API reference, through the official ``openai`` SDK: each
status code, error ``type``/``code``/``param`` and object shape as api.openai.com answers
(or a clear OpenAI-shaped refusal naming the parameter)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_support import Harness, harness


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _requests_reached(h: Harness, n: int) -> None:
    """Until the upstream has received ``n`` requests (10 s at most, then fail)."""
    deadline = time.monotonic() + 10
    while len(h.srv.log) < n:
        assert time.monotonic() < deadline, f"{len(h.srv.log)} of {n} upstream requests"
        time.sleep(0.01)


def _raced(h: Harness, thread: str, n: int, **create: Any) -> openai.APIStatusError:
    """``responses.create(**create)`` while another worker commits a message on
    ``thread`` under it (after the request reached the upstream, its ``n``-th): the
    error it answers."""
    c = h.client()
    h.srv.fault("*", "delay", seconds=1.0)
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(c.responses.create(model="gpt-4o-mini", **create))
        except openai.APIStatusError as exc:
            out.append(exc)

    t = threading.Thread(target=run)
    t.start()
    _requests_reached(h, n)
    h.rt.session(thread).append({"role": "user", "content": "from worker two"})
    t.join()
    (err,) = out
    assert isinstance(err, openai.APIStatusError), err
    return err


def test_a_raced_response_chain_409_names_the_chain_and_what_to_do(gw: Harness) -> None:
    c = gw.client()
    first = c.responses.create(model="gpt-4o-mini", input="one")
    rec, _ = gw.gateway.records.get_response("default", first.id)
    err = _raced(gw, rec["thread"], 2, input="two", previous_response_id=first.id)
    assert (err.status_code, err.code, err.param) == (409, "conflict", "previous_response_id")
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    assert "response chain" in err.message and first.id in err.message
    assert "conversation" not in err.message and "Retry" in err.message
    again = c.responses.create(model="gpt-4o-mini", input="two", previous_response_id=first.id)
    assert [i.content[0].text for i in c.responses.input_items.list(again.id, order="asc").data][
        -1
    ] == "two"  # the retry branches from the named response, as the message says


def test_a_raced_conversation_409_names_the_conversation(gw: Harness) -> None:
    c = gw.client()
    conv = c.conversations.create(items=[{"role": "user", "content": "one"}])
    rec = gw.gateway.records.get_conversation("default", conv.id)
    err = _raced(gw, rec["thread"], 1, input="two", conversation=conv.id)
    assert (err.status_code, err.code, err.param) == (409, "conflict", "conversation")
    assert "conversation" in err.message and "Retry" in err.message
    assert "response chain" not in err.message
    texts = [i.content[0].text for i in c.conversations.items.list(conv.id, order="asc").data]
    assert texts == ["one", "from worker two"]  # nothing of the refused request
