"""What ``import srt`` needs of the tool loop: what a task uses of its session
(``TaskSession``), ``Session.run``'s defaults, and the kind of the records of who
started a tool call, which every process that opens a store must know (``store.owners``).

The loop itself (``srt._task``, ``srt.tasks``, with ``srt.tools``, ``docstring_parser``,
``concurrent.futures`` and ``logging``) loads with the first run; ``srt._task`` re-exports
these names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .store.owners import session_kind

if TYPE_CHECKING:  # (the providers load on first use: httpx and asyncio cost ``import srt``)
    from ._builder import Parts
    from ._types import Reply
    from .providers import Provider

__all__ = ["CLAIMS", "CONCURRENCY", "MAX_STEPS", "OPTIONS", "TaskSession"]

#: ``Session.run``'s defaults: model calls per run, and tools run at once.
MAX_STEPS = 25
CONCURRENCY = 8
#: The keyword options of ``Session.run`` that are the loop's (the rest go to ``send``).
OPTIONS = ("max_steps", "time_budget", "token_budget", "approve", "concurrency")

#: The store objects that say who started a tool call: kind ``srt.tool_call``, scope
#: ``<session id>:<prefix hash of the assistant message>:<call id>`` (a prefix hash names
#: a whole history, so a scope is never reused), key ``_task.START``, value the owner
#: (``srt._task``), written ``if_absent``: of runs starting the call at once, the store
#: lets one in, and only that one runs the tool. (Records of earlier srt versions are
#: still read: the scope's first object in insertion order, keyed ``<owner>:<random>``,
#: one per run that tried; and before that, scope the session id and key
#: ``<prefix hash>:<call id>``.) The kind is filed under a session (``store.owners``):
#: deleting the session deletes its records in the same transaction, and the store writes
#: none once it is gone, so a run that saw the session before its deletion cannot win a
#: start a deleted record held.
CLAIMS = session_kind("srt.tool_call")


class TaskSession(Protocol):
    """What a task uses of its ``srt.Session``: the public send path and the parts (the
    task reads its chain and records call claims in the store, under the session lock)."""

    @property
    def name(self) -> str: ...

    @property
    def parts(self) -> Parts: ...

    def append(self, *messages: Any, rebase: bool = False, model: str | None = None) -> Any: ...

    def send(self, provider: Provider, *, model: str, **kw: Any) -> Reply: ...

    def stream(self, provider: Provider, *, model: str, **kw: Any) -> Any: ...

    async def asend(self, provider: Provider, *, model: str, **kw: Any) -> Reply: ...

    def astream(self, provider: Provider, *, model: str, **kw: Any) -> Any: ...

    def refresh(self) -> None: ...
