"""``SrtSaver.list()`` in progress: checkpoints by id, newest first, built a batch at a
time from one scope (read again between batches if another saver wrote it), or merged
by id across several scopes.

By id, not by the order the store took the records in: two savers writing one thread at
once store their checkpoints out of their ids' order (each takes its id, then the other
may store first), and ``before=`` paging, which goes by id, passed over a checkpoint
that came later in that order (LangGraph's ``PostgresSaver`` orders by id too). One
scope's next batch starts below the last id given, in the scope as it is then, so a
``list()`` read through while others write is a run of ``before=`` pages."""

from __future__ import annotations

import bisect
import builtins
import contextlib
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

from . import _lgread
from ._lgnames import Scope
from ._lgscope import Scopes
from ._lgstate import Tree

BATCH = 32  # checkpoints list() builds at a time


class Listing:
    """A ``list()`` in progress over ``scopes`` (run on the saver's thread, with its lock,
    scopes, record tree and ``tuple(scope, id, record)``). Each checkpoint is built from
    a scope read whole (``_lgread``)."""

    def __init__(
        self,
        scopes: builtins.list[Scope],
        lock: contextlib.AbstractContextManager[Any],
        held: Scopes,
        tree: Tree,
        tuple_: Callable[[Scope, str, dict[str, Any]], CheckpointTuple],
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
    ) -> None:
        self.lock, self.scopes, self.tree, self.tuple = lock, held, tree, tuple_
        self.want = get_checkpoint_id(config) if config is not None else None
        # The id the next checkpoint must be below (``before``, then the last given).
        self.stop = get_checkpoint_id(before) if before is not None else None
        self.filter = filter or {}
        self.single: Scope | None = None
        self.queue: builtins.list[tuple[str, Scope]] = []
        if len(scopes) == 1:
            self.single = scopes[0]
            return
        # Several scopes: by checkpoint id across them.
        for sc in scopes:
            self.queue += [(cid, sc) for cid in sc.records if self._keep(cid, sc.records[cid])]
        self.queue.sort(key=lambda f: f[0])

    def _keep(self, cid: str, rec: dict[str, Any]) -> bool:
        return (
            rec["c"] is not None
            and (self.want is None or cid == self.want)
            and (self.stop is None or cid < self.stop)
            and all(rec["m"].get(k) == v for k, v in self.filter.items())
        )

    def _add(self, out: builtins.list[CheckpointTuple], sc: Scope, cid: str) -> None:
        tup = _lgread.build(self.tree, self.scopes.fresh, sc, cid, self.tuple)
        if tup is not None:  # (else deleted meanwhile)
            out.append(tup)

    def next(self, n: int) -> builtins.list[CheckpointTuple]:
        """The next ``n`` checkpoints (fewer at the end)."""
        out: builtins.list[CheckpointTuple] = []
        with self.lock:
            if self.single is None:
                while self.queue and len(out) < n:
                    cid, sc = self.queue.pop()
                    self._add(out, sc, cid)
                return out
            # The scope as it is now (read again if another saver wrote it since).
            sc = self.single = self.scopes.get(self.single.thread, self.single.ns)
            order = sc.records.ordered()
            at = len(order) if self.stop is None else bisect.bisect_left(order, self.stop)
            while at > 0 and len(out) < n:
                at -= 1
                cid = order[at]
                rec = sc.records.get(cid)
                if rec is not None and self._keep(cid, rec):
                    self._add(out, sc, cid)
                self.stop = cid
            if self.want is not None and out:
                self.stop = ""  # (the one checkpoint asked for: given)
            return out
