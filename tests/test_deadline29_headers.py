"""A call's ``total`` timeout bounds its wait for the reply's head, on every provider.

``Timeouts(total=)`` is documented as the bound on a whole call, but the wait for a
reply's head was bounded by ``idle`` only (sync: the socket's read timeout; the watchdog
that enforces ``total`` was filed only once the head had come): a server that took 2 s
to answer a call with ``total=0.3`` and ``idle=5`` got its reply read and returned. Now
the head's reads end at the call's deadline, on srt's sync and asyncio pools alike, and
the call raises ``ProviderTimeoutError`` naming the total cap.

No timed assertion: the server delays its answer by 2 s and notices a client that
leaves meanwhile (its ``delay`` fault then answers nothing: its record keeps no status).
A call that waited for the head would have been answered (status 200) before returning.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

import srt
from srt.errors import ProviderTimeoutError
from srt.providers import Provider
from srt.testing import ProviderServer
from support import provider_on

KEY = "sk-deadline29-0123456789abcdef"
KINDS = ["openai", "responses", "azure", "compatible", "anthropic", "bedrock"]
MODES = ["send", "stream", "asend", "astream"]
MODEL = {"anthropic": "claude-sonnet-4-6", "bedrock": "anthropic.claude-sonnet-4-6"}
#: The call's total cap, its idle timeout, and how long the server waits before its
#: head (longer than the total, shorter than the idle timeout).
TOTAL, IDLE, DELAY = 0.3, 5.0, 2.0


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def make(kind: str, srv: ProviderServer, **kw: object) -> Provider:
    timeouts = srt.Timeouts(connect=5.0, idle=IDLE, total=TOTAL)
    return provider_on(kind, srv.url, KEY, timeouts=timeouts, **kw)


def call(mode: str, rt: srt.Runtime, p: Provider, kind: str, name: str) -> str:
    """One call of ``mode`` on a new session: the reply's text."""
    s = rt.session(name)
    s.append({"role": "user", "content": "hello"})
    model = MODEL.get(kind, "gpt-4o")
    if mode == "send":
        return str(s.send(p, model=model).message["content"])
    if mode == "stream":
        with s.stream(p, model=model) as st:
            return st.text()

    async def go() -> str:
        try:
            if mode == "asend":
                return str((await s.asend(p, model=model)).message["content"])
            return await s.astream(p, model=model).text()
        finally:
            await p.aclose()

    return asyncio.run(go())


def left_unanswered(srv: ProviderServer) -> bool:
    """Whether the server's one request was never answered: the client left during the
    delay (the handler ends at the latest when the delay does)."""
    assert srv.wait_streams_closed(10)
    for _ in range(1000):
        if srv.active_handlers == 0:
            break
        time.sleep(0.01)
    (rec,) = srv.log
    return rec.status is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_the_total_cap_ends_the_wait_for_a_late_head(
    kind: str, mode: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """The head comes after the total but within the idle timeout: the call raises the
    total cap's ``ProviderTimeoutError``, is not retried (no attempt starts past the
    deadline), and the server saw the connection closed before it answered."""
    p = make(kind, srv)
    srv.fault("*", "delay", count=None, seconds=DELAY)
    try:
        with pytest.raises(ProviderTimeoutError) as caught:
            call(mode, rt, p, kind, f"late-{kind}-{mode}")
    finally:
        p.close()
    assert "total time cap" in str(caught.value)
    assert left_unanswered(srv)


@pytest.mark.parametrize("mode", ["asend", "astream"])
@pytest.mark.parametrize("kind", KINDS)
def test_asyncio_takes_no_reply_that_came_after_the_deadline(
    kind: str, mode: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """The server answers just after the deadline, while the event loop is busy (another
    task blocks it until the reply is in the socket): when the loop comes back, the
    socket is readable and the deadline's timer due. srt's asyncio pool read the reply
    (the socket's readiness is handled first) and returned it; now nothing is read past
    the deadline, and the call raises the total cap's ``ProviderTimeoutError``."""
    p = make(kind, srv)
    srv.fault("*", "delay", count=None, seconds=TOTAL + 0.1)
    s = rt.session(f"after-{kind}-{mode}")
    s.append({"role": "user", "content": "hello"})
    model = MODEL.get(kind, "gpt-4o")

    def answered() -> bool:
        return bool(srv.log) and srv.log[0].status == 200 and srv.open_streams == 0

    async def busy() -> None:
        await asyncio.sleep(TOTAL / 6)  # (the call is waiting for its head by then)
        while not answered():
            time.sleep(0.01)  # (blocks the loop: the point)
        time.sleep(0.2)  # (the reply's bytes reach the client's socket meanwhile)

    async def go() -> str:
        blocker = asyncio.create_task(busy())
        try:
            if mode == "asend":
                return str((await s.asend(p, model=model)).message["content"])
            return await s.astream(p, model=model).text()
        finally:
            await blocker
            await p.aclose()

    with pytest.raises(ProviderTimeoutError) as caught:
        asyncio.run(go())
    assert "total time cap" in str(caught.value)
    assert [m["role"] for m in s.messages()] == ["user"]  # (no late reply stored)
    (rec,) = srv.log  # (and no retry after the deadline)
    assert rec.status == 200


@pytest.mark.parametrize("mode", MODES)
def test_the_total_cap_ends_the_wait_for_a_late_head_through_a_proxy(
    mode: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """Through a proxy (httpx's transports: the sync path's timeouts are cut to the time
    left at each attempt, the asyncio path waits with ``asyncio.wait_for``), the same
    late head ends the call by its total cap; one request reached the server."""
    from proxy_support import ForwardProxy

    srv.fault("*", "delay", count=None, seconds=DELAY)
    with ForwardProxy() as proxy:
        p = make("openai", srv, proxy=proxy.url())
        try:
            with pytest.raises(ProviderTimeoutError) as caught:
                call(mode, rt, p, "openai", f"proxied-{mode}")
        finally:
            p.close()
    assert "total time cap" in str(caught.value)
    assert len(proxy.seen) == 1
