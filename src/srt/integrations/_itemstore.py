"""How ``SrtSession`` keeps an item: its canonical message in the srt session of its
branch, and a patch entry (``entry``: the patch and the digest of the text it was made
for) under ``item_key(branch, place)``; and how it caches a branch's items (``Cache``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import _core
from ..message import dumps
from . import _items, _patch

__all__ = ["USER", "Branch", "Cache", "digest", "entry", "item_key", "split_entry"]

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
    """The items of one head: each canonical message's bytes (the session's own, shared)
    and its patch as JSON (``None``: no patch). ``decode`` parses them in one go, so each
    call hands out new objects."""

    __slots__ = ("bodies", "patches")

    def __init__(self, bodies: list[bytes], patches: list[bytes | None]) -> None:
        self.bodies, self.patches = bodies, patches

    def __len__(self) -> int:
        return len(self.bodies)

    def add(self, body: bytes, patch: bytes | None) -> None:
        self.bodies.append(body)
        self.patches.append(patch)

    def tail(self, n: int | None) -> Cache:
        if n is None or n < 0:
            return self
        return Cache(self.bodies[-n:], self.patches[-n:]) if n else Cache([], [])

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
