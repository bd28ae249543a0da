"""drops31: a run takes back only its own start record of a call, never another run's of
the same call in the same process. The record named the process (``"<pid>:<start>"``), so
a run whose claim was interrupted (Ctrl-C inside the record's write, after another run of
this process had claimed the call first) found the other run's record "its own" and
removed it: the other run's tool was running with no record of its start, and a resumed
run could call it again. The record now names the claim (a token per claim).

The race is made at the exact point: run A's write of the record (``put_object``) first
lets run B (another runtime of this process, on a thread) claim the call and start its
tool, then A gets a real Ctrl-C (``_thread.interrupt_main``) before writing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from srt._task import CLAIMS, START
from srt.testing import ProviderServer
from task_support import make, server
from test_tasks31_ctrlc import _interrupt_now, _results


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s
        assert s.errors == []


def test_an_interrupted_claim_leaves_another_runs_record_of_this_process(
    store_url: str, srv: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[int] = []
    started, go = threading.Event(), threading.Event()

    def act(n: int) -> str:
        """Do something that is not idempotent."""
        ran.append(n)
        started.set()
        if not go.wait(30):  # (bounded: the test sets it once it has looked)
            raise AssertionError("the test never let run B's tool finish")
        return f"did {n}"

    srv.script(
        "openai.chat",
        [{"tool_calls": [{"id": "call_1", "name": "act", "arguments": {"n": 1}}]}, "Done."],
    )
    p = make("openai", srv.url)
    errors: list[BaseException] = []
    b_done: list[srt.TaskResult] = []

    def run_b() -> None:
        try:
            with srt.Runtime(store_url) as other:
                b_done.append(other.session("t", create=False).run(p, model="gpt-4o", tools=[act]))
        except BaseException as exc:  # (reported by the main thread)
            errors.append(exc)

    b = threading.Thread(target=run_b, name="run-b")
    try:
        with srt.Runtime(store_url) as rt:
            s = rt.session("t")
            s.append({"role": "user", "content": "Do it."})
            put = rt.store.put_object
            scopes: list[str] = []

            def b_first_then_interrupt(kind: str, scope: str, *a: Any, **k: Any) -> bool:
                if kind != CLAIMS or scopes:
                    return put(kind, scope, *a, **k)
                scopes.append(scope)
                b.start()  # run B claims the call and starts its tool ...
                if not started.wait(30):
                    raise AssertionError(f"run B's tool did not start: {errors}")
                _interrupt_now()  # ... then A is interrupted, its record not written
                raise AssertionError("unreachable")

            monkeypatch.setattr(rt.store, "put_object", b_first_then_interrupt)
            with pytest.raises(KeyboardInterrupt):
                s.run(p, model="gpt-4o", tools=[act])
            monkeypatch.undo()
            # B's record, naming this process, is still there while B's tool runs
            # (before: A took it back as its own).
            row = rt.store.get_object(CLAIMS, scopes[0], START)
            go.set()
            b.join(30)
            assert not b.is_alive(), "run B did not finish"
            assert errors == []
            assert row is not None
            assert b_done[0].stopped == "done" and ran == [1]
            assert _results(rt.session("t", create=False)) == {"call_1": "did 1"}
    finally:
        go.set()
        if b.is_alive():
            b.join(30)
        p.close()
