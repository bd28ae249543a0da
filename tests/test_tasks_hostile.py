"""The tool loop attacked the way users' code and models will: tools that raise every
kind of exception, return values JSON cannot hold, or repeat; replies with unknown
tools, bad arguments, repeated call ids and hundreds of calls. After each, the session
and its claims are read back: every call has one result, nothing is half-written."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from rel_support.waits import joined
from srt._task import CLAIMS
from srt.testing import ProviderServer
from srt.testing.tasks import ScriptedTask
from task_support import chain_pairs, make, server


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        s.respond("*", ScriptedTask([]))  # answers "All done." to whatever it is sent
        yield s
        assert s.errors == []


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def replied(rt: srt.Runtime, name: str, *calls: dict[str, Any]) -> srt.Session:
    """A session whose model has just asked for ``calls`` (as if the reply were saved
    and the process then stopped): ``run`` resumes from there."""
    s = rt.session(name)
    s.append({"role": "user", "content": "go"})
    s.append({"role": "assistant", "content": "", "tool_calls": list(calls)})
    return s


def results(s: srt.Session) -> dict[str, str]:
    msgs = s.messages()
    chain_pairs(msgs)
    return {m["tool_call_id"]: m["content"] for m in msgs if m["role"] == "tool"}


class Crash(BaseException):
    """Not an ``Exception``: escapes the loop as SystemExit or KeyboardInterrupt would."""


def test_a_result_json_cannot_hold_becomes_an_error_result(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    def cycle() -> dict[str, Any]:
        d: dict[str, Any] = {}
        d["self"] = d
        return d

    def tuple_key() -> dict[Any, int]:
        return {(1, 2): 3}

    def binary() -> bytes:
        return b"\xff\xfe"

    def text_bytes() -> bytes:
        return "caf\u00e9".encode()

    p = make("openai", srv.url)
    s = replied(
        rt,
        "json",
        call("a", "cycle", "{}"),
        call("b", "tuple_key", "{}"),
        call("c", "binary", "{}"),
        call("d", "text_bytes", "{}"),
    )
    result = s.run(p, model="gpt-4o", tools=[cycle, tuple_key, binary, text_bytes])
    p.close()
    assert result.stopped == "done"
    by_id = {r.call.id: r for r in result.tool_runs}
    assert by_id["a"].status == "error" and isinstance(by_id["a"].error, ValueError)
    assert by_id["a"].content == (
        "Error: the tool's result could not be given as JSON: Circular reference detected"
    )
    assert by_id["b"].status == "error" and isinstance(by_id["b"].error, TypeError)
    assert by_id["b"].content.startswith("Error: the tool's result could not be given as JSON")
    assert by_id["c"].content == (
        "Error: the tool's result could not be given as JSON: 2 bytes that are not UTF-8 text"
    )
    assert by_id["d"].status == "ok" and by_id["d"].content == "caf\u00e9"
    assert results(s) == {r.call.id: r.content for r in result.tool_runs}
    meta = json.loads(rt.store.chain(s.head)[2][5])["srt_tool"]
    assert meta["status"] == "error" and meta["error"].startswith("ValueError: Circular")


def test_a_repeated_call_id_runs_its_first_call_once(srv: ProviderServer, rt: srt.Runtime) -> None:
    ran: list[str] = []

    def note(x: str) -> str:
        ran.append(x)
        return f"noted {x}"

    p = make("openai", srv.url)
    s = replied(rt, "dup", call("c1", "note", '{"x": "a"}'), call("c1", "note", '{"x": "b"}'))
    result = s.run(p, model="gpt-4o", tools=[note])
    p.close()
    assert ran == ["a"]
    assert result.stopped == "done"
    statuses = sorted((r.status, r.content) for r in result.tool_runs)
    assert statuses == [
        ("invalid", "Error: call id c1 repeats an earlier call's id; it was not run."),
        ("ok", "noted a"),
    ]
    assert results(s) == {"c1": "noted a"}


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_base_exception_in_one_call_keeps_the_other_calls_results(
    srv: ProviderServer, rt: srt.Runtime, driver: str
) -> None:
    """A tool that raises what is not an ``Exception`` stops the run, but only once the
    calls running beside it have finished and their results are saved; its own call
    stays started, and the next run reports it interrupted without running it again."""
    ran: list[str] = []
    boom = [True]
    started = threading.Event()

    def slow(x: str) -> str:
        started.set()
        time.sleep(0.3)
        ran.append(f"slow {x}")
        return f"slow {x}"

    def crash(x: str) -> str:
        assert started.wait(10)
        ran.append(f"crash {x}")
        if boom:
            raise Crash
        return "never"

    p = make("openai", srv.url)
    s = replied(rt, driver, call("a", "slow", '{"x": "1"}'), call("b", "crash", '{"x": "2"}'))
    with pytest.raises(Crash):
        if driver == "sync":
            s.run(p, model="gpt-4o", tools=[slow, crash])
        else:
            asyncio.run(s.arun(p, model="gpt-4o", tools=[slow, crash]))
    assert sorted(ran) == ["crash 2", "slow 1"]
    assert results(s) == {"a": "slow 1"}  # saved before the crash went on up
    boom.clear()
    result = s.run(p, model="gpt-4o", tools=[slow, crash])
    p.close()
    assert [(r.call.id, r.status) for r in result.tool_runs] == [("b", "interrupted")]
    assert sorted(ran) == ["crash 2", "slow 1"]  # neither ran twice
    assert result.stopped == "done"
    assert set(results(s)) == {"a", "b"}


@pytest.mark.parametrize("kind", [ValueError, SystemExit, KeyboardInterrupt])
def test_each_kind_of_exception_from_a_lone_tool(
    srv: ProviderServer, rt: srt.Runtime, kind: type[BaseException]
) -> None:
    """An ``Exception`` is the model's to read; SystemExit and KeyboardInterrupt go up
    to the caller, leaving the call started (not half-written), reported interrupted
    by the next run."""

    def fails(x: str) -> str:
        raise kind("no")

    p = make("openai", srv.url)
    s = replied(rt, kind.__name__, call("a", "fails", '{"x": "1"}'))
    if kind is ValueError:
        result = s.run(p, model="gpt-4o", tools=[fails])
        assert result.tool_runs[0].content == "Error: ValueError: no"
    else:
        with pytest.raises(kind):
            s.run(p, model="gpt-4o", tools=[fails])
        assert results(s) == {}
        assert [o.kind for o in rt.store.scan_objects()].count(CLAIMS) == 1
        result = s.run(p, model="gpt-4o", tools=[fails])
        assert result.tool_runs[0].status == "interrupted"
    p.close()
    assert result.stopped == "done" and len(results(s)) == 1


def test_misbehaving_tools_and_calls_give_the_model_a_result_it_can_read(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    async def later(x: str) -> str:
        return f"later {x}"

    def gives_coroutine(x: str) -> Any:  # a sync tool that returns a coroutine
        return later(x)

    def gives_none(x: str) -> None:
        return None

    def surrogate(x: str) -> str:
        return "a\ud800b"

    def ok(x: str) -> str:
        return x

    tools = [later, gives_coroutine, gives_none, surrogate, ok]
    p = make("openai", srv.url)
    s = replied(
        rt,
        "misc",
        call("a", "gives_coroutine", '{"x": "1"}'),
        call("b", "gives_none", '{"x": "1"}'),
        call("c", "surrogate", '{"x": "1"}'),
        call("d", "nosuch", '{"x": "1"}'),
        call("e", "ok", "{not json"),
        call("f", "ok", "[1, 2]"),
        call("g", "ok", '"x"'),
        call("h", "later", '{"x": "2"}'),
    )
    result = s.run(p, model="gpt-4o", tools=tools)
    p.close()
    got = {r.call.id: (r.status, r.content) for r in result.tool_runs}
    stored = got.pop("c")
    assert stored[0] == "error"
    assert stored[1].startswith("Error: the tool's result could not be stored: message text")
    bad = "Error: invalid arguments for ok: the arguments"
    assert got == {
        "a": ("ok", "later 1"),
        "b": ("ok", "null"),
        "d": (
            "invalid",
            "Error: there is no tool named 'nosuch' "
            "(tools: gives_coroutine, gives_none, later, ok, surrogate).",
        ),
        "e": ("invalid", f"{bad} are not valid JSON"),
        "f": ("invalid", f"{bad} must be a JSON object"),
        "g": ("invalid", f"{bad} must be a JSON object"),
        "h": ("ok", "later 2"),
    }
    assert results(s) == {r.call.id: r.content for r in result.tool_runs}
    assert result.stopped == "done"


def test_five_hundred_calls_in_one_reply(srv: ProviderServer, rt: srt.Runtime) -> None:
    def ok(x: str) -> str:
        return x

    p = make("openai", srv.url)
    s = replied(rt, "many", *(call(f"c{i}", "ok", json.dumps({"x": str(i)})) for i in range(500)))
    result = s.run(p, model="gpt-4o", tools=[ok])
    p.close()
    assert result.stopped == "done" and result.steps == 1
    assert results(s) == {f"c{i}": str(i) for i in range(500)}
    assert len(srv.log) == 1  # one request, carrying all 500 results
    assert json.dumps(srv.log[0].body).count('"role": "tool"') == 500


def test_two_runs_resuming_at_once_start_a_call_once(
    srv: ProviderServer, store_rt: srt.Runtime, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two handles (two processes, as far as the store can tell) resume the same task at
    the same instant: both look for a start record and find none before either writes
    one. Only one of them runs the tool; the other gets ``ConflictError``."""
    ran: list[str] = []
    both_looked = threading.Barrier(2, timeout=30)

    def act(x: str) -> str:
        ran.append(x)
        time.sleep(0.2)
        return f"did {x}"

    s = replied(store_rt, "race", call("c1", "act", '{"x": "1"}'))
    outcomes: list[str] = []

    def resume() -> None:
        with srt.Runtime(store_url) as mine:
            store = mine.store
            put = store.put_object

            def put_after_both_looked(kind: str, *a: Any, **kw: Any) -> Any:
                if kind == CLAIMS:
                    both_looked.wait()
                return put(kind, *a, **kw)

            monkeypatch.setattr(store, "put_object", put_after_both_looked)
            p = make("openai", srv.url)
            try:
                result = mine.session("race").run(p, model="gpt-4o", tools=[act])
                outcomes.append(result.stopped)
            except srt.ConflictError as exc:
                outcomes.append(type(exc).__name__)
            finally:
                p.close()

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    joined(*threads)
    assert ran == ["1"]
    assert sorted(outcomes) == ["ConflictError", "done"]
    s.refresh()
    assert results(s) == {"c1": "did 1"}


