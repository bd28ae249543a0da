"""Races of the threads' sweep and of a DELETE with the turns under way, on both engines,
made deterministic with events (the upstream holds a request until released):

- A thread is made before the record naming it (a new response's, a conversation's
  re-rooted history): ``srt gc`` while such a turn waits on its upstream takes an old
  orphan but not its thread, and the turn then completes.
- A thread the sweep found old and unnamed that a turn moves on before the deletion
  (its previous response deleted while it ran, by the same worker) stays.
- Two workers on one store: a DELETE of a response (or a conversation) while a
  continuation of it (a turn on it) waits on its upstream takes its thread; the turn's
  commit then fails, and the client is told what a request after the DELETE is (400
  ``previous_response_not_found``, 404 for the conversation), a stream with
  ``response.failed`` saying so; nothing is left in progress.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

import srt
import srt.gateway
from gateway_support import UPSTREAM_KEY, config, serving
from srt.gateway import orphans
from srt.gateway import records as rc
from srt.testing import ProviderServer

_TIME = time.time
AGO = 2 * orphans.GRACE_S


class Hold:
    """The upstream holds each request whose body holds ``word`` until ``release``."""

    def __init__(self, srv: ProviderServer, word: str = "held") -> None:
        self.word = word
        self.arrived = threading.Semaphore(0)
        self.released = threading.Event()
        srv.respond("openai.chat", self)

    def __call__(self, endpoint: str, body: Any, units: list[str]) -> None:
        if self.word in json.dumps(body):
            self.arrived.release()
            assert self.released.wait(60)

    def wait(self, n: int = 1) -> None:
        for _ in range(n):
            assert self.arrived.acquire(timeout=60)

    def release(self) -> None:
        self.released.set()


@contextlib.contextmanager
def workers(url: str, monkeypatch: pytest.MonkeyPatch, n: int) -> Iterator[tuple[Any, ...]]:
    """The test server, and ``n`` gateway workers (apps with runtimes of their own) on
    the store at ``url``: yields the server and a client of each."""
    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    srv = ProviderServer(api_key=UPSTREAM_KEY)
    with contextlib.ExitStack() as stack:
        stack.enter_context(srv)
        clients = []
        for _ in range(n):
            rt = stack.enter_context(srt.Runtime(url))
            base = stack.enter_context(serving(srt.gateway.app(config(srv, open=True), rt)))
            client = openai.OpenAI(base_url=base, api_key="sk-any", max_retries=0)
            stack.callback(client.close)
            clients.append(client)
        yield (srv, *clients)


def _sessions(url: str) -> set[str]:
    with srt.Runtime(url) as rt:
        return {s.name for s in rt.sessions()}


@contextlib.contextmanager
def _ago(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What is written in the block is ``AGO`` old (past the threads' grace)."""
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: _TIME() - AGO)
        yield


def _running(fn: Callable[[], Any]) -> Any:
    pool = ThreadPoolExecutor(1)
    future = pool.submit(fn)
    pool.shutdown(wait=False)
    return future


