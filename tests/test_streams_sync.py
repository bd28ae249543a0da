"""The sync ``ReplyStream`` left unfinished: closed, dropped, or dropped while the
cyclic collector is off, against the local provider server on 127.0.0.1 and a real
store. What arrived is stored as ``cancelled`` with its ledger row, the connection is
closed at once, and nothing warns (the suite runs with ``filterwarnings = error``)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

import srt
from srt.providers import Provider
from srt.testing import ProviderServer

MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The cyclic collector off: what is freed is freed by its reference count."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def first_delta(s: srt.Session, p: Provider) -> tuple[srt.ReplyStream, str]:
    stream = s.stream(p, model=MODEL, append=[USER])
    return stream, next(iter(stream))


@pytest.mark.usefixtures("no_gc")
def test_stream_dropped_unfinished_ends_at_once(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """A stream dropped after its first delta (no ``close()``, no ``with``): the
    moment its last reference goes, its connection is closed (the server sees the
    close), its ledger row is written and the partial reply is stored as
    ``cancelled``, with no collector run. Before, the generator's frame held the
    stream that held the generator: nothing of it ended until the collector ran."""
    srv.fault("openai", "endless", interval=0.05, after=3)
    s = store_rt.session("a")
    stream, delta = first_delta(s, p)
    assert delta
    assert srv.open_streams == 1
    del stream
    assert srv.wait_streams_closed(timeout=2.0)
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    entries = s.entries()
    assert [e.status for e in entries] == [None, "cancelled"]
    assert entries[1].message["content"].startswith(delta)
    # the handle works for the next call, and sends the staged message once
    s.send(p, model=MODEL, append=[USER])
    assert [e.status for e in s.entries()] == [None, "cancelled", None, None]
    assert store_rt.session("a").messages() == s.messages()


@pytest.mark.usefixtures("no_gc")
def test_stream_dropped_before_its_first_delta(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """A stream made and dropped without being iterated sent nothing: no row, no
    message, and the staged message is not left for the next call to send twice."""
    s = store_rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    del stream
    assert srv.log == []
    assert s.calls() == [] and s.messages() == []
    s.send(p, model=MODEL, append=[USER])
    assert sum(m["role"] == "user" for m in srv.log[-1].body["messages"]) == 1


def test_stream_closed_unfinished(srv: ProviderServer, store_rt: srt.Runtime, p: Provider) -> None:
    """``close()`` after the first delta: the same, and ``reply``/``status`` tell it."""
    srv.fault("openai", "endless", interval=0.05, after=3)
    s = store_rt.session("a")
    stream, delta = first_delta(s, p)
    stream.close()
    assert stream.status == "cancelled"
    assert stream.reply is not None and stream.reply.message["content"].startswith(delta)
    assert srv.wait_streams_closed(timeout=2.0)
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert [e.status for e in s.entries()] == [None, "cancelled"]


@pytest.mark.usefixtures("no_gc")
def test_stream_left_in_a_with_block(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """Leaving a ``with`` block early (a ``break``) ends the stream there."""
    srv.fault("openai", "endless", interval=0.05, after=3)
    s = store_rt.session("a")
    with s.stream(p, model=MODEL, append=[USER]) as stream:
        for _ in stream:
            break
    assert srv.wait_streams_closed(timeout=2.0)
    assert stream.status == "cancelled"
    assert [r["status"] for r in s.calls()] == ["cancelled"]


def test_stream_cancelled_from_another_thread_while_blocked(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """``cancel()`` from another thread, while the iterating thread is blocked in a read
    on a provider that sends only a keep-alive every 30 s after its first events: the
    read returns at once, the loop ends as at a stream's end, the connection is closed,
    and what arrived is stored as ``cancelled`` with its ledger row. (``close()`` from
    another thread raises "generator already executing"; before ``cancel()``, the
    thread stayed blocked until the call's total cap.)"""
    srv.fault("openai", "endless", interval=30.0, after=3)
    s = store_rt.session("a")
    stream, delta = first_delta(s, p)
    got: list[str] = []
    ended = threading.Event()

    def read() -> None:
        got.extend(stream)
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stream.cancel()
    assert ended.wait(10.0), "the reading thread is still blocked"
    reader.join(10.0)
    assert stream.status == "cancelled"
    assert srv.wait_streams_closed(timeout=10.0)
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    entries = s.entries()
    assert [e.status for e in entries] == [None, "cancelled"]
    assert entries[1].message["content"] == delta + "".join(got)
    assert stream.reply is not None and stream.reply.message == entries[1].message
    s.send(p, model=MODEL, append=[USER])  # the handle goes on
    assert [e.status for e in s.entries()] == [None, "cancelled", None, None]


def test_stream_cancelled_before_it_began_sends_nothing(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """``cancel()`` before the first ``next()``: no request, no row, no message, and the
    iteration yields nothing; the staged message is not left for the next call."""
    s = store_rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    stream.cancel()
    assert list(stream) == [] and stream.status == "cancelled" and stream.reply is None
    assert srv.log == [] and s.calls() == [] and s.messages() == []
    s.send(p, model=MODEL, append=[USER])
    assert sum(m["role"] == "user" for m in srv.log[-1].body["messages"]) == 1


def test_stream_cancelled_after_its_end_stays_as_it_ended(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    s = store_rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    text = stream.text()
    stream.cancel()
    assert stream.status == "ok" and text
    assert [r["status"] for r in s.calls()] == ["ok"]
    assert [e.status for e in s.entries()] == [None, None]
