"""tasks31: deleting a session that looked unused is a compare-and-swap on its head, on
SQLite and PostgreSQL. ``srt chat``'s ``_drop_unused`` (a chat left without a turn) and
the gateway's ``Threads.drop`` (a thread nothing names any more) read the session, decide
it can go, then delete it: a turn another writer (another process, another worker) adds
between that read and the delete used to be deleted with it. Each race here is made at
the exact point: the store's ``get_session`` answers, and the other writer appends, before
the caller goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import srt
from srt.cli._chat import _drop_unused, _unask
from srt.gateway.threads import Threads
from srt.store.heads import delete_session

SYSTEM = "Be brief."


def _after_read(rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch, act: Callable[[], None]) -> None:
    """Run ``act`` once, right after the next ``get_session`` of ``rt``'s store answers."""
    read = rt.store.get_session
    done: list[bool] = []

    def get_session(name: str) -> Any:
        row = read(name)
        if not done:
            done.append(True)
            act()
        return row

    monkeypatch.setattr(rt.store, "get_session", get_session)


def _other_turn(url: str, name: str) -> Callable[[], None]:
    """Another writer (a runtime of its own, as another process is) adds a turn."""

    def act() -> None:
        with srt.Runtime(url) as other:
            other.session(name, create=False).append(
                {"role": "user", "content": "typed in another window"}
            )

    return act


def test_chat_drop_unused_keeps_a_turn_added_after_its_check(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with srt.Runtime(store_url) as rt:
        rt.session("chat-1").append({"role": "system", "content": SYSTEM})
        _after_read(rt, monkeypatch, _other_turn(store_url, "chat-1"))
        _drop_unused(rt, "chat-1", SYSTEM)
        monkeypatch.undo()
        kept = rt.session("chat-1", create=False).messages()
    assert kept == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "typed in another window"},
    ]


def test_chat_drop_unused_still_drops_an_unused_session(store_url: str) -> None:
    with srt.Runtime(store_url) as rt:
        rt.session("chat-2").append({"role": "system", "content": SYSTEM})
        rt.session("chat-3")
        _drop_unused(rt, "chat-2", SYSTEM)
        _drop_unused(rt, "chat-3", None)
        assert rt.sessions() == []


@pytest.mark.parametrize("existed", [False, True], ids=["prompt-made-it", "it-existed"])
def test_prompt_unask_keeps_a_turn_added_after_the_question(
    store_url: str, existed: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """``srt prompt`` whose request stored no reply takes its question back (deletes the
    session it made, or rewinds the one it used): not over another writer's turn."""
    question = {"role": "user", "content": "a question that got no reply"}
    with srt.Runtime(store_url) as rt:
        s = rt.session("p")
        if existed:
            s.append({"role": "system", "content": SYSTEM})
        before = len(s)
        s.append(question)
        _other_turn(store_url, "p")()  # lands after the question, before the take-back
        _unask(rt, s, before if existed else None)
        kept = rt.session("p", create=False).messages()
    assert kept[before:] == [question, {"role": "user", "content": "typed in another window"}]
    assert "was kept with the unanswered message" in capsys.readouterr().err


def test_gateway_drop_keeps_a_thread_another_worker_moved_on(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "gw/t/resp_1"
    with srt.Runtime(store_url) as rt:
        s = rt.session(name)
        s.append({"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"})
        head = s.head
        threads = Threads(rt)
        _after_read(rt, monkeypatch, _other_turn(store_url, name))
        assert threads.drop(name, head) is False  # (before: True, and the turn was gone)
        monkeypatch.undo()
        kept = rt.session(name, create=False).messages()
        assert [m["content"] for m in kept] == ["hi", "hello", "typed in another window"]
        # Unraced, the thread whose head is still the one named goes.
        assert threads.drop(name, rt.store.get_session(name).head) is True  # type: ignore[union-attr]
        assert rt.store.get_session(name) is None


@pytest.mark.parametrize("empty", [False, True], ids=["at-a-node", "empty"])
def test_store_delete_session_if_head(store_url: str, empty: bool) -> None:
    with srt.Runtime(store_url) as rt:
        s = rt.session("s")
        if not empty:
            s.append({"role": "user", "content": "one"})
        head = s.head
        s2 = rt.session("s2")
        s2.append({"role": "user", "content": "other"})
        wrong = s2.head if empty else None
        with pytest.raises(srt.ConflictError, match="moved on since its head was read"):
            delete_session(rt.store, "s", if_head=wrong)
        assert rt.store.get_session("s") is not None  # nothing deleted
        with pytest.raises(srt.SessionNotFoundError):
            delete_session(rt.store, "nobody", if_head=head)
        delete_session(rt.store, "s", if_head=head)
        assert rt.store.get_session("s") is None
        rt.store.delete_session("s2")  # (no if_head: whatever its head, as before)
        assert rt.sessions() == []