@pytest.mark.parametrize("given", ["other", "definition"])
def test_a_started_call_resumed_without_its_tool_is_interrupted(
    srv: ProviderServer, rt: srt.Runtime, given: str
) -> None:
    """A call that started and died is reported interrupted when the next run is given
    other tools, or only the tool's definition: not "no such tool" (the model would
    think nothing happened) and not handed to the caller to run again."""
    ran: list[str] = []

    def act(x: str) -> str:
        ran.append(x)
        raise Crash

    def other(x: str) -> str:
        return x

    definition = {"type": "function", "function": {"name": "act", "parameters": {}}}
    p = make("openai", srv.url)
    s = replied(rt, given, call("c1", "act", '{"x": "1"}'))
    with pytest.raises(Crash):
        s.run(p, model="gpt-4o", tools=[act])
    result = s.run(p, model="gpt-4o", tools=[other] if given == "other" else [definition])
    p.close()
    assert [(r.call.id, r.status) for r in result.tool_runs] == [("c1", "interrupted")]
    assert result.stopped == "done" and result.pending == ()
    assert ran == ["1"]
    assert results(s) == {"c1": srt.tasks.INTERRUPTED}


def test_a_cancelled_async_run_saves_what_its_sync_tools_return(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """``arun`` cancelled (here by ``wait_for``) while a sync tool runs in its thread:
    the thread cannot be stopped, so its result is saved before the cancel goes on up,
    and the next run does not report the call interrupted. An async tool beside it is
    cancelled: it stays started, and is reported interrupted."""
    ran: list[str] = []
    entered = threading.Event()

    def slow(x: str) -> str:
        entered.set()
        time.sleep(0.5)
        ran.append(f"slow {x}")
        return f"slow {x}"

    async def aslow(x: str) -> str:
        await asyncio.sleep(30)
        ran.append(f"aslow {x}")
        return "never"

    p = make("openai", srv.url)
    s = replied(rt, "cancel", call("a", "slow", '{"x": "1"}'), call("b", "aslow", '{"x": "2"}'))

    async def main() -> None:
        try:
            await asyncio.wait_for(s.arun(p, model="gpt-4o", tools=[slow, aslow]), 0.2)
        finally:
            await p.aclose()

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(main())
    assert entered.is_set() and ran == ["slow 1"]
    assert results(s) == {"a": "slow 1"}
    p = make("openai", srv.url)
    result = s.run(p, model="gpt-4o", tools=[slow, aslow])
    p.close()
    assert [(r.call.id, r.status) for r in result.tool_runs] == [("b", "interrupted")]
    assert ran == ["slow 1"] and result.stopped == "done"


@pytest.mark.parametrize(
    "options",
    [
        {"time_budget": "5"},
        {"time_budget": float("nan")},
        {"time_budget": -1},
        {"token_budget": "many"},
        {"token_budget": 1.5},
        {"max_steps": True},
        {"concurrency": True},
    ],
)
def test_bad_budgets_raise_config_errors_before_anything_is_sent(
    srv: ProviderServer, rt: srt.Runtime, options: dict[str, Any]
) -> None:
    """(A string budget escaped as a TypeError from the first comparison; NaN and ``True``
    were taken as budgets.)"""
    p = make("openai", srv.url)
    s = replied(rt, "options", call("a", "ok", '{"x": "1"}'))
    with pytest.raises(srt.ConfigError, match=next(iter(options))):
        s.run(p, model="gpt-4o", tools=[], **options)
    p.close()
    assert srv.log == [] and results(s) == {}


def test_a_tool_name_no_provider_takes_is_refused_where_it_is_made(rt: srt.Runtime) -> None:
    """A lambda is called ``<lambda>``: every provider answers 400 to that name, after
    the user turn is sent. It is refused at once, naming the fix."""
    with pytest.raises(srt.InvalidMessageError, match=r"'<lambda>' must be 1 to 64 letters"):
        srt.tool(lambda x: x)
    with pytest.raises(srt.InvalidMessageError, match=r"srt\.tool\(fn, name=\.\.\.\)"):
        srt.tool(len, name="a.b")
    with pytest.raises(srt.InvalidMessageError, match="must be 1 to 64"):
        srt.tool(len, name="x" * 65)
    assert srt.tool(lambda x: x, name="echo-1_ok").name == "echo-1_ok"


def test_a_start_record_written_before_the_election_is_still_honoured(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """A task killed mid-tool under the earlier layout (one object per call, scope the
    session id) resumes after an upgrade: the call is interrupted, not run again."""
    from srt._task import _claim_key

    ran: list[str] = []

    def act(x: str) -> str:
        ran.append(x)
        return x

    s = replied(rt, "old", call("c1", "act", '{"x": "1"}'))
    sid = rt.store.get_session("old")
    assert sid is not None
    dead = b"1:0"  # pid 1 never started at time 0: a process that is gone
    rt.store.put_object(CLAIMS, str(sid.id), _claim_key(s, 1, "c1"), dead)
    p = make("openai", srv.url)
    result = s.run(p, model="gpt-4o", tools=[act])
    p.close()
    assert [r.status for r in result.tool_runs] == ["interrupted"] and ran == []
