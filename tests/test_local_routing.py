"""The ``local`` provider's per-call counters when sessions share slots, and a server
killed between turns.

``p.calls`` names, for each finished call, its session and route. They were read
from the slot when the call *ended*: another session routed to that slot meanwhile
(more sessions than slots, from several threads or tasks) took the call's record, and
a call after the server was killed went out on a table the restart had emptied
("unrouted", no session, the saved state never restored). Each real-model test
starts one server with one slot (SmolLM2-135M, about a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import srt
from rel_support.waits import joined
from srt.errors import ProviderTimeoutError
from srt.local import server as llama
from srt.local.slots import CallStats, Router
from srt.providers.local import LocalProvider
from support import call_in
from test_local import STARTED, _alive, _port_closed, model

__all__ = ["model"]


@pytest.fixture(scope="module", autouse=True)
def _no_orphans() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in STARTED) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in STARTED if _alive(pid)] == [], "a server outlived the tests"


def _start(model: str, tmp_path: Path) -> LocalProvider:
    p = LocalProvider(
        model, ctx_size=512, slots=1, threads=1, state_dir=str(tmp_path / "states")
    ).start()
    assert p.pid is not None
    STARTED.append(p.pid)
    return p


class _Fake:
    def __init__(self, name: str, *messages: bytes) -> None:
        self.name = name
        self.bodies = list(messages)

    def messages_bytes(self) -> list[bytes]:
        return list(self.bodies)


def test_a_call_keeps_its_session_when_another_is_routed_to_its_slot(tmp_path: Path) -> None:
    """The router alone: ``b`` is routed to the one slot while ``a``'s request runs."""
    r = Router(1, str(tmp_path))
    a = r.ticket(_Fake("a", b'{"role":"user","content":"1"}'))
    begun = r.begin(a.slot, a)
    b = r.ticket(_Fake("b", b'{"role":"user","content":"2"}'))
    assert (a.route, b.route, b.slot) == ("cold", "cold", a.slot)
    call = r.end(a.slot, {"usage": {"prompt_tokens": 9}}, begun)
    assert call is not None and (call.session, call.route) == ("a", "cold")
    # A request that carries no ticket is the slot's last router's, as before.
    call = r.end(b.slot, {"usage": {"prompt_tokens": 9}}, r.begin(b.slot))
    assert call is not None and (call.session, call.route) == ("b", "cold")


def test_a_stream_keeps_its_record_when_another_session_takes_its_slot(
    model: str, tmp_path: Path, rt: srt.Runtime
) -> None:
    p = _start(model, tmp_path)
    try:
        a, b = rt.session("a"), rt.session("b")
        a.append({"role": "user", "content": "Tell me a story about a fox."})
        b.append({"role": "user", "content": "Name a herb."})
        with a.stream(p, model=p.model_name, max_tokens=8, temperature=0) as st:
            next(iter(st))
            p.params_for(b)  # routed to the one slot while a's reply is read
            st.text()
        (call,) = p.calls
        assert (call.session, call.route, call.slot) == ("a", "cold", 0)
        assert call.prompt_tokens == a.calls()[-1]["input_tokens"]
    finally:
        p.close()


def test_a_server_killed_between_turns_resumes_from_its_saved_state(
    model: str, tmp_path: Path, rt: srt.Runtime
) -> None:
    """The next call starts a new server, then routes on its empty slots: the saved
    state is restored and only the new turn is evaluated (before, the call was routed
    on the dead server's table, which the restart then emptied: no restore, the whole
    prompt evaluated, and the call recorded as "unrouted", of no session)."""
    p = _start(model, tmp_path)
    try:
        s = rt.session("killed")
        s.append({"role": "system", "content": "You answer questions about birds. " * 8})
        s.append({"role": "user", "content": "Name a bird."})
        s.send(p, model=p.model_name, max_tokens=8, temperature=0)
        first = p.calls[-1]
        assert p.save() == 1
        pid = p.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while p.pid is not None and time.monotonic() < deadline:  # seen dead: between turns
            time.sleep(0.01)
        s.append({"role": "user", "content": "Name another."})
        s.send(p, model=p.model_name, max_tokens=8, temperature=0)
        assert p.pid is not None and p.pid != pid
        STARTED.append(p.pid)
        c = p.calls[-1]
        assert (c.session, c.route) == ("killed", "restored")
        assert c.restored_tokens >= first.prompt_tokens and c.cache_n >= first.prompt_tokens
        assert c.prompt_n + c.cache_n == c.prompt_tokens and c.prompt_n * 3 < c.prompt_tokens
    finally:
        p.close()


