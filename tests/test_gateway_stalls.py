"""``srt serve`` on an upstream that stalls: after its first events it sends only
keep-alives (an SSE comment every 30 s). When the client goes away, or the response is
cancelled, the worker reading that upstream is freed at once (``ReplyStream.cancel``
aborts the blocked read), not at the upstream's next delta, which never comes, nor at
the call's total cap (600 s): the upstream's connection is closed, the ledger row and the
response end ``cancelled`` with what arrived, and the session goes on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from gateway_support import Harness, count, harness

T = TypeVar("T")
HI: list[Any] = [{"role": "user", "content": "hi"}]
#: Seconds between the stalled upstream's keep-alives: longer than any wait below.
STALL_S = 30.0


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def until(fn: Callable[[], T | None], timeout: float = 10.0) -> T | None:
    """``fn()``'s first true value, polled; None if there is none within ``timeout``
    (a generous bound on an event, not a measure of time)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def rows(gw: Harness, prefix: str) -> list[str]:
    return [r["status"] for r in gw.rt.calls() if str(r["session_name"]).startswith(prefix)]


def test_a_chat_client_leaving_a_stalled_upstream_frees_the_worker(gw: Harness) -> None:
    gw.srv.fault("openai.chat", "endless", interval=STALL_S, after=3)
    c = gw.client()
    stream = c.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    got = [chunk for _, chunk in zip(range(2), stream, strict=False)]
    assert got[1].choices[0].delta.content  # a delta came: now only keep-alives do
    assert gw.srv.open_streams == 1
    stream.close()
    assert gw.srv.wait_streams_closed(timeout=10.0), "the worker still reads the upstream"
    assert until(lambda: rows(gw, "gw/default/chat") == ["cancelled"])
    assert gw.rt.session("gw/default/chat").messages() == []  # stateless: nothing kept
    after = c.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert after.choices[0].finish_reason == "stop"


def test_a_chat_client_leaving_before_any_delta_frees_the_worker(gw: Harness) -> None:
    """An upstream that sends nothing but keep-alives from the start: the gateway sends
    no byte before the first delta (a refusal then is still an HTTP error), so it learns
    that the client left from the request's own channel, and cancels the upstream call."""
    import openai

    gw.srv.fault("openai.chat", "endless", interval=STALL_S, after=0)
    c = gw.client().with_options(timeout=1.0)  # the client gives up waiting for headers
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    assert gw.srv.wait_streams_closed(timeout=10.0), "the worker still reads the upstream"
    assert until(lambda: rows(gw, "gw/default/chat") == ["cancelled"])
    after = gw.client().chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert after.choices[0].finish_reason == "stop"


def test_a_responses_client_leaving_before_any_event_frees_the_worker(gw: Harness) -> None:
    """As for Chat: the first event waits for the upstream's first answer, which a
    stalled upstream never gives; the client that gives up waiting stops the run."""
    import openai

    gw.srv.fault("openai.chat", "endless", interval=STALL_S, after=0)
    c = gw.client().with_options(timeout=1.0)
    with pytest.raises(openai.APITimeoutError):
        c.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    assert gw.srv.wait_streams_closed(timeout=10.0), "the worker still reads the upstream"
    assert until(lambda: not gw.gateway.cancels), "the worker did not return"
    assert until(lambda: rows(gw, "gw/default/") == ["cancelled"])
    assert gw.client().responses.create(model="gpt-4o-mini", input="hi").status == "completed"


def test_a_responses_client_leaving_a_stalled_upstream_frees_the_worker(gw: Harness) -> None:
    gw.srv.fault("openai.chat", "endless", interval=STALL_S, after=3)
    c = gw.client()
    stream = c.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    events = []
    for event in stream:
        events.append(event)
        if event.type == "response.output_text.delta":
            break
    rid = events[0].response.id  # type: ignore[union-attr]
    stream.close()
    assert gw.srv.wait_streams_closed(timeout=10.0), "the worker still reads the upstream"
    assert until(lambda: rid not in gw.gateway.cancels), "the worker did not return"
    r = c.responses.retrieve(rid)
    assert r.status == "cancelled" and r.output[0].status == "incomplete"
    read = "".join(e.delta for e in events if e.type.endswith("text.delta"))
    assert read and r.output_text.startswith(read)  # what arrived, the client's part and more
    assert rows(gw, "gw/default/") == ["cancelled"] and count(gw.rt.path, "calls") == 1
    more = c.responses.create(model="gpt-4o-mini", input="go on", previous_response_id=rid)
    assert more.status == "completed"
    items = list(c.responses.input_items.list(more.id, order="asc"))
    assert [i.type for i in items] == ["message", "message", "message"]


def test_a_background_response_cancelled_on_a_stalled_upstream_frees_the_worker(
    gw: Harness,
) -> None:
    gw.srv.fault("openai.chat", "endless", interval=STALL_S, after=3)
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="slowly", background=True)
    assert r.status in ("queued", "in_progress")
    assert until(lambda: gw.srv.open_streams == 1)
    cancelled = c.responses.cancel(r.id)
    assert cancelled.status == "cancelled"
    assert gw.srv.wait_streams_closed(timeout=10.0), "the worker still reads the upstream"
    assert until(lambda: r.id not in gw.gateway.cancels), "the worker did not return"
    assert rows(gw, "gw/default/") == ["cancelled"] and count(gw.rt.path, "calls") == 1
    assert c.responses.retrieve(r.id).status == "cancelled"
    more = c.responses.create(model="gpt-4o-mini", input="go on", previous_response_id=r.id)
    assert more.status == "completed"
