"""A task's records of the tool calls it started, when its session is deleted: they go
with the session (``Runtime.delete``), and a run that saw the session before the
deletion still never runs a started call a second time (on every engine)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from srt._task import CLAIMS
from srt.testing import ProviderServer
from srt.testing.tasks import ScriptedTask
from task_support import make, server


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        s.respond("*", ScriptedTask([]))  # answers "All done." to whatever it is sent
        yield s
        assert s.errors == []


def _replied(rt: srt.Runtime, name: str) -> srt.Session:
    """A session whose model has just asked for call ``c1`` of tool ``act``."""
    s = rt.session(name)
    s.append({"role": "user", "content": "go"})
    call = {"id": "c1", "type": "function", "function": {"name": "act", "arguments": "{}"}}
    s.append({"role": "assistant", "content": "", "tool_calls": [call]})
    return s


def _claims(rt: srt.Runtime) -> list[str]:
    return [o.scope for o in rt.store.scan_objects() if o.kind == CLAIMS]


def test_deleting_a_session_drops_the_calls_its_tasks_started(
    srv: ProviderServer, store_rt: srt.Runtime
) -> None:
    ran: list[str] = []

    def act() -> str:
        ran.append("act")
        return "done"

    p = make("openai", srv.url)
    for name in ("gone", "kept"):
        result = _replied(store_rt, name).run(p, model="gpt-4o", tools=[act])
        assert result.stopped == "done"
    p.close()
    ids = {n: store_rt.store.get_session(n).id for n in ("gone", "kept")}  # type: ignore[union-attr]
    assert sorted(s.split(":")[0] for s in _claims(store_rt)) == sorted(map(str, ids.values()))
    store_rt.delete("gone")
    assert [s.split(":")[0] for s in _claims(store_rt)] == [str(ids["kept"])]
    assert store_rt.gc().orphan_objects == 0


def test_a_run_that_saw_its_session_before_the_delete_never_runs_a_call_twice(
    srv: ProviderServer, store_rt: srt.Runtime, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run B (another process, as far as the store can tell) finds ``c1`` not started
    and plans to run it; run A then starts it and is inside the tool. B reads the
    session row to start ``c1``; the session is then deleted, and with it A's start
    record. B, now finding no record, tries to write its own: the store refuses a
    record for a session that is gone, so the tool is not run a second time."""
    ran: list[str] = []
    a_in_tool, b_done = threading.Event(), threading.Event()

    def act() -> str:
        ran.append("act")
        if len(ran) == 1:  # run A's
            a_in_tool.set()
            b_done.wait(30)
        return "ran"

    p = make("openai", srv.url)
    _replied(store_rt, "task")
    a_failed: list[BaseException] = []

    def run_a() -> None:
        try:
            store_rt.session("task").run(p, model="gpt-4o", tools=[act])
        except srt.SrtError as exc:  # (its result finds the session gone)
            a_failed.append(exc)

    a = threading.Thread(target=run_a)
    deleted: list[str] = []
    with srt.Runtime(store_url) as other:
        s = other.session("task")
        real_list, real_get = other.store.list_objects, other.store.get_session

        def planned_then_a_starts(kind: str, scope: str, **kw: Any) -> Any:
            rows = real_list(kind, scope, **kw)
            if kind == CLAIMS and a.ident is None:  # B has looked: not started
                a.start()
                assert a_in_tool.wait(30)  # A started c1 and runs it
            return rows

        def read_then_deleted(name: str) -> Any:
            row = real_get(name)
            if row is not None and a_in_tool.is_set() and not deleted:  # B read the row
                store_rt.delete(name)  # ... and the session goes, records and all
                deleted.append(name)
            return row

        monkeypatch.setattr(other.store, "list_objects", planned_then_a_starts)
        monkeypatch.setattr(other.store, "get_session", read_then_deleted)
        try:
            with pytest.raises(srt.ConflictError, match="'task' was deleted while this run"):
                s.run(p, model="gpt-4o", tools=[act])
        finally:
            b_done.set()
            a.join(30)
    p.close()
    assert deleted == ["task"] and ran == ["act"] and _claims(store_rt) == []
    assert not a.is_alive() and len(a_failed) == 1


def test_srt_verify_and_gc_name_the_records_an_earlier_srt_left(
    srv: ProviderServer, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records under a deleted session's id (as an srt that did not delete them left
    them) are garbage, not damage: ``srt verify`` says so and passes, ``srt gc`` counts
    and removes them."""
    from srt.store import owners
    from support import run_cli

    def act() -> str:
        return "ran"

    declared = owners._KINDS  # noqa: SLF001 (an srt before the declaration, below)
    with srt.Runtime(store_url) as rt:
        p = make("openai", srv.url)
        _replied(rt, "task").run(p, model="gpt-4o", tools=[act])
        p.close()
        monkeypatch.setattr(owners, "_KINDS", set())
        rt.delete("task")
        monkeypatch.setattr(owners, "_KINDS", declared)
        assert len(_claims(rt)) == 1
    left = "1 record left under the id of a deleted session (earlier heads, started tool calls)"
    code, out, _ = run_cli("--db", store_url, "verify")
    assert code == 0 and out.splitlines()[1] == f"garbage: {left}, which srt gc removes"
    code, out, _ = run_cli("--db", store_url, "gc", "--dry-run")
    assert code == 0 and f"would remove {left}" in out.splitlines()
    code, out, _ = run_cli("--db", store_url, "gc")
    assert code == 0 and f"removed {left}" in out.splitlines()
    code, out, _ = run_cli("--db", store_url, "verify")
    assert code == 0 and len(out.splitlines()) == 1 and "garbage" not in out
    with srt.Runtime(store_url) as rt:
        assert _claims(rt) == []
