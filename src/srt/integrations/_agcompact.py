"""``SrtCompactionSession``: the Agents SDK's ``OpenAIResponsesCompactionSession`` over an
``SrtSession``, with the run's usage in srt's ledger.

The SDK's compaction session takes no ``wrapper`` (the run context) in its history
methods, so the ``Runner`` passes none, and its ``add_items`` calls the session under it
without one: no model request of such a run would reach the ledger. This subclass takes
``wrapper`` in all four (the SDK then passes it, as to any session that takes it in all
four) and hands it to ``SrtSession.add_items`` through ``_usage.RUN``, so each request is
written against the items it produced, as without compaction. ``run_compaction`` gets the
run context from the SDK already, and the SDK adds the ``responses.compact`` request's
usage to it; that request is written too, against the compacted history's newest item,
with the compaction model's name (a manual ``run_compaction()`` without a run context is
given a fresh one, so its request is written as well).
"""

from __future__ import annotations

from typing import Any

from agents.memory import OpenAIResponsesCompactionSession
from agents.memory.session import OpenAIResponsesCompactionArgs
from agents.run_context import RunContextWrapper

from ..errors import ConfigError
from . import _usage

__all__ = ["SrtCompactionSession"]


class SrtCompactionSession(OpenAIResponsesCompactionSession):  # type: ignore[misc]
    # (mypy does not follow the Agents SDK: pyproject.toml)
    """``OpenAIResponsesCompactionSession`` whose usage reaches srt's ledger: the same
    arguments, and the session under it must be an ``SrtSession``."""

    def __init__(self, session_id: str, underlying_session: Any, **kwargs: Any) -> None:
        if not isinstance(underlying_session, _usage.Ledger):
            raise ConfigError(
                "SrtCompactionSession keeps its history in an SrtSession, got "
                f"{type(underlying_session).__name__} (OpenAIResponsesCompactionSession "
                "takes any session)"
            )
        super().__init__(session_id, underlying_session, **kwargs)
        self._ledger: _usage.Ledger = underlying_session

    async def get_items(self, limit: int | None = None, *, wrapper: Any = None) -> list[Any]:
        items: list[Any] = await super().get_items(limit)
        return items

    async def add_items(self, items: list[Any], *, wrapper: Any = None) -> None:
        token = _usage.RUN.set(wrapper)
        try:
            await super().add_items(items)
        finally:
            _usage.RUN.reset(token)

    async def pop_item(self, *, wrapper: Any = None) -> Any:
        return await super().pop_item()

    async def clear_session(self, *, wrapper: Any = None) -> None:
        await super().clear_session()

    async def run_compaction(
        self,
        args: OpenAIResponsesCompactionArgs | None = None,
        *,
        wrapper: RunContextWrapper[Any] | None = None,
    ) -> None:
        run = wrapper if wrapper is not None else RunContextWrapper(context=None)
        start = len(run.usage.request_usage_entries)
        try:
            await super().run_compaction(args, wrapper=run)
        finally:  # (a request made is billed, whether or not the replacement followed)
            if len(run.usage.request_usage_entries) > start:
                await self._ledger.record_requests(run, start, self.model)
