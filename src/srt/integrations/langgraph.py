"""LangGraph checkpoints in srt: ``SrtSaver``, a ``BaseCheckpointSaver`` (sync and async).

    from langgraph.graph import StateGraph, MessagesState
    from srt.integrations.langgraph import SrtSaver

    graph = builder.compile(checkpointer=SrtSaver("chats.db"))
    graph.invoke({"messages": [("user", "hi")]}, {"configurable": {"thread_id": "1"}})

LangGraph's own savers store every checkpoint's whole message list again, so a thread of
N turns holds O(N^2) message copies. ``SrtSaver`` keeps a message list as an srt chain:
each message is stored once, as a content-addressed canonical message shared with every
checkpoint (and every srt session) that has the same prefix, and a checkpoint holds only
a reference to the node that ends its list, plus the patches of the messages it added
first (ids and metadata the canonical form leaves out; ``srt.integrations._lcmsg``).
Other channel values are stored once per thread under the hash of their bytes, and
message-like parts inside them (LangGraph's input, the ``messages`` writes) refer to the
same stored messages. ``srt.integrations._lgcodec`` describes the records.

A thread's latest message list is also the srt session ``langgraph/<thread_id>``
(``/<ns>`` for a subgraph; escaped so no two threads share one, ``_lgnames``), so ``srt
show`` reads the conversation, and ``srt gc`` keeps every message a checkpoint still
names. Savers sharing a thread never lose each other's writes: each record write is a
compare-and-swap on the thread's version (``_lgscope``). Versions are integers. Install
with ``pip install 'stateful-runtime[langgraph]'``.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import os
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..errors import ConfigError, ConflictError, InvalidMessageError
from ..runtime import Runtime
from ..store.base import ObjectPut
from . import _append, _lcmsg, _lgcheck, _lgdelete, _lgread
from ._lglist import BATCH, Listing
from ._lgnames import BLOB, CKPT, KEEP, NS, THREAD, THREADS, Scope, Stale, short
from ._lgscope import Scopes
from ._lgstate import Tree

_T = TypeVar("_T")

__all__ = ["SrtSaver"]

_SCOPES = 64  # (thread, namespace) states a saver keeps in memory
_RETRIES = 64  # a deletion picked again after other writers wrote its scope first


def _ids(config: RunnableConfig) -> tuple[str, str, str | None]:
    return _lgcheck.ids(config)


def _all_but_latest(sc: Scope) -> set[str]:
    """Every record of the scope but its newest checkpoint (``prune``'s "keep_latest")."""
    keep = sc.records.latest()
    return {c for c in sc.records if c != keep}


def _config(thread: str, ns: str, cid: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": cid}}


class SrtSaver(BaseCheckpointSaver[Any]):
    """A LangGraph checkpointer on an srt store (see the module docstring).

    ``db`` is a ``Runtime`` (shared; left open by ``close()``) or a path for one this
    saver opens. ``serde`` serializes everything but the messages (LangGraph's
    ``JsonPlusSerializer`` by default).
    """

    def __init__(
        self,
        db: Runtime | str | os.PathLike[str] | None = None,
        *,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._own = not isinstance(db, Runtime)
        self._rt = db if isinstance(db, Runtime) else Runtime(db)
        self._tree = Tree(self._rt, self.serde)
        self._lock = threading.RLock()
        self._scopes = Scopes(self._rt, self._tree, _SCOPES)
        # Every store call runs on one thread of the saver's own: LangGraph calls from
        # short-lived threads, and each new thread would open a new connection.
        self._worker: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _mark(self) -> None:
        self._worker = threading.get_ident()

    def _submit(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        with self._pool_lock:
            if self._pool is None:  # first use, or used again after close()
                self._pool = ThreadPoolExecutor(1, "srt-langgraph", initializer=self._mark)
            return self._pool.submit(fn, *args)

    def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        if threading.get_ident() == self._worker:
            return fn(*args)
        return self._submit(fn, *args).result()

    async def _acall(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.wrap_future(self._submit(fn, *args))

    async def _achange(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await _append.settled(self._acall(fn, *args))  # (cancelled: settled first)

    def __repr__(self) -> str:
        return f"<srt.integrations.langgraph.SrtSaver {self._rt.path!r}>"

    def close(self) -> None:
        """Stop the saver's thread and close the runtime it opened (one passed in stays
        open). A saver used after ``close()`` opens them again, as a runtime does."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._own:
            self._rt.close()

    def get_next_version(self, current: Any, channel: None) -> Any:
        """The next integer version (a thread started with string versions keeps them)."""
        if isinstance(current, str):
            return f"{int(current.split('.')[0]) + 1:032}.{random.random():016}"
        return 1 if current is None else int(current) + 1

    def _scope(self, thread: str, ns: str) -> Scope:
        return self._scopes.get(thread, ns)

    # -- writing ----------------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint; only the messages new since its parent are converted."""
        return self._call(self._put, config, checkpoint, metadata, new_versions)

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread, ns, _parent = _ids(config)
        _lgcheck.checkpoint(checkpoint, metadata)
        cid = checkpoint["id"]
        with self._lock:
            return self._scopes.guarded(
                thread,
                ns,
                cid,
                lambda sc: self._put_in(sc, config, checkpoint, metadata, new_versions),
            )

    def _put_in(
        self,
        sc: Scope,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread, ns, parent_id = _ids(config)
        cid = checkpoint["id"]
        tree = self._tree
        parent = tree.record(sc, parent_id) if parent_id else None
        before = (parent or {}).get("c") or {}
        versions = checkpoint["channel_versions"]
        values = checkpoint["channel_values"]
        ch: dict[str, list[Any]] = {}
        blobs: list[ObjectPut] = []

        def unchanged(name: str) -> list[Any] | None:
            if parent is None or name in new_versions:
                return None
            old = parent["ch"].get(name)
            same = before.get("channel_versions", {}).get(name) == versions.get(name)
            if old is None or not same:
                return None
            return ["L", old[1], {}, old[3]] if old[0] == "L" else old

        # Message lists first: their heads anchor the messages inside other values.
        lists = [
            n
            for n, v in values.items()
            if type(v) is list and v and _lcmsg.is_message(v[0]) and _lcmsg.is_message(v[-1])
        ]
        for name in sorted(lists, key=lambda n: (n != "messages", n)):
            enc = unchanged(name)
            if enc is None:
                try:
                    enc = tree.encode_list(sc, values[name])
                except InvalidMessageError:
                    continue  # kept as an ordinary value below
            ch[name] = enc
        anchor = next((e[1] for e in ch.values()), None)
        for name, value in values.items():
            if name in ch:
                continue
            enc = unchanged(name)
            if enc is None:
                enc, puts = tree.encode_value(sc, value, anchor)
                blobs += puts
            ch[name] = enc
        old = tree.record(sc, cid)
        # Put again: the patches this checkpoint first stored its nodes with stay in it
        # (the scope knows them now, so the new list's own intro leaves them out).
        for name, enc in ch.items():
            was = old["ch"].get(name) if old is not None else None
            if enc[0] == "L" and was is not None and was[0] == "L" and was[2]:
                held = set(tree.path(sc, enc[1])[0])
                enc[2] = {**{n: p for n, p in was[2].items() if n in held}, **enc[2]}
        rec: dict[str, Any] = {
            "c": {k: v for k, v in checkpoint.items() if k not in ("id", "channel_values")},
            # (with the config's configurable strings, an API key among them maybe)
            "m": _append.redacted(self._rt, get_serializable_checkpoint_metadata(config, metadata)),
            "p": parent_id,
            "ch": ch,
            "w": old["w"] if old is not None else [],
        }
        for writes, task_id, task_path in sc.pending.pop(cid, ()):
            rec, puts = self._tree.add_writes(sc, rec, writes, task_id, task_path)
            blobs += puts
        self._tree.write(sc, cid, rec, blobs)
        return _config(thread, ns, cid)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes with its checkpoint (a repeated ``(task_id, index)`` is
        kept once; special channels such as errors replace the earlier write)."""
        self._call(self._put_writes, config, writes, task_id, task_path)

    def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        thread, ns, cid = _ids(config)
        if cid is None:
            raise ConfigError("put_writes needs a config with a checkpoint_id")
        pairs = _lgcheck.writes(writes, task_id, task_path)

        def write(sc: Scope) -> None:
            rec = self._tree.record(sc, cid)
            if rec is None:
                # LangGraph can hand over a task's writes before the checkpoint they
                # belong to: they are stored with it, which is when they can be used.
                sc.pending.setdefault(cid, []).append((pairs, task_id, task_path))
                return
            rec, blobs = self._tree.add_writes(sc, rec, pairs, task_id, task_path)
            self._tree.write(sc, cid, rec, blobs)

        with self._lock:
            self._scopes.guarded(thread, ns, cid, write)

    # -- reading ----------------------------------------------------------------------------

    def _tuple(self, sc: Scope, cid: str, rec: dict[str, Any]) -> CheckpointTuple:
        tree = self._tree
        values = {
            name: tree.decode_list(sc, enc) if enc[0] == "L" else tree.decode_value(sc, enc)
            for name, enc in rec["ch"].items()
        }
        # Copies: LangGraph may change what it is given, and the record is kept.
        checkpoint: Any = {**copy.deepcopy(rec["c"]), "id": cid, "channel_values": values}
        writes = [(w[0], w[3], tree.decode_value(sc, w[4])) for w in rec["w"]]
        parent = _config(sc.thread, sc.ns, rec["p"]) if rec["p"] else None
        meta = copy.deepcopy(rec["m"])
        return CheckpointTuple(_config(sc.thread, sc.ns, cid), checkpoint, meta, parent, writes)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest."""
        return self._call(self._get_tuple, config)

    def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread, ns, cid = _ids(config)

        def read(sc: Scope, attempt: int) -> CheckpointTuple | None:
            found = _lgread.find(self._tree, sc, cid, attempt)
            return None if found is None else self._tuple(sc, *found)

        with self._lock:  # (a consistent view while other savers write: ``_lgread``)
            return _lgread.reading(self._tree, self._scopes, thread, ns, cid, read)

    def _threads(self, config: RunnableConfig | None) -> list[tuple[str, list[str]]]:
        """(thread, namespaces) to list: the config's, or every thread's."""
        tree = self._tree
        if config is None:
            threads = [row.key for row in tree.rows(THREAD, THREADS)]
        else:
            thread, ns, _cid = _ids(config)
            threads = [thread]
        out = []
        for thread in threads:
            if config is not None and "checkpoint_ns" in config["configurable"]:
                out.append((thread, [ns]))
            else:
                out.append((thread, self._namespaces(thread)))
        return out

    def _listing(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
    ) -> Listing:
        scopes = [
            self._scope(t, ns) for t, namespaces in self._threads(config) for ns in namespaces
        ]
        return Listing(
            scopes, self._lock, self._scopes, self._tree, self._tuple, config, filter, before
        )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first: of ``config``'s thread (and namespace), or of all;
        ``filter`` matches metadata, ``before`` pages by checkpoint id. Built a few at a
        time as they are asked for, so each step of a long history costs the same."""
        _lgcheck.limit(limit)
        _lgcheck.before(before)
        _lgcheck.metadata_filter(filter)
        listing = self._call(self._listing, config, filter, before)
        left = limit
        while left is None or left > 0:
            batch = self._call(listing.next, BATCH if left is None else min(BATCH, left))
            if not batch:
                return
            yield from batch
            if left is not None:
                left -= len(batch)

    # -- deleting and copying -------------------------------------------------------------------

    def _namespaces(self, thread: str) -> builtins.list[str]:
        return [row.key[3:] for row in self._tree.rows(NS, thread)]

    def _drop_where(self, thread: str, ns: str, doomed: Callable[[Scope], set[str]]) -> None:
        """``_lgdelete.drop`` the records ``doomed`` picks from the scope; read again and picked
        again if another writer wrote the scope meanwhile."""
        for _ in range(_RETRIES):
            sc = self._scope(thread, ns)
            cids = doomed(sc)
            if not cids:
                return
            try:
                _lgdelete.drop(self._tree, self._scopes, sc, cids)
            except Stale:
                self._scopes.drop(thread, ns)
                continue
            return
        raise ConflictError(f"could not delete from thread {thread!r}: its writers kept writing")

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread (its messages go at ``srt gc``
        unless another session or thread shares them)."""
        self._call(self._delete_thread, _lgcheck.thread(thread_id))

    def _delete_thread(self, thread: str) -> None:
        with self._lock:
            _lgdelete.delete_thread(self._rt, self._tree, self._scopes, thread)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and writes) whose metadata names one of ``run_ids``."""
        self._call(self._delete_for_runs, _lgcheck.runs(run_ids))

    def _delete_for_runs(self, run_ids: builtins.list[str]) -> None:
        runs = set(run_ids)
        with self._lock:
            for thread, namespaces in self._threads(None):
                for ns in namespaces:
                    self._drop_where(
                        thread,
                        ns,
                        lambda sc: {
                            c for c, r in sc.records.items() if r["m"].get("run_id") in runs
                        },
                    )
                _lgdelete.sweep(self._tree, self._scopes, thread)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another (no message is copied:
        both name the same stored messages)."""
        src, dst = _lgcheck.thread(source_thread_id), _lgcheck.thread(target_thread_id)
        self._call(self._copy_thread, src, dst)

    def _copy_thread(self, src: str, dst: str) -> None:
        tree = self._tree
        store = self._rt.store
        with self._lock:
            blobs = [
                ObjectPut(BLOB, short(dst), r.key, r.value) for r in tree.rows(BLOB, short(src))
            ]
            for ns in self._namespaces(src):
                source, target = self._scope(src, ns), tree.scope(dst, ns)
                _sid, head = tree.cursor(source)
                tree.cursor(target)
                target.version = tree.version(target)
                puts = [
                    ObjectPut(kind, target.key, r.key, r.value, node=r.node)
                    for kind in (CKPT, KEEP)
                    for r in tree.rows(kind, source.key)
                ]
                tree.put(target, blobs + puts)
                blobs = []
                row = store.get_session(target.session)
                if row is not None and head is not None:
                    store.move_head(row.id, row.head, head)
                self._scopes.drop(dst, ns)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep only each namespace's newest checkpoint; ``"delete"``:
        delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise ConfigError(f"unknown prune strategy {strategy!r}")
        self._call(self._prune, _lgcheck.threads(thread_ids), strategy)

    def _prune(self, thread_ids: builtins.list[str], strategy: str) -> None:
        with self._lock:
            for thread in thread_ids:
                if strategy == "delete":
                    self._delete_thread(thread)
                    continue
                for ns in self._namespaces(thread):
                    self._drop_where(thread, ns, _all_but_latest)
                _lgdelete.sweep(self._tree, self._scopes, thread)

    # -- asyncio: the same work on the saver's thread ------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._acall(self._get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        _lgcheck.limit(limit)
        _lgcheck.before(before)
        _lgcheck.metadata_filter(filter)
        listing = await self._acall(self._listing, config, filter, before)
        left = limit
        while left is None or left > 0:
            batch = await self._acall(listing.next, BATCH if left is None else min(BATCH, left))
            if not batch:
                return
            for item in batch:
                yield item
            if left is not None:
                left -= len(batch)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._achange(self._put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._achange(self._put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._achange(self._delete_thread, _lgcheck.thread(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._achange(self._delete_for_runs, _lgcheck.runs(run_ids))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        src, dst = _lgcheck.thread(source_thread_id), _lgcheck.thread(target_thread_id)
        await self._achange(self._copy_thread, src, dst)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        if strategy not in ("keep_latest", "delete"):
            raise ConfigError(f"unknown prune strategy {strategy!r}")
        await self._achange(self._prune, _lgcheck.threads(thread_ids), strategy)
