"""drops31: the gateway's last unconditional session deletes are conditional on the head
they checked, on SQLite and PostgreSQL. ``Placer._drop_fork`` (a fork's session ending
with its turn) deleted the session whatever its head, and ``Threads.drop(any_head=True)``
(the thread a re-rooted conversation left) checked that the session existed, then
deleted whatever its head had become: a turn another worker appended between the check
and the delete was deleted with it. Each race is made at the exact point, by another
runtime (as another worker process is), before the caller goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import srt
from srt.gateway import items as it
from srt.gateway.errors import ApiError
from srt.gateway.params import CreateResponse
from srt.gateway.records import Records, thread_name
from srt.gateway.threads import Threads
from srt.gateway.turns import Placer, Turn

NAME = "gw/t/resp_fork"


def _other_turn(url: str, name: str) -> Callable[[], None]:
    """Another writer (a runtime of its own) adds a turn to session ``name``."""

    def act() -> None:
        with srt.Runtime(url) as other:
            other.session(name, create=False).append(
                {"role": "user", "content": "added by another worker"}
            )

    return act


def _once(act: Callable[[], None], then: Callable[..., Any]) -> Callable[..., Any]:
    """``then``, with ``act`` run right after its first call returns."""
    done: list[bool] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = then(*args, **kwargs)
        if not done:
            done.append(True)
            act()
        return out

    return wrapped


def _contents(rt: srt.Runtime, name: str) -> list[Any]:
    return [m["content"] for m in rt.session(name, create=False).messages()]


def test_a_forks_end_keeps_a_turn_another_worker_added(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with srt.Runtime(store_url) as rt:
        threads = Threads(rt)
        live = threads.adopt(NAME, rt.session(NAME), 0, None)
        live.session.append(
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
        )
        turn = Turn(live, live.session, 0, None, [], None, False, fork=True)
        placer = Placer(rt, None, threads)  # type: ignore[arg-type]  # (end_own reads none)
        threads.release(live)
        # The other worker's turn lands once the fork's head was taken as this turn's.
        monkeypatch.setattr(threads, "forget", _once(_other_turn(store_url, NAME), threads.forget))
        placer.end_own("t", "resp_fork", turn)
        monkeypatch.undo()
        # (before: the session was deleted, and the other worker's turn with it)
        assert _contents(rt, NAME) == ["hi", "hello", "added by another worker"]


def test_a_forks_end_unraced_deletes_it(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        threads = Threads(rt)
        live = threads.adopt(NAME, rt.session(NAME), 0, None)
        live.session.append({"role": "user", "content": "hi"})
        turn = Turn(live, live.session, 0, None, [], None, False, fork=True)
        threads.release(live)
        Placer(rt, None, threads).end_own("t", "resp_fork", turn)  # type: ignore[arg-type]
        assert rt.store.get_session(NAME) is None


def test_drop_any_head_keeps_a_turn_another_worker_added(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "gw/t/conv_1"
    with srt.Runtime(store_url) as rt:
        rt.session(name).append(
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
        )
        threads = Threads(rt)
        monkeypatch.setattr(
            rt.store, "get_session", _once(_other_turn(store_url, name), rt.store.get_session)
        )
        assert threads.drop(name, any_head=True) is False  # (before: True, the turn gone)
        monkeypatch.undo()
        assert _contents(rt, name) == ["hi", "hello", "added by another worker"]
        # Unraced, whatever its head, it goes.
        assert threads.drop(name, any_head=True) is True
        assert rt.store.get_session(name) is None


def test_a_forks_reroot_refuses_when_another_worker_added_to_it(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork whose instructions changed gives its name to the re-rooted history: its
    session goes first. One another worker added to meanwhile stays, and the request is
    a 409 (before: the other worker's turn was deleted, and the re-rooted history took
    the name over it)."""
    name = thread_name("t", "resp_reroot")
    with srt.Runtime(store_url) as rt:
        threads = Threads(rt)
        live = threads.adopt(name, rt.session(name), 0, None)
        live.session.append(
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
        )
        placer = Placer(rt, Records(rt.store), threads)
        p = CreateResponse(model="gpt-4o-mini", input=[], instructions="Be terse.")
        monkeypatch.setattr(threads, "forget", _once(_other_turn(store_url, name), threads.forget))
        try:
            placer._positioned(  # noqa: SLF001  (the re-rooting step, at its delete)
                "t", live, 2, p, "resp_reroot", None, it.PLAIN, fork=True
            )
        except ApiError as exc:
            refused: ApiError | None = exc
        else:
            refused = None
        monkeypatch.undo()
        assert _contents(rt, name) == ["hi", "hello", "added by another worker"]
        assert refused is not None
        assert (refused.status, refused.code) == (409, "conversation_locked")
