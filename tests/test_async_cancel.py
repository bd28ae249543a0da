"""``asend`` and ``astream`` cancelled at each of their awaits, as an async web app does
it (a client that disconnects, ``asyncio.timeout``, ``wait_for``), against the local
provider server on 127.0.0.1 and a real store (SQLite; PostgreSQL where the engine
matters).

After a cancellation the session is either as it was or holds the complete turn (or the
partial reply marked ``cancelled``): never a half-written turn, never a staged message
sent twice by the next call; a request whose body went out has its ledger row; the
handle works for the next call.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import srt
from srt.providers import Provider
from srt.testing import ProviderServer
from support import close_made, openai_for  # noqa: F401  (close_made: an autouse fixture)

MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def roles(s: srt.Session) -> list[str]:
    return [m["role"] for m in s.messages()]


def users_in_last_request(srv: ProviderServer) -> int:
    """How many user messages the last request the server saw carried."""
    return sum(m["role"] == "user" for m in srv.log[-1].body["messages"])


async def next_turn(s: srt.Session, p: Provider) -> srt.Reply:
    """The next call on the same handle, after a cancelled one: it must work."""
    return await s.asend(p, model=MODEL, append=[USER])


# -- asend ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["head", "body"])
def test_asend_timed_out_leaves_session_and_ledger_whole(
    srv: ProviderServer, store_rt: srt.Runtime, where: str
) -> None:
    """``asyncio.timeout`` around ``asend(append=...)`` while the head is awaited (the
    body was sent: the provider may bill it) or mid-body (it did): nothing is appended,
    the staged message is dropped (the next call sends it once), a ``cancelled`` row is
    in the ledger, and the handle works."""
    p = openai_for(srv)
    s = store_rt.session("a")
    if where == "head":
        srv.fault("openai", "delay", seconds=5)
    else:
        srv.fault("openai", "slow", interval=5)

    async def go() -> None:
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await s.asend(p, model=MODEL, append=[USER])
            assert roles(s) == []
            rows = s.calls()
            assert [r["status"] for r in rows] == ["cancelled"]
            assert rows[0]["input_tokens"] is None
            await next_turn(s, p)
        finally:
            await p.aclose()

    run(go())
    assert roles(s) == ["user", "assistant"]
    assert [r["status"] for r in s.calls()] == ["cancelled", "ok"]
    assert users_in_last_request(srv) == 1
    assert store_rt.session("a").messages() == s.messages()


def test_asend_cancelled_before_the_body_went_out_records_nothing(
    srv: ProviderServer, store_rt: srt.Runtime
) -> None:
    """Cancelled before the request is written (the task cancelled before its first
    step): no row, nothing staged left behind."""
    p = openai_for(srv)
    s = store_rt.session("a")

    async def go() -> None:
        try:
            task = asyncio.ensure_future(s.asend(p, model=MODEL, append=[USER]))
            await asyncio.sleep(0)  # the task runs up to its first real wait
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert len(s) == 0 and roles(s) == []
            await next_turn(s, p)
        finally:
            await p.aclose()

    run(go())
    assert roles(s) == ["user", "assistant"]
    assert users_in_last_request(srv) == 1
    assert [r["status"] for r in s.calls()][-1] == "ok"


# -- astream -------------------------------------------------------------------------


def test_astream_timed_out_mid_stream_keeps_the_partial_reply(
    srv: ProviderServer, store_rt: srt.Runtime
) -> None:
    p = openai_for(srv)
    s = store_rt.session("a")
    srv.fault("openai", "endless", interval=0.1, after=3)

    async def go() -> list[str]:
        got: list[str] = []
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.6):
                    async for d in s.astream(p, model=MODEL, append=[USER]):
                        got.append(d)
            await next_turn(s, p)
            return got
        finally:
            await p.aclose()

    got = run(go())
    entries = s.entries()
    assert [e.message["role"] for e in entries] == ["user", "assistant", "user", "assistant"]
    assert entries[1].status == "cancelled"
    assert entries[1].message["content"] == "".join(got)
    assert [r["status"] for r in s.calls()] == ["cancelled", "ok"]


def test_astream_timed_out_before_the_head(srv: ProviderServer, store_rt: srt.Runtime) -> None:
    p = openai_for(srv)
    s = store_rt.session("a")
    srv.fault("openai", "delay", seconds=5)

    async def go() -> None:
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await s.astream(p, model=MODEL, append=[USER]).text()
            assert roles(s) == []
            assert [r["status"] for r in s.calls()] == ["cancelled"]
            await next_turn(s, p)
        finally:
            await p.aclose()

    run(go())
    assert roles(s) == ["user", "assistant"]
    assert users_in_last_request(srv) == 1


@pytest.mark.parametrize("how", ["aclose", "dropped"])
def test_astream_left_after_its_first_delta(
    srv: ProviderServer, store_rt: srt.Runtime, how: str
) -> None:
    """A stream left after its first delta, closed with ``aclose`` or dropped (no
    ``aclose``; once collected): what arrived is stored as ``cancelled`` with its ledger
    row, its connection is closed, and nothing warns (the suite runs with
    ``filterwarnings = error``)."""
    p = openai_for(srv)
    s = store_rt.session("a")
    srv.fault("openai", "endless", interval=0.05, after=3)

    async def go() -> None:
        try:
            stream = s.astream(p, model=MODEL, append=[USER])
            async for _ in stream:
                break
            if how == "aclose":
                await stream.aclose()
                assert stream.status == "cancelled"
            else:
                del stream
                gc.collect()
                for _ in range(20):  # the loop's finaliser closes the generator in a task
                    await asyncio.sleep(0.01)
                    if s.calls():
                        break
            assert [r["status"] for r in s.calls()] == ["cancelled"]
            await next_turn(s, p)
        finally:
            await p.aclose()

    run(go())
    assert srv.wait_streams_closed()
    assert [e.status for e in s.entries()] == [None, "cancelled", None, None]


def test_astream_abandoned_when_the_loop_ends(srv: ProviderServer, store_rt: srt.Runtime) -> None:
    """A stream still referenced when ``asyncio.run`` ends: its shutdown closes the
    generator; the ledger row is written and nothing warns."""
    p = openai_for(srv)
    s = store_rt.session("a")
    srv.fault("openai", "endless", interval=0.05, after=3)
    kept: list[Any] = []

    async def go() -> None:
        stream = s.astream(p, model=MODEL, append=[USER])
        kept.append(stream)
        async for _ in stream:
            break

    run(go())
    kept.clear()
    gc.collect()
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert [e.status for e in s.entries()] == [None, "cancelled"]
    p.close()
