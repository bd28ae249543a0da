"""The Responses API through the official ``openai`` SDK, against srt.testing upstreams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

import srt.store.sqlite.store as sqlite_store
from gateway_support import Harness, count, dump, harness


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch, context_window=None) as h:
        yield h


_SDK_ADDED = ("parsed", "output_parsed", "parsed_arguments")


def _plain(response: Any) -> Any:
    """A response as JSON data, without the fields the SDK's stream helper adds or drops
    (``parsed``, ``parsed_arguments``; ``output_text``, a field of the gateway's JSON)."""

    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in _SDK_ADDED}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    data = strip(response.model_dump())
    data.pop("output_text", None)
    return data


def test_create_continue_and_read_back(gw: Harness) -> None:
    c = gw.client()
    r1 = c.responses.create(model="gpt-4o-mini", input="hello there", instructions="be terse")
    assert r1.status == "completed" and r1.output_text.startswith("reply 1 to hello there")
    assert r1.usage is not None and r1.usage.input_tokens > 0 and r1.usage.output_tokens > 0
    r2 = c.responses.create(
        model="gpt-4o-mini", input="and again", previous_response_id=r1.id, instructions="be terse"
    )
    sent = gw.srv.log[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == "be terse" and sent[-1]["content"] == "and again"
    got = c.responses.retrieve(r2.id)
    assert got.id == r2.id and got.output_text == r2.output_text
    assert got.model_dump() == r2.model_dump()  # stored small, read back whole
    assert got.previous_response_id == r1.id
    items = c.responses.input_items.list(r2.id)
    assert [i.type for i in items.data] == ["message", "message", "message"]
    assert items.data[0].content[0].text == "and again"  # newest first by default
    asc = c.responses.input_items.list(r2.id, order="asc", limit=1)
    assert asc.data[0].content[0].text == "hello there" and asc.has_more
    nxt = c.responses.input_items.list(r2.id, order="asc", limit=1, after=asc.data[0].id)
    assert nxt.data[0].role == "assistant"


def test_cached_usage_is_the_upstreams(gw: Harness) -> None:
    c = gw.client()
    long = "background " * 1200
    r = c.responses.create(model="claude-sonnet-4-5", input=long)
    r2 = c.responses.create(model="claude-sonnet-4-5", input="more", previous_response_id=r.id)
    up = gw.srv.log[-1].usage
    assert r2.usage is not None and r2.usage.input_tokens_details.cached_tokens > 0
    assert r2.usage.input_tokens_details.cached_tokens == up["cache_read_input_tokens"]


def test_fork_from_any_earlier_response(gw: Harness) -> None:
    c = gw.client()
    ids = []
    prev = None
    for i in range(4):
        r = c.responses.create(model="gpt-4o-mini", input=f"turn {i}", previous_response_id=prev)
        ids.append(r.id)
        prev = r.id
    nodes = count(gw.rt.path, "nodes")
    fork = c.responses.create(model="gpt-4o-mini", input="other way", previous_response_id=ids[1])
    sent = gw.srv.log[-1].body["messages"]
    assert [m["content"][:6] for m in sent if m["role"] == "user"] == ["turn 0", "turn 1", "other "]
    # the fork added its own two messages and nothing else
    assert count(gw.rt.path, "nodes") == nodes + 2
    later = c.responses.create(model="gpt-4o-mini", input="on", previous_response_id=fork.id)
    assert len(gw.srv.log[-1].body["messages"]) == 7 and later.status == "completed"
    again = c.responses.create(model="gpt-4o-mini", input="last", previous_response_id=ids[3])
    assert len(gw.srv.log[-1].body["messages"]) == 9 and again.status == "completed"


def test_a_fork_keeps_no_session_row_until_it_is_continued(gw: Harness) -> None:
    c = gw.client()
    ids, prev = [], None
    for i in range(3):
        r = c.responses.create(model="gpt-4o-mini", input=f"turn {i}", previous_response_id=prev)
        ids.append(r.id)
        prev = r.id
    sessions = count(gw.rt.path, "sessions")
    forks = [
        c.responses.create(model="gpt-4o-mini", input=f"branch {i}", previous_response_id=ids[0])
        for i in range(3)
    ]
    assert count(gw.rt.path, "sessions") == sessions  # the records keep the forks' nodes
    gw.rt.gc()
    for f in forks:
        got = c.responses.retrieve(f.id)
        assert got.output_text == f.output_text
        items = c.responses.input_items.list(f.id, order="asc")
        assert [i.content[0].text for i in items.data if i.role == "user"] == [
            "turn 0",
            f"branch {forks.index(f)}",
        ]
    on = c.responses.create(model="gpt-4o-mini", input="go on", previous_response_id=forks[1].id)
    sent = [m["content"][:8] for m in gw.srv.log[-1].body["messages"] if m["role"] == "user"]
    assert sent == ["turn 0", "branch 1", "go on"]
    assert count(gw.rt.path, "sessions") == sessions + 1  # continued: the fork's own again
    c.responses.create(model="gpt-4o-mini", input="further", previous_response_id=on.id)
    assert len(gw.srv.log[-1].body["messages"]) == 7
    assert count(gw.rt.path, "sessions") == sessions + 1
    again = c.responses.create(model="gpt-4o-mini", input="other", previous_response_id=forks[1].id)
    assert len(gw.srv.log[-1].body["messages"]) == 5 and again.status == "completed"


def test_a_fork_with_new_instructions_starts_from_the_forked_history(gw: Harness) -> None:
    c = gw.client()
    ids, prev = [], None
    for i in range(3):
        r = c.responses.create(
            model="gpt-4o-mini", input=f"turn {i}", previous_response_id=prev, instructions="A"
        )
        ids.append(r.id)
        prev = r.id
    c.responses.create(
        model="gpt-4o-mini", input="other", previous_response_id=ids[0], instructions="B"
    )
    sent = [(m["role"], m["content"][:5]) for m in gw.srv.log[-1].body["messages"]]
    assert sent == [("system", "B"), ("user", "turn "), ("assistant", "reply"), ("user", "other")]


def test_continuations_of_one_fork_at_once_all_succeed(gw: Harness) -> None:
    """Continuations of a fork whose session ended with its turn, all at once: one
    brings the session back and continues it, the others fork from it; none is told
    the history moved (each round a new fork, 8 at a time)."""
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="root")
    c.responses.create(model="gpt-4o-mini", input="next", previous_response_id=r.id)
    for round_ in range(4):
        fork = c.responses.create(
            model="gpt-4o-mini", input=f"fork {round_}", previous_response_id=r.id
        )
        with ThreadPoolExecutor(8) as pool:
            got = list(
                pool.map(
                    lambda i, f=fork: c.responses.create(
                        model="gpt-4o-mini", input=f"on {i}", previous_response_id=f.id
                    ),
                    range(8),
                )
            )
        assert all(g.status == "completed" for g in got)
        for g in got:
            items = c.responses.input_items.list(g.id, order="asc").data
            texts = [i.content[0].text for i in items]
            assert texts[0] == "root" and texts[2] == f"fork {round_}"
            assert texts[-1].startswith("on ") and len(texts) == 5


