"""``copy_store(src, dest)``: every session (forks share their nodes in the copy as in the
original), the usage ledger and the objects of one store, into another of any engine.

It works through the Store protocol only, so it copies SQLite to PostgreSQL, back, or
between two stores of one engine:

* **sessions**: each session's chain is read (hash-checked) and appended to a session
  of the same name in ``dest`` in one atomic append. Messages and nodes are content-
  addressed, so a node another session already brought over is reused (after the same
  byte-for-byte check as any append), and the copy's tree is the original's. A
  compaction summary's link names the first and last node of the span it replaced by
  their ids, which are the source's: the span is copied first and the link written with
  its nodes' ids in ``dest`` (a span no longer stored gets a link to no node), so
  ``expand`` brings back the same messages in the copy;
* **objects**: each live object is written with the same kind, scope, key, value and
  expiry; an object that keeps a node alive gets that node's chain first. A session's
  records of earlier heads (``srt.history``) and of the tool calls its tasks started
  (``srt._task``), of kinds filed under a session's id (``store.owners``), are filed
  under the copy's id (a record of no session is left out);
* **the ledger**: each row is written with its node mapped to the copy's node of the
  same prefix hash (``None`` if the node did not survive).

**Verified by hashes**: afterwards every session's head prefix hash in ``dest`` (a
Merkle root over all its messages) must equal the source's, every object's value and
node prefix must match, and ``dest`` must hold each ledger row of the source.

**Resumable**: run it again after an interruption and it goes on. A session already in
``dest`` with the same head prefix is skipped; an empty one (created just before the
interruption) is filled; one with other content stops the copy with
``SessionExistsError`` unless it is a prefix of the source's (then the rest is
appended). Objects are rewritten (idempotent). Ledger rows already in ``dest`` (the
same fields, ``id``/``session``/``node`` aside) are not written twice.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptionError, SessionExistsError
from . import heads
from .base import CallRecord, ChainRow, NewNode, ObjectRow, Store
from .owners import session_of

__all__ = ["CopyReport", "copy_store"]

#: Name prefix of the scratch sessions that carry an object's node into the copy.
SCRATCH = "srt-copy-scratch-"
#: Fields that identify a ledger row across stores (ids and node ids are per store).
_CALL_KEY = tuple(
    f.name for f in dataclasses.fields(CallRecord) if f.name not in ("id", "session", "node")
)


@dataclass
class CopyReport:
    """What ``copy_store`` did (``*_copied``) and found already there (``*_present``)."""

    sessions_copied: int = 0
    sessions_present: int = 0
    messages_sent: int = 0
    objects_copied: int = 0
    calls_copied: int = 0
    calls_present: int = 0
    verified: bool = False


#: A compaction summary's link in its node's metadata (``srt.entries.COMPACTED``).
_COMPACTED = "srt_compacted"
#: The node id a link to a span no longer stored gets: no store gives it.
_NO_NODE = 0


def _meta(meta: bytes | str | None) -> bytes | None:
    return meta.encode("utf-8") if isinstance(meta, str) else meta


def _fingerprint(call: CallRecord) -> tuple[Any, ...]:
    return tuple(getattr(call, f) for f in _CALL_KEY)


class _Copier:
    def __init__(self, src: Store, dest: Store, progress: Callable[[str], None] | None) -> None:
        self.src, self.dest = src, dest
        self.progress = progress or (lambda _text: None)
        self.report = CopyReport()
        self.node_map: dict[bytes, int] = {}  # prefix hash -> dest node id
        self.ids: dict[str, str] | None = None  # source session id -> dest (heads' scope)

    def scope(self, obj: ObjectRow) -> str | None:
        """The scope ``obj`` gets in ``dest``: its own, but for a record of earlier heads
        or of a started tool call, filed under a session's id, with its session's id
        there (``None``: a record of no session, not copied)."""
        sid = session_of(obj.kind, obj.scope)
        if sid is None:
            return obj.scope
        if self.ids is None:
            self.ids = {}
            for info in self.src.list_sessions():
                mine, theirs = self.src.get_session(info.name), self.dest.get_session(info.name)
                if mine is not None and theirs is not None:
                    self.ids[str(mine.id)] = str(theirs.id)
        _sid, colon, rest = obj.scope.partition(":")
        there = self.ids.get(str(sid))
        return None if there is None else there + colon + rest

    def session(self, name: str) -> None:
        src_row = self.src.get_session(name)
        if src_row is None:  # deleted while we copy: nothing to bring over
            return
        rows = self.src.chain(src_row.head)
        row = self.dest.create_session(name, None, exist_ok=True)
        have = self.dest.chain(row.head)
        keep = len(have)
        if have and (keep > len(rows) or have[-1][3] != rows[keep - 1][3]):
            raise SessionExistsError(
                f"session {name!r} exists in the destination with other messages; "
                "copy into an empty store, or delete or rename it there first"
            )
        for r_src, r_dest in zip(rows, have, strict=False):
            self.node_map[r_src[3]] = r_dest[0]
        if keep == len(rows):
            self.report.sessions_present += 1
            return
        items = self._items(rows[keep:])
        above = have[-1][3] if have else None
        ids = self.dest.append(row.id, row.head, row.head, keep, items, parent_prefix=above)
        for it, nid in zip(items, ids, strict=True):
            self.node_map[it.prefix] = nid
        self.report.sessions_copied += 1
        self.report.messages_sent += len(items)

    def _items(self, rows: list[ChainRow]) -> list[NewNode]:
        """``rows`` of ``src`` as nodes to append to ``dest``, each compaction summary's
        link naming its span's nodes in ``dest`` (copied first)."""
        out = []
        for r in rows:
            meta = _meta(r[5])
            if meta is not None and _COMPACTED.encode() in meta:
                meta = self._relinked(meta)
            out.append(NewNode(r[1], r[2], r[3], meta, r[4]))
        return out

    def _relinked(self, meta: bytes) -> bytes:
        """A summary's metadata with its link's ``first`` and ``last`` the ids in ``dest``
        of the span's nodes (as ``srt.entries.span_rows`` finds the span in ``src``)."""
        try:
            data = json.loads(meta)
        except ValueError:
            return meta  # (damaged: copied as it is, for verify to name)
        link = data.get(_COMPACTED) if isinstance(data, dict) else None
        if not isinstance(link, dict) or not all(
            type(link.get(k)) is int for k in ("first", "last", "count")
        ):
            return meta
        first = last = _NO_NODE
        count = link["count"]
        try:
            rows = self.src.chain(link["last"]) if count >= 1 else []
        except CorruptionError:  # the span's nodes were collected: no node, as in src
            rows = []
        if len(rows) >= count >= 1 and rows[-count][0] == link["first"]:
            last = self.node(link["last"], rows)
            first = self.node_map[rows[-count][3]]
        data[_COMPACTED] = {**link, "first": first, "last": last}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def node(self, src_node: int, rows: list[ChainRow] | None = None) -> int:
        """The dest node with the prefix of source node ``src_node`` (its chain copied
        under a scratch session, which is removed again; the object keeps it alive)."""
        rows = self.src.chain(src_node) if rows is None else rows
        found = self.node_map.get(rows[-1][3])
        if found is not None:
            return found
        scratch = self.dest.create_session(SCRATCH + secrets.token_hex(8), None, exist_ok=False)
        try:
            ids = self.dest.append(scratch.id, None, None, 0, self._items(rows))
        finally:
            heads.delete_session(self.dest, scratch.name)
        for r, nid in zip(rows, ids, strict=True):
            self.node_map[r[3]] = nid
        return ids[-1]

    def objects(self) -> list[ObjectRow]:
        copied = []
        for obj in self.src.scan_objects():
            scope = self.scope(obj)
            if scope is None:
                continue
            node = self.node(obj.node) if obj.node is not None else None
            self.dest.put_object(
                obj.kind, scope, obj.key, obj.value, node=node, expires=obj.expires
            )
            copied.append(dataclasses.replace(obj, scope=scope))
            self.report.objects_copied += 1
        return copied

    def ledger(self) -> list[CallRecord]:
        present = Counter(_fingerprint(c) for c in self.dest.calls())
        prefixes: dict[int, bytes | None] = {}
        calls = self.src.calls()
        for call in calls:
            key = _fingerprint(call)
            if present[key] > 0:
                present[key] -= 1
                self.report.calls_present += 1
                continue
            node = None
            if call.node is not None:
                if call.node not in prefixes:
                    prefixes[call.node] = self._prefix(call.node)
                prefix = prefixes[call.node]
                node = self.node_map.get(prefix) if prefix is not None else None
            dest_session = self.dest.get_session(call.session_name) if call.session_name else None
            self.dest.record_call(
                dataclasses.replace(
                    call, id=None, node=node, session=dest_session.id if dest_session else None
                )
            )
            self.report.calls_copied += 1
        return calls

    def _prefix(self, node: int) -> bytes | None:
        try:
            return self.src.node_prefix(node)
        except CorruptionError:
            return None

    def verify(self, names: list[str], objects: list[ObjectRow], calls: list[CallRecord]) -> None:
        want = {i.name: i.head_prefix for i in self.src.list_sessions() if i.name in names}
        got = {i.name: i.head_prefix for i in self.dest.list_sessions()}
        for name, prefix in want.items():
            if got.get(name) != prefix:
                raise CorruptionError(
                    f"copy check failed: session {name!r} has head prefix {got.get(name)} in "
                    f"the destination, {prefix} in the source"
                )
        for obj in objects:  # (each with its scope in dest, its node in src)
            found = self.dest.get_object(obj.kind, obj.scope, obj.key)
            if found is None or found.value != obj.value:
                raise CorruptionError(f"copy check failed: object {obj.kind}/{obj.key} differs")
            if (obj.node is None) != (found.node is None) or (
                obj.node is not None
                and found.node is not None
                and self.src.node_prefix(obj.node) != self.dest.node_prefix(found.node)
            ):
                raise CorruptionError(f"copy check failed: object {obj.kind}/{obj.key}'s node")
        have = Counter(_fingerprint(c) for c in self.dest.calls())
        missing = Counter(_fingerprint(c) for c in calls) - have
        if missing:
            raise CorruptionError(
                f"copy check failed: {sum(missing.values())} ledger rows are not in the destination"
            )
        self.report.verified = True


def copy_store(
    src: Store, dest: Store, *, progress: Callable[[str], None] | None = None
) -> CopyReport:
    """Copy every session, object and ledger row of ``src`` into ``dest``, then check
    the copy by hashes (see the module docstring). ``progress`` gets a line of text per
    step. Raises ``CorruptionError`` if the check fails, ``SessionExistsError`` if
    ``dest`` holds a session of the same name with other messages."""
    copier = _Copier(src, dest, progress)
    names = [info.name for info in src.list_sessions()]
    for info in dest.list_sessions():  # scratch sessions an interrupted copy left behind
        if info.name.startswith(SCRATCH) and info.name not in names:
            heads.delete_session(dest, info.name)
    for i, name in enumerate(names, 1):
        copier.session(name)
        if i % 100 == 0 or i == len(names):
            copier.progress(f"sessions: {i}/{len(names)}")
    objects = copier.objects()
    copier.progress(f"objects: {len(objects)}")
    calls = copier.ledger()
    copier.progress(f"ledger rows: {len(calls)}")
    copier.verify(names, objects, calls)
    return copier.report
