"""A handle's sync writes while one of its calls is in flight holding staged messages
(``asend(append=...)``, ``astream(append=...)``, a sync ``stream(append=...)``), against
the provider server on 127.0.0.1 and a real store (SQLite and PostgreSQL).

Each write is refused with a ``ConflictError`` that says why (the store's "the node to
append below (-1) is not stored" before, or nothing refused and the staged state lost);
nothing is written, and the call in flight still stores its turn."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import srt
from rel_support.waits import joined
from srt.errors import ConflictError
from srt.providers import Provider
from srt.testing import ProviderServer
from support import wait_for_request

MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}
STAGED = "a call in flight on this handle holds staged messages: wait for it, or use another handle"


def four(rt: srt.Runtime) -> srt.Session:
    """Session "a" of ``rt`` with two turns, the second rewound and written again: a
    history record to restore."""
    s = rt.session("a")
    s.append({"role": "system", "content": "be brief"}, {"role": "user", "content": "q1"})
    s.append({"role": "assistant", "content": "a1"})
    s.rewind(1)
    s.append({"role": "assistant", "content": "a1'"}, {"role": "user", "content": "q2"})
    return s


@contextlib.contextmanager
def mid_stream(s: srt.Session, p: Provider) -> Iterator[None]:
    """The block runs inside a sync ``stream(append=...)``'s loop, after its first delta;
    the stream is read to its end after it."""
    with s.stream(p, model=MODEL, append=[USER]) as stream:
        it = iter(stream)
        next(it)
        yield
        for _ in it:
            pass


#: The handle's sync writes (and the sync calls that would stage or build on its history).
WRITES: dict[str, Callable[[srt.Session, Provider], Any]] = {
    "append": lambda s, p: s.append({"role": "user", "content": "more"}),
    "append_rebase": lambda s, p: s.append({"role": "user", "content": "m"}, rebase=True),
    "rewind": lambda s, p: s.rewind(1),
    "edit": lambda s, p: s.edit(1, {"role": "user", "content": "q1'"}),
    "edit_last": lambda s, p: s.edit(-1, {"role": "user", "content": "q1'"}),
    "compact": lambda s, p: s.compact(3, "a summary", start=1),
    "compact_summarizer": lambda s, p: s.compact(3, start=1, summarizer=p, model=MODEL),
    "expand": lambda s, p: s.expand(),
    "restore": lambda s, p: s.restore(s.history()[0]),
    "fork_all": lambda s, p: s.fork("f"),
    "send": lambda s, p: s.send(p, model=MODEL),
    "send_append": lambda s, p: s.send(p, model=MODEL, append=[USER]),
    "stream": lambda s, p: s.stream(p, model=MODEL).text(),
}


def refused(s: srt.Session, p: Provider, write: str) -> None:
    """``write`` is refused with the clear message, and changes nothing."""
    before = (s.messages(), s.head, len(s.history()), s.calls())
    with pytest.raises(ConflictError) as info:
        WRITES[write](s, p)
    assert str(info.value) == STAGED
    assert (s.messages(), s.head, len(s.history()), s.calls()) == before


def whole(s: srt.Session, store_rt: srt.Runtime, srv: ProviderServer) -> None:
    """The call in flight stored its turn: the staged message once, then the reply."""
    roles = [m["role"] for m in s.messages()]
    assert roles == ["system", "user", "assistant", "user", "user", "assistant"]
    assert [r["status"] for r in s.calls()] == ["ok"]
    assert len(srv.log) == 1
    assert store_rt.session("a").messages() == s.messages()


@pytest.mark.parametrize("write", sorted(WRITES))
def test_sync_write_during_astream(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider, write: str
) -> None:
    """After an ``astream(append=...)``'s first delta, in the same task."""
    s = four(store_rt)

    async def go() -> None:
        stream = s.astream(p, model=MODEL, append=[USER])
        it = aiter(stream)
        await anext(it)
        refused(s, p, write)
        async for _ in it:
            pass
        await p.aclose()

    asyncio.run(go())
    whole(s, store_rt, srv)


@pytest.mark.parametrize("write", ["append", "rewind", "edit", "send"])
def test_sync_write_from_another_thread_during_asend(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider, write: str
) -> None:
    """From another thread while an ``asend(append=...)`` waits for its reply."""
    s = four(store_rt)
    srv.fault("openai", "delay", seconds=1.0)

    async def go() -> None:
        task = asyncio.ensure_future(s.asend(p, model=MODEL, append=[USER]))
        await asyncio.to_thread(wait_for_request, srv)  # its message is staged
        await asyncio.to_thread(refused, s, p, write)
        await task
        await p.aclose()

    asyncio.run(go())
    whole(s, store_rt, srv)


@pytest.mark.parametrize("write", ["append", "rewind", "edit", "send", "fork_all"])
def test_sync_write_during_a_sync_stream(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider, write: str
) -> None:
    """Inside a sync ``stream(append=...)``'s loop, and from another thread."""
    s = four(store_rt)
    with mid_stream(s, p):
        refused(s, p, write)
        failed: list[BaseException] = []

        def other() -> None:
            try:
                refused(s, p, write)
            except BaseException as exc:
                failed.append(exc)

        t = threading.Thread(target=other)
        t.start()
        joined(t)
        assert failed == []
    whole(s, store_rt, srv)


def test_fork_of_the_stored_part_is_allowed(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider
) -> None:
    """A fork that takes only stored messages needs nothing staged: it is made."""
    s = four(store_rt)
    with mid_stream(s, p):
        f = s.fork("f", at=4)
        assert f.messages() == s.messages()[:4]
    whole(s, store_rt, srv)


@pytest.mark.parametrize("write", ["append", "rewind", "send"])
def test_sync_write_during_another_threads_send(
    srv: ProviderServer, store_rt: srt.Runtime, p: Provider, write: str
) -> None:
    """While another thread's sync ``send(append=...)`` waits for its reply."""
    s = four(store_rt)
    srv.fault("openai", "delay", seconds=1.0)
    t = threading.Thread(target=lambda: s.send(p, model=MODEL, append=[USER]))
    t.start()
    wait_for_request(srv)  # its message is staged
    refused(s, p, write)
    joined(t)
    whole(s, store_rt, srv)
