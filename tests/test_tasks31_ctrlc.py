"""tasks31: a Ctrl-C (a real ``KeyboardInterrupt``, delivered by ``_thread.interrupt_main``
at the exact point through a hook) never loses a tool result that ran, and never makes a
call that did not start read as interrupted.

* Between a tool's return and the append of its result (``srt.tasks._run_tools`` ran
  ``task.commit(_execute(task, job))``): the result was lost and the next run gave the
  model "interrupted, outcome unknown" for a call that had run. Now it is saved first.
* Inside ``Task.claim``, once the call's start record was written, or as ``claim``
  returned, before the tool was called: the next run read the call as interrupted and
  never ran it. Now the record is taken back and the next run runs the call, once.
* Calls run in threads whose results were both in hand when the consumer left (the
  ``done`` batch of ``wait``): only those still running were saved, the other done one
  was lost. Now every result in hand is saved, once; the asyncio twin likewise.
"""

from __future__ import annotations

import _thread
import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from types import FrameType
from typing import Any

import pytest

import srt
import srt.tasks
from srt._task import CLAIMS, START, Task
from srt.tasks import _execute
from srt.testing import ProviderServer
from task_support import make, server


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s
        assert s.errors == []


def _interrupt_now() -> None:
    """A real Ctrl-C, here: SIGINT's handler raises ``KeyboardInterrupt`` in the main
    thread at its next check, which this bounded loop gives it."""
    assert threading.current_thread() is threading.main_thread()
    _thread.interrupt_main()
    for _ in range(10_000_000):
        pass
    raise AssertionError("the interrupt was not delivered")


def _on_return(code: Any) -> Callable[[], None]:
    """Interrupt once as the function of ``code`` returns (its result in hand, not yet
    back in its caller); returns the uninstaller."""
    fired: list[bool] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code and not fired:
            fired.append(True)
            _interrupt_now()

    sys.setprofile(profile)
    return lambda: sys.setprofile(None)


def _one_call(srv: ProviderServer, n: int = 1) -> None:
    calls = [{"id": f"call_{k}", "name": "act", "arguments": {"n": k}} for k in range(1, n + 1)]
    srv.script("openai.chat", [{"tool_calls": calls}, "Done."])


def _results(s: srt.Session) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in s.messages() if m["role"] == "tool"}


def _interrupted_run(
    s: srt.Session, p: Any, act: Any, arm: Callable[[], Callable[[], None]]
) -> None:
    disarm = arm()
    try:
        with pytest.raises(KeyboardInterrupt):
            s.run(p, model="gpt-4o", tools=[act])
    finally:
        disarm()