def test_turns_under_way_keep_their_threads(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new response's turn, then a conversation's re-rooted by new instructions, each
    held at its upstream (its thread made, no record naming it yet) while ``srt gc``
    runs: the old orphan goes, their threads stay, and the turns complete."""
    with workers(store_url, monkeypatch, 1) as (srv, c):
        with _ago(monkeypatch):
            old = c.responses.create(model="m", input="an orphan's")
            conv = c.conversations.create(items=[{"role": "user", "content": "first item"}])
        with srt.Runtime(store_url) as rt:
            assert rt.store.delete_object(rc.RESPONSE, "default", old.id)
        turns = [
            lambda: c.responses.create(model="m", input="held new"),
            lambda: c.responses.create(
                model="m", input="held conv", instructions="new rules", conversation=conv.id
            ),
        ]
        swept = []
        for i, create in enumerate(turns):
            before = _sessions(store_url)
            hold = Hold(srv)
            turn = _running(create)
            hold.wait()  # its thread made, no record names it yet
            made = _sessions(store_url) - before
            assert len(made) == 1
            with srt.Runtime(store_url) as cron:
                swept.append(dict(cron.gc().swept)[orphans.THREAD])
            gone = {f"gw/default/{old.id}"} if i == 0 else set()
            assert _sessions(store_url) == (before | made) - gone
            hold.release()
            done = turn.result(60)
            assert done.status == "completed"
            assert c.responses.retrieve(done.id).output_text == done.output_text
            on = c.responses.create(model="m", input="on", previous_response_id=done.id)
            assert on.status == "completed"
        assert swept == [1, 0]  # the orphan, then nothing
        items = c.conversations.items.list(conv.id, order="asc").data
        said = [i.content[0].text for i in items if i.role == "user"]  # type: ignore[union-attr]
        assert said == ["first item", "held conv"]


@pytest.mark.parametrize("at", ["check", "delete"])
def test_a_thread_moved_while_swept_stays(
    store_url: str, monkeypatch: pytest.MonkeyPatch, at: str
) -> None:
    """Its previous response deleted while a turn continues it (the same worker keeps
    the thread it works on), the thread is old and unnamed; the turn commits after the
    sweep read the records: before the sweep reads the thread's row (``check``), or after
    it found the row old and unchanged, before its delete (``delete``: the delete is
    conditional on the head it read; before, it deleted the thread whatever its head, the
    turn's reply too). Either way the thread stays, as the turn's record names it."""
    with workers(store_url, monkeypatch, 1) as (srv, c):
        with _ago(monkeypatch):
            r = c.responses.create(model="m", input="old")
        thread = f"gw/default/{r.id}"
        hold = Hold(srv)
        turn = _running(
            lambda: c.responses.create(model="m", input="held", previous_response_id=r.id)
        )
        hold.wait()
        c.responses.delete(r.id)
        assert thread in _sessions(store_url)  # in use: the turn's record will name it
        with srt.Runtime(store_url) as cron:
            deleting, committed = threading.Event(), threading.Event()
            method = "get_session" if at == "check" else "delete_session"
            real = getattr(cron.store, method)

            def hooked(name: str, **kw: Any) -> Any:
                if name == thread:  # found old and unnamed: the turn commits now
                    deleting.set()
                    assert committed.wait(60)
                return real(name, **kw)

            monkeypatch.setattr(cron.store, method, hooked)
            swept: list[Any] = []
            sweep = threading.Thread(target=lambda: swept.append(cron.gc().swept))
            sweep.start()
            assert deleting.wait(60)
            hold.release()
            done = turn.result(60)
            committed.set()
            sweep.join(60)
            assert not sweep.is_alive(), "the sweep did not end"
        assert swept == [((orphans.THREAD, 0),)]
        assert thread in _sessions(store_url)
        assert done.status == "completed"
        again = c.responses.create(model="m", input="again", previous_response_id=done.id)
        assert [
            i.content[0].text for i in c.responses.input_items.list(again.id, order="asc").data
        ][0::2] == ["old", "held", "again"]  # type: ignore[union-attr]


def _no_response_in_progress(url: str) -> None:
    with srt.Runtime(url) as rt:
        for row in rt.store.scan_objects(kind=rc.RESPONSE):
            status = json.loads(row.value)["r"]["status"]
            assert status not in ("in_progress", "queued"), row.key


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_a_delete_racing_a_continuation(
    store_url: str, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    with workers(store_url, monkeypatch, 2) as (srv, a, b):
        r = a.responses.create(model="m", input="first")
        hold = Hold(srv)

        def go_on() -> Any:
            if not stream:
                return a.responses.create(model="m", input="held", previous_response_id=r.id)
            with a.responses.stream(model="m", input="held", previous_response_id=r.id) as st:
                return [e for e in st if e.type == "response.failed"]

        turn = _running(go_on)
        hold.wait()
        b.responses.delete(r.id)  # the other worker: the thread goes with it
        assert f"gw/default/{r.id}" not in _sessions(store_url)
        hold.release()
        if not stream:
            with pytest.raises(openai.BadRequestError) as got:
                turn.result(60)
            assert got.value.code == "previous_response_not_found"
            assert got.value.param == "previous_response_id"
            assert f"'{r.id}' not found" in got.value.message
            with srt.Runtime(store_url) as rt:  # nothing was written of it
                assert list(rt.store.scan_objects(kind=rc.RESPONSE)) == []
        else:
            (failed,) = turn.result(60)
            # (a response's error code is one of the SDK's ResponseError's: the 400's own
            # code, previous_response_not_found, is in its message's words)
            assert failed.response.error.code == "server_error"
            assert f"'{r.id}' not found" in failed.response.error.message
            stored = b.responses.retrieve(failed.response.id)
            assert stored.status == "failed" and stored.error is not None
            assert stored.error.code == "server_error"
            assert stored.error.message == failed.response.error.message
        _no_response_in_progress(store_url)
        with pytest.raises(openai.BadRequestError) as after:  # as a request after it
            a.responses.create(model="m", input="later", previous_response_id=r.id)
        assert after.value.code == "previous_response_not_found"


def test_a_delete_racing_a_conversation_turn(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with workers(store_url, monkeypatch, 2) as (srv, a, b):
        conv = a.conversations.create(items=[{"role": "user", "content": "hello"}])
        hold = Hold(srv)
        turn = _running(lambda: a.responses.create(model="m", input="held", conversation=conv.id))
        hold.wait()
        b.conversations.delete(conv.id)
        hold.release()
        with pytest.raises(openai.NotFoundError) as got:
            turn.result(60)
        assert got.value.param == "conversation" and conv.id in got.value.message
        with srt.Runtime(store_url) as rt:
            assert list(rt.store.scan_objects(kind=rc.RESPONSE)) == []
            assert rt.store.get_session(f"gw/default/{conv.id}") is None
