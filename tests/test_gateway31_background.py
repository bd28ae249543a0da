"""A ``background`` create is answered ``queued`` at once, every worker slot busy or
not, as api.openai.com answers one (its run starts when a slot frees); past the bounded
backlog (``server.background_queue``) a create is OpenAI's 429 ``rate_limit_exceeded``,
nothing of it stored or sent upstream. (The gateway waited for a free thread of its pool
before it answered: with every slot held by a long upstream call, a background create
hung until one ended.)"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway_support import Harness, harness
from test_gateway29_shapes import as_openai_response
from test_gateway30_statuses import _ended

THREADS = 2  # the worker slots: both held by streams on an upstream that never ends
BACKLOG = 2


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Harness]:
    with (
        pytest.MonkeyPatch.context() as mp,
        harness(str(tmp_path / "srt.db"), mp, threads=THREADS, background_queue=BACKLOG) as h,
    ):
        yield h


@contextlib.contextmanager
def slots_busy(gw: Harness) -> Iterator[None]:
    """Every worker slot held: ``THREADS`` streamed responses whose upstream sends a few
    deltas then only keep-alives, each read up to its first event (so its run holds its
    thread); the block's end closes them (their runs stop, their slots free)."""
    gw.srv.fault("openai.chat", "endless", count=THREADS, interval=0.05, after=3)
    gw.srv.script("chat", ["word " * 200] * THREADS)  # (3 events: some of its deltas)
    c = gw.client(timeout=30)
    held = []  # (each stream's line iterator: one collected would close its stream)
    with contextlib.ExitStack() as stack:
        for i in range(THREADS):
            r = stack.enter_context(
                c.responses.with_streaming_response.create(
                    model="gpt-4o-mini", input=f"hold {i}", stream=True
                )
            )
            held.append(r.iter_lines())
            first = next(x for x in held[-1] if x.startswith("data: "))
            assert '"response.created"' in first, first
        yield


def test_a_background_create_is_queued_at_once_with_every_slot_busy(gw: Harness) -> None:
    # (a bound, not a timed assertion: the old gateway answered only once a slot freed,
    # which these upstreams never do while the block holds them)
    c = gw.client(timeout=10)
    with slots_busy(gw):
        gw.srv.script("chat", ["first done", "second done"])
        sent = sum(gw.srv.requests.values())
        made = []
        for i in range(BACKLOG):
            raw = c.responses.with_raw_response.create(
                model="gpt-4o-mini", input=f"later {i}", background=True
            )
            made.append(as_openai_response(raw.http_response.json()))
        assert [(r.status, r.output) for r in made] == [("queued", [])] * BACKLOG
        with pytest.raises(openai.RateLimitError) as full:
            c.responses.create(model="gpt-4o-mini", input="one too many", background=True)
        err = full.value.response.json()["error"]
        assert err["code"] == "rate_limit_exceeded" and str(BACKLOG) in err["message"]
        assert sum(gw.srv.requests.values()) == sent  # the queued ones wait: none sent
    ended = [as_openai_response(_ended(c, r.id)) for r in made]
    assert [r.status for r in ended] == ["completed"] * BACKLOG
    assert sorted(r.output_text for r in ended) == ["first done", "second done"]
    # the refused one left nothing: the backlog is free again, and it was never stored
    gw.srv.script("chat", ["third done"])
    again = c.responses.create(model="gpt-4o-mini", input="now", background=True)
    assert as_openai_response(_ended(c, again.id).copy()).status == "completed"


def test_a_streamed_background_create_starts_queued_with_every_slot_busy(
    gw: Harness,
) -> None:
    c = gw.client(timeout=10)
    with slots_busy(gw):
        gw.srv.script("chat", ["streamed done"])
        r = c.responses.with_streaming_response.create(
            model="gpt-4o-mini", input="later", background=True, stream=True
        )
        with r as resp:
            lines = resp.iter_lines()
            head = [next(x for x in lines if x.startswith("data: ")) for _ in range(2)]
    assert '"response.created"' in head[0] and '"status":"queued"' in head[0]
    assert '"response.queued"' in head[1]


def test_a_background_response_cancelled_while_queued_never_runs(gw: Harness) -> None:
    """Cancelled while it waits for a slot (``Gateway.cancel`` called directly: the
    route's own store read would wait for a slot too), it ends ``cancelled`` with no
    output, and nothing is sent upstream for it, then or once the slots free."""
    c = gw.client(timeout=10)
    with slots_busy(gw):
        sent = sum(gw.srv.requests.values())
        r = c.responses.create(model="gpt-4o-mini", input="never mind", background=True)
        assert r.status == "queued"
        cancelled = gw.gateway.cancel("default", r.id)
        assert (cancelled["status"], cancelled["output"]) == ("cancelled", [])
    ended = as_openai_response(_ended(c, r.id))
    assert (ended.status, ended.output, ended.error) == ("cancelled", [], None)
    assert sum(gw.srv.requests.values()) == sent  # the holders' only: none for it
    assert gw.app.state.srt.slots.queued == 0
