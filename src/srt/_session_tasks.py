"""``Session``'s tool-loop methods: ``run``, ``run_stream``, ``arun`` and ``arun_stream``
(``srt.tasks``).

They are written in ``Runs`` and taken into ``Session``'s own namespace (``run =
Runs.run``): the same functions, signatures and docstrings, so ``help(srt.Session)``
shows them as its own, and ``session.py`` stays under the module size limit. ``Runs`` is
a ``Protocol`` (what a task uses of its session, ``_task.TaskSession``), so the type
checker holds each call's ``Session`` to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ._task_session import CONCURRENCY, MAX_STEPS, OPTIONS, TaskSession
from .wire.base import check_model

if TYPE_CHECKING:  # (the providers load on first use: httpx and asyncio cost ``import srt``)
    from . import tasks  # (and the loop with the first run: ``_task_session``)
    from .providers import Provider

__all__ = ["Runs"]


def _task(
    session: TaskSession, provider: Provider, model: str, tools: Sequence[Any], **kw: Any
) -> tasks.Task:
    check_model(model)
    from . import tasks

    opts = {k: kw.pop(k) for k in OPTIONS if k in kw}
    return tasks.Task(session, provider, model=model, tools=tools, params=kw, **opts)


class Runs(TaskSession, Protocol):
    """A ``Session``, as its tool-loop methods (written here) use it."""

    def run(
        self,
        provider: Provider,
        *,
        model: str,
        tools: Sequence[Any] = (),
        max_steps: int | None = MAX_STEPS,
        time_budget: float | None = None,
        token_budget: int | None = None,
        approve: Callable[[tasks.ToolCall], Any] | None = None,
        concurrency: int = CONCURRENCY,
        **params: Any,
    ) -> tasks.TaskResult:
        """Run the task this session holds: call the model, run the tools it calls
        (Python callables, parallel calls at most ``concurrency`` at a time), append
        every reply and result as it happens, and repeat until the model answers or a
        budget is spent. On a session whose process died mid-task it resumes, never
        re-running a tool whose result was saved. ``params`` go to every ``send``
        (e.g. ``window=``, ``max_tokens=``). See ``srt.tasks``."""
        from . import tasks

        return tasks.run(
            _task(
                self, provider, model, tools, max_steps=max_steps, time_budget=time_budget,
                token_budget=token_budget, approve=approve, concurrency=concurrency, **params,
            )
        )  # fmt: skip

    def run_stream(
        self, provider: Provider, *, model: str, tools: Sequence[Any] = (), **options: Any
    ) -> tasks.TaskStream:
        """``run``, streamed: iterate for ``TaskEvent``s (text deltas, tool calls and
        results, replies); ``.result`` holds the ``TaskResult`` at the end. Takes
        ``run``'s options."""
        from . import tasks

        return tasks.run_stream(_task(self, provider, model, tools, **options))

    async def arun(
        self, provider: Provider, *, model: str, tools: Sequence[Any] = (), **options: Any
    ) -> tasks.TaskResult:
        """The asyncio twin of ``run`` (async tools are awaited, sync ones run in
        threads; ``approve`` may be a coroutine function). Takes ``run``'s options."""
        from . import tasks

        return await tasks.arun(_task(self, provider, model, tools, **options))

    def arun_stream(
        self, provider: Provider, *, model: str, tools: Sequence[Any] = (), **options: Any
    ) -> tasks.AsyncTaskStream:
        """The asyncio twin of ``run_stream``: ``async for event in s.arun_stream(...)``;
        ``.result`` holds the ``TaskResult`` at the end."""
        from . import tasks

        return tasks.arun_stream(_task(self, provider, model, tools, **options))
