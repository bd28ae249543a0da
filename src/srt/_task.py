"""The state of one task run (``srt.tasks`` drives it): what the session holds, which
calls to run, resume rules, the records a run returns, and who started which call.

A started call is recorded with its *owner*, ``"<pid>:<process start time>:<token>"``
(``srt._task_owner.claimant``: the process, and a token naming the run's claim). A run
that finds a call started but without a result asks whether the owner still runs:
another live process (same pid and start time) or, in this process, a run still holding
the call, means the task is running elsewhere (``ConflictError``); otherwise the owner
died and the call was interrupted.

A run interrupted (Ctrl-C) between writing a call's start record and calling its tool
takes the record back (``Task.interrupted``), only its own (its token: never another
run's of the same call in this process): the call reads as never started. One
interrupted after the tool returned saves its result first. Only a tool stopped midway
reads as interrupted.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._task_owner import alive, claimant, owner
from ._task_session import CLAIMS, CONCURRENCY, MAX_STEPS, OPTIONS, TaskSession
from ._types import Reply, Usage, check_provider
from .entries import TOOL
from .errors import ConfigError, ConflictError, InvalidMessageError, ToolArgumentsError
from .message import own_metadata
from .tools import Tool, as_tool, render_result

if TYPE_CHECKING:  # (the providers load on first use: httpx and asyncio cost ``import srt``)
    from .providers import Provider

__all__ = [
    "CLAIMS",
    "CONCURRENCY",
    "INTERRUPTED",
    "MAX_STEPS",
    "OPTIONS",
    "START",
    "STOP_REASONS",
    "UNSET",
    "Job",
    "Task",
    "TaskEvent",
    "TaskResult",
    "ToolCall",
    "ToolRun",
    "alive",
    "owner",
]

# (``MAX_STEPS``, ``CONCURRENCY``, ``OPTIONS``, ``CLAIMS`` and ``TaskSession`` are
# ``_task_session``'s: ``import srt`` loads that module, and this one with the first task.)
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
    idempotent, so not run again). ``content`` is what the model was given; a
    status other than ``ok`` sends it marked as an error (the tool message's
    ``is_error``).
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


def _tail(s: TaskSession) -> _Tail:
    # Partial replies (a stream cut off) are skipped, as requests skip them.
    parts = s.parts
    with parts.lock:
        parts.chain.load()
        bodies, status, ids = parts.chain.bodies, parts.chain.status, parts.chain.ids
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


# -- who started a call ----------------------------------------------------------------------

#: The key of a call's start record (of kind ``CLAIMS``: ``_task_session`` describes them).
START = "start"


def _claim_key(s: TaskSession, index: int, call_id: str) -> str:
    return f"{s.parts.chain.prefix(index + 1).hex()}:{call_id}"


def _claim_scope(s: TaskSession, index: int, call_id: str) -> str:
    return f"{s.parts.chain.id}:{_claim_key(s, index, call_id)}"


_RUNNING: set[tuple[str, int, str]] = set()  # (file, session id, call id) running here
_RUNNING_LOCK = threading.Lock()


# -- the task -----------------------------------------------------------------------------


def _whole(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


@dataclass
class Job:
    call: ToolCall
    outcome: ToolRun | None = None  # decided without running the tool
    bound: tuple[list[Any], dict[str, Any]] | None = None
    scope: str | None = None  # the start record this run may have written (``claim``)
    mine: bytes = b""  # ... and its value, naming this run's claim (``claimant``)
    started: bool = False  # the tool was called (set just before it is)
    result: ToolRun | None = None  # what ``finish`` made of its return


#: A tool's return not yet known (``Task.interrupted``).
UNSET: Any = object()


class Task:
    """The state of one ``run`` on one session; the drivers below sequence it."""

    def __init__(
        self,
        session: TaskSession,
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
        check_provider(provider)  # (before a resumed run that finished needs none)
        if max_steps is not None and not _whole(max_steps, 0):
            raise ConfigError("max_steps must be a whole number >= 0 (or None)")
        if not _whole(concurrency, 1):
            raise ConfigError("concurrency must be a whole number >= 1")
        if token_budget is not None and not _whole(token_budget, 0):
            raise ConfigError("token_budget must be a whole number of tokens >= 0 (or None)")
        if time_budget is not None and not (
            isinstance(time_budget, (int, float))
            and not isinstance(time_budget, bool)
            and time_budget >= 0  # (False for NaN)
        ):
            raise ConfigError("time_budget must be a number of seconds >= 0 (or None)")
        if approve is not None and not callable(approve):  # (else a TypeError mid-task)
            raise ConfigError(
                "approve must be a function of an srt.ToolCall returning True, False or a "
                f"reason (str), or None, got {type(approve).__name__}"
            )
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
        tools = () if tools is None else tools
        if not isinstance(tools, (list, tuple)):
            # (the type ``send`` and ``request`` raise for the same mistake)
            raise InvalidMessageError(
                f"tools must be a list of functions or definitions, got {type(tools).__name__}"
            )
        for t in tools:
            if isinstance(t, dict):
                self.definitions.append(t)
                fn = t.get("function")
                name = fn.get("name") if isinstance(fn, dict) else t.get("name")
                spec = t.get("toolSpec")
                if isinstance(spec, dict):
                    name = spec.get("name")
                if isinstance(name, str) and (name in self.callables or name in external):
                    # (whichever comes first: a provider refuses two tools of one name)
                    raise ConfigError(f"two tools are called {name!r}")
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
        self.claimed: set[tuple[str, int, str]] = set()

    # -- deciding ---------------------------------------------------------------------

    def next(self) -> tuple[str, Any]:
        """``("tools", jobs)``, ``("model", None)`` or ``("stop", (reason, text, pending))``."""
        tail = _tail(self.session)
        msg = tail.message
        calls: list[dict[str, Any]] = []
        if msg is not None and msg.get("role") == "assistant":
            calls = msg.get("tool_calls") or []
        pending: list[dict[str, Any]] = []
        ids: set[str] = set()
        for c in calls:
            call_id = str(c.get("id"))
            if call_id in tail.results:
                continue
            if call_id in ids:  # a reply that repeats an id: its first call stands for it
                text = f"Error: call id {call_id} repeats an earlier call's id; it was not run."
                self.runs.append(ToolRun(self._call(c), "invalid", text))
                continue
            ids.add(call_id)
            pending.append(c)
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

    def _started(self, tail: _Tail, call_id: str) -> str | None:
        """Who started ``call_id`` of the message ``tail`` ends at, if anyone did."""
        s = self.session
        store = s.parts.chain.store
        first = store.list_objects(CLAIMS, _claim_scope(s, tail.index, call_id), limit=1)
        if first:
            return first[0].value.decode("utf-8", "replace")
        old = store.get_object(CLAIMS, str(s.parts.chain.id), _claim_key(s, tail.index, call_id))
        return old.value.decode("utf-8", "replace") if old is not None else None

    def _plan(self, tail: _Tail, pending: list[dict[str, Any]]) -> list[Job]:
        jobs: list[Job] = []
        for c in pending:
            call = self._call(c)
            tool = call.tool
            # Started by an earlier run: interrupted, even if this run was given other
            # tools (no longer this one, or only its definition): it may have had effects.
            who = None if tool is not None and tool.idempotent else self._started(tail, call.id)
            if who is not None:
                self._check_gone(call, who)
                jobs.append(Job(call, ToolRun(call, "interrupted", INTERRUPTED)))
                continue
            if tool is None:
                if call.name in self.external:
                    continue  # the caller runs it
                known = ", ".join(sorted(self.callables)) or "none"
                text = f"Error: there is no tool named {call.name!r} (tools: {known})."
                jobs.append(Job(call, ToolRun(call, "invalid", text)))
                continue
            try:
                bound = tool.bind(call.arguments)
            except ToolArgumentsError as exc:
                text = f"Error: invalid arguments for {tool.name}: {exc}"
                jobs.append(Job(call, ToolRun(call, "invalid", text)))
                continue
            jobs.append(Job(call, None, bound))
        return jobs

    def decision(self, job: Job, answer: Any) -> None:
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

    def _key(self, call_id: str) -> tuple[str, int, str]:
        chain = self.session.parts.chain
        return (chain.store.location, chain.id, call_id)

    def _check_gone(self, call: ToolCall, who: str) -> None:
        with _RUNNING_LOCK:
            here = self._key(call.id) in _RUNNING
        if here or alive(who):
            where = "this process" if here else f"process {who.partition(':')[0]}"
            raise ConflictError(
                f"tool call {call.id} ({call.name}) is running in {where}: this task is "
                "being run there; run it from one place at a time"
            )

    def claim(self, job: Job) -> None:
        """Record that ``job`` starts (not for idempotent tools, which may re-run)."""
        assert job.call.tool is not None
        if job.call.tool.idempotent:
            return
        s = self.session
        key = self._key(job.call.id)
        parts = s.parts
        store = parts.shared.store
        with parts.lock:
            row = store.get_session(s.name)
            if row is None or row.id != parts.chain.id or row.head != parts.chain.head:
                raise ConflictError(
                    "the session moved since this run last saw it (another process "
                    "appended); nothing was run: refresh() and run again"
                )
            tail = _tail(s)
            before = self._started(tail, job.call.id)
            if before is not None:
                self._check_gone(job.call, before)
                raise ConflictError(f"tool call {job.call.id} was started by an earlier run")
            me = claimant()  # (this claim's own: another run here writes another)
            job.mine = me.encode()
            scope = job.scope = _claim_scope(s, tail.index, job.call.id)
            won = store.put_object(CLAIMS, scope, START, me.encode(), if_absent=True)
            if not won:
                job.scope = None  # (another's record: never this run's to take back)
            first = store.list_objects(CLAIMS, scope, limit=1)
            if not won and not first:  # the store writes no record of a deleted session
                raise ConflictError(
                    f"session {s.name!r} was deleted while this run ran; tool call "
                    f"{job.call.id} ({job.call.name}) was not run"
                )
            if not won or not first or first[0].key != START:  # another run's came first
                who = first[0].value.decode("utf-8", "replace") if first else "?"
                self._check_gone(job.call, who)
                raise ConflictError(f"tool call {job.call.id} was started by another run")
            with _RUNNING_LOCK:
                _RUNNING.add(key)
            self.claimed.add(key)

    def interrupted(
        self, job: Job, value: Any, error: Exception | None, seconds: float, *, save: bool
    ) -> None:
        """Something that is not a tool's ``Exception`` (Ctrl-C, a cancel, a failed
        save) left the running of ``job``. Before its tool was called, the call's start
        record goes (it reads as never started, and runs when the task resumes); once the
        tool returned (``value`` or ``error``), its result is made and, with ``save``,
        saved, so a tool that ran never reads as interrupted. A tool stopped midway
        stays started: interrupted, never run twice."""
        if not job.started:
            self._unclaim(job)
            return
        if job.result is None and (value is not UNSET or error is not None):
            self.finish(job, None if value is UNSET else value, error, seconds)
        if save:
            with contextlib.suppress(Exception):  # (the error that came is the one raised)
                self.save_left([job])

    def _unclaim(self, job: Job) -> None:
        scope, job.scope = job.scope, None
        mine, job.mine = job.mine, b""
        key = self._key(job.call.id)
        if key in self.claimed:
            with _RUNNING_LOCK:
                _RUNNING.discard(key)
            self.claimed.discard(key)
        if scope is None:
            return
        store = self.session.parts.shared.store
        with contextlib.suppress(Exception):  # (left: the call reads as interrupted)
            row = store.get_object(CLAIMS, scope, START)
            if row is not None and mine and row.value == mine:
                store.delete_object(CLAIMS, scope, START)

    def save_left(self, jobs: Sequence[Job]) -> None:
        """Append the results of ``jobs`` that were made but not saved (the run was left
        between a tool's return and the append of its result), each once: a result the
        session holds already is not appended again."""
        saved = _tail(self.session).results
        for job in jobs:
            if job.result is not None and job.call.id not in saved:
                self.commit(job.result)

    def release(self) -> None:
        """Forget this run's calls in the running set (at its end, however it ends)."""
        with _RUNNING_LOCK:
            _RUNNING.difference_update(self.claimed)
        self.claimed.clear()

    def finish(self, job: Job, value: Any, exc: BaseException | None, seconds: float) -> ToolRun:
        """The run of ``job`` whose tool returned ``value`` or raised ``exc``; kept as
        ``job.result`` until it is saved."""
        if exc is None:
            try:
                run = ToolRun(job.call, "ok", render_result(value), seconds)
            except Exception as err:  # a cycle, a tuple key, a __str__ that raises...
                text = f"Error: the tool's result could not be given as JSON: {err}"
                run = ToolRun(job.call, "error", text[:_MAX_ERROR_CHARS], seconds, err)
        else:
            text = f"Error: {type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
            run = ToolRun(job.call, "error", text, seconds, exc)
        job.result = run
        return run

    def commit(self, run: ToolRun) -> ToolRun:
        """Append ``run``'s result message (atomically, with its metadata); the run as
        stored. A result srt refuses to store (over ``max_message_bytes``, a lone
        surrogate) is replaced by an error result that says why."""
        try:
            self._append(run)
        except InvalidMessageError as exc:
            text = f"Error: the tool's result could not be stored: {exc}"[:_MAX_ERROR_CHARS]
            run = ToolRun(run.call, "error", text, run.seconds, exc)
            self._append(run)
        self.runs.append(run)
        key = self._key(run.call.id)
        if key in self.claimed:
            with _RUNNING_LOCK:
                _RUNNING.discard(key)
            self.claimed.discard(key)
        return run

    def _append(self, run: ToolRun) -> None:
        meta: dict[str, Any] = {"name": run.call.name, "status": run.status}
        if run.seconds:
            meta["seconds"] = round(run.seconds, 6)
        if run.error is not None:
            meta["error"] = f"{type(run.error).__name__}: {run.error}"[:_MAX_ERROR_CHARS]
            tb = "".join(traceback.format_exception(run.error))
            meta["traceback"] = tb[-4 * _MAX_ERROR_CHARS :]
        result: dict[str, Any] = {
            "role": "tool",
            "tool_call_id": run.call.id,
            "content": run.content,
            "metadata": {TOOL: meta},
        }
        if run.status != "ok":  # raised, invalid, denied, interrupted: no result
            result["is_error"] = True  # (Anthropic's is_error, Bedrock's status: error)
        with own_metadata():  # (``srt_tool`` is srt's key: a user's append is refused it)
            self.session.append(result)

    def replied(self, reply: Reply) -> None:
        self.steps += 1
        self.reply = reply
        u, r = self.usage, reply.usage
        self.usage = Usage(
            u.input_tokens + r.input_tokens,
            u.output_tokens + r.output_tokens,
            u.cache_read_tokens + r.cache_read_tokens,
            u.cache_write_tokens + r.cache_write_tokens,
            u.cache_write_1h_tokens + r.cache_write_1h_tokens,
            u.reasoning_tokens + r.reasoning_tokens,
        )

    def stop(self, info: tuple[str, str, tuple[ToolCall, ...]]) -> TaskResult:
        reason, text, pending = info
        self.result = TaskResult(
            reason, text, self.reply, self.steps, tuple(self.runs), self.usage, pending
        )
        return self.result

    def send_kwargs(self) -> dict[str, Any]:
        return {"model": self.model, "tools": self.definitions, **self.params}
