"""Multi-step tasks: the model calls Python tools until it answers (``Session.run``).

One step is a model call through the session's own send path, then the tool calls
it asked for. Every step is durable:

1. The reply, with its tool calls, is appended with its ledger row in one
   transaction (``Session.send``, ``stream``, ``asend``).
2. Just before a tool that is not idempotent starts, the session records that the
   call started (``Store.claim_tool_call``: one small write, in ``sessions.meta``).
3. Each result is appended atomically as soon as its tool returns, as a ``tool``
   message whose metadata (stored, never sent) says how it went.

``run`` looks at the session as it stands, so the same call resumes a task whose
process died: the pending calls are those of the newest assistant message that
have no result yet.

* A call never started is run now.
* A call that started but whose result was never saved is run again if its tool
  is idempotent (``@tool(idempotent=True)``). Otherwise it is **not** run again:
  the model is given an error result saying the call was interrupted and its
  outcome is unknown, and can decide what to do (look first, or call again).

So a tool whose result is in the history ran exactly once for it, and a tool that
is not idempotent never runs twice for one call.

Budgets (``max_steps`` model calls, ``time_budget`` seconds, ``token_budget``
tokens in and out) are checked before each model call; the tools of a reply
always run, so a stopped task never leaves a call without a result. A tool that
raises gives the model an error result (the exception is recorded in the result's
metadata and in ``TaskResult.tool_runs``). ``approve(call)`` may allow (``True``),
deny (``False``) or deny with a reason (a string) each call before it runs. A tool
given only as a definition dict is the caller's to run: ``run`` stops with
``stopped == "external"`` and the calls in ``pending``; append their results and
call ``run`` again.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import traceback
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._types import Reply, Usage
from .errors import ConfigError, ConflictError, ToolArgumentsError
from .tools import Tool, as_tool, render_result

if TYPE_CHECKING:
    from .providers.base import Provider
    from .session import Session

__all__ = [
    "CONCURRENCY",
    "MAX_STEPS",
    "OPTIONS",
    "STOP_REASONS",
    "Task",
    "TaskEvent",
    "TaskResult",
    "TaskStream",
    "ToolCall",
    "ToolRun",
    "arun",
    "arun_stream",
    "run",
    "run_stream",
]

#: ``Session.run``'s defaults: model calls per run, and tools run at once.
MAX_STEPS = 25
CONCURRENCY = 8
#: The keyword options of ``Session.run`` that are the loop's (the rest go to ``send``).
OPTIONS = ("max_steps", "time_budget", "token_budget", "approve", "concurrency")
#: Why ``run`` returned.
STOP_REASONS = ("done", "max_steps", "time_budget", "token_budget", "external")
#: The text a result message carries for a call that started but was never saved.
INTERRUPTED = (
    "Error: this call was interrupted before its result was saved (the process running it "
    "stopped), so its outcome is unknown. It was not run again, because the tool may have "
    "had effects; check before calling it again."
)
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model made: ``arguments`` is its JSON text, ``args`` the
    decoded object (``None`` if it is not a JSON object), ``tool`` the Python tool
    (``None`` for a definition-only tool or an unknown name)."""

    id: str
    name: str
    arguments: str
    args: dict[str, Any] | None
    tool: Tool | None


@dataclass(frozen=True)
class ToolRun:
    """What became of one tool call in this run.

    ``status`` is ``ok``, ``error`` (the tool raised; ``error`` holds the
    exception), ``invalid`` (bad arguments or an unknown tool), ``denied`` (the
    approval hook said no) or ``interrupted`` (started by a process that died, not
    idempotent, so not run again). ``content`` is what the model was given.
    """

    call: ToolCall
    status: str
    content: str
    seconds: float = 0.0
    error: BaseException | None = None


@dataclass(frozen=True)
class TaskResult:
    """How a ``run`` ended. ``text`` is the final answer (empty unless ``stopped ==
    "done"``); ``reply`` the last reply this run received; ``steps`` the model calls
    it made; ``usage`` their tokens; ``pending`` the calls left for the caller."""

    stopped: str
    text: str
    reply: Reply | None
    steps: int
    tool_runs: tuple[ToolRun, ...]
    usage: Usage
    pending: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class TaskEvent:
    """One event of a streamed task: ``text`` (a delta of the model's reply),
    ``tool_call`` (about to run), ``tool_result`` (saved), ``reply`` (a model reply
    saved) or ``done`` (``result`` is set)."""

    kind: str
    text: str = ""
    call: ToolCall | None = None
    run: ToolRun | None = None
    reply: Reply | None = None
    result: TaskResult | None = None


# -- reading the session ------------------------------------------------------------------


