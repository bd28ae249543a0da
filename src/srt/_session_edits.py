"""``Session``'s methods that move its head back or rewrite its history, and bring an
earlier one back: ``rewind``, ``edit``, ``compact``, ``acompact`` and ``expand``
(``srt.compaction``, ``srt.summarize``), ``history`` and ``restore`` (``srt.history``).

They are written in ``Edits`` and taken into ``Session``'s own namespace (``rewind =
Edits.rewind``): the same functions, signatures and docstrings, so ``help(srt.Session)``
shows them as its own, and ``session.py`` stays under the module size limit. ``Edits``
is a ``Protocol`` of what these methods use of the session (its lock, chain, builder and
shared state), so the type checker holds each call's ``Session`` to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from . import compaction, summarize
from . import history as _history
from ._builder import Builder
from ._chain import Chain
from ._shared import Shared
from .errors import ConfigError, HistoryIndexError, SessionError
from .store import ObjectPut
from .wire.base import check_model

if TYPE_CHECKING:  # (the providers load on first use: httpx and asyncio cost ``import srt``)
    from .providers import Provider

__all__ = ["Edits"]


class Edits(summarize.SessionLike, Protocol):
    """A ``Session``, as its editing methods (written here) use it."""

    _builder: Builder
    _chain: Chain
    _shared: Shared

    def _using(self) -> AbstractContextManager[None]: ...

    def rewind(self, n: int = 1, *, objects: Sequence[ObjectPut] = ()) -> None:
        """Drop the last ``n`` messages from this session (they stay stored for forks);
        ``objects`` (``ObjectPut``) are written in the same transaction, and an object
        written on a condition that fails is a ``ConflictError`` (nothing written)."""
        if not isinstance(objects, (list, tuple)) or not all(
            isinstance(o, ObjectPut) for o in objects
        ):
            raise ConfigError(
                f"objects must be a list of srt.store.ObjectPut, got {type(objects).__name__}"
            )
        with self._using():
            self._chain.writable()
            self._chain.rewind(n, objects)

    def edit(self, index: int, message: Any) -> int | None:
        """Replace message ``index`` and drop everything after it; return the new head.

        The old branch stays stored (fork first to keep a name on it).
        """
        with self._using():
            chain = self._chain
            chain.writable()
            n = len(chain)
            if not isinstance(index, int) or isinstance(index, bool):
                raise HistoryIndexError(f"index must be an int, got {type(index).__name__}")
            keep = index + n if index < 0 else index
            if not 0 <= keep < n:
                raise HistoryIndexError(f"index {index} is outside a session of {n} messages")
            chain.commit(keep, chain.prepare([message]))
            return chain.head

    def compact(
        self,
        end: int,
        summary: str | Callable[[list[dict[str, Any]]], str] | None = None,
        *,
        start: int | None = None,
        summarizer: Provider | None = None,
        model: str | None = None,
        instructions: str | None = None,
        tools: Sequence[Any] | None = None,
        **params: Any,
    ) -> int | None:
        """Replace messages ``start:end`` by one summary message; return the new head.

        ``start`` defaults to just after the pinned prefix (leading system messages
        and the first user message). ``summary`` is the text, or a callable given the
        replaced messages; or, with ``summarizer=provider, model=...``, the model writes
        it from the first ``end`` messages (a prefix the provider has cached) and
        ``instructions``, ``tools`` and ``params`` as for ``send`` (not its ``stream``,
        ``append``, ``keep`` or ``objects``); its ledger row is written with the
        compaction (``srt.summarize``). The summary is a content-addressed message whose
        node records the span it replaces, kept for ``expand()`` to restore byte for byte
        (until ``gc`` frees it, after the history retention). Put ``end`` where a window
        would cut (e.g. the ``cache_aware`` step): the summary then joins the new, stable
        cached prefix. Tool calls and their results are never split.
        """
        if summarizer is None:
            if summary is None:
                raise SessionError("compact() needs a summary, or summarizer= and model=")
            with self._using():
                self._chain.writable()
                roles = self._builder.roles()
                return compaction.compact(self._chain, roles, end, summary, start)
        if summary is not None or model is None:
            raise SessionError("with summarizer=, give model= and no summary")
        check_model(model)
        return summarize.compact(
            self, end, provider=summarizer, model=model, start=start,
            instructions=instructions, tools=tools, **params,
        )  # fmt: skip

    async def acompact(
        self,
        end: int,
        *,
        summarizer: Provider,
        model: str,
        start: int | None = None,
        instructions: str | None = None,
        tools: Sequence[Any] | None = None,
        **params: Any,
    ) -> int | None:
        """The asyncio twin of ``compact(end, summarizer=..., model=...)``."""
        check_model(model)
        return await summarize.acompact(
            self, end, provider=summarizer, model=model, start=start,
            instructions=instructions, tools=tools, **params,
        )  # fmt: skip

    def expand(self) -> int | None:
        """Undo the newest compaction in this history: the replaced messages come back,
        byte for byte, on their original nodes. Returns the new head."""
        with self._using():
            self._chain.writable()
            return compaction.expand(self._chain)

    def history(self) -> list[_history.HeadRecord]:
        """The heads this session left by ``rewind``, ``edit``, ``compact``, ``expand``
        or ``restore``, newest first, while their retention lasts (``srt.history``)."""
        return _history.history(self._shared.store, self._chain.id)

    def restore(self, record: _history.HeadRecord | str) -> int | None:
        """Make an earlier head (a ``history()`` record or its key) the head again; the
        head it replaces is recorded in turn. Returns the new head."""
        with self._using():
            chain = self._chain
            chain.writable()
            found = _history.find(self.history(), record, self.name)
            left = _history.head_record(
                chain.id, chain.head, len(chain), "restore", self._shared.history_retention()
            )
            self._shared.store.append(
                chain.id, chain.head, found.head, found.messages, [],
                objects=[left] if left is not None else [],
            )  # fmt: skip
            chain.reload(found.head)
            return chain.head