def test_store_false_keeps_nothing(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="secret", store=False)
    assert r.status == "completed" and r.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    assert "secret" not in dump(gw.rt.path, "messages")
    assert gw.rt.usage().requests == 1  # the ledger still has the call


def test_a_turn_that_keeps_nothing_leaves_no_session(gw: Harness) -> None:
    """A failed turn (an upstream error, plain, streamed or in the background) and a
    ``store: false`` one leave no session behind; a failed background response can
    still be continued (its session is made again)."""
    c = gw.client()
    for stream in (False, True):
        gw.srv.fault("*", "status", code=400, message="no")
        with pytest.raises(openai.BadRequestError):
            c.responses.create(model="gpt-4o-mini", input="fails", stream=stream)
        assert c.responses.create(model="gpt-4o-mini", input="x", store=False, stream=False)
        events = list(c.responses.create(model="gpt-4o-mini", input="y", store=False, stream=True))
        assert events[-1].type == "response.completed"
    gw.srv.fault("*", "status", code=400, message="no")
    bg = c.responses.create(model="gpt-4o-mini", input="fails later", background=True)
    for _ in range(100):  # it ends at once (the upstream said no): a bound, no time asserted
        if bg.status not in ("queued", "in_progress"):
            break
        time.sleep(0.1)
        bg = c.responses.retrieve(bg.id)
    assert bg.status == "failed"
    assert gw.rt.sessions() == []
    again = c.responses.create(model="gpt-4o-mini", input="once more", previous_response_id=bg.id)
    assert again.status == "completed"
    assert [s.name for s in gw.rt.sessions()] == [f"gw/default/{bg.id}"]


