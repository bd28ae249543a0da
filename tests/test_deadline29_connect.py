"""Connecting ends within ``connect`` and the call's ``total``, a name lookup included;
a caller's stop ends a retry's backoff.

srt's sync pool connected with ``socket.create_connection``, whose name lookup
(``getaddrinfo``) has no timeout: a resolver that did not answer held the call past its
``connect`` timeout and its ``total`` (the asyncio pool's lookup is within both already).
The resolver here is the process's own, slowed for one name that resolves to the
loopback server (the lookup is the one part of connecting loopback cannot make slow).

A stream's ``cancel()`` during a retry's backoff (a 429 that asked for 30 s) waited the
backoff out before the call ended; now it ends at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from srt.errors import ProviderTimeoutError
from srt.providers import OpenAI
from srt.testing import ProviderServer

KEY = "sk-deadline29-0123456789abcdef"
SLOW = "slow-lookup.test"
USER = {"role": "user", "content": "hello"}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def slow_lookup(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """``SLOW`` resolves to 127.0.0.1 after 3 s (sooner once the event is set)."""
    real = socket.getaddrinfo
    answer = threading.Event()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kw: Any) -> Any:
        numeric = (args[3] if len(args) > 3 else kw.get("flags", 0)) & socket.AI_NUMERICHOST
        if host == SLOW and not numeric:  # (a name is no IP address: refused at once)
            answer.wait(3.0)
            return real("127.0.0.1", port, *args, **kw)
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield answer
    answer.set()


def call(mode: str, rt: srt.Runtime, p: OpenAI, name: str) -> str:
    s = rt.session(name)
    s.append(USER)
    if mode == "send":
        return str(s.send(p, model="gpt-4o").message["content"])

    async def go() -> str:
        try:
            return str((await s.asend(p, model="gpt-4o")).message["content"])
        finally:
            await p.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["send", "asend"])
@pytest.mark.parametrize("bound", ["connect", "total"])
def test_a_slow_name_lookup_ends_within_the_timeouts(
    bound: str, mode: str, srv: ProviderServer, rt: srt.Runtime, slow_lookup: threading.Event
) -> None:
    """The lookup answers after 3 s; ``connect`` (or ``total``) is 0.3 s: the call
    raises ``ProviderTimeoutError`` and the server sees no request (the old sync pool
    waited for the answer, then connected and returned the reply)."""
    if bound == "connect":
        timeouts = srt.Timeouts(connect=0.3, idle=5.0, total=600.0)
    else:
        timeouts = srt.Timeouts(connect=5.0, idle=5.0, total=0.3)
    p = OpenAI(
        KEY,
        base_url=f"http://{SLOW}:{srv.port}/v1",
        timeouts=timeouts,
        retry=srt.RetryPolicy(max_retries=0),
        trust_env=False,
    )
    try:
        with pytest.raises(ProviderTimeoutError) as caught:
            call(mode, rt, p, f"lookup-{bound}-{mode}")
    finally:
        p.close()
    if bound == "total":
        assert "total time cap" in str(caught.value)
    assert srv.log == []


def test_the_same_name_connects_once_the_lookup_answers(
    srv: ProviderServer, rt: srt.Runtime, slow_lookup: threading.Event
) -> None:
    """(The name does reach the server when its lookup answers within ``connect``.)"""
    slow_lookup.set()
    timeouts = srt.Timeouts(connect=5.0, idle=5.0, total=60.0)
    p = OpenAI(KEY, base_url=f"http://{SLOW}:{srv.port}/v1", timeouts=timeouts, trust_env=False)
    try:
        assert call("send", rt, p, "lookup-ok").startswith("reply 1")
    finally:
        p.close()
    assert len(srv.log) == 1


def test_a_cancel_ends_a_retrys_backoff(srv: ProviderServer, rt: srt.Runtime) -> None:
    """The first answer is a 429 asking for 30 s; the stream is cancelled while the
    transport waits to retry: the reader returns at once (not after 30 s), the call
    ends ``cancelled``, and no retry is sent."""
    srv.fault("*", "status", code=429, retry_after=30)
    p = OpenAI(KEY, base_url=srv.url + "/v1", trust_env=False)
    try:
        s = rt.session("backoff")
        stream = s.stream(p, model="gpt-4o", append=[USER])
        out: list[object] = []

        def read() -> None:
            try:
                out.append("".join(stream))
            except Exception as exc:  # (reported below)
                out.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while not (srv.log and srv.log[0].status == 429) and reader.is_alive():
            reader.join(0.005)
        reader.join(0.1)  # (the 429 read, the backoff begun)
        stream.cancel()
        reader.join(10.0)  # (a cap on the event: the backoff alone is 30 s)
        assert not reader.is_alive()
        assert stream.status == "cancelled" and stream.reply is None, out
        assert len(srv.log) == 1
    finally:
        p.close()
