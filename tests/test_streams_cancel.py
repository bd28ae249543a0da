"""``ReplyStream.cancel()`` and ``close()`` from other threads, against the local provider
server on 127.0.0.1 and a real store: cancels racing the stream's natural end, its head,
each other and ``close()``; the call after a cancelled one; and ``Response.abort()``
racing the body's hand-over to the pool, on srt's pool, a caller's httpx client and a
proxy. Races are looped and ordered with events and barriers, never with timed asserts.
Every outcome is one of two whole ones: the reply complete and ``ok``, or what arrived
stored ``cancelled``, with exactly one ledger row, and the handle and the store agree."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import srt
from cancel_support import went
from proxy_support import ForwardProxy
from srt.providers import OpenAI, Provider, transport
from srt.providers.pool import Pool
from srt.providers.transport import HTTPRequest, Transport
from srt.testing import ProviderServer
from support import SRV_KEY

MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}
#: Seconds between a stalled upstream's keep-alives: longer than any wait below.
STALL_S = 30.0


def run(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """``fn()`` in a thread; the list gets its result or its exception."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def ended(t: threading.Thread) -> bool:
    t.join(10.0)  # (a bound on an event: a blocked read waits 30 s for a keep-alive)
    return not t.is_alive()


def coherent(rt: srt.Runtime, s: srt.Session, stream: srt.ReplyStream, got: str) -> str:
    """The one whole outcome of a stream that may have been cancelled; its status."""
    rows = [r["status"] for r in s.calls()]
    entries = s.entries()
    assert stream.status in ("ok", "cancelled")
    if stream.reply is None:  # cancelled before its reply's head: nothing stored
        # (the ledger row, ``cancelled``, when the body went out: the provider may bill it)
        assert stream.status == "cancelled" and rows in ([], ["cancelled"]) and entries == []
        assert rt.session(s.name).messages() == s.messages() == []
        return "unanswered" if rows else "unsent"
    assert rows == [stream.status]
    assert [e.status for e in entries] == [None, None if stream.status == "ok" else "cancelled"]
    assert entries[1].message == stream.reply.message
    assert entries[1].message["content"] == got  # what the reader saw, no more, no less
    assert rt.session(s.name).messages() == s.messages()  # the handle and the store agree
    return str(stream.status)


