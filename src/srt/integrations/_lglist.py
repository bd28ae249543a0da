"""``SrtSaver.list()`` in progress: checkpoints built a batch at a time from the store's
cursor over one scope, or by checkpoint id across several scopes."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, get_checkpoint_id

from . import _lgread
from ._lgcodec import full_id
from ._lgnames import CKPT, Scope
from ._lgscope import Scopes
from ._lgstate import Tree

BATCH = 32  # checkpoints list() builds at a time


class Listing:
    """A ``list()`` in progress over ``scopes`` (run on the saver's thread, with its lock,
    scopes, record tree and ``tuple(scope, id, record)``). Each checkpoint is built from
    a scope read whole (a row the scope does not hold: read again), ``_lgread``."""

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
        self.store = tree.store
        self.want = get_checkpoint_id(config) if config is not None else None
        self.stop = get_checkpoint_id(before) if before is not None else None
        self.filter = filter or {}
        self.after: str | None = None  # the store's cursor, listing one scope
        self.done = False
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
            sc = self.single
            while len(out) < n and not self.done:
                rows = self.store.list_objects(
                    CKPT, sc.key, after=self.after, limit=BATCH, descending=True
                )
                self.done = len(rows) < BATCH
                for i, row in enumerate(rows):
                    self.after = row.key
                    cid = full_id(row.key)
                    if cid not in sc.records and cid not in sc.gone:  # (written since read)
                        sc = self.single = self.scopes.fresh(sc)
                    rec = sc.records.get(cid)
                    if rec is not None and self._keep(cid, rec):
                        self._add(out, sc, cid)
                    if len(out) == n:
                        self.done = self.done and i == len(rows) - 1
                        break
            return out
