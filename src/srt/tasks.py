"""Multi-step tasks: the model calls Python tools until it answers (``Session.run``).

One step is a model call through the session's own send path, then the tool calls
it asked for. Every step is durable:

1. The reply, with its tool calls, is appended with its ledger row in one
   transaction (``Session.send``, ``stream``, ``asend``).
2. Just before a tool that is not idempotent starts, the session records that the
   call started (one small store object, ``srt._task.CLAIMS``, naming this process).
3. Each result is appended atomically as soon as its tool returns, as a ``tool``
   message whose metadata (stored, never sent) says how it went.

``run`` looks at the session as it stands, so the same call resumes a task whose
process died: the pending calls are those of the newest assistant message that
have no result yet.

* A call never started is run now. That includes one whose run was interrupted
  (Ctrl-C) after it recorded the start but before the tool was called: the record
  is taken back. A run interrupted after a tool returned saves its result first.
* A call that started but whose result was never saved is run again if its tool
  is idempotent (``@tool(idempotent=True)``). Otherwise it is **not** run again:
  the model is given an error result saying the call was interrupted and its
  outcome is unknown, and can decide what to do (look first, or call again).

So a tool whose result is in the history ran exactly once for it, and a tool that
is not idempotent never runs twice for one call. A call started by a run that is
still going (in this process or another live one) is left alone: ``run`` raises
``ConflictError`` rather than race it (``srt._task`` says how a live owner is told
from a dead one). Of two runs that reach the same call at the same instant, the store
lets one write the call's start record (``Store.put_object(if_absent=True)``, on both
engines; ``srt._task.CLAIMS``), and only that one runs the tool; the other raises
``ConflictError``.

Budgets (``max_steps`` model calls, ``time_budget`` seconds, ``token_budget``
tokens in and out) are checked before each model call; the tools of a reply
always run, so a stopped task never leaves a call without a result. A tool that
raises gives the model an error result (the exception is recorded in the result's
metadata and in ``TaskResult.tool_runs``); what is not an ``Exception`` (SystemExit,
KeyboardInterrupt) goes up to the caller once the other running calls' results are
saved. ``approve(call)`` may allow (``True``),
deny (``False``) or deny with a reason (a string) each call before it runs. A tool
given only as a definition dict is the caller's to run: ``run`` stops with
``stopped == "external"`` and the calls in ``pending``; append their results and
call ``run`` again.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from ._task import (
    CONCURRENCY,
    INTERRUPTED,
    MAX_STEPS,
    OPTIONS,
    STOP_REASONS,
    UNSET,
    Job,
    Task,
    TaskEvent,
    TaskResult,
    ToolCall,
    ToolRun,
)
from .errors import ConfigError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "CONCURRENCY",
    "INTERRUPTED",
    "MAX_STEPS",
    "OPTIONS",
    "STOP_REASONS",
    "AsyncTaskStream",
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


# -- sync drivers -------------------------------------------------------------------------


def _call_sync(job: Job) -> Any:
    tool = job.call.tool
    assert tool is not None and job.bound is not None
    args, kwargs = job.bound
    job.started = True
    value = tool.fn(*args, **kwargs)
    if inspect.isawaitable(value):  # an async tool under the sync loop: its own event loop
        import asyncio  # (here: asyncio costs ``import srt`` about 10 ms)

        return asyncio.run(_awaited(value))
    return value


async def _awaited(value: Any) -> Any:
    return await value


def _execute(task: Task, job: Job, *, save: bool = False) -> ToolRun:
    """Claim ``job``, run its tool and make its result (``save``: and append it, as the
    calls run one at a time do, so no Ctrl-C lands between the two). Interrupted before
    the tool is called, the call is left as never started; after it returned, its
    result is made (and with ``save`` saved) before the interruption goes on."""
    value: Any = UNSET
    error: Exception | None = None
    t0 = time.perf_counter()
    try:
        task.claim(job)
        t0 = time.perf_counter()
        try:
            value = _call_sync(job)
        except Exception as exc:
            error = exc
        run = task.finish(job, value, error, time.perf_counter() - t0)
        return task.commit(run) if save else run
    except BaseException:
        task.interrupted(job, value, error, time.perf_counter() - t0, save=save)
        raise


def _run_tools(task: Task, jobs: list[Job]) -> Iterator[TaskEvent]:
    for job in jobs:
        if job.outcome is None and task.approve is not None:
            task.decision(job, task.approve(job.call))
    for job in jobs:
        if job.outcome is not None:
            yield TaskEvent("tool_result", call=job.call, run=task.commit(job.outcome))
    todo = [j for j in jobs if j.outcome is None]
    if not todo:
        return
    workers = min(task.concurrency, len(todo))
    if workers == 1:
        for job in todo:
            yield TaskEvent("tool_call", call=job.call)
            run = _execute(task, job, save=True)
            yield TaskEvent("tool_result", call=job.call, run=run)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="srt-tool") as pool:
        futures: dict[Future[ToolRun], Job] = {}
        waiting: set[Future[ToolRun]] = set()
        failed: BaseException | None = None  # the first thing that escaped a call
        try:
            for job in todo:  # (the consumer may leave at any of these events)
                yield TaskEvent("tool_call", call=job.call)
                fut = pool.submit(_execute, task, job)
                futures[fut] = job
                waiting.add(fut)
            while waiting:
                done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: todo.index(futures[f])):
                    exc = fut.exception()
                    if exc is not None:  # not an Exception of the tool's (those are results)
                        failed = failed or exc
                        continue
                    run = task.commit(fut.result())
                    yield TaskEvent("tool_result", call=run.call, run=run)
        except BaseException:
            # The consumer stopped listening (GeneratorExit), Ctrl-C, or a commit failed:
            # the tools still running finish (a thread cannot be stopped), and every
            # result not yet saved is (those already done but not yet saved too), so
            # none that ended is left as started-but-unknown.
            _settle(task, waiting, todo)
            raise
    if failed is not None:
        # A tool raised what is not an ``Exception`` (SystemExit, KeyboardInterrupt, ...),
        # or a call could not start (ConflictError): raised once every other call's
        # result is saved. Its own call stays recorded as started (see ``_task``).
        raise failed


def _settle(task: Task, running: set[Future[ToolRun]], jobs: list[Job]) -> None:
    for fut in running:
        try:
            fut.result()
        except BaseException:  # (the caller raises the first failure)
            continue
    task.save_left(jobs)


def _drive(task: Task, stream: bool) -> Generator[TaskEvent, None, None]:
    try:
        yield from _steps(task, stream)
    finally:
        task.release()


def _steps(task: Task, stream: bool) -> Generator[TaskEvent, None, None]:
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


async def _aexecute(task: Task, job: Job, gate: asyncio.Semaphore) -> ToolRun:
    tool = job.call.tool
    assert tool is not None and job.bound is not None
    args, kwargs = job.bound

    async with gate:
        value: Any = UNSET
        error: Exception | None = None
        t0 = time.perf_counter()
        try:  # (as ``_execute``: a call left before its tool is called is not started)
            task.claim(job)
            t0 = time.perf_counter()
            try:
                if tool.is_async:
                    job.started = True
                    value = await tool.fn(*args, **kwargs)
                else:
                    value = await _in_thread(job)
            except Exception as exc:
                error = exc
            return task.finish(job, value, error, time.perf_counter() - t0)
        except BaseException:
            task.interrupted(job, value, error, time.perf_counter() - t0, save=False)
            raise


async def _in_thread(job: Job) -> Any:
    """A sync tool in a thread. Cancelling the run cannot stop the thread, so a cancel
    waits for it: the tool's result is then saved, not left started-but-unknown."""
    import asyncio  # (loaded: this runs in an event loop)

    thread = asyncio.ensure_future(asyncio.to_thread(_call_sync, job))
    try:
        return await asyncio.shield(thread)
    except asyncio.CancelledError:
        return await thread


