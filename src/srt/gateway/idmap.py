"""The ids a rewritten history's items keep (``Kept``), beside its chain.

An item id names the prefix hash before its message (``gateway.items``). Deleting an
item from the middle of a conversation, or new instructions re-rooting a history, makes
a new chain over the same stored messages, where the items that stay sit under other
prefix hashes. So that an item keeps the id it was first shown with, the rewrite keeps
the shown part of each moved message's ids (16 bytes a message, with the place each
item of a message that lost some showed): ``rewritten`` computes it from the old
history's ids, and the record of the conversation (or response) names it, stored once
as a text. Items made after the rewrite take ids from their own prefix hashes in a new
generation of the scope, so none shows an id a deleted item showed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Kept", "rewritten", "subs_left", "xor"]

_ZERO = bytes(16)


class Ids(Protocol):
    """What ``rewritten`` reads of ``items.Ids`` (which imports this module)."""

    @property
    def key(self) -> bytes: ...
    @property
    def legacy(self) -> bool: ...
    @property
    def kept(self) -> Kept | None: ...
    @property
    def fixed(self) -> bytes | None: ...
    @property
    def subs(self) -> Mapping[str, Sequence[int]] | None: ...
    def at(self, pos: int) -> Ids: ...
    def mask(self, prefix: bytes) -> bytes: ...
    def sub(self, kind: str, sub: int) -> int: ...


def xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


@dataclass(frozen=True)
class Kept:
    """The ids a rewritten history's items were first shown with, kept beside its chain:
    for the messages from item ``start`` (counted after the instructions) on, 16 bytes
    each (the masked part of their ids); the first ``plain`` of them also take the
    unmasked ids of a record made before ids had a scope; ``subs``: for a message that
    lost some of its items, the place each remaining item showed, by kind."""

    start: int
    data: bytes
    plain: int = 0
    subs: Mapping[int, Mapping[str, Sequence[int]]] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.start + len(self.data) // 16

    def shown(self, pos: int) -> bytes:
        k = (pos - self.start) * 16
        return self.data[k : k + 16]

    def find(self, masked: bytes, first: int = 0, last: int | None = None) -> int | None:
        """The item (counted after the instructions) whose kept bytes are ``masked``."""
        stop = len(self.data) if last is None else min(len(self.data), last * 16)
        k = self.data.find(masked, first * 16, stop)
        while k >= 0 and k % 16:
            k = self.data.find(masked, k + 1, stop)
        return None if k < 0 else self.start + k // 16

    def as_json(self) -> list[Any]:
        subs = {str(k): {kind: list(v) for kind, v in m.items()} for k, m in self.subs.items()}
        return [self.start, base64.b64encode(self.data).decode("ascii"), self.plain, subs]

    @classmethod
    def from_json(cls, value: Any) -> Kept:
        """A ``Kept`` as ``as_json`` wrote it; ``ValueError`` if it is not one."""
        try:
            start, data, plain, subs = value
            raw = base64.b64decode(data, validate=True)
            parsed = {
                int(k): {str(kind): [int(x) for x in v] for kind, v in m.items()}
                for k, m in subs.items()
            }
        except (TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise ValueError(f"kept item ids are not [start, data, plain, subs]: {exc}") from None
        if not (isinstance(start, int) and isinstance(plain, int) and start >= 0):
            raise ValueError("kept item ids: start and plain are integers")
        if len(raw) % 16 or not 0 <= plain <= len(raw) // 16:
            raise ValueError("kept item ids: 16 bytes an item")
        return cls(start, raw, plain, parsed)


def rewritten(
    ids: Ids,
    before: Sequence[bytes],
    lead: int,
    moved: Sequence[int],
    changed: int,
    partial: Mapping[str, Sequence[int]] | None = None,
    legacy: bool = True,
) -> Kept | None:
    """What a rewritten history keeps: its item ``p`` (counted after the instructions)
    was item ``moved[p]`` of a history whose items showed ``ids`` (``before[lead + i]``:
    the prefix hash before its item ``i``); those before ``changed`` did not move. From
    ``changed`` (or where ``ids`` already keep some) to the end, each shows what it
    showed; ``partial``: the places the items of message ``changed`` showed, when it
    lost some. ``legacy``: unmasked ids taken before are taken still. One pass: O(n)."""
    start = changed if ids.kept is None else min(changed, ids.kept.start)
    data = bytearray()
    plain, counting = 0, legacy
    subs: dict[int, Mapping[str, Sequence[int]]] = {}
    for p in range(start, len(moved)):
        old = moved[p]
        scope = ids.at(old)
        data += scope.mask(before[lead + old])
        takes_plain = scope.legacy and (scope.fixed is not None or scope.key != _ZERO)
        counting = counting and takes_plain
        plain += counting
        given = partial if p == changed and partial is not None else scope.subs
        if given:
            subs[p] = given
    return Kept(start, bytes(data), plain, subs) if data else None


def subs_left(rendered: Sequence[dict[str, Any]], gone: str, ids: Ids) -> dict[str, list[int]]:
    """The places (by kind) the items of a message other than item ``gone`` showed."""
    seen: dict[str, int] = {}
    out: dict[str, list[int]] = {}
    for item in rendered:
        kind = item.get("type", "message")
        sub = seen[kind] = seen.get(kind, -1) + 1
        if item["id"] != gone:
            out.setdefault(kind, []).append(ids.sub(kind, sub))
    return out