@dataclass
class _Tail:
    """The newest complete messages: the last assistant message (or other message)
    before any tool results, and the ids of those results."""

    index: int  # of the last message that is not a tool result (-1: none)
    node: int | None
    message: dict[str, Any] | None
    results: set[str] = field(default_factory=set)
    trailing_results: int = 0


def _tail(s: Session) -> _Tail:
    # Partial replies (a stream cut off) are skipped, as requests skip them.
    with s._lock:
        s._load()
        bodies, status, ids = s._bodies, s._status, s._ids
        i = len(bodies) - 1
        results: set[str] = set()
        trailing = 0
        while i >= 0:
            if i in status:
                i -= 1
                continue
            msg = json.loads(bodies[i])
            if msg.get("role") != "tool":
                return _Tail(i, ids[i], msg, results, trailing)
            results.add(str(msg.get("tool_call_id")))
            trailing += 1
            i -= 1
        return _Tail(-1, None, None, results, trailing)


def _text(message: dict[str, Any] | None) -> str:
    if message is None:
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


# -- the task -----------------------------------------------------------------------------


@dataclass
class _Job:
    call: ToolCall
    outcome: ToolRun | None = None  # decided without running the tool
    bound: tuple[list[Any], dict[str, Any]] | None = None


class Task:
    """The state of one ``run`` on one session; the drivers below sequence it."""

    def __init__(
        self,
        session: Session,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any],
        params: dict[str, Any],
        max_steps: int | None = MAX_STEPS,
        time_budget: float | None = None,
        token_budget: int | None = None,
        approve: Callable[[ToolCall], Any] | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 0):
            raise ConfigError("max_steps must be a whole number >= 0 (or None)")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError("concurrency must be a whole number >= 1")
        self.session = session
        self.provider = provider
        self.model = model
        self.max_steps = max_steps
        self.time_budget = time_budget
        self.token_budget = token_budget
        self.approve = approve
        self.concurrency = concurrency
        self.params = params
        self.callables: dict[str, Tool] = {}
        self.definitions: list[Any] = []
        external: set[str] = set()
        for t in tools:
            if isinstance(t, dict):
                self.definitions.append(t)
                fn = t.get("function")
                name = fn.get("name") if isinstance(fn, dict) else t.get("name")
                spec = t.get("toolSpec")
                if isinstance(spec, dict):
                    name = spec.get("name")
                external.add(str(name))
                continue
            tool = as_tool(t)
            if tool.name in self.callables or tool.name in external:
                raise ConfigError(f"two tools are called {tool.name!r}")
            self.callables[tool.name] = tool
            self.definitions.append(tool.definition)
        self.external = external
        self.t0 = time.monotonic()
        self.steps = 0
        self.runs: list[ToolRun] = []
        self.reply: Reply | None = None
        self.usage = Usage()
        self.result: TaskResult | None = None

    # -- deciding ---------------------------------------------------------------------

    def next(self) -> tuple[str, Any]:
        """``("tools", jobs)``, ``("model", None)`` or ``("stop", (reason, text, pending))``."""
        tail = _tail(self.session)
        msg = tail.message
        calls: list[dict[str, Any]] = []
        if msg is not None and msg.get("role") == "assistant":
            calls = msg.get("tool_calls") or []
        pending = [c for c in calls if str(c.get("id")) not in tail.results]
        if pending:
            jobs = self._plan(tail, pending)
            if jobs:
                return "tools", jobs
            left = tuple(self._call(c) for c in pending)
            return "stop", ("external", "", left)
        if msg is not None and msg.get("role") == "assistant" and not calls:
            return "stop", ("done", _text(msg), ())
        reason = self._over_budget()
        if reason is not None:
            return "stop", (reason, "", ())
        return "model", None

    def _over_budget(self) -> str | None:
        if self.max_steps is not None and self.steps >= self.max_steps:
            return "max_steps"
        if self.time_budget is not None and time.monotonic() - self.t0 >= self.time_budget:
            return "time_budget"
        used = self.usage.input_tokens + self.usage.output_tokens
        if self.token_budget is not None and used >= self.token_budget:
            return "token_budget"
        return None

    def _call(self, c: dict[str, Any]) -> ToolCall:
        fn = c.get("function") or {}
        name = str(fn.get("name", ""))
        arguments = fn.get("arguments")
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        try:
            args = json.loads(text or "{}")
        except ValueError:
            args = None
        return ToolCall(
            str(c.get("id")),
            name,
            text,
            args if isinstance(args, dict) else None,
            self.callables.get(name),
        )

    def _plan(self, tail: _Tail, pending: list[dict[str, Any]]) -> list[_Job]:
        s = self.session
        started = s._rt._store.started_tool_calls(s._id, tail.node) if tail.node else frozenset()
        jobs: list[_Job] = []
        for c in pending:
            call = self._call(c)
            tool = call.tool
            if tool is None:
                if call.name in self.external:
                    continue  # the caller runs it
                known = ", ".join(sorted(self.callables)) or "none"
                text = f"Error: there is no tool named {call.name!r} (tools: {known})."
                jobs.append(_Job(call, ToolRun(call, "invalid", text)))
                continue
            if call.id in started and not tool.idempotent:
                jobs.append(_Job(call, ToolRun(call, "interrupted", INTERRUPTED)))
                continue
            try:
                bound = tool.bind(call.arguments)
            except ToolArgumentsError as exc:
                text = f"Error: invalid arguments for {tool.name}: {exc}"
                jobs.append(_Job(call, ToolRun(call, "invalid", text)))
                continue
            jobs.append(_Job(call, None, bound))
        return jobs

    def decision(self, job: _Job, answer: Any) -> None:
        """Apply the approval hook's ``answer`` to ``job``."""
        if answer is True:
            return
        if isinstance(answer, str) and answer:
            text = answer
        elif answer is False or answer is None:
            text = "The user denied this tool call."
        else:
            raise ConfigError("the approve hook must return True, False or a reason (str)")
        job.outcome = ToolRun(job.call, "denied", text)

    # -- running ----------------------------------------------------------------------

    def claim(self, job: _Job) -> None:
        """Record that ``job`` starts (not for idempotent tools, which may re-run)."""
        assert job.call.tool is not None
        if job.call.tool.idempotent:
            return
        s = self.session
        with s._lock:
            node = s._ids[_tail(s).index]
            if not s._rt._store.claim_tool_call(s._id, s._head, node, job.call.id):
                raise ConflictError(
                    f"tool call {job.call.id} was started by another run of this task"
                )

    def finish(self, job: _Job, value: Any, exc: BaseException | None, seconds: float) -> ToolRun:
        if exc is None:
            return ToolRun(job.call, "ok", render_result(value), seconds)
        text = f"Error: {type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        return ToolRun(job.call, "error", text, seconds, exc)

    def commit(self, run: ToolRun) -> None:
        """Append ``run``'s result message (atomically, with its metadata)."""
        meta: dict[str, Any] = {"name": run.call.name, "status": run.status}
        if run.seconds:
            meta["seconds"] = round(run.seconds, 6)
        if run.error is not None:
            meta["error"] = f"{type(run.error).__name__}: {run.error}"[:_MAX_ERROR_CHARS]
            tb = "".join(traceback.format_exception(run.error))
            meta["traceback"] = tb[-4 * _MAX_ERROR_CHARS :]
        self.session.append(
            {
                "role": "tool",
                "tool_call_id": run.call.id,
                "content": run.content,
                "metadata": {"srt_tool": meta},
            }
        )
        self.runs.append(run)

    def replied(self, reply: Reply) -> None:
        self.steps += 1
        self.reply = reply
        u, r = self.usage, reply.usage
        self.usage = Usage(
            u.input_tokens + r.input_tokens,
            u.output_tokens + r.output_tokens,
            u.cache_read_tokens + r.cache_read_tokens,
            u.cache_write_tokens + r.cache_write_tokens,
        )

    def stop(self, info: tuple[str, str, tuple[ToolCall, ...]]) -> TaskResult:
        reason, text, pending = info
        self.result = TaskResult(
            reason, text, self.reply, self.steps, tuple(self.runs), self.usage, pending
        )
        return self.result

    def send_kwargs(self) -> dict[str, Any]:
        return {"model": self.model, "tools": self.definitions, **self.params}