@pytest.mark.parametrize("where", ["execute-returns", "result-made"])
def test_ctrl_c_after_the_tool_returned_keeps_its_result(
    store_url: str, srv: ProviderServer, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []

    def act(n: int) -> str:
        """Do something that is not idempotent."""
        ran.append(n)
        return f"did {n}"

    def arm() -> Callable[[], None]:
        if where == "execute-returns":  # back from _execute, before _run_tools saves it
            return _on_return(_execute.__code__)
        finish = Task.finish

        def finish_then_interrupt(self: Task, *args: Any) -> Any:
            run = finish(self, *args)  # the result made, not yet appended
            _interrupt_now()
            return run

        monkeypatch.setattr(Task, "finish", finish_then_interrupt)
        return monkeypatch.undo

    p = make("openai", srv.url)
    _one_call(srv)
    try:
        with srt.Runtime(store_url) as rt:
            s = rt.session("t")
            s.append({"role": "user", "content": "Do it."})
            _interrupted_run(s, p, act, arm)
            assert ran == [1]
            assert _results(s) == {"call_1": "did 1"}  # (before: {}, the result lost)
            again = s.run(p, model="gpt-4o", tools=[act])
    finally:
        p.close()
    assert again.stopped == "done" and again.text == "Done."
    assert again.tool_runs == ()  # nothing left to run, nothing reported interrupted
    assert ran == [1]


@pytest.mark.parametrize("where", ["record-written", "claim-returns"])
def test_ctrl_c_before_the_tool_started_leaves_the_call_not_started(
    store_url: str, srv: ProviderServer, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []

    def act(n: int) -> str:
        """Do something that is not idempotent."""
        ran.append(n)
        return f"did {n}"

    p = make("openai", srv.url)
    _one_call(srv)
    try:
        with srt.Runtime(store_url) as rt:
            s = rt.session("t")
            s.append({"role": "user", "content": "Do it."})
            written: list[str] = []

            def arm() -> Callable[[], None]:
                if where == "claim-returns":
                    return _on_return(Task.claim.__code__)
                put = rt.store.put_object

                def put_then_interrupt(kind: str, scope: str, key: str, *a: Any, **k: Any) -> bool:
                    won = put(kind, scope, key, *a, **k)
                    if kind == CLAIMS and not written:
                        written.append(scope)
                        assert rt.store.get_object(kind, scope, START) is not None
                        _interrupt_now()
                    return won

                monkeypatch.setattr(rt.store, "put_object", put_then_interrupt)
                return monkeypatch.undo

            _interrupted_run(s, p, act, arm)
            assert ran == [] and _results(s) == {}
            if written:  # the start record this run wrote was taken back
                assert rt.store.get_object(CLAIMS, written[0], START) is None
            again = s.run(p, model="gpt-4o", tools=[act])
    finally:
        p.close()
    # The call never started, so it runs now (before: status "interrupted", never run).
    assert [(r.call.id, r.status, r.content) for r in again.tool_runs] == [
        ("call_1", "ok", "did 1")
    ]
    assert again.stopped == "done" and ran == [1]


def test_a_stream_left_with_two_results_in_hand_saves_both(
    rt: srt.Runtime, srv: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []
    lock = threading.Lock()
    both = threading.Event()
    ended: list[Future[Any]] = []
    set_result, wait = Future.set_result, srt.tasks.wait

    def counted(self: Future[Any], result: Any) -> None:
        set_result(self, result)
        with lock:
            ended.append(self)
            if len(ended) == 2:
                both.set()

    def wait_for_both(fs: Any, **kw: Any) -> Any:
        # both calls end before the run looks: its one wait() hands it both
        assert both.wait(30), "the two tool calls did not finish within 30 s"
        return wait(fs, **kw)

    monkeypatch.setattr(Future, "set_result", counted)
    monkeypatch.setattr(srt.tasks, "wait", wait_for_both)

    def act(n: int) -> str:
        """Do something that is not idempotent."""
        with lock:
            ran.append(n)
        return f"did {n}"

    p = make("openai", srv.url)
    _one_call(srv, 2)
    s = rt.session("t")
    s.append({"role": "user", "content": "Do both."})
    try:
        stream = s.run_stream(p, model="gpt-4o", tools=[act], concurrency=2)
        seen = []
        for event in stream:
            if event.kind == "tool_result":
                seen.append(event)
                break  # leave (as a Ctrl-C in the consumer does) after the first result
        stream.close()
        monkeypatch.undo()
        assert len(seen) == 1
        assert _results(s) == {"call_1": "did 1", "call_2": "did 2"}  # (before: one lost)
        again = s.run(p, model="gpt-4o", tools=[act])
    finally:
        p.close()
    assert again.stopped == "done" and again.tool_runs == ()
    assert sorted(ran) == [1, 2]
    assert [m["role"] for m in s.messages()] == ["user", "assistant", "tool", "tool", "assistant"]


def test_an_async_stream_left_with_two_results_in_hand_saves_both(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    ran: list[int] = []

    async def act(n: int) -> str:
        """Do something that is not idempotent. The first call ends one loop step after
        the second, so the run's one ``asyncio.wait`` hands it both."""
        for _ in range(100_000):  # (one step each: bounded, and no task of its own)
            if n == 2 or 2 in ran:
                break
            await asyncio.sleep(0)
        else:
            raise AssertionError("the second call did not run")
        ran.append(n)
        return f"did {n}"

    p = make("openai", srv.url)
    _one_call(srv, 2)
    s = rt.session("t")
    s.append({"role": "user", "content": "Do both."})

    async def leave() -> int:
        stream = s.arun_stream(p, model="gpt-4o", tools=[act], concurrency=2)
        results = 0
        async for event in stream:
            if event.kind == "tool_result":
                results += 1
                break
        await stream.aclose()
        return results

    try:
        assert asyncio.run(leave()) == 1
        assert _results(s) == {"call_1": "did 1", "call_2": "did 2"}  # (before: one lost)
        again = s.run(p, model="gpt-4o", tools=[act])
    finally:
        p.close()
    assert again.stopped == "done" and again.tool_runs == ()
    assert sorted(ran) == [1, 2]
