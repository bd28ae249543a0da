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

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import srt
from srt.local import server as llama
from srt.local.slots import Router
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
        model, ctx_size=512, slots=1, threads=2, state_dir=str(tmp_path / "states")
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
        x, a = rt.session("x"), rt.session("a")
        x.append({"role": "system", "content": "You answer questions about birds. " * 8})
        x.append({"role": "user", "content": "Name a bird."})
        x.send(p, model=p.model_name, max_tokens=8, temperature=0)
        assert p.save() == 1
        (state,) = (tmp_path / "states").rglob("*.bin")
        a.append({"role": "user", "content": "Tell me a long story about a fox."})
        started = threading.Event()

        def long_reply() -> None:
            with a.stream(p, model=p.model_name, max_tokens=32, temperature=0) as st:
                next(iter(st))
                started.set()
                st.text()

        reader = threading.Thread(target=long_reply)
        reader.start()
        try:
            assert started.wait(60)
            monkeypatch.setattr(llama, "SLOT_TIMEOUT", 0.05)
            # (the restore is posted at once, not after a's reply: the next test waits)
            monkeypatch.setattr(llama, "BUSY_WAIT_S", 0.0)
            x.append({"role": "user", "content": "Name another."})
            x.send(p, model=p.model_name, max_tokens=8, temperature=0)
        finally:
            reader.join(120)
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
        x, a = rt.session("x"), rt.session("a")
        x.append({"role": "system", "content": "You answer questions about birds. " * 8})
        x.append({"role": "user", "content": "Name a bird."})
        x.send(p, model=p.model_name, max_tokens=8, temperature=0)
        first = p.calls[-1]
        assert p.save() == 1
        a.append({"role": "user", "content": "Tell me a long story about a fox."})
        started = threading.Event()

        def long_reply() -> None:
            kw = {"max_tokens": 64, "temperature": 0, "ignore_eos": True}
            with a.stream(p, model=p.model_name, **kw) as st:
                next(iter(st))
                started.set()
                st.text()

        reader = threading.Thread(target=long_reply)
        reader.start()
        try:
            assert started.wait(60)
            monkeypatch.setattr(llama, "SLOT_TIMEOUT", 0.1)
            wait = getattr(llama.Server, "_wait_idle", None)

            def waited(server: llama.Server, slot: int) -> None:
                assert wait is not None
                wait(server, slot)
                monkeypatch.setattr(llama, "SLOT_TIMEOUT", 10.0)

            # (raising=False: without the wait, as before, nothing calls it)
            monkeypatch.setattr(llama.Server, "_wait_idle", waited, raising=False)
            x.append({"role": "user", "content": "Name another."})
            x.send(p, model=p.model_name, max_tokens=8, temperature=0)
        finally:
            reader.join(120)
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

        def kill_first(server: llama.Server, slot: int | None) -> None:
            if not seen:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while not _port_closed(url) and time.monotonic() < deadline:
                    time.sleep(0.01)
            elif server.pid is not None:
                STARTED.append(server.pid)  # (the new server, for _no_orphans)
            seen.append(slot)
            real(server, slot)

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