class Held:
    """A long reply being generated on a slot (``_busy``): its stream and reader."""

    def __init__(self, stream: Any, reader: threading.Thread, done: threading.Event) -> None:
        self.stream, self.reader, self.done = stream, reader, done


@contextlib.contextmanager
def _busy(p: LocalProvider, rt: srt.Runtime, name: str = "a", tokens: int = 64) -> Iterator[Held]:
    """Session ``name``'s reply of ``tokens`` tokens generated on the one slot, its first
    chunk read, while the block runs (``done`` is set once it has all been read); the
    block may cancel its stream; its reader is joined at the end."""
    a = rt.session(name)
    a.append({"role": "user", "content": "Tell me a long story about a fox."})
    started, done = threading.Event(), threading.Event()
    box: list[Any] = []

    def long_reply() -> None:
        kw: dict[str, Any] = {"max_tokens": tokens, "temperature": 0, "ignore_eos": True}
        with a.stream(p, model=p.model_name, **kw) as st:
            box.append(st)
            next(iter(st))
            started.set()
            st.text()
            done.set()

    reader = threading.Thread(target=long_reply)
    reader.start()
    try:
        assert started.wait(60)
        yield Held(box[0], reader, done)
    finally:
        joined(reader)


def _saved(p: LocalProvider, rt: srt.Runtime, name: str, topic: str = "birds") -> CallStats:
    """Session ``name``'s first call (its state saved to disk after it)."""
    x = rt.session(name)
    x.append({"role": "system", "content": f"You answer questions about {topic}. " * 8})
    x.append({"role": "user", "content": "Name one."})
    x.send(p, model=p.model_name, max_tokens=8, temperature=0)
    assert p.save() == 1
    return p.calls[-1]