# -- sync drivers -------------------------------------------------------------------------


def _call_sync(job: _Job) -> Any:
    tool = job.call.tool
    assert tool is not None and job.bound is not None
    args, kwargs = job.bound
    value = tool.fn(*args, **kwargs)
    if inspect.isawaitable(value):  # an async tool under the sync loop: its own event loop
        return asyncio.run(_awaited(value))
    return value


async def _awaited(value: Any) -> Any:
    return await value


def _execute(task: Task, job: _Job) -> ToolRun:
    task.claim(job)
    t0 = time.perf_counter()
    try:
        value = _call_sync(job)
    except Exception as exc:
        return task.finish(job, None, exc, time.perf_counter() - t0)
    return task.finish(job, value, None, time.perf_counter() - t0)


def _run_tools(task: Task, jobs: list[_Job]) -> Iterator[TaskEvent]:
    for job in jobs:
        if job.outcome is None and task.approve is not None:
            task.decision(job, task.approve(job.call))
    for job in jobs:
        if job.outcome is not None:
            task.commit(job.outcome)
            yield TaskEvent("tool_result", call=job.call, run=job.outcome)
    todo = [j for j in jobs if j.outcome is None]
    if not todo:
        return
    workers = min(task.concurrency, len(todo))
    if workers == 1:
        for job in todo:
            yield TaskEvent("tool_call", call=job.call)
            run = _execute(task, job)
            task.commit(run)
            yield TaskEvent("tool_result", call=job.call, run=run)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="srt-tool") as pool:
        futures: dict[Future[ToolRun], _Job] = {}
        for job in todo:
            yield TaskEvent("tool_call", call=job.call)
            futures[pool.submit(_execute, task, job)] = job
        waiting = set(futures)
        try:
            while waiting:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: todo.index(futures[f])):
                    waiting.discard(fut)
                    run = fut.result()
                    task.commit(run)
                    yield TaskEvent("tool_result", call=run.call, run=run)
        except GeneratorExit:
            # The consumer stopped listening: the tools still running finish, and
            # their results are saved, so none is left as started-but-unknown.
            for fut in sorted(waiting, key=lambda f: todo.index(futures[f])):
                task.commit(fut.result())
            raise