def test_a_failed_background_response_reads_failed_only_once_its_session_is_gone(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failure is stored after the session made for the turn is dropped, so a client
    # that sees "failed" never finds that session (it was dropped after, and CI caught
    # a run in between).
    records = gw.gateway.records
    seen: list[list[str]] = []
    put = records.put_response

    def watched(tenant: str, record: dict[str, Any], head: int | None) -> None:
        if record["response"]["status"] == "failed":
            seen.append([s.name for s in gw.rt.sessions()])
        put(tenant, record, head)

    monkeypatch.setattr(records, "put_response", watched)
    c = gw.client()
    gw.srv.fault("*", "status", code=400, message="no")
    bg = c.responses.create(model="gpt-4o-mini", input="fails later", background=True)
    for _ in range(100):  # a bound, no time asserted
        if bg.status not in ("queued", "in_progress"):
            break
        time.sleep(0.1)
        bg = c.responses.retrieve(bg.id)
    assert bg.status == "failed"
    assert seen == [[]]


def test_delete(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="hi")
    c.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(r.id)
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="gpt-4o-mini", input="x", previous_response_id=r.id)
    assert e.value.code == "previous_response_not_found"


def test_streaming_events_in_order(gw: Harness) -> None:
    c = gw.client()
    first = c.responses.create(model="gpt-4o-mini", input="hi")
    with c.responses.stream(
        model="claude-sonnet-4-5", input="stream please", previous_response_id=first.id
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    deltas = [i for i, k in enumerate(kinds) if k == "response.output_text.delta"]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert len(deltas) > 1 and deltas == list(range(4, 4 + len(deltas)))
    assert kinds[4 + len(deltas) :] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "".join(e.delta for e in events if e.type.endswith("text.delta"))
    assert _plain(c.responses.retrieve(final.id)) == _plain(final)
    assert final.output[0].id == events[2].item.id


def test_function_tools_round_trip_and_stream(gw: Harness) -> None:
    c = gw.client()
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    gw.srv.script("*", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    r = c.responses.create(model="gpt-4o-mini", input="weather?", tools=tools, tool_choice="auto")
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == '{"city":"Oslo"}'
    assert gw.srv.log[-1].body["tool_choice"] == "auto"
    out = [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
    r2 = c.responses.create(model="gpt-4o-mini", input=out, previous_response_id=r.id, tools=tools)
    sent = gw.srv.log[-1].body["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}
    assert r2.status == "completed"
    assert c.responses.retrieve(r.id).model_dump() == r.model_dump()
    assert c.responses.retrieve(r2.id).model_dump() == r2.model_dump()
    gw.srv.script("*", [{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}])
    with c.responses.stream(
        model="claude-sonnet-4-5", input="and Rome?", previous_response_id=r2.id, tools=tools
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output[-1].type == "function_call"
    assert _plain(c.responses.retrieve(final.id)) == _plain(final)


def test_max_output_tokens_and_metadata(gw: Harness) -> None:
    c = gw.client()
    r = c.responses.create(
        model="claude-sonnet-4-5", input="hi", max_output_tokens=64, metadata={"k": "v"}
    )
    assert gw.srv.log[-1].body["max_tokens"] == 64
    assert r.metadata == {"k": "v"} and c.responses.retrieve(r.id).metadata == {"k": "v"}
    assert c.responses.retrieve(r.id).model_dump() == r.model_dump()


def test_background_and_cancel(gw: Harness) -> None:
    c = gw.client()
    gw.srv.fault("*", "endless", interval=0.05)
    r = c.responses.create(model="gpt-4o-mini", input="slowly", background=True)
    assert r.status == "queued" and r.background  # as api.openai.com answers it
    cancelled = c.responses.cancel(r.id)
    assert cancelled.status == "cancelled"
    # A cancel that comes before the run's upstream request is sent sends none, and
    # the endless fault would then be the next request's, which never ends: drop it.
    gw.srv.clear()
    with pytest.raises(openai.BadRequestError):
        c.responses.cancel(c.responses.create(model="gpt-4o-mini", input="x").id)


def test_a_streamed_background_response_runs_once(gw: Harness) -> None:
    """``background`` with ``stream``: one upstream request and one ledger row, and
    the stream carries every event of that one run, from ``response.created`` on."""
    c = gw.client()
    events = list(c.responses.create(model="gpt-4o-mini", input="hi", background=True, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.background and final.output_text.startswith("reply 1 to hi")
    assert gw.srv.requests.total() == 1 and gw.rt.usage().requests == 1
    assert c.responses.retrieve(final.id).output_text == final.output_text


def test_truncation_disabled_and_auto(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with harness(db_path, monkeypatch, window=600) as h:
        c = h.client()
        prev = None
        for i in range(3):
            r = c.responses.create(
                model="gpt-4o-mini", input=f"{i} " + "long words " * 40, previous_response_id=prev
            )
            prev = r.id
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="gpt-4o-mini", input="more " * 100, previous_response_id=prev)
        assert e.value.code == "context_length_exceeded"
        r = c.responses.create(
            model="gpt-4o-mini", input="more " * 100, previous_response_id=prev, truncation="auto"
        )
        assert r.status == "completed"
        sent = h.srv.log[-1].body["messages"]
        assert len(sent) < 7 and sent[-1]["content"].startswith("more")
        assert h.srv.log[-1].prompt_tokens <= 600
        # the history itself is whole: the next request can still see it all
        items = c.responses.input_items.list(r.id, limit=100)
        assert len(items.data) == 7


class _Ahead:
    """The ``time`` module, with ``time()`` ``ahead`` seconds in the future."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time(self) -> float:
        return time.time() + self.ahead


def test_expired_responses_are_gone(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A response past its retention (2 s) is gone: the store's clock is moved 3 s on
    (an injected clock: the test sleeps none of it)."""
    clock = _Ahead()
    monkeypatch.setattr(sqlite_store, "time", clock)
    with harness(db_path, monkeypatch, response_retention_days=2 / 86400) as h:
        c = h.client()
        r = c.responses.create(model="gpt-4o-mini", input="short-lived")
        assert c.responses.retrieve(r.id).id == r.id
        clock.ahead = 3.0
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(r.id)
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="gpt-4o-mini", input="x", previous_response_id=r.id)
        assert e.value.code == "previous_response_not_found"


def test_an_upstream_failure_mid_stream_ends_in_response_failed(gw: Harness) -> None:
    c = gw.client()
    gw.srv.fault("*", "malformed_sse", variant="error_event", after=6, error_type="api_error")
    with c.responses.stream(model="claude-sonnet-4-5", input="go") as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in (
        "response.failed",
        "response.incomplete",
    )
    final = events[-1].response
    assert final.status in ("failed", "incomplete")
    stored = c.responses.retrieve(final.id)
    assert stored.status == final.status and stored.output_text == final.output_text
    gw.srv.fault("*", "status", code=400, message="bad request upstream")
    # nothing streamed yet: a plain HTTP error
    with (
        pytest.raises(openai.BadRequestError),
        c.responses.stream(model="gpt-4o-mini", input="go") as stream,
    ):
        list(stream)


def _timing(header: str) -> dict[str, float]:
    """``Server-Timing`` as {metric: ms}."""
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        out[name] = float(dur)
    return out


def test_server_timing_reports_the_gateway_and_the_upstream(gw: Harness) -> None:
    c = gw.client()
    gw.srv.fault("openai.chat", "delay", seconds=0.2)  # the upstream takes 200 ms
    raw = c.responses.with_raw_response.create(model="gpt-4o-mini", input="time me")
    t = _timing(raw.headers["server-timing"])
    assert 200.0 <= t["upstream"] <= t["gateway"]
    assert raw.parse().status == "completed"
    # a request that calls no upstream reports the gateway's time only
    got = c.responses.with_raw_response.retrieve(raw.parse().id)
    assert set(_timing(got.headers["server-timing"])) == {"gateway"}
    # a refused request carries it too
    with pytest.raises(openai.NotFoundError) as err:
        c.responses.retrieve("resp_" + "0" * 32)
    assert "gateway" in _timing(err.value.response.headers["server-timing"])
