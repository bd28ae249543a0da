"""How ``SrtSession`` keeps an item: its canonical message in the srt session of its
branch, and a patch entry (``entry``: the patch and the digest of the text it was made
for) under ``item_key(branch, place)``; how a handle caches a branch's items (``Cache``),
and how the handles of one runtime share them (``shelf``); what ``add_items`` makes of
an item before writing it (``prepare``)."""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import _core
from ..errors import InvalidMessageError
from ..message import canonicalize, dumps
from ..runtime import Runtime
from . import _append, _items, _patch

__all__ = [
    "USER",
    "Branch",
    "Cache",
    "Shelf",
    "Snapshot",
    "branch_of",
    "digest",
    "entry",
    "item_key",
    "prepare",
    "shelf",
    "split_entry",
    "visible",
]

_BRANCH = "agents.branch"  # (the kind of SrtSession's branch records)

#: In a canonical message the only unescaped ``"role":`` is its own (no part or call
#: holds a role, and quotes inside strings are escaped).
USER = b'"role":"user"'


@dataclass(frozen=True)
class Branch:
    name: str
    session: str  # the srt session holding its items
    parent: str | None  # the branch it was forked from
    at: int  # items shared with the parent (0 for main)
    created: float

    def encode(self) -> bytes:
        return dumps(
            {"session": self.session, "parent": self.parent, "at": self.at, "created": self.created}
        )

    @classmethod
    def decode(cls, name: str, value: bytes) -> Branch:
        data = json.loads(value)
        return cls(name, data["session"], data["parent"], int(data["at"]), float(data["created"]))


def prepare(rt: Runtime, items: Sequence[Any]) -> list[tuple[Any, str, Any, bytes, bytes | None]]:
    """What ``add_items`` stores of each item, in ``rt``: (canonical message, its text's
    digest, patch, canonical bytes, patch as JSON); ``InvalidMessageError`` for an item
    it cannot store. Nothing is written (the importer checks a whole file with it)."""
    out = []
    for given in items:
        item = _append.redacted(rt, given)
        body, _meta = canonicalize(_items.canonical(item), rt.max_message_bytes)
        stored = json.loads(body)
        patch = _patch.diff(_items.rebuild(stored), item)
        try:  # what the canonical message left out is in the patch
            text = None if patch is None else dumps(patch)
        except (TypeError, ValueError) as exc:
            raise InvalidMessageError(f"a session item is not JSON: {exc}") from None
        out.append((stored, digest(body), patch, body, text))
    return out


def branch_of(store: Any, session: str) -> tuple[str, str] | None:
    """(owner, branch) if srt session ``session`` is a branch of another agents session
    (``"a@b"``: branch ``b`` of ``"a"``, or ``b@c`` of ``"a@"``...), else ``None``."""
    at = session.find("@")
    while at >= 0:
        owner, name = session[:at], session[at + 1 :]
        row = store.get_object(_BRANCH, owner, name) if owner and name else None
        if row is not None and Branch.decode(name, row.value).session == session:
            return owner, name
        at = session.find("@", at + 1)
    return None


def visible(
    patches: dict[str, bytes], branches: dict[str, Branch], branch: str
) -> dict[int, bytes]:
    """Item position -> patch entry as ``branch`` sees them among ``patches`` (keyed by
    ``item_key``): its own, then each ancestor's below where the line of forks left it."""
    per: dict[str, dict[int, bytes]] = {}
    for key, value in patches.items():
        at, _, name = key.partition("@")
        per.setdefault(name, {})[int(at)] = value
    out: dict[int, bytes] = {}
    info = branches.get(branch)
    below: int | None = None  # the positions an ancestor still shares
    while info is not None:
        for pos, value in per.get(info.name, {}).items():
            if (below is None or pos < below) and pos not in out:
                out[pos] = value
        below = info.at if below is None else min(below, info.at)
        info = branches.get(info.parent) if info.parent is not None else None
    return out


def item_key(branch: str, pos: int) -> str:
    return f"{pos}@{branch}"


def digest(body: bytes) -> str:
    return _core.digest(body).hex()[:16]


def entry(digest: str, patch: Any) -> bytes:
    """A stored patch entry: the patch and the digest of the text it was made for."""
    return dumps({"h": digest, "p": patch})


def split_entry(entry: bytes) -> tuple[str, bytes]:
    """An entry's digest and its patch as JSON, read without parsing the patch."""
    if entry.startswith(b'{"h":"') and entry.endswith(b"}"):
        end = entry.find(b'","p":', 6)
        if end >= 0:
            return entry[6:end].decode(), entry[end + 6 : -1]
    parsed = json.loads(entry)
    return str(parsed["h"]), dumps(parsed["p"])