async def _arun_tools(task: Task, jobs: list[Job]) -> AsyncGenerator[TaskEvent, None]:
    for job in jobs:
        if job.outcome is None and task.approve is not None:
            answer = task.approve(job.call)
            if inspect.isawaitable(answer):
                answer = await answer
            task.decision(job, answer)
    for job in jobs:
        if job.outcome is not None:
            yield TaskEvent("tool_result", call=job.call, run=task.commit(job.outcome))
    todo = [j for j in jobs if j.outcome is None]
    import asyncio  # (loaded: this runs in an event loop)

    gate = asyncio.Semaphore(task.concurrency)
    pending: set[asyncio.Task[ToolRun]] = set()
    failed: BaseException | None = None  # as in ``_run_tools``: raised at the end
    try:
        for job in todo:  # (the consumer may leave at any of these events)
            yield TaskEvent("tool_call", call=job.call)
            pending.add(asyncio.ensure_future(_aexecute(task, job, gate)))
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = None if t.cancelled() else t.exception()
                if t.cancelled() or exc is not None:
                    failed = failed or exc or asyncio.CancelledError()
                    continue
                run = task.commit(t.result())
                yield TaskEvent("tool_result", call=run.call, run=run)
    finally:
        # Cancelled (or the consumer left): async tools are cancelled, sync ones finish
        # their thread (``_in_thread``), and every result that came back is saved.
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        task.save_left(todo)  # (also those done but not yet saved when it was left)
    if failed is not None:
        raise failed


async def _adrive(task: Task, stream: bool) -> AsyncGenerator[TaskEvent, None]:
    # An ``async for`` left early does not close the generator it reads (unlike ``yield
    # from``): each one is closed here, so its tools are settled before ``release``.
    steps = _asteps(task, stream)
    try:
        async for event in steps:
            yield event
    finally:
        try:
            await steps.aclose()
        finally:
            task.release()


async def _asteps(task: Task, stream: bool) -> AsyncGenerator[TaskEvent, None]:
    s = task.session
    while True:
        kind, info = task.next()
        if kind == "stop":
            yield TaskEvent("done", result=task.stop(info))
            return
        if kind == "tools":
            tools = _arun_tools(task, info)
            try:
                async for event in tools:
                    yield event
            finally:
                await tools.aclose()
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


class AsyncTaskStream:
    """The asyncio twin of ``TaskStream``: ``async for event in s.arun_stream(...)``;
    ``result`` is set once the task stops, ``aclose()`` ends it early."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self._gen = _adrive(task, True)

    @property
    def result(self) -> TaskResult | None:
        return self._task.result

    def __aiter__(self) -> AsyncTaskStream:
        return self

    def __anext__(self) -> Awaitable[TaskEvent]:
        return self._gen.__anext__()

    def __iter__(self) -> Iterator[TaskEvent]:
        """Refused: this stream is asyncio's (nothing is sent)."""
        raise ConfigError(
            "arun_stream() is iterated with async for; for a plain for loop, call "
            "s.run_stream(...) instead"
        )

    async def aclose(self) -> None:
        await self._gen.aclose()


def arun_stream(task: Task) -> AsyncTaskStream:
    return AsyncTaskStream(task)
