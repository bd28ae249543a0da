"""The tool loop (``Session.run``, ``arun``, ``run_stream``) against the local provider
server in every wire format: a 10-step task with three tools and parallel calls,
errors, approval, budgets, definition-only tools, and resuming after a crash."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.waits import joined
from srt.tasks import INTERRUPTED
from srt.testing import ProviderServer
from srt.testing.tasks import ScriptedTask, plan
from task_support import (
    MODELS,
    SideFile,
    assert_paired,
    chain_pairs,
    make,
    server,
    three_tools,
)

STEPS = plan(10, ["lookup", "fetch", "compute"])  # 1, 2, 3, 1, 2, 3, ... calls: 19 in all
CALLS = sum(len(s) for s in STEPS)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s
        assert s.errors == []


@pytest.fixture
def side(tmp_path: Path) -> SideFile:
    return SideFile(str(tmp_path / "runs.log"))


def start(rt: srt.Runtime, name: str) -> srt.Session:
    s = rt.session(name)
    s.append(
        {"role": "system", "content": "You complete tasks with tools."},
        {"role": "user", "content": "Run the ten-step job."},
    )
    return s


def check_finished(s: srt.Session, side: SideFile, result: srt.TaskResult) -> None:
    assert result.stopped == "done", result
    assert result.text == "All done."
    assert result.steps == 11  # ten steps with tool calls, then the answer
    assert len(result.tool_runs) == CALLS
    assert {r.status for r in result.tool_runs} == {"ok"}
    runs = Counter(side.lines())
    assert sum(runs.values()) == CALLS and set(runs.values()) == {1}  # each ran once
    msgs = s.messages()
    chain_pairs(msgs)
    assert [m["role"] for m in msgs].count("tool") == CALLS
    assert msgs[-1] == {"role": "assistant", "content": "All done."}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_ten_step_task_with_three_tools_and_parallel_calls(
    kind: str, srv: ProviderServer, rt: srt.Runtime, side: SideFile
) -> None:
    srv.respond("*", ScriptedTask(STEPS))
    p = make(kind, srv.url)
    s = start(rt, kind)
    result = s.run(p, model=MODELS[kind], tools=three_tools(side))
    p.close()
    check_finished(s, side, result)
    assert assert_paired(srv) == 11
    # The model saw every result: the last request carries all 19.
    last = json.dumps(srv.log[-1].body)
    assert last.count("lookup s") + last.count("s9c0") >= 1
    assert s.usage().requests == 11
    assert result.usage.input_tokens == s.usage().input_tokens


def test_async_and_streamed_forms(srv: ProviderServer, rt: srt.Runtime, tmp_path: Path) -> None:
    srv.respond("*", ScriptedTask(STEPS))
    model = MODELS["anthropic"]
    sides = {k: SideFile(str(tmp_path / f"{k}.log")) for k in ("a", "b", "c")}

    async def main() -> tuple[srt.TaskResult, list[srt.TaskEvent]]:
        p = make("anthropic", srv.url)
        try:
            result = await start(rt, "async").arun(p, model=model, tools=three_tools(sides["a"]))
            c = start(rt, "astream")
            events = [e async for e in c.arun_stream(p, model=model, tools=three_tools(sides["c"]))]
            return result, events
        finally:
            await p.aclose()

    result, aevents = asyncio.run(main())
    check_finished(rt.session("async"), sides["a"], result)
    done = aevents[-1].result
    assert done is not None
    check_finished(rt.session("astream"), sides["c"], done)

    p = make("anthropic", srv.url)
    b = start(rt, "stream")
    stream = b.run_stream(p, model=model, tools=three_tools(sides["b"]))
    events = list(stream)
    p.close()
    assert stream.result is not None
    check_finished(b, sides["b"], stream.result)
    for evs in (events, aevents):
        kinds = Counter(e.kind for e in evs)
        assert kinds["reply"] == 11 and kinds["tool_call"] == CALLS
        assert kinds["tool_result"] == CALLS and kinds["done"] == 1
        assert "".join(e.text for e in evs if e.kind == "text") == "All done."
    assert events[-1].result is stream.result


def test_parallel_calls_run_concurrently_within_the_limit(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    srv.respond("*", ScriptedTask([[("slow", {"key": f"k{i}"}) for i in range(6)]]))
    active = 0
    peak = 0
    lock = threading.Lock()
    together = threading.Barrier(3, timeout=30)  # passes only when three run at once

    def slow(key: str) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        together.wait()
        with lock:
            active -= 1
        return key

    p = make("openai", srv.url)
    s = start(rt, "parallel")
    result = s.run(p, model="gpt-4o", tools=[slow], concurrency=3)
    p.close()
    assert result.stopped == "done"
    assert [r.status for r in result.tool_runs] == ["ok"] * 6  # no barrier timed out
    assert peak == 3  # six calls, three at a time: never more, and not one by one
    # Results are saved in completion order, each paired with its call.
    chain_pairs(s.messages())


def test_a_tool_that_raises_gives_the_model_an_error_and_is_recorded(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    srv.respond("*", ScriptedTask([[("divide", {"a": 1, "b": 0})], [("divide", {"a": 4, "b": 2})]]))

    def divide(a: int, b: int) -> float:
        """Divide a by b."""
        return a / b

    p = make("bedrock", srv.url)
    s = start(rt, "raises")
    result = s.run(p, model=MODELS["bedrock"], tools=[divide])
    p.close()
    first, second = result.tool_runs
    assert first.status == "error" and isinstance(first.error, ZeroDivisionError)
    assert first.content == "Error: ZeroDivisionError: division by zero"
    assert second.status == "ok" and second.content == "2.0"
    # The model was sent the error as the call's result.
    assert "Error: ZeroDivisionError" in json.dumps(srv.log[1].body)
    assert result.stopped == "done"
    # The exception is recorded with the result (metadata, never sent).
    row = rt.store.chain(s.head)[3]
    meta = json.loads(row[5])["srt_tool"]
    assert meta["status"] == "error" and meta["error"].startswith("ZeroDivisionError")
    assert "Traceback" in meta["traceback"] and "divide" in meta["traceback"]


def test_a_result_too_large_to_store_becomes_an_error_result(
    srv: ProviderServer, db_path: str
) -> None:
    srv.respond("*", ScriptedTask([[("dump", {})]]))

    def dump() -> str:
        return "x" * 5000

    p = make("openai", srv.url)
    with srt.Runtime(db_path, max_message_bytes=4096) as small:
        s = start(small, "big")
        result = s.run(p, model="gpt-4o", tools=[dump])
    p.close()
    (run,) = result.tool_runs
    assert run.status == "error" and isinstance(run.error, srt.InvalidMessageError)
    assert run.content.startswith("Error: the tool's result could not be stored: message is")
    assert result.stopped == "done"


def test_approval_hook_allows_denies_and_gives_reasons(
    srv: ProviderServer, rt: srt.Runtime, side: SideFile
) -> None:
    srv.respond(
        "*",
        ScriptedTask(
            [[("lookup", {"key": "a"}), ("lookup", {"key": "b"}), ("lookup", {"key": "c"})]]
        ),
    )
    seen: list[srt.ToolCall] = []

    def approve(call: srt.ToolCall) -> bool | str:
        seen.append(call)
        return {"a": True, "b": False}.get(call.args["key"] if call.args else "", "not c")

    p = make("openai", srv.url)
    s = start(rt, "approve")
    result = s.run(p, model="gpt-4o", tools=three_tools(side)[:1], approve=approve)
    p.close()
    assert [c.name for c in seen] == ["lookup"] * 3
    by_key = {json.loads(r.call.arguments)["key"]: r for r in result.tool_runs}
    assert by_key["a"].status == "ok"
    assert by_key["b"].status == "denied"
    assert by_key["b"].content == "The user denied this tool call."
    assert by_key["c"].content == "not c"
    assert side.lines() == ["lookup a"]  # denied calls never ran
    chain_pairs(s.messages())


def test_unknown_tools_and_bad_arguments_go_back_to_the_model(
    srv: ProviderServer, rt: srt.Runtime, side: SideFile
) -> None:
    srv.respond(
        "*",
        ScriptedTask([[("nosuch", {}), ("lookup", {"key": 3}), ("lookup", {"wrong": "x"})]]),
    )
    p = make("responses", srv.url)
    s = start(rt, "invalid")
    result = s.run(p, model="gpt-4o", tools=three_tools(side))
    p.close()
    texts = [r.content for r in result.tool_runs]
    assert {r.status for r in result.tool_runs} == {"invalid"}
    assert texts[0].startswith("Error: there is no tool named 'nosuch'")
    assert texts[1] == "Error: invalid arguments for lookup: key: expected a string, got int"
    assert texts[2] == "Error: invalid arguments for lookup: unexpected argument 'wrong'"
    assert side.lines() == []
    assert result.stopped == "done"


@pytest.mark.parametrize(
    ("budget", "reason", "steps"),
    [
        ({"max_steps": 3}, "max_steps", 3),
        ({"token_budget": 1}, "token_budget", 1),
        ({"time_budget": 0.0}, "time_budget", 0),
    ],
)
def test_budgets_stop_between_steps_with_every_call_answered(
    srv: ProviderServer,
    rt: srt.Runtime,
    side: SideFile,
    budget: dict[str, Any],
    reason: str,
    steps: int,
) -> None:
    srv.respond("*", ScriptedTask(STEPS))
    p = make("openai", srv.url)
    s = start(rt, "budget")
    result = s.run(p, model="gpt-4o", tools=three_tools(side), **budget)
    assert result.stopped == reason and result.steps == steps and result.text == ""
    chain_pairs(s.messages())  # stopped after the results, never between call and result
    assert s.messages()[-1]["role"] in ("tool", "user")
    # The same call resumes the task to the end.
    rest = s.run(p, model="gpt-4o", tools=three_tools(side))
    p.close()
    assert rest.stopped == "done" and rest.steps == 11 - steps
    assert Counter(side.lines()).most_common(1)[0][1] == 1


def test_definition_only_tools_are_left_to_the_caller(
    srv: ProviderServer, rt: srt.Runtime, side: SideFile
) -> None:
    srv.respond("*", ScriptedTask([[("lookup", {"key": "a"}), ("ask_user", {"key": "q"})]]))
    ask_user = {
        "type": "function",
        "function": {
            "name": "ask_user",
            "description": "Ask the user a question.",
            "parameters": {"type": "object", "properties": {"key": {"type": "string"}}},
        },
    }
    p = make("anthropic", srv.url)
    s = start(rt, "external")
    tools = [*three_tools(side)[:1], ask_user]
    result = s.run(p, model=MODELS["anthropic"], tools=tools)
    assert result.stopped == "external"
    (call,) = result.pending
    assert call.name == "ask_user" and call.args == {"key": "q"} and call.tool is None
    assert side.lines() == ["lookup a"]
    # Still pending on the next run: nothing is sent.
    again = s.run(p, model=MODELS["anthropic"], tools=tools)
    assert again.stopped == "external" and again.steps == 0
    s.append({"role": "tool", "tool_call_id": call.id, "content": "the user says yes"})
    done = s.run(p, model=MODELS["anthropic"], tools=tools)
    p.close()
    assert done.stopped == "done" and done.steps == 1
    assert side.lines() == ["lookup a"]


class Crash(BaseException):
    """Stands for the process dying inside a tool: escapes the loop, saves nothing."""


def test_resume_runs_unstarted_calls_and_never_reruns_a_started_one(
    srv: ProviderServer, rt: srt.Runtime, db_path: str, side: SideFile
) -> None:
    srv.respond(
        "*",
        ScriptedTask(
            [[("lookup", {"key": "a"}), ("lookup", {"key": "b"}), ("compute", {"key": "c"})]]
        ),
    )
    crash_on = {"lookup b", "compute c"}

    def lookup(key: str) -> str:
        side.log(f"lookup {key}")
        if f"lookup {key}" in crash_on:
            raise Crash
        return f"found {key}"

    @srt.tool(idempotent=True)
    def compute(key: str) -> int:
        side.log(f"compute {key}")
        if f"compute {key}" in crash_on:
            raise Crash
        return 7

    p = make("openai", srv.url)
    s = start(rt, "resume")
    with pytest.raises(Crash):
        s.run(p, model="gpt-4o", tools=[lookup, compute], concurrency=1)
    # The reply with three calls is saved; "lookup a" finished and its result saved.
    roles = [m["role"] for m in s.messages()]
    assert roles == ["system", "user", "assistant", "tool"]
    assert side.lines() == ["lookup a", "lookup b"]

    crash_on.clear()
    with srt.Runtime(db_path) as rt2:  # a new process's view of the file
        s2 = rt2.session("resume")
        result = s2.run(p, model="gpt-4o", tools=[lookup, compute])
        status = {json.loads(r.call.arguments)["key"]: r.status for r in result.tool_runs}
        # b started and is not idempotent: interrupted, not re-run. c never started.
        assert status == {"b": "interrupted", "c": "ok"}
        assert side.lines() == ["lookup a", "lookup b", "compute c"]
        interrupted = next(r for r in result.tool_runs if r.status == "interrupted")
        assert interrupted.content == INTERRUPTED
        assert result.stopped == "done" and result.steps == 1
        chain_pairs(s2.messages())

        # A finished task returns its answer at once.
        again = s2.run(p, model="gpt-4o", tools=[lookup, compute])
        assert again.stopped == "done" and again.steps == 0 and again.text == "All done."
    p.close()


def test_an_idempotent_tool_that_started_is_run_again(
    srv: ProviderServer, rt: srt.Runtime, side: SideFile
) -> None:
    srv.respond("*", ScriptedTask([[("compute", {"key": "c"})]]))
    crash = [True]

    @srt.tool(idempotent=True)
    def compute(key: str) -> int:
        side.log(f"compute {key}")
        if crash.pop() if crash else False:
            raise Crash
        return 7

    p = make("openai", srv.url)
    s = start(rt, "idem")
    with pytest.raises(Crash):
        s.run(p, model="gpt-4o", tools=[compute])
    result = s.run(p, model="gpt-4o", tools=[compute])
    p.close()
    assert [r.status for r in result.tool_runs] == ["ok"]
    assert side.lines() == ["compute c", "compute c"]


def test_two_runs_of_one_task_never_both_start_a_call(
    srv: ProviderServer, rt: srt.Runtime, db_path: str, side: SideFile
) -> None:
    srv.respond("*", ScriptedTask([[("lookup", {"key": "a"})]]))
    gate = threading.Event()
    running = threading.Event()

    def lookup(key: str) -> str:
        side.log(f"lookup {key}")
        running.set()
        assert gate.wait(60)
        return key

    p = make("openai", srv.url)
    s = start(rt, "twice")
    # The model's reply is saved, then the first run blocks inside the tool.
    first: list[Any] = []
    t = threading.Thread(
        target=lambda: first.append(s.run(p, model="gpt-4o", tools=[lookup], max_steps=1))
    )
    t.start()
    assert running.wait(60)
    with srt.Runtime(db_path) as rt2:
        other = rt2.session("twice")
        with pytest.raises(srt.ConflictError, match="is running in this process"):
            other.run(p, model="gpt-4o", tools=[lookup])
    gate.set()
    joined(t)
    p.close()
    assert first and first[0].tool_runs[0].status == "ok"
    assert side.lines() == ["lookup a"]


def test_bad_options_raise_config_errors(rt: srt.Runtime, srv: ProviderServer) -> None:
    p = make("openai", srv.url)
    s = start(rt, "opts")
    with pytest.raises(srt.ConfigError, match="concurrency"):
        s.run(p, model="gpt-4o", concurrency=0)
    with pytest.raises(srt.ConfigError, match="max_steps"):
        s.run(p, model="gpt-4o", max_steps=-1)

    def a() -> None:
        pass

    with pytest.raises(srt.ConfigError, match="two tools"):
        s.run(p, model="gpt-4o", tools=[a, srt.tool(a)])
    p.close()


@pytest.mark.parametrize("tools", ["lookup", 5, {"type": "function"}])
def test_tools_that_are_not_a_list_raise_what_send_raises(
    rt: srt.Runtime, srv: ProviderServer, tools: Any
) -> None:
    """``run`` and ``send`` raise the same error type for the same mistake, and nothing is
    written."""
    p = make("openai", srv.url)
    s = start(rt, "not-a-list")
    n = len(s)
    for call in (s.send, s.run, s.run_stream):
        with pytest.raises(srt.InvalidMessageError, match="tools must be a list"):
            result = call(p, model="gpt-4o", tools=tools)
            for _ in result if call is s.run_stream else ():
                pass
    assert len(s) == n and s.calls() == []
    p.close()
