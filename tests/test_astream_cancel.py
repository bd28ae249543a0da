"""``astream`` stopped at each stage, on SQLite and PostgreSQL, against upstreams on
127.0.0.1: during ``before`` (an automatic compaction whose summary call never gets its
head), while the response's head is awaited (an upstream that never answers), and
mid-body (one that sends three events, then only keep-alives). Each stage is stopped
four ways: the iterating task cancelled (the caller sees ``CancelledError``), and
``AsyncReplyStream.cancel()`` from another task or another thread, or ``aclose()`` from
another task (the loop ends as at the stream's end, ``status`` ``cancelled``).

Each time: what arrived is stored ``cancelled`` with its ledger row (the row alone when
no head came; nothing when the body never went), the connection is closed (seen from the
upstream's side: an event, waited on with a generous cap) and not kept by the pool, the
handle's turn is free (the next ``asend`` works), nothing warns ``unclosed``, and no
reference cycle keeps the response alive once the stream is dropped (the collector off)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from cancel_support import Silent, pooled, response_of, went
from rel_support.waits import WAIT_S, joined
from srt.context import WindowPolicy
from srt.drivers import AsyncReplyStream
from srt.providers import OpenAI
from srt.testing import ProviderServer
from srt.tokens import GENERIC_ESTIMATE
from support import SRV_KEY, close_made, openai_for  # noqa: F401  (close_made: an autouse fixture)

MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}
#: Seconds between a stalled upstream's keep-alives: longer than any wait below.
STALL_S = 30.0
HOWS = ["task", "cancel", "thread", "aclose"]


@pytest.fixture
def up() -> Iterator[Silent]:
    with Silent() as upstream:
        yield upstream


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def stop(how: str, stream: AsyncReplyStream, reader: asyncio.Task[Any]) -> Any:
    """Stop ``reader``, which iterates ``stream``, the way ``how`` says (a coroutine to
    await for ``aclose``)."""
    if how == "task":
        reader.cancel()
    elif how == "cancel":
        stream.cancel()
    elif how == "thread":
        t = threading.Thread(target=stream.cancel)
        t.start()
        joined(t)
    else:
        return stream.aclose()
    return None


async def ended(how: str, reader: asyncio.Task[list[str]]) -> list[str]:
    """What ``reader`` saw; the caller sees ``CancelledError`` only if its task was."""
    if how == "task":
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(reader, 10.0)
        return []
    return await asyncio.wait_for(reader, 10.0)


async def read(stream: AsyncReplyStream, seen: list[str], first: asyncio.Event) -> list[str]:
    async for delta in stream:
        seen.append(delta)
        first.set()
    return seen


def no_unclosed_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.parametrize("how", HOWS)
def test_stopped_mid_body(srv: ProviderServer, store_rt: srt.Runtime, p: OpenAI, how: str) -> None:
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    s = store_rt.session("a")

    async def go() -> None:
        with collector_off():
            stream = s.astream(p, model=MODEL, append=[USER])
            seen: list[str] = []
            first = asyncio.Event()
            reader = asyncio.ensure_future(read(stream, seen, first))
            await asyncio.wait_for(first.wait(), 10.0)
            await asyncio.sleep(0)  # (the reader back in its read: no delta is held)
            closing = stop(how, stream, reader)
            if closing is not None:
                await closing
            got = await ended(how, reader)
            assert got in ([], seen)
            assert stream.status == "cancelled"
            assert stream.reply is not None and stream.reply.message["content"] == "".join(seen)
            assert [r["status"] for r in s.calls()] == ["cancelled"]
            assert [e.status for e in s.entries()] == [None, "cancelled"]
            assert srv.wait_streams_closed(timeout=10.0)
            assert pooled(p.async_transport) == (0, 0)  # closed, not handed back
            ref = response_of(stream)
            assert ref is not None
            del stream, reader, closing
            assert ref() is None  # (no cycle: gone with the collector off)
        reply = await s.asend(p, model=MODEL, append=[USER])  # the turn is free
        assert reply.message["content"]
        assert pooled(p.async_transport) == (1, 1)  # a fresh connection, kept
        await p.aclose()

    asyncio.run(go())
    no_unclosed_warning()
    assert [e.status for e in s.entries()] == [None, "cancelled", None, None]
    assert [r["status"] for r in s.calls()] == ["cancelled", "ok"]


@pytest.mark.parametrize("how", HOWS)
def test_stopped_before_the_head(
    srv: ProviderServer, store_rt: srt.Runtime, up: Silent, p: OpenAI, how: str
) -> None:
    silent = OpenAI(SRV_KEY, base_url=up.url + "/v1")
    s = store_rt.session("a")

    async def go() -> None:
        with collector_off():
            stream = s.astream(silent, model=MODEL, append=[USER])
            reader = asyncio.ensure_future(read(stream, [], asyncio.Event()))
            deadline = time.monotonic() + WAIT_S
            while not went(stream):  # the body is out; no head ever comes
                assert not reader.done(), reader
                assert time.monotonic() < deadline, "the request never went out"
                await asyncio.sleep(0.005)
            closing = stop(how, stream, reader)
            if closing is not None:
                await closing
            assert await ended(how, reader) == []
            assert stream.status == "cancelled" and stream.reply is None
            assert [r["status"] for r in s.calls()] == ["cancelled"]
            assert s.entries() == []
            assert up.closed.wait(10.0)
            assert pooled(silent.async_transport) == (0, 0)
            del stream, reader, closing
        await s.asend(p, model=MODEL, append=[USER])  # the turn is free
        await silent.aclose()
        await p.aclose()

    asyncio.run(go())
    no_unclosed_warning()
    assert [e.status for e in s.entries()] == [None, None]
    assert [r["status"] for r in s.calls()] == ["cancelled", "ok"]
    assert srv.log[-1].body["messages"] == [USER]  # the staged message, sent once


@pytest.mark.parametrize("how", HOWS)
def test_stopped_during_before(
    srv: ProviderServer, store_rt: srt.Runtime, up: Silent, p: OpenAI, how: str
) -> None:
    """During the automatic compaction ``before`` awaits (its summary call waits for a
    head that never comes): nothing of the turn is sent or stored, the summary's
    connection is closed, the history is as it was."""
    summarizer = OpenAI(SRV_KEY, base_url=up.url + "/v1")
    window = WindowPolicy(
        "cache_aware", 400, compact_at=0.5, tokenizer=GENERIC_ESTIMATE, summarizer=summarizer
    )
    s = store_rt.session("a")
    for i in range(6):
        s.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} " + "x" * 300})
    history = s.messages()
    sent = len(srv.log)

    async def go() -> None:
        stream = s.astream(p, model=MODEL, append=[USER], window=window)
        reader = asyncio.ensure_future(read(stream, [], asyncio.Event()))
        deadline = time.monotonic() + WAIT_S
        while not up.request_in.is_set():  # the summary call is in; no head comes
            assert not reader.done(), reader
            assert time.monotonic() < deadline, "the summary call never came in"
            await asyncio.sleep(0.005)
        closing = stop(how, stream, reader)
        if closing is not None:
            await closing
        assert await ended(how, reader) == []
        assert stream.status == "cancelled" and stream.reply is None
        assert up.closed.wait(10.0)
        # (the summary's row: its request went out; the turn sent nothing)
        assert s.messages() == history and len(srv.log) == sent
        assert [r["status"] for r in s.calls()] == ["cancelled"]
        await s.asend(p, model=MODEL, append=[USER])  # the turn is free
        await summarizer.aclose()
        await p.aclose()

    asyncio.run(go())
    no_unclosed_warning()
    assert s.messages()[: len(history)] == history
    assert [r["status"] for r in s.calls()] == ["cancelled", "ok"]


def test_async_with_left_early_cancels(
    srv: ProviderServer, store_rt: srt.Runtime, p: OpenAI
) -> None:
    """``async with s.astream(...) as st``, left after the first delta: the stream is
    ended, what arrived stored ``cancelled`` with its row, the connection closed; a
    stream left before it began sends nothing."""
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    s = store_rt.session("a")

    async def go() -> str:
        async with s.astream(p, model=MODEL, append=[USER]) as st:
            async for delta in st:  # noqa: B007  (the first, returned)
                break
        assert st.status == "cancelled"
        async with s.astream(p, model=MODEL, append=[USER]) as never:
            pass
        assert never.status is None and never.reply is None
        await p.aclose()
        return delta

    requests = len(srv.log)
    first = asyncio.run(go())
    assert len(srv.log) == requests + 1
    assert srv.wait_streams_closed(timeout=10.0)
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert [e.message["content"] for e in s.entries()][1] == first


def test_cancel_while_a_delta_is_held_ends_at_the_next_step(
    srv: ProviderServer, store_rt: srt.Runtime, p: OpenAI
) -> None:
    """``cancel()`` while the iterating task holds a delta (its own code runs, awaiting
    something else): that await is not cancelled; the stream ends at its next step, no
    error, and what the reader saw is what is stored."""
    srv.fault("openai", "endless", interval=STALL_S, after=3)
    s = store_rt.session("a")

    async def go() -> list[str]:
        stream = s.astream(p, model=MODEL, append=[USER])
        seen: list[str] = []
        async for delta in stream:
            seen.append(delta)
            if len(seen) == 1:
                stream.cancel()
                await asyncio.sleep(0)  # (the reader's own await: not cancelled)
        assert stream.status == "cancelled"
        await stream.aclose()
        stream.cancel()  # (again, once ended: nothing)
        await p.aclose()
        return seen

    seen = asyncio.run(go())
    assert srv.wait_streams_closed(timeout=10.0)
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert s.entries()[1].message["content"] == "".join(seen)