def test_close_from_another_thread_cancels(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """``close()`` from a thread other than the one iterating (blocked in a read on an
    upstream sending only keep-alives) is ``cancel()``: the reader's loop ends as at the
    stream's end, what arrived stored ``cancelled``. Before, it raised ValueError
    ("generator already executing") and the reader stayed blocked."""
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    s = store_rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    first = next(iter(stream))
    reader, got = run(lambda: "".join(stream))
    assert srv.open_streams == 1
    stream.close()
    assert ended(reader) and isinstance(got[0], str)
    assert coherent(store_rt, s, stream, first + got[0]) == "cancelled"
    assert srv.wait_streams_closed(timeout=10.0)
    stream.close()  # (from the reader's side, once ended: nothing more)
    s.send(p, model=MODEL, append=[USER])
    assert [e.status for e in s.entries()] == [None, "cancelled", None, None]


def test_close_from_another_thread_between_the_readers_steps(
    srv: ProviderServer, rt: srt.Runtime, p: Provider
) -> None:
    """``close()`` from another thread while the reader holds a delta (not inside
    ``next()``): also ``cancel()``, so the reader's next step ends the stream cleanly,
    never "generator already executing" there."""
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    s = rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    holding, closed = threading.Event(), threading.Event()

    def read() -> str:
        it = iter(stream)
        text = next(it)
        holding.set()
        closed.wait(10.0)
        return text + "".join(it)

    reader, got = run(read)
    assert holding.wait(10.0)
    stream.close()
    closed.set()
    assert ended(reader) and isinstance(got[0], str)
    assert coherent(rt, s, stream, got[0]) == "cancelled"


def test_cancel_racing_the_natural_end(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """A cancel from another thread at each point of a short stream, from before its
    first delta to after its end, many times: each stream ends whole (complete and
    ``ok``, or what the reader saw stored ``cancelled``), one ledger row, the handle and
    the store agreeing; the call right after each works on the same provider."""
    s0 = store_rt.session("probe")
    n = len(list(s0.stream(p, model=MODEL, append=[USER])))  # the deltas of a reply
    seen: set[str] = set()
    for i in range(24):
        s = store_rt.session(f"a{i}")
        stream = s.stream(p, model=MODEL, append=[USER])
        at = i % (n + 2)  # cancel after this many deltas (n + 1: after the end)
        go = threading.Event()
        canceller, _ = run(lambda st=stream, ev=go: (ev.wait(10.0), st.cancel()))
        parts: list[str] = []
        if at == 0:
            go.set()
        for delta in stream:
            parts.append(delta)
            if len(parts) == at:
                go.set()
        go.set()
        assert ended(canceller)
        seen.add(coherent(store_rt, s, stream, "".join(parts)))
        reply = s.send(p, model=MODEL, append=[USER])  # the next call, same provider
        assert reply.message["content"]
    assert "ok" in seen and "cancelled" in seen


def test_cancel_from_many_threads_at_once_and_again(
    srv: ProviderServer, rt: srt.Runtime, p: Provider
) -> None:
    """Eight threads cancel (half through ``close()``) at once while the reader is
    blocked on a keep-alive-only upstream, then cancel and close again after its end:
    the reader ends without an error, one ledger row ``cancelled``, the connection
    closed, nothing raised anywhere."""
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    s = rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    first = next(iter(stream))
    reader, got = run(lambda: "".join(stream))
    barrier = threading.Barrier(8)

    def stop(k: int) -> None:
        barrier.wait(10.0)
        (stream.close if k % 2 else stream.cancel)()

    stoppers = [run(lambda k=k: stop(k)) for k in range(8)]
    assert all(ended(t) for t, _ in stoppers)
    assert [out for _, out in stoppers] == [[None]] * 8
    assert ended(reader) and isinstance(got[0], str)
    stream.cancel()
    stream.close()
    stream.cancel()
    assert coherent(rt, s, stream, first + got[0]) == "cancelled"
    assert srv.wait_streams_closed(timeout=10.0)


def test_cancel_after_close_and_close_after_cancel(
    srv: ProviderServer, rt: srt.Runtime, p: Provider
) -> None:
    """A stream closed by its reader, then cancelled; one cancelled and never iterated,
    then closed and iterated: each as it ended, no request for the second, no error."""
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    s = rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    first = next(iter(stream))
    stream.close()
    stream.cancel()
    assert coherent(rt, s, stream, first) == "cancelled"
    requests = len(srv.log)
    b = rt.session("b")
    never = b.stream(p, model=MODEL, append=[USER])
    never.cancel()
    never.close()
    assert list(never) == [] and never.status == "cancelled" and never.reply is None
    assert len(srv.log) == requests and b.calls() == [] and b.messages() == []


def test_cancel_racing_the_head(srv: ProviderServer, rt: srt.Runtime, p: Provider) -> None:
    """A cancel while the request waits for its head (the upstream holds it): the wait
    ends at once (``test_cancel_before_the_head_takes_effect_at_once``) and the stream
    ends ``cancelled`` with nothing read or stored, one ledger row (the provider may bill
    the request); and a cancel racing the request from its start, many times: whatever
    was reached, one whole outcome."""
    srv.fault("openai", "delay", seconds=STALL_S)
    s = rt.session("a")
    stream = s.stream(p, model=MODEL, append=[USER])
    reader, got = run(lambda: "".join(stream))
    while not (srv.log and went(stream)) and reader.is_alive():  # in: no head yet
        reader.join(0.005)
    stream.cancel()
    assert ended(reader) and got == [""]
    assert coherent(rt, s, stream, "") == "unanswered"
    srv.clear()
    for i in range(20):
        s = rt.session(f"a{i}")
        stream = s.stream(p, model=MODEL, append=[USER])
        reader, got = run(lambda st=stream: "".join(st))
        stream.cancel()
        assert ended(reader) and isinstance(got[0], str)
        coherent(rt, s, stream, got[0])
        assert s.send(p, model=MODEL, append=[USER]).message["content"]


def _cancelled_mid_stream(srv: ProviderServer, s: srt.Session, p: Provider) -> None:
    """A stream on a keep-alive-only upstream, cancelled from another thread after its
    first delta: its reader ends, what arrived is its reply, and the next call works."""
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    stream = s.stream(p, model=MODEL, append=[USER])
    first = next(iter(stream))
    reader, got = run(lambda st=stream: "".join(st))
    stream.cancel()
    assert ended(reader) and isinstance(got[0], str)
    assert stream.status == "cancelled"
    assert stream.reply is not None
    assert stream.reply.message["content"] == first + got[0]
    assert s.send(p, model=MODEL, append=[USER]).message["content"]


def test_a_call_after_a_cancelled_one_works_many_times(
    srv: ProviderServer, rt: srt.Runtime, p: Provider
) -> None:
    """Cancelled mid-stream from another thread 30 times on one provider: each next call
    works (its connection fresh or healthy, never the aborted one), and no stream is
    left open upstream."""
    s = rt.session("a")
    for _ in range(30):
        _cancelled_mid_stream(srv, s, p)
    assert srv.wait_streams_closed(timeout=10.0)
    assert [r["status"] for r in s.calls()] == ["cancelled", "ok"] * 30


# -- Response.abort: the paths, and the hand-over to the pool ------------------------------


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as px:
        yield px


@pytest.mark.parametrize("path", ["client", "proxy"])
def test_cancel_on_a_callers_client_and_through_a_proxy(
    srv: ProviderServer, rt: srt.Runtime, proxy: ForwardProxy, path: str
) -> None:
    """``cancel()`` frees a reader blocked on a keep-alive-only upstream when the calls
    go through a caller's ``httpx.Client`` or a proxy (httpx's transports, not srt's
    pool): ``Response.abort`` shuts that connection's socket; the next call works."""
    if path == "client":
        p = OpenAI(SRV_KEY, base_url=srv.url + "/v1", transport=Transport(client=httpx.Client()))
    else:
        p = OpenAI(SRV_KEY, base_url=srv.url + "/v1", proxy=proxy.url())
    try:
        s = rt.session("a")
        for _ in range(3):
            _cancelled_mid_stream(srv, s, p)
        assert [r["status"] for r in s.calls()] == ["cancelled", "ok"] * 3
        if path == "client":
            assert srv.wait_streams_closed(timeout=10.0)
    finally:
        p.close()


def _request(srv: ProviderServer) -> HTTPRequest:
    body = {"model": MODEL, "messages": [USER], "stream": True}
    headers = {"authorization": f"Bearer {SRV_KEY}", "content-type": "application/json"}
    url = srv.url + "/v1/chat/completions"
    return HTTPRequest("POST", url, headers, json.dumps(body).encode(), stream=True)


def test_an_abort_never_shuts_a_connection_back_in_the_pool(
    srv: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An abort from another thread as the body's last bytes are read: the connection
    the body gives back to srt's pool is never shut under the next request that took it.
    The aborting thread is held, by an event, right after it found the socket (where a
    switch of threads may come): before, the body then went back to the pool, the next
    request took its connection, and the abort shut it, cutting that request off. Now
    the abort and the hand-over take the pool's lock, and an aborted one is not kept."""
    handed = threading.Event()

    class Told(Pool):  # (tells when a body gave its connection back)
        def release(self, *args: Any, **kw: Any) -> None:
            super().release(*args, **kw)
            handed.set()

    http = Transport(pool=Told())
    found, hold = threading.Event(), threading.Event()
    socket_of = getattr(transport, "_socket_of", None)  # (gone: the pool's body shuts)

    def held_socket_of(resp: Any) -> Any:
        sock = socket_of(resp) if socket_of is not None else None
        if sock is not None and not hold.is_set():
            found.set()
            hold.wait(10.0)
        return sock

    # (where the abort found the socket before; srt's pool's body now shuts its own)
    monkeypatch.setattr(transport, "_socket_of", held_socket_of, raising=False)
    try:
        for _ in range(3):
            found.clear()
            hold.clear()
            handed.clear()
            resp = http.open(_request(srv))
            body = resp.iter_bytes()
            data = b""
            while b"[DONE]" not in data:  # every event read; the hand-over is next
                data += next(body)
            aborter, _ = run(resp.abort)
            while not found.is_set() and aborter.is_alive():
                found.wait(0.005)
            reader, _ = run(lambda b=body: list(b))  # the body ends: its connection back
            while reader.is_alive() and not handed.is_set():
                reader.join(0.005)
            nxt = http.open(_request(srv))  # takes the connection given back, if any
            hold.set()
            assert ended(aborter) and ended(reader)
            text = b"".join(nxt.iter_bytes())  # not cut off by the abort
            assert text.rstrip().endswith(b"data: [DONE]")
    finally:
        hold.set()
        http.close()
