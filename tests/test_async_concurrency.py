"""Many tasks on one event loop: ``asend`` on many sessions of one Runtime at once, and
two tasks on the SAME session handle (serialised: the second waits for the first's
turn, then sends on top of it), against the local provider server on 127.0.0.1 and a
real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer
from support import close_made, openai_for  # noqa: F401  (close_made: an autouse fixture)

MODEL = "gpt-4o"


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_many_sessions_at_once(srv: ProviderServer, store_rt: srt.Runtime) -> None:
    """40 tasks, each three turns on a session of its own, all on one loop and one
    Runtime: every history is whole and in order, one ledger row a request."""
    p = openai_for(srv)
    srv.fault("openai", "delay", count=None, seconds=0.05)  # (so the requests overlap)

    async def one(i: int) -> None:
        s = store_rt.session(f"s{i}")
        for turn in range(3):
            if turn % 2:
                await s.astream(p, model=MODEL, append=[user(f"{i}.{turn}")]).text()
            else:
                await s.asend(p, model=MODEL, append=[user(f"{i}.{turn}")])

    async def main() -> None:
        try:
            await asyncio.gather(*(one(i) for i in range(40)))
        finally:
            await p.aclose()

    asyncio.run(main())
    for i in range(40):
        msgs = store_rt.session(f"s{i}").messages()
        assert [m["role"] for m in msgs] == ["user", "assistant"] * 3
        assert [m["content"] for m in msgs[::2]] == [f"{i}.{t}" for t in range(3)]
    assert store_rt.usage().requests == 120
    assert {r.status for r in store_rt.store.calls()} == {"ok"}


@pytest.mark.parametrize("how", ["asend", "astream"])
def test_two_tasks_on_one_handle_are_serialised(
    srv: ProviderServer, store_rt: srt.Runtime, how: str
) -> None:
    """Two tasks send on the same handle at once (a user who clicks twice, one handle
    per conversation): the second waits for the first's turn to be stored, then sends
    its own message after it. Neither request carries the other's unsent message, and
    the history is both turns in order."""
    p = openai_for(srv)
    srv.fault("openai", "delay", count=None, seconds=0.2)
    s = store_rt.session("shared")

    async def turn(text: str) -> str:
        if how == "asend":
            reply = await s.asend(p, model=MODEL, append=[user(text)])
            return str(reply.message["content"])
        return await s.astream(p, model=MODEL, append=[user(text)]).text()

    async def main() -> list[str]:
        try:
            return await asyncio.gather(turn("first"), turn("second"))
        finally:
            await p.aclose()

    texts = asyncio.run(main())
    msgs = s.messages()
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "first"),
        ("assistant", texts[0]),
        ("user", "second"),
        ("assistant", texts[1]),
    ]
    sent = [[m["content"] for m in r.body["messages"]] for r in srv.log]
    assert sent == [["first"], ["first", texts[0], "second"]]
    assert [r["status"] for r in s.calls()] == ["ok", "ok"]
    assert store_rt.session("shared").messages() == msgs


def test_a_cancelled_first_call_lets_the_second_go(
    srv: ProviderServer, store_rt: srt.Runtime
) -> None:
    """The first of two tasks on one handle is cancelled while it waits for its reply:
    the second then sends on the history as it was, without the first's message."""
    p = openai_for(srv)
    srv.fault("openai", "delay", count=1, seconds=5)
    s = store_rt.session("shared")

    async def main() -> None:
        try:
            first = asyncio.ensure_future(s.asend(p, model=MODEL, append=[user("first")]))
            await asyncio.sleep(0.3)
            second = asyncio.ensure_future(s.asend(p, model=MODEL, append=[user("second")]))
            await asyncio.sleep(0.1)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            await second
        finally:
            await p.aclose()

    asyncio.run(main())
    assert [m["content"] for m in s.messages()][::2] == ["second"]
    assert [m["content"] for m in srv.log[-1].body["messages"]] == ["second"]
    assert [r["status"] for r in s.calls()] == ["cancelled", "ok"]


def test_append_while_a_call_is_in_flight(srv: ProviderServer, store_rt: srt.Runtime) -> None:
    """A task appends to a handle while another task's ``asend(append=...)`` on it waits
    for its reply: the append is refused with ``ConflictError`` and writes nothing (the
    handle is one writer, its call's message staged), and the call's turn is then
    stored whole."""
    p = openai_for(srv)
    srv.fault("openai", "delay", count=1, seconds=0.3)
    s = store_rt.session("shared")

    async def main() -> None:
        try:
            call = asyncio.ensure_future(s.asend(p, model=MODEL, append=[user("first")]))
            await asyncio.sleep(0.1)
            with pytest.raises(srt.ConflictError):
                s.append(user("meanwhile"))
            await call
            s.append(user("after"))
            await s.asend(p, model=MODEL)
        finally:
            await p.aclose()

    asyncio.run(main())
    assert [m["content"] for m in s.messages()][::2] == ["first", "after"]
    assert store_rt.session("shared").messages() == s.messages()
    assert [r["status"] for r in s.calls()] == ["ok", "ok"]


