"""A stream's ``cancel()`` before its response's head, sync and asyncio, against an
upstream on 127.0.0.1 that takes the request and never answers (``cancel_support.Silent``)
and a real store: the call ends ``cancelled`` at once (before, a sync one waited for the
head or the idle timeout, 60 s), nothing is stored but the ledger row of the body that
went out, and the connection is closed, seen from the upstream's side, never handed
back to the pool. And a stop that comes after the connection went back to srt's pool
never shuts it under the next request. Waits are on events with generous caps."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from cancel_support import Silent, pooled, went
from srt.providers import OpenAI
from srt.providers.http1 import Stop
from srt.providers.transport import HTTPRequest, Transport
from srt.testing import ProviderServer
from support import SRV_KEY

MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}


@pytest.fixture
def up() -> Iterator[Silent]:
    with Silent() as upstream:
        yield upstream


def unanswered(rt: srt.Runtime, s: srt.Session, stream: Any) -> None:
    """The one outcome of a stream cancelled after its body went out, before its head."""
    assert stream.status == "cancelled" and stream.reply is None
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert s.entries() == [] and rt.session(s.name).messages() == []


def test_cancel_before_the_head_takes_effect_at_once(store_rt: srt.Runtime, up: Silent) -> None:
    """Sync: the reader blocked on the head returns at once, the connection is closed
    (the upstream sees it go) and not kept by the pool; the handle works after."""
    p = OpenAI(SRV_KEY, base_url=up.url + "/v1")
    try:
        s = store_rt.session("a")
        stream = s.stream(p, model=MODEL, append=[USER])
        out: list[object] = []
        reader = threading.Thread(target=lambda: out.append("".join(stream)), daemon=True)
        reader.start()
        while not went(stream) and reader.is_alive():  # the body is out; no head comes
            reader.join(0.005)
        assert up.request_in.wait(10.0)  # (the body is out: the upstream reads it soon)
        stream.cancel()
        reader.join(10.0)  # (a cap on an event: the head would come after 60 s, never)
        assert not reader.is_alive() and out == [""]
        assert up.closed.wait(10.0)
        unanswered(store_rt, s, stream)
        assert pooled(p.transport) == (0, 0)  # closed, not handed back
        stream.cancel()  # (again, once ended: nothing)
        assert stream.status == "cancelled"
    finally:
        p.close()


def test_async_cancel_before_the_head_takes_effect_at_once(
    store_rt: srt.Runtime, up: Silent
) -> None:
    """asyncio: ``AsyncReplyStream.cancel()`` from another task while the head is
    awaited: the loop ends without an error, as at the stream's end; the connection is
    closed, not kept; the next ``asend`` on the handle takes its turn."""
    p = OpenAI(SRV_KEY, base_url=up.url + "/v1")
    s = store_rt.session("a")

    async def go() -> str:
        stream = s.astream(p, model=MODEL, append=[USER])

        async def read() -> str:
            return "".join([d async for d in stream])

        reader = asyncio.ensure_future(read())
        while not went(stream):
            await asyncio.sleep(0.005)
        stream.cancel()
        got = await asyncio.wait_for(reader, 10.0)
        assert up.closed.wait(10.0)
        unanswered(store_rt, s, stream)
        assert pooled(p.async_transport) == (0, 0)
        return got

    try:
        assert asyncio.run(go()) == ""
    finally:
        p.close()


def _request(srv: ProviderServer, stop: Stop | None = None) -> HTTPRequest:
    body = {"model": MODEL, "messages": [USER], "stream": True}
    headers = {"authorization": f"Bearer {SRV_KEY}", "content-type": "application/json"}
    url = srv.url + "/v1/chat/completions"
    req = HTTPRequest("POST", url, headers, json.dumps(body).encode(), stream=True)
    req.stop = stop
    return req


def test_a_stop_after_the_hand_over_never_shuts_the_pools_connection(
    srv: ProviderServer,
) -> None:
    """A request's stop run after its body was read to the end (its connection back in
    srt's pool): the next request takes that kept connection and is not cut off; a stop
    run before a request is sent stops it with no attempt made."""
    http = Transport()
    try:
        for _ in range(3):
            stop = Stop()
            first = http.open(_request(srv, stop))
            assert first.read().rstrip().endswith(b"data: [DONE]")
            handlers = srv.active_handlers
            stop.stop()
            nxt = http.open(_request(srv))
            assert b"".join(nxt.iter_bytes()).rstrip().endswith(b"data: [DONE]")
            assert srv.active_handlers == handlers  # the kept connection was reused
        stopped = Stop()
        stopped.stop()
        sent = len(srv.log)
        with pytest.raises(srt.ProviderConnectionError, match="stopped by the caller"):
            http.open(_request(srv, stopped))
        assert len(srv.log) == sent
    finally:
        http.close()
