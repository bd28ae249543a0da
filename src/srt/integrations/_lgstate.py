"""The working half of ``SrtSaver``: a thread's messages as srt chains, and values as records.

``Tree`` writes and reads through the store protocol only (``append``, ``chain`` and
objects); ``srt.integrations._lgcodec`` describes the layout. Per (thread, namespace) it
keeps a ``Scope`` in memory: the nodes seen, each node's LangChain message, an index from
message objects to nodes (LangGraph hands the same message objects back step after step,
so a new checkpoint's list is matched against the last one by identity, and only the
messages after the match are converted and stored), the patches each node was first
stored with, and the last few message lists built.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterator, Sequence
from typing import Any

from langgraph.checkpoint.base import WRITES_IDX_MAP
from langgraph.checkpoint.serde.base import SerializerProtocol

from .. import _core
from ..errors import ConflictError, CorruptionError, InvalidMessageError
from ..message import canonicalize, redact_strings
from ..runtime import Runtime
from ..store.base import NewNode, ObjectPut, ObjectRow
from . import _lcmsg, _patch
from ._lgcodec import (
    MARK,
    ROLES,
    Raw,
    decode_skeleton,
    encode_skeleton,
    key_id,
    pack,
    split,
    squeeze,
    unpack,
    unsqueeze,
)
from ._lgnames import (
    BLOB,
    CKPT,
    KEEP,
    NS,
    THREAD,
    THREADS,
    VERSION,
    Node,
    Scope,
    Stale,
    digest_name,
    tips,
)
from ._lgprep import prepare, settle

__all__ = ["Tree"]

PAGE = 500
_INLINE = 96  # values up to this many serialized bytes live in the record itself
_PATHS = 8  # message lists kept built per scope
_RETRIES = 64
_NO = object()  # "no override" in the object index; "not yet stored" in the patch map


def _redacted(rt: Runtime, value: Any) -> Any:
    return value if rt.redact is None else redact_strings(value, rt.redact)


class Tree:
    """Records, values and message chains of LangGraph threads in one srt store."""

    def __init__(self, rt: Runtime, serde: SerializerProtocol) -> None:
        self.rt, self.store, self.serde = rt, rt.store, serde

    # -- objects --------------------------------------------------------------------

    def rows(self, kind: str, scope: str, *, descending: bool = False) -> Iterator[ObjectRow]:
        after: str | None = None
        while True:
            rows = self.store.list_objects(
                kind, scope, after=after, limit=PAGE, descending=descending
            )
            yield from rows
            if len(rows) < PAGE:
                return
            after = rows[-1].key

    def base(self, sc: Scope, cid: str) -> tuple[str, bytes] | None:
        """A record as its descendants are compressed against it: serialized without its
        parent (which the descendant's header names)."""
        found = sc.bases.get(cid)
        if found is None:
            rec = sc.records.get(cid)
            if rec is None:
                return None
            found = sc.bases[cid] = self.serde.dumps_typed(squeeze({**rec, "p": None}))
        return found

    def _back(self, sc: Scope, cid: str | None, steps: int) -> str | None:
        """The checkpoint ``steps`` parents up from ``cid`` (``None`` if not all known)."""
        for _ in range(steps):
            rec = sc.records.get(cid) if cid is not None else None
            cid = rec["p"] if rec is not None else None
        return cid if cid is not None and cid in sc.records else None

    def _dictionary(self, sc: Scope, parent: str, far: bool) -> tuple[str, bytes] | None:
        """What a child of ``parent`` is compressed against: the parent's record, and with
        ``far`` first the record three steps back from the child (LangGraph's steps come
        in cycles: that one is most like the child)."""
        near = self.base(sc, parent)
        if near is None or not far:
            return near
        back = self._back(sc, parent, 2)
        other = self.base(sc, back) if back is not None else None
        if other is None or other[0] != near[0]:
            return None
        return near[0], other[1] + near[1]

    def encode(self, sc: Scope, cid: str, rec: dict[str, Any]) -> bytes:
        """A record as stored: compressed against earlier records of its thread when they
        are in the scope (the header then names the parent)."""
        parent = rec["p"]
        data = squeeze(rec)
        if parent is not None:
            far = self._back(sc, parent, 2) is not None
            zdict = self._dictionary(sc, parent, far)
            if zdict is not None:
                data[2] = None
                typed = self.serde.dumps_typed(data)
                if typed[0] == zdict[0]:
                    return pack(typed, (parent, far, zdict[1]))
                data[2] = squeeze(rec)[2]
        return pack(self.serde.dumps_typed(data))

    def _needs(self, sc: Scope, value: bytes) -> str | None:
        """A checkpoint that must be read before ``value`` can be (``None``: none)."""
        parent, far, _rest = split(value)
        if parent is None:
            return None
        if parent not in sc.records:
            return parent
        if far:
            for steps in (1, 2):
                up = self._back(sc, parent, steps - 1)
                nxt = sc.records[up]["p"] if up is not None else None
                if nxt is not None and nxt not in sc.records:
                    return str(nxt)
        return None

    def decode(self, sc: Scope, cid: str, value: bytes) -> dict[str, Any]:
        """The record ``encode`` stored (reading first the records it was packed against)."""
        stack = [(cid, value)]
        while stack:
            key, packed = stack[-1]
            need = self._needs(sc, packed)
            if need is not None:
                row = self.store.get_object(CKPT, sc.key, key_id(need))
                if row is None or any(k == need for k, _v in stack):
                    raise CorruptionError(f"checkpoint {need} of thread {sc.thread!r} is missing")
                stack.append((need, row.value))
                continue
            parent, far, _rest = split(packed)
            zdict = self._dictionary(sc, parent, far) if parent is not None else None
            if parent is not None and zdict is None:
                raise CorruptionError(f"checkpoint {parent} of thread {sc.thread!r} is missing")
            rec = unsqueeze(self.serde.loads_typed(unpack(packed, zdict[1] if zdict else None)))
            if parent is not None:
                rec["p"] = parent
            stack.pop()
            if key == cid:
                return rec
            sc.records.setdefault(key, rec)
        raise AssertionError("unreachable")

    def version(self, sc: Scope) -> bytes | None:
        """The scope's version as stored (``None``: none)."""
        row = self.store.get_object(VERSION, sc.key, "v")
        return None if row is None else row.value

    def record(self, sc: Scope, cid: str) -> dict[str, Any] | None:
        """The record of ``cid`` (``None``: none, or one a deletion of the thread under
        way left unreadable when the scope was read, ``sc.gone``: a write then takes
        it for gone, as readers do, rather than failing on it over and over)."""
        rec = sc.records.get(cid)
        if rec is None and cid not in sc.gone:
            row = self.store.get_object(CKPT, sc.key, key_id(cid))
            if row is None:
                return None
            rec = sc.records[cid] = self.decode(sc, cid, row.value)
        return rec

    def scope(self, thread: str, ns: str) -> Scope:
        """A new, unread scope, with the name of its session as the store records it."""
        sc = Scope(thread, ns)
        row = self.store.get_object(NS, thread, "ns:" + ns)
        if row is not None:
            sc.session, sc.named = self.stored_name(sc, row.value), True
        return sc

    def stored_name(self, sc: Scope, value: bytes) -> str:
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise CorruptionError(
                f"the session name recorded for thread {sc.thread!r} is not UTF-8"
            ) from None

    def cursor(self, sc: Scope) -> tuple[int, int | None]:
        """The id and head of the scope's srt session, made (and registered) if new. A new
        scope's name is recorded first (``if_absent``: of savers naming it at once, the
        first name stays); one another session holds already is passed over."""
        if sc.cursor is not None:
            return sc.cursor
        row = self.store.get_session(sc.session)
        if not sc.named:
            if row is not None:  # another's (an older saver's name), or an app's own
                sc.session = digest_name(sc.thread, sc.ns)
            key = "ns:" + sc.ns
            if not self.store.put_object(NS, sc.thread, key, sc.session.encode(), if_absent=True):
                found = self.store.get_object(NS, sc.thread, key)
                if found is not None:
                    sc.session = self.stored_name(sc, found.value)
            # (every time: another saver may have deleted the thread since; after the
            # name, so a deletion that deletes the entry meanwhile finds the name after
            # and writes the entry back, ``_lgdelete``)
            self.store.put_object(THREAD, THREADS, sc.thread, b"")
            sc.named = True
            row = self.store.get_session(sc.session)
        if row is None:
            row = self.store.create_session(sc.session, None, exist_ok=True)
        sc.cursor = (row.id, row.head)
        return sc.cursor

    def put(self, sc: Scope, objects: Sequence[ObjectPut], head: int | None = None) -> None:
        """Write ``objects`` in one transaction, with the scope's version swapped from the
        one last read (``Stale`` if another writer changed it: nothing is written); with
        ``head``, the scope's session moves there in the same transaction."""
        token = os.urandom(16)
        if sc.version is None:
            guard = ObjectPut(VERSION, sc.key, "v", token, if_absent=True)
        else:
            guard = ObjectPut(VERSION, sc.key, "v", token, expect=sc.version)
        for _ in range(_RETRIES):
            sid, current = self.cursor(sc)
            target = current if head is None else head
            try:
                self.store.append(sid, current, target, 0, [], objects=[*objects, guard])
            except ConflictError:
                sc.cursor = None
                if self.version(sc) != sc.version:
                    raise Stale(
                        f"thread {sc.thread!r} was written by another writer meanwhile; "
                        "nothing was written"
                    ) from None
                continue
            sc.cursor = (sid, target)
            sc.version = token
            return
        raise ConflictError(f"could not write thread {sc.thread!r}: its session kept moving")

    # -- nodes ----------------------------------------------------------------------

    def known(self, sc: Scope, node: int) -> Node:
        """The node's place in the tree, read from the store if need be."""
        found = sc.nodes.get(node)
        if found is None:
            parent = None
            for row in self.store.chain(node):
                if row[0] not in sc.nodes:
                    sc.nodes[row[0]] = Node(parent, row[6], row[3], row[2])
                    sc.child[(parent or 0, row[1])] = row[0]
                parent = row[0]
            found = sc.nodes.get(node)
            if found is None:
                raise CorruptionError(f"node {node} of thread {sc.thread!r} is missing")
        return found

    def covers(self, sc: Scope, top: int, below: int) -> bool:
        """Whether the chain ending at ``top`` holds node ``below``."""
        steps = self.known(sc, top).depth - self.known(sc, below).depth
        node: int | None = top
        while steps > 0 and node is not None:
            node = sc.nodes[node].parent
            steps -= 1
        return steps == 0 and node == below

    def cover(self, sc: Scope, tips: Sequence[int]) -> tuple[int | None, list[int]]:
        """A node whose chain holds every tip, if one of them does; and the tips it misses."""
        if not tips:
            return None, []
        top = max(set(tips), key=lambda t: self.known(sc, t).depth)
        return top, sorted({t for t in tips if not self.covers(sc, top, t)})

    def append(self, sc: Scope, parent: int | None, bodies: list[bytes]) -> list[int]:
        """The nodes of ``bodies`` as a chain below ``parent``: those the scope knows are
        found in memory, the rest stored (and the scope's session moves to them)."""
        hashing = self.store.hashing  # the store's (keyed with a hash_key)
        hashes = [hashing.digest(b) for b in bodies]
        ids: list[int] = []
        up = parent
        for h in hashes:
            found = sc.child.get((up or 0, h))
            if found is None:
                break
            ids.append(found)
            up = found
        if len(ids) == len(bodies):
            return ids
        bodies, hashes = bodies[len(ids) :], hashes[len(ids) :]
        depth, prefix = 0, _core.ROOT
        if up is not None:
            p = self.known(sc, up)
            depth, prefix = p.depth, p.prefix
        prefixes = hashing.chain_many(prefix, hashes)
        items = [NewNode(h, b, x) for h, b, x in zip(hashes, bodies, prefixes, strict=True)]
        for _ in range(_RETRIES):
            sid, head = self.cursor(sc)
            try:
                new = self.store.append(sid, head, up, depth, items, parent_prefix=prefix)
            except ConflictError:
                sc.cursor = None
                continue
            sc.cursor = (sid, new[-1] if new else up)
            for i, node in enumerate(new):
                if node not in sc.nodes:
                    sc.nodes[node] = Node(up, depth + i + 1, prefixes[i], bodies[i])
                sc.child[(up or 0, hashes[i])] = node
                up = node
            return ids + new
        raise ConflictError(f"could not write thread {sc.thread!r}: its session kept moving")

    # -- message lists ------------------------------------------------------------------

    def message(self, sc: Scope, node: int, patch: Any = _NO) -> Any:
        """The LangChain message at ``node``: the scope's own, or built with ``patch``."""
        if patch is _NO:
            msg = sc.msgs.get(node)
            if msg is None:
                canonical = json.loads(self.known(sc, node).body)
                msg = _lcmsg.load(_patch.apply(_lcmsg.base(canonical), sc.extras.get(node)))
                sc.msgs[node] = msg
                sc.by_obj[id(msg)] = (node, msg, _NO)
            return msg
        canonical = json.loads(self.known(sc, node).body)
        msg = _lcmsg.load(_patch.apply(_lcmsg.base(canonical), patch))
        sc.by_obj[id(msg)] = (node, msg, patch)
        return msg

    def _remember(self, sc: Scope, head: int, ids: list[int], msgs: list[Any]) -> None:
        sc.paths[head] = (ids, msgs)
        sc.paths.move_to_end(head)
        while len(sc.paths) > _PATHS:
            sc.paths.popitem(last=False)

    def path(self, sc: Scope, head: int) -> tuple[list[int], list[Any]]:
        """The nodes and (the scope's own) messages of the chain ending at ``head``."""
        hit = sc.paths.get(head)
        if hit is not None:
            sc.paths.move_to_end(head)
            return hit
        depth = self.known(sc, head).depth
        for ids, msgs in reversed(sc.paths.values()):
            if len(ids) >= depth and ids[depth - 1] == head:
                out = (ids[:depth], msgs[:depth])
                self._remember(sc, head, *out)
                return out
        chain: list[int] = []
        node: int | None = head
        while node is not None:
            chain.append(node)
            node = self.known(sc, node).parent
        chain.reverse()
        msgs = [self.message(sc, n) for n in chain]
        self._remember(sc, head, chain, msgs)
        return chain, msgs

    def encode_list(self, sc: Scope, value: list[Any]) -> list[Any]:
        """``["L", head, intro, over]`` for a list of LangChain messages."""
        nodes: list[int] = []
        over: dict[int, Any] = {}
        parent: int | None = None
        if sc.last is not None:
            objs, last_nodes, last_over = sc.last
            if len(objs) <= len(value) and all(map(operator.is_, objs, value)):
                nodes = list(last_nodes)
                parent = nodes[-1] if nodes else None
                over = dict(last_over)
        i = len(nodes)
        while i < len(value):
            hit = sc.by_obj.get(id(value[i]))
            if hit is None or hit[1] is not value[i] or self.known(sc, hit[0]).parent != parent:
                break
            parent = hit[0]
            nodes.append(parent)
            if hit[2] is not _NO:
                over[i] = hit[2]
            i += 1
        intro: dict[int, Any] = {}
        rest = value[i:]
        if rest:
            prepared = settle(sc, parent, prepare(self.rt, rest), self.store.hashing.digest)
            ids = self.append(sc, parent, [p[0] for p in prepared])
            for j, (node, m, (_body, patch)) in enumerate(zip(ids, rest, prepared, strict=True)):
                known = sc.extras.get(node, _NO)
                if known is _NO:
                    sc.extras[node] = intro[node] = patch
                    sc.msgs.setdefault(node, m)
                    sc.by_obj[id(m)] = (node, m, _NO)
                elif known == patch:
                    sc.by_obj[id(m)] = (node, m, _NO)
                else:
                    over[i + j] = patch
                    sc.by_obj[id(m)] = (node, m, patch)
            nodes.extend(ids)
        own = list(value)
        for k in over:
            own[k] = self.message(sc, nodes[k])
        self._remember(sc, nodes[-1], nodes, own)
        sc.last = (list(value), nodes, over)
        return ["L", nodes[-1], intro, over]

    def decode_list(self, sc: Scope, enc: list[Any]) -> list[Any]:
        ids, msgs = self.path(sc, enc[1])
        out = list(msgs)
        for i, patch in enc[3].items():
            out[i] = self.message(sc, ids[i], patch)
        return out

    # -- other values ---------------------------------------------------------------------

    def encode_value(
        self, sc: Scope, value: Any, anchor: int | None
    ) -> tuple[list[Any], list[ObjectPut]]:
        """A value's encoding (its last element: the chain tips it names) and the blob
        object it needs written."""
        groups: list[tuple[dict[str, Any], list[Any], bool]] = []

        def refs(parts: list[Any], single: bool) -> dict[str, Any]:
            marker: dict[str, Any] = {MARK: None}
            groups.append((marker, parts, single))
            return marker

        inline, stored = "V", "B"
        try:
            skeleton = encode_skeleton(value, refs)
            tips = [self._group(sc, anchor, *group) for group in groups]
        except (Raw, InvalidMessageError):
            # Kept as it is, without message references ("v", "b": no skeleton to read).
            skeleton, tips, inline, stored = value, [], "v", "b"
        kind, data = self.serde.dumps_typed(skeleton)
        if len(data) <= _INLINE:
            return [inline, kind, data, tips], []
        raw = kind.encode() + b"\x00" + data
        key = _core.digest(raw).hex()
        return [stored, key, tips], [ObjectPut(BLOB, sc.blobs, key, raw)]

    def _group(
        self, sc: Scope, anchor: int | None, marker: dict[str, Any], parts: list[Any], single: bool
    ) -> int:
        prepared: list[tuple[bytes, Any]] = []
        forms: list[Any] = []
        limit = self.rt.max_message_bytes
        for part in parts:
            patch = None  # (a message's: a tuple or dict keeps its form)
            if type(part) is tuple:
                content = _redacted(self.rt, part[1])
                body, _meta = canonicalize({"role": ROLES[part[0]], "content": content}, limit)
                forms.append(["t", part[0]])
            elif type(part) is dict:
                content = _redacted(self.rt, part["content"])
                body, _meta = canonicalize({"role": ROLES[part["role"]], "content": content}, limit)
                forms.append(["d", part["role"], list(part)])
            else:
                ((body, patch),) = prepare(self.rt, [part])
                forms.append(["m", patch])
            prepared.append((body, patch))
        # (a tool result stored before is_error: that node, its patch against it)
        prepared = settle(sc, anchor, prepared, self.store.hashing.digest)
        for form, (_body, patch) in zip(forms, prepared, strict=True):
            if form[0] == "m":
                form[1] = patch
        tip = self.append(sc, anchor, [p[0] for p in prepared])[-1]
        marker[MARK] = [tip, len(parts), single, forms]
        return tip

    def _resolve(self, sc: Scope, ref: list[Any]) -> Any:
        tip, count, single, forms = ref
        ids = self.path(sc, tip)[0][-count:]
        out: list[Any] = []
        for node, form in zip(ids, forms, strict=True):
            canonical = json.loads(self.known(sc, node).body)
            if form[0] == "m":
                out.append(_lcmsg.load(_patch.apply(_lcmsg.base(canonical), form[1])))
            elif form[0] == "t":  # a tuple comes back a list, as the serializer gives it
                out.append([form[1], canonical["content"]])
            else:
                parts = {"role": form[1], "content": canonical["content"]}
                out.append({k: parts[k] for k in form[2]})
        return out[0] if single else out

    def decode_value(self, sc: Scope, enc: list[Any]) -> Any:
        if enc[0] in ("V", "v"):
            typed = (enc[1], enc[2])
        else:
            row = self.store.get_object(BLOB, sc.blobs, enc[1])
            if row is None:
                raise CorruptionError(f"a stored value of thread {sc.thread!r} is missing")
            kind, _, data = row.value.partition(b"\x00")
            typed = (kind.decode(), data)
        value = self.serde.loads_typed(typed)
        if enc[0] in ("v", "b"):
            return value
        return decode_skeleton(value, lambda ref: self._resolve(sc, ref))

    # -- records ------------------------------------------------------------------------

    def write(self, sc: Scope, cid: str, rec: dict[str, Any], extra: list[ObjectPut]) -> None:
        """Store a record (and the blobs it needs) in one transaction; keep the chains it
        names alive under ``srt gc``. Written again in another form, the records packed
        against it (children, grandchildren) are packed anew in the same transaction."""
        # LangGraph goes on changing the dicts it handed over (versions, metadata): keep a
        # copy, in the form a reader gets back (the serializer's: tuples become lists),
        # which is also what the record's children are compressed against.
        rec = unsqueeze(self.serde.loads_typed(self.serde.dumps_typed(squeeze(rec))))
        objects = [*extra, *self.objects(sc, cid, rec)]
        before = sc.bases.pop(cid, None) if cid in sc.records else None
        sc.records[cid] = rec
        written = [rec]
        if before is not None and before != self.base(sc, cid):
            kids = [c for c, r in sc.records.items() if r["p"] == cid]
            far = [c for c, r in sc.records.items() if self._back(sc, c, 3) == cid]
            for dep in dict.fromkeys(kids + far):
                objects += self.objects(sc, dep, sc.records[dep])
                written.append(sc.records[dep])
        # The thread's session follows the message list written last (a dependant's).
        heads = [next((e[1] for e in r["ch"].values() if e[0] == "L"), None) for r in written]
        self.put(sc, objects, next((h for h in reversed(heads) if h is not None), None))

    def objects(self, sc: Scope, cid: str, rec: dict[str, Any]) -> list[ObjectPut]:
        """The objects that store a record (packed as ``encode`` packs it) and keep the
        chains it names alive."""
        top, missed = self.cover(sc, tips(rec))
        key = key_id(cid)
        objects = [ObjectPut(CKPT, sc.key, key, self.encode(sc, cid, rec), node=top)]
        return objects + [ObjectPut(KEEP, sc.key, f"{key}/{t}", b"", node=t) for t in missed]

    def add_writes(
        self,
        sc: Scope,
        rec: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> tuple[dict[str, Any], list[ObjectPut]]:
        """``rec`` with a task's writes (a repeated ``(task_id, index)`` is kept once;
        special channels such as errors replace the earlier write), and the blobs they need."""
        # The checkpoint's messages anchor the messages in the writes.
        anchor = next((e[1] for e in rec["ch"].values() if e[0] == "L"), None)
        replace = all(w[0] in WRITES_IDX_MAP for w in writes)
        where = {(w[0], w[2]): i for i, w in enumerate(rec["w"])}
        entries = list(rec["w"])
        blobs: list[ObjectPut] = []
        for idx, (channel, value) in enumerate(writes):
            k = WRITES_IDX_MAP.get(channel, idx)
            at = where.get((task_id, k))
            if at is not None and not replace:
                continue
            enc, puts = self.encode_value(sc, value, anchor)
            blobs += puts
            entry = [task_id, task_path, k, channel, enc]
            if at is None:
                where[(task_id, k)] = len(entries)
                entries.append(entry)
            else:
                entries[at] = entry
        entries.sort(key=lambda w: (w[1], w[0], w[2]))
        return {**rec, "w": entries}, blobs