def test_a_call_inside_the_same_tasks_open_stream(
    srv: ProviderServer, store_rt: srt.Runtime
) -> None:
    """A task that sends on a handle while its own stream on it is open would wait for
    itself: ``ConflictError`` at once, before anything is sent; the stream goes on."""
    p = openai_for(srv)
    s = store_rt.session("shared")

    async def main() -> str:
        try:
            got = []
            async for delta in s.astream(p, model=MODEL, append=[user("first")]):
                if not got:
                    with pytest.raises(srt.ConflictError):
                        await s.asend(p, model=MODEL, append=[user("inside")])
                got.append(delta)
            return "".join(got)
        finally:
            await p.aclose()

    text = asyncio.run(main())
    assert [m["content"] for m in s.messages()] == ["first", text]
    assert len(srv.log) == 1 and [r["status"] for r in s.calls()] == ["ok"]


def _append_threads(
    monkeypatch: pytest.MonkeyPatch, store: object, pause: float = 0.0
) -> list[int]:
    """The threads ``store.append`` runs on (the real append, timed from outside; with
    ``pause``, each waits that long first, holding the commit open)."""
    seen: list[int] = []
    real = store.append  # type: ignore[attr-defined]

    def append(*args: object, **kwargs: object) -> object:
        seen.append(threading.get_ident())
        if pause:
            time.sleep(pause)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "append", append)
    return seen


async def _in_flight(
    srv: ProviderServer, s: srt.Session, p: Any, seconds: float
) -> asyncio.Future[srt.Reply]:
    """``s.asend`` of one message, its reply held back ``seconds`` by the server: returned
    once the request is in the server's hands (another call in flight meanwhile)."""
    srv.fault("openai", "delay", count=1, seconds=seconds)
    before = sum(srv.requests.values())
    call = asyncio.ensure_future(s.asend(p, model=MODEL, append=[user("slow")]))
    while sum(srv.requests.values()) == before:
        await asyncio.sleep(0.005)
    return call


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_replies_are_stored_off_the_loop_where_the_store_is_remote(
    srv: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """A PostgreSQL commit waits on the server (about 1 ms): with other calls in flight
    the reply is stored from a worker thread, so the loop runs them meanwhile; a call
    alone, and any call on a SQLite file, stores it on the loop's thread (a thread's
    hand-over would cost more than it frees). A slow first request (``holder``) keeps
    another call in flight while four quick ones are stored; it is stored alone."""
    if engine == "postgres":
        from pg_support import fresh_url

        where = contextlib.ExitStack()
        url = where.enter_context(fresh_url())
    else:
        where, url = contextlib.ExitStack(), str(tmp_path / "s.db")
    with where, srt.Runtime(url) as rt:
        p = openai_for(srv)
        seen = _append_threads(monkeypatch, rt.store)
        loop_thread = threading.get_ident()

        async def main() -> None:
            try:
                holder = await _in_flight(srv, rt.session("holder"), p, 1.0)
                await asyncio.gather(
                    *(
                        rt.session(f"s{i}").asend(p, model=MODEL, append=[user(f"{i}")])
                        for i in range(4)
                    )
                )
                assert not holder.done()
                await holder
            finally:
                await p.aclose()

        asyncio.run(main())
        assert len(seen) == 5
        assert seen[4] == loop_thread  # the holder's, alone by then
        if engine == "postgres":
            assert loop_thread not in seen[:4]
        else:
            assert set(seen) == {loop_thread}
        for i in range(4):
            assert rt.session(f"s{i}").messages()[0]["content"] == f"{i}"


def test_a_task_cancelled_while_its_reply_is_stored_off_the_loop(
    srv: ProviderServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling a task whose reply the store's writer thread is committing cannot call
    the commit back: the task waits for it, then is cancelled; the reply is stored, the
    handle agrees with the store, and the next call on the handle builds on it. (A slow
    request on another session keeps a second call in flight meanwhile.)"""
    with srt.Runtime(pg_url) as rt:
        p = openai_for(srv)
        seen = _append_threads(monkeypatch, rt.store, pause=0.5)
        s = rt.session("a")

        async def main() -> None:
            try:
                other = await _in_flight(srv, rt.session("b"), p, 1.5)
                mine = asyncio.ensure_future(s.asend(p, model=MODEL, append=[user("a")]))
                while not seen:  # its commit under way, in the writer thread
                    await asyncio.sleep(0.01)
                assert seen[0] != threading.get_ident() and not other.done()
                mine.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await mine
                await other
                monkeypatch.undo()
                await s.asend(p, model=MODEL, append=[user("again")])
            finally:
                await p.aclose()

        asyncio.run(main())
        roles = [m["role"] for m in s.messages()]
        assert roles == ["user", "assistant", "user", "assistant"]
        with srt.Runtime(pg_url) as fresh:
            assert fresh.session("a").messages() == s.messages()
        assert [r.status for r in rt.store.calls()].count("ok") == 3