def _drive(task: Task, stream: bool) -> Generator[TaskEvent, None, None]:
    s = task.session
    while True:
        kind, info = task.next()
        if kind == "stop":
            yield TaskEvent("done", result=task.stop(info))
            return
        if kind == "tools":
            yield from _run_tools(task, info)
            continue
        if stream:
            with s.stream(task.provider, **task.send_kwargs()) as rs:
                for delta in rs:
                    yield TaskEvent("text", text=delta)
            reply = rs.reply
            assert reply is not None
        else:
            reply = s.send(task.provider, **task.send_kwargs())
        task.replied(reply)
        yield TaskEvent("reply", reply=reply)


class TaskStream:
    """Iterate for ``TaskEvent``s; ``result`` is set once the task stops."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self._gen: Generator[TaskEvent, None, None] = _drive(task, True)

    @property
    def result(self) -> TaskResult | None:
        return self._task.result

    def __iter__(self) -> Iterator[TaskEvent]:
        return self._gen

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> TaskStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(task: Task) -> TaskResult:
    for _ in _drive(task, False):
        pass
    assert task.result is not None
    return task.result


def run_stream(task: Task) -> TaskStream:
    return TaskStream(task)


# -- asyncio drivers ----------------------------------------------------------------------


async def _aexecute(task: Task, job: _Job, gate: asyncio.Semaphore) -> ToolRun:
    tool = job.call.tool
    assert tool is not None and job.bound is not None
    args, kwargs = job.bound
    async with gate:
        task.claim(job)
        t0 = time.perf_counter()
        try:
            if tool.is_async:
                value = await tool.fn(*args, **kwargs)
            else:
                value = await asyncio.to_thread(_call_sync, job)
        except Exception as exc:
            return task.finish(job, None, exc, time.perf_counter() - t0)
        return task.finish(job, value, None, time.perf_counter() - t0)


async def _arun_tools(task: Task, jobs: list[_Job]) -> AsyncIterator[TaskEvent]:
    for job in jobs:
        if job.outcome is None and task.approve is not None:
            answer = task.approve(job.call)
            if inspect.isawaitable(answer):
                answer = await answer
            task.decision(job, answer)
    for job in jobs:
        if job.outcome is not None:
            task.commit(job.outcome)
            yield TaskEvent("tool_result", call=job.call, run=job.outcome)
    todo = [j for j in jobs if j.outcome is None]
    gate = asyncio.Semaphore(task.concurrency)
    pending: set[asyncio.Task[ToolRun]] = set()
    for job in todo:
        yield TaskEvent("tool_call", call=job.call)
        pending.add(asyncio.ensure_future(_aexecute(task, job, gate)))
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                run = t.result()
                task.commit(run)
                yield TaskEvent("tool_result", call=run.call, run=run)
    finally:
        for t in pending:
            t.cancel()


async def _adrive(task: Task, stream: bool) -> AsyncIterator[TaskEvent]:
    s = task.session
    while True:
        kind, info = task.next()
        if kind == "stop":
            yield TaskEvent("done", result=task.stop(info))
            return
        if kind == "tools":
            async for event in _arun_tools(task, info):
                yield event
            continue
        if stream:
            ars = s.astream(task.provider, **task.send_kwargs())
            try:
                async for delta in ars:
                    yield TaskEvent("text", text=delta)
            finally:
                await ars.aclose()
            reply = ars.reply
            assert reply is not None
        else:
            reply = await s.asend(task.provider, **task.send_kwargs())
        task.replied(reply)
        yield TaskEvent("reply", reply=reply)


async def arun(task: Task) -> TaskResult:
    async for _ in _adrive(task, False):
        pass
    assert task.result is not None
    return task.result


def arun_stream(task: Task) -> AsyncIterator[TaskEvent]:
    return _adrive(task, True)