def test_a_restore_that_waits_on_a_busy_slot_keeps_the_saved_state(
    model: str, tmp_path: Path, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More sessions than slots: ``x`` is routed to restore its saved state into the one
    slot while ``a``'s reply is generated there. llama.cpp defers the restore until the
    slot is free, past the restore's timeout (10 s, here shortened). That says nothing
    against the file, which was deleted as if it could not be loaded; now it is kept
    (only a state the server refuses is deleted) and the call still goes through."""
    p = _start(model, tmp_path)
    try:
        _saved(p, rt, "x")
        (state,) = (tmp_path / "states").rglob("*.bin")
        with _busy(p, rt):
            monkeypatch.setattr(llama, "SLOT_TIMEOUT", 0.05)
            # (the restore is posted at once, not after a's reply: the next test waits)
            monkeypatch.setattr(llama.Server, "_wait_idle", lambda *a: None)
            x = rt.session("x")
            x.append({"role": "user", "content": "Name another."})
            x.send(p, model=p.model_name, max_tokens=8, temperature=0)
        assert p.calls[-1].session == "x"
        assert state.exists()
        assert p.stats().restore_failures == 1  # (counted: this call could not use it)
    finally:
        p.close()


def test_a_restore_planned_onto_a_busy_slot_waits_for_it_and_is_used(
    model: str, tmp_path: Path, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every slot busy: ``x``'s saved state is planned into the one slot while ``a``'s
    long reply runs there. The restore used to be posted at once and time out while
    llama.cpp held it behind the reply (``SLOT_TIMEOUT``, shortened here from 10 s to
    0.1 s, shorter than ``a``'s 64 tokens): counted failed and the call recorded cold.
    Now it is posted when the server says the slot is idle (the timeout is put back
    then, so a loaded machine cannot fail the load itself), and loads: the call is
    "restored" and evaluates only its new turn."""
    p = _start(model, tmp_path)
    try:
        first = _saved(p, rt, "x")
        with _busy(p, rt):
            monkeypatch.setattr(llama, "SLOT_TIMEOUT", 0.1)
            wait = getattr(llama.Server, "_wait_idle")  # noqa: B009

            def waited(server: llama.Server, *args: Any) -> None:
                wait(server, *args)
                monkeypatch.setattr(llama, "SLOT_TIMEOUT", 10.0)

            monkeypatch.setattr(llama.Server, "_wait_idle", waited)
            x = rt.session("x")
            x.append({"role": "user", "content": "Name another."})
            x.send(p, model=p.model_name, max_tokens=8, temperature=0)
        c = next(c for c in reversed(p.calls) if c.session == "x")
        assert p.calls[-1].session == "x"  # (sent behind a's reply, it ended last)
        assert p.stats().restore_failures == 0 and p.stats().restores == 1
        assert (c.route, c.slot) == ("restored", 0)
        assert c.restored_tokens >= first.prompt_tokens and c.cache_n >= first.prompt_tokens
        assert c.prompt_n * 3 < c.prompt_tokens
    finally:
        p.close()


@pytest.mark.parametrize("how", ["send", "astream"])
def test_a_request_sent_as_the_server_dies_is_sent_again_to_a_new_one(
    model: str, tmp_path: Path, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The server is SIGKILLed after the request was built for it (it still counted as
    alive) and before it is sent (a hook in ``prepare``, which runs just before): the
    attempt finds its port closed. Safe to send again: the request only reads the
    conversation, and no reply of it was stored or shown. It now goes, once, to a new
    server, its slot planned on the new table (the session's saved state restored);
    before, the transport's retries knocked on the dead port and the call failed with
    ``ProviderConnectionError``, nothing appended."""
    p = _start(model, tmp_path)
    try:
        s = rt.session("dying")
        s.append({"role": "system", "content": "You answer questions about birds. " * 8})
        s.append({"role": "user", "content": "Name a bird."})
        s.send(p, model=p.model_name, max_tokens=8, temperature=0)
        first = p.calls[-1]
        assert p.save() == 1
        pid, url = p.pid, p.server_url
        assert pid is not None and url is not None
        real = llama.Server.prepare
        seen: list[int | None] = []

        def kill_first(server: llama.Server, slot: int | None, *args: Any) -> Any:
            if not seen:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while not _port_closed(url) and time.monotonic() < deadline:
                    time.sleep(0.01)
            elif server.pid is not None:
                STARTED.append(server.pid)  # (the new server, for _no_orphans)
            seen.append(slot)
            return real(server, slot, *args)

        monkeypatch.setattr(llama.Server, "prepare", kill_first)
        turn = {"role": "user", "content": "Name another."}
        call_in(how, s, p, model=p.model_name, append=turn, max_tokens=8, temperature=0)
        assert seen == [0, 0] and STARTED[-1] != pid
        c = p.calls[-1]
        assert (c.session, c.slot, c.route) == ("dying", 0, "restored")
        assert c.restored_tokens >= first.prompt_tokens and c.cache_n >= first.prompt_tokens
        assert c.prompt_n * 3 < c.prompt_tokens
        assert [m["role"] for m in s.messages()][-2:] == ["user", "assistant"]
        assert [r["status"] for r in s.calls()] == ["ok", "ok"]
    finally:
        p.close()


# -- one server for the waits below: one slot, long replies, a short idle timeout ------


@pytest.fixture(scope="module")
def shared(model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
    """One slot with room for a long reply (held busy until cancelled); one thread,
    which keeps its pace on a machine whose cores other work also wants."""
    states = tmp_path_factory.mktemp("states")
    p = LocalProvider(model, ctx_size=2048, slots=1, threads=1, state_dir=str(states)).start()
    assert p.pid is not None
    STARTED.append(p.pid)
    yield p
    p.close()


def _processing(p: LocalProvider) -> bool:
    """Whether llama.cpp is still generating a reply on slot 0."""
    assert p.server_url is not None
    return bool(httpx.get(f"{p.server_url}/slots", timeout=10).json()[0]["is_processing"])


def _held_then_cancelled(p: LocalProvider, rt: srt.Runtime, name: str) -> Any:
    """``_busy`` with a reply far longer than any wait here; cancelled at the end."""

    @contextlib.contextmanager
    def held() -> Iterator[Held]:
        with _busy(p, rt, name, tokens=1800) as h:
            try:
                yield h
            finally:
                h.stream.cancel()

    return held()


def test_a_wait_for_a_busy_slot_ends_at_the_calls_idle_timeout(
    shared: LocalProvider, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``x``'s restore is planned onto the slot while ``a``'s long reply is generated
    there. The wait for the slot used to be capped at a fixed 600 s whatever the call's
    timeouts (here the reply ran to its end, then ``x`` was sent); now it ends at the
    provider's idle timeout with ``ProviderTimeoutError`` while the reply still runs, and
    nothing of ``x``'s turn is stored. (The timeouts are shortened once ``a``'s reply has
    begun: its reads keep the ones it was sent with.)"""
    p = shared
    _saved(p, rt, "wait-x")
    x = rt.session("wait-x")
    before = p.stats()
    with _held_then_cancelled(p, rt, "wait-a"):
        monkeypatch.setattr(p.transport, "timeouts", srt.Timeouts(idle=1.0, total=600.0))
        with pytest.raises(ProviderTimeoutError, match="slot 0"):
            x.send(p, model=p.model_name, append=[{"role": "user", "content": "Another?"}])
        assert _processing(p)  # (the wait ended, not the reply)
    assert len(x.messages()) == 3
    assert p.stats().restores == before.restores  # (never posted)


def test_a_cancelled_stream_stops_its_wait_for_a_busy_slot(
    shared: LocalProvider, rt: srt.Runtime
) -> None:
    """``cancel()`` from another thread on a stream whose request waits for the busy
    slot ends that wait now (the stream ends as cancelled, with nothing in it), not once
    the other reply is over. (Cancelling the held reply itself, the way each test here
    ends it, used to raise ``AttributeError``: the local provider's response had no
    ``abort``.)"""
    p = shared
    _saved(p, rt, "cancel-x")
    x = rt.session("cancel-x")
    x.append({"role": "user", "content": "Another?"})
    before = p.stats()
    texts: list[str] = []
    with _held_then_cancelled(p, rt, "cancel-a"):
        st = x.stream(p, model=p.model_name, max_tokens=8)
        reader = threading.Thread(target=lambda: texts.append(st.text()))
        reader.start()
        st.cancel()
        joined(reader)
        assert _processing(p)  # (the wait ended, not the reply)
    assert texts == [""] and len(x.messages()) == 4
    assert p.stats().restores == before.restores  # (never posted)


def test_an_asyncio_cancel_stops_the_wait_for_a_busy_slot(
    shared: LocalProvider, rt: srt.Runtime
) -> None:
    """``asyncio.wait_for`` cancels ``asend`` while its request waits for the busy slot:
    the wait, in a worker thread, used to go on until the other reply ended (and then
    post the restore nobody would use); ``asyncio.run`` joins that thread, so it now
    returns while the other reply is still being generated."""
    p = shared
    _saved(p, rt, "acancel-x")
    x = rt.session("acancel-x")
    before = p.stats()

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            turn = [{"role": "user", "content": "Another?"}]
            await asyncio.wait_for(x.asend(p, model=p.model_name, append=turn), 0.5)

    with _held_then_cancelled(p, rt, "acancel-a"):
        asyncio.run(main())
        assert _processing(p)  # (the wait ended, not the reply)
    assert p.stats().restores == before.restores


def test_two_sessions_routed_to_one_slot_before_either_starts_each_use_their_restore(
    shared: LocalProvider, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sessions' saved states are planned into the one slot before either request
    starts (a barrier in ``prepare``). Both restores used to run before the first
    request (its own, then the other's over it): one state loaded for nothing and one
    call evaluating its whole prompt. Now requests start in the order they were routed:
    the second waits for the first to start (and, its restore needing the slot, to
    end), and each call finds its own state."""
    p = shared
    firsts = {
        name: _saved(p, rt, name, topic) for name, topic in (("two-b", "birds"), ("two-f", "fish"))
    }
    # a third session's call last, so the slot holds neither's state: routed first with
    # its own state still in the slot, "two-f" needed no restore (1 of 2 in 2 of 6 runs)
    _saved(p, rt, "two-t", "trees")
    before = p.stats()
    gate = threading.Barrier(2, timeout=60)
    real = llama.Server.prepare

    def gated(server: llama.Server, *args: Any) -> Any:
        gate.wait()
        return real(server, *args)

    monkeypatch.setattr(llama.Server, "prepare", gated)

    def turn(name: str) -> None:
        s = rt.session(name)
        s.send(
            p, model=p.model_name, append=[{"role": "user", "content": "Another?"}], max_tokens=8
        )

    threads = [threading.Thread(target=turn, args=(name,)) for name in firsts]
    for t in threads:
        t.start()
    joined(*threads)
    assert p.stats().restores - before.restores == 2
    for name, first in firsts.items():
        c = next(c for c in reversed(p.calls) if c.session == name)
        assert c.route == "restored" and c.restored_tokens >= first.prompt_tokens
        assert c.cache_n >= first.prompt_tokens and c.prompt_n * 3 < c.prompt_tokens