def _json_list(parts: Sequence[bytes]) -> list[Any]:
    out: list[Any] = json.loads(b"[" + b",".join(parts) + b"]")
    return out


class Cache:
    """The items of one head: each canonical message's bytes, its patch as JSON
    (``None``: no patch), its node and prefix hash. ``decode`` parses them in one go, so
    each call hands out new objects."""

    __slots__ = ("bodies", "ids", "patches", "prefixes")

    def __init__(
        self,
        bodies: list[bytes],
        patches: list[bytes | None],
        ids: list[int],
        prefixes: list[bytes],
    ) -> None:
        self.bodies, self.patches, self.ids, self.prefixes = bodies, patches, ids, prefixes

    def __len__(self) -> int:
        return len(self.bodies)

    @property
    def prefix(self) -> bytes:
        """The prefix hash of the head (the root's for no items)."""
        return self.prefixes[-1] if self.prefixes else _core.ROOT

    def add(self, body: bytes, patch: bytes | None, node: int, prefix: bytes) -> None:
        self.bodies.append(body)
        self.patches.append(patch)
        self.ids.append(node)
        self.prefixes.append(prefix)

    def pop(self) -> None:
        for column in (self.bodies, self.patches, self.ids, self.prefixes):
            column.pop()

    def copy(self) -> Cache:
        return Cache(list(self.bodies), list(self.patches), list(self.ids), list(self.prefixes))

    def tail(self, n: int | None) -> Cache:
        """The last ``n`` items (all with ``None``) for decoding."""
        if n is None or n < 0:
            return self
        return Cache(self.bodies[-n:], self.patches[-n:], [], []) if n else Cache([], [], [], [])

    def messages(self) -> list[Any]:
        return _json_list(self.bodies)

    def decode(self) -> list[Any]:
        out = [_items.rebuild(m) for m in self.messages()]
        where = [i for i, p in enumerate(self.patches) if p is not None]
        if where:
            patches = _json_list([p for p in self.patches if p is not None])
            for i, patch in zip(where, patches, strict=True):
                out[i] = _patch.apply(out[i], patch)
        return out


@dataclass
class Snapshot:
    """A branch's items as one handle had them for the session row's ``key`` (head,
    updated): its cache, the user messages' places, and the session's patch entries."""

    key: tuple[int | None, float]
    items: Cache
    users: list[int]
    entries: dict[str, bytes]

    def copy(self) -> Snapshot:
        return Snapshot(self.key, self.items.copy(), list(self.users), dict(self.entries))


class Shelf:
    """The newest snapshot of each branch that a runtime's ``SrtSession`` handles have
    read or written, shared by them: a handle opened per request on a long-lived runtime
    starts from it instead of reading the whole branch again. Snapshots go in and come
    out as copies (a handle changes its own in place); the least recently used go first
    when there are more than ``size`` or their message bytes pass ``max_bytes``."""

    def __init__(self, size: int = 128, max_bytes: int = 64 << 20) -> None:
        self.size, self.max_bytes = size, max_bytes
        self.lock = threading.Lock()
        self.snapshots: OrderedDict[str, tuple[Snapshot, int]] = OrderedDict()
        self.held = 0  # message bytes of the snapshots kept

    def put(self, name: str, snapshot: Snapshot) -> None:
        kept = snapshot.copy()
        weight = sum(map(len, kept.items.bodies))
        with self.lock:
            old = self.snapshots.pop(name, None)
            if old is not None:
                self.held -= old[1]
            self.snapshots[name] = (kept, weight)
            self.held += weight
            while self.snapshots and (
                len(self.snapshots) > self.size or self.held > self.max_bytes
            ):
                _name, (_snap, gone) = self.snapshots.popitem(last=False)
                self.held -= gone

    def discard(self, name: str) -> None:
        with self.lock:
            old = self.snapshots.pop(name, None)
            if old is not None:
                self.held -= old[1]

    def get(self, name: str, key: tuple[int | None, float]) -> Snapshot | None:
        with self.lock:
            found = self.snapshots.get(name)
            if found is None or found[0].key != key:
                return None
            self.snapshots.move_to_end(name)
        return found[0].copy()


_SHELVES: weakref.WeakKeyDictionary[Any, Shelf] = weakref.WeakKeyDictionary()
_SHELVES_LOCK = threading.Lock()


def shelf(rt: Any) -> Shelf:
    """The shelf of runtime ``rt`` (it goes when the runtime does)."""
    with _SHELVES_LOCK:
        found = _SHELVES.get(rt)
        if found is None:
            found = _SHELVES[rt] = Shelf()
        return found
