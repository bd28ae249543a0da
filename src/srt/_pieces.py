"""A request's glued pieces per (format, model, partial, window cut): ``Assembly``, with
running byte, block and token figures, and the small views the builder reads it through
(``View``, ``Offset``, ``Roles``, ``Planned``). ``Builder`` (``_builder``) keeps one
``Assembly`` per key and extends it with the messages new since its last build.
"""

from __future__ import annotations

import bisect
import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, repeat

from ._core import OutputBuffer, Segments
from .cache import (
    Breakpoint,
    CacheExplain,
)
from .errors import UnsupportedFeatureError
from .wire.base import Frag, Target, WireFormat

__all__ = ["Assembly", "Offset", "Planned", "Roles", "View"]


class View:
    """The messages a context window keeps: ``cut`` identifies it, ``kept`` lists them."""

    __slots__ = ("cut", "kept")

    def __init__(self, cut: tuple[str, int, int], kept: list[int]) -> None:
        self.cut, self.kept = cut, kept

    def lists(
        self, hashes: Sequence[bytes], bodies: list[bytes], status: dict[int, str]
    ) -> tuple[list[bytes], list[bytes], dict[int, str]]:
        k = self.kept
        kept_status = {j: status[i] for j, i in enumerate(k) if i in status} if status else {}
        return [hashes[i] for i in k], [bodies[i] for i in k], kept_status


class Offset:
    """``base[i] + offset`` without copying ``base``."""

    __slots__ = ("_base", "_offset")

    def __init__(self, base: Sequence[int], offset: int) -> None:
        self._base, self._offset = base, offset

    def __len__(self) -> int:
        return len(self._base)

    def __getitem__(self, i: int) -> int:
        return self._base[i] + self._offset


class Roles:
    """The canonical role of message ``i``, parsed only when asked for."""

    __slots__ = ("_bodies",)

    def __init__(self, bodies: list[bytes]) -> None:
        self._bodies = bodies

    def __len__(self) -> int:
        return len(self._bodies)

    def __getitem__(self, i: int) -> str:
        return str(json.loads(self._bodies[i])["role"])


@dataclass
class Planned:
    asm: Assembly
    tool_frags: list[bytes]
    tool_hashes: tuple[bytes, ...]
    breakpoints: list[Breakpoint]
    report: CacheExplain
    key: str | None
    # Of the messages this request sends (a window may leave some out): the session's
    # own list, which only grows (see cache.Record), or a window's new list.
    hashes: Sequence[bytes]
    kept: list[int] | None = None  # the messages a window kept, when it left some out


class Assembly:
    """One session's fragments glued for one (format, model), extendable and truncatable.

    A session keeps one per format it builds for, for as long as it is loaded, so the
    per-message figures are packed: ``array`` columns of 4 bytes (8 for byte counts),
    roles as one byte each (an index into ``_role_names``), notes in a dict of the few
    messages that have one. About 25 bytes a message, and the pieces list's slots.
    """

    __slots__ = (
        "_ends",
        "_notes",
        "_role_names",
        "_roles",
        "_sys",
        "blocks",
        "nbytes",
        "ntokens",
        "out",
        "pieces",
        "segments",
        "serialized",
        "system",
    )

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.system: list[bytes] = []
        self._ends = array("i")  # len(pieces) after message i
        self._sys = array("i")  # len(system) after message i
        self._role_names: list[str | None] = [None, ""]  # the wire roles seen, by code
        self._roles = bytearray()  # code of the last wire role after message i
        self._notes: dict[int, str] = {}  # message index -> what its rendering left out
        self.nbytes = array("q")  # bytes of system + message fragments up to message i
        self.blocks = array("i")  # content blocks up to message i
        self.ntokens = array("i")  # estimated tokens up to message i (per fragment)
        self.serialized = 0
        # The last large body built from these pieces, grown in place by the next build
        # once the caller has dropped it (see _core.OutputBuffer). One per assembly, so
        # a session that builds for two formats in turn keeps both warm.
        self.out = OutputBuffer()
        # The same pieces as frozen chunks, for send (created by the first such build).
        self.segments: Segments | None = None

    @property
    def n(self) -> int:
        return len(self._ends)

    @property
    def system_count(self) -> int:
        """Messages rendered into the system area (they are all leading, so the count is
        the number of messages before the first one that added a message piece)."""
        if not self.system:
            return 0
        return bisect.bisect_left(self._ends, 1)

    def message_piece(self, i: int) -> int:
        """Index in ``pieces`` of message ``i``'s fragment."""
        return self._ends[i] - 1

    def _code(self, role: str | None) -> int:
        try:
            return self._role_names.index(role)
        except ValueError:
            self._role_names.append(role)
            return len(self._role_names) - 1

    def last_role(self) -> str | None:
        return self._role_names[self._roles[-1]] if self._roles else None

    def notes(self) -> tuple[str, ...]:
        return tuple(self._notes[i] for i in sorted(self._notes))

    def pieces_after(self, i: int) -> list[bytes]:
        """A copy of the pieces that follow message ``i``."""
        return self.pieces[self._ends[i] :]

    def skip(self) -> None:
        """A message that is not sent (a partial reply): no pieces, same totals."""
        self._ends.append(len(self.pieces))
        self._sys.append(len(self.system))
        self._roles.append(self._roles[-1] if self._roles else 0)
        self.nbytes.append(self.nbytes[-1] if self.nbytes else 0)
        self.blocks.append(self.blocks[-1] if self.blocks else 0)
        self.ntokens.append(self.ntokens[-1] if self.ntokens else 0)

    def truncate(self, k: int) -> None:
        """Drop messages from ``k`` on, in place: the work is what is dropped (the body
        writers are told, so they keep what stays)."""
        keep = self._ends[k - 1] if k else 0
        del self.pieces[keep:]
        self.out.truncate(keep)
        if self.segments is not None:
            self.segments.truncate(keep)
        del self.system[self._sys[k - 1] if k else 0 :]
        for i in [i for i in self._notes if i >= k]:
            del self._notes[i]
        del self._ends[k:], self._sys[k:], self._roles[k:]
        del self.nbytes[k:], self.blocks[k:], self.ntokens[k:]

    def extend_identity(self, fmt: WireFormat, target: Target, bodies: list[bytes]) -> None:
        """Fast path for formats whose fragment is normally the canonical body itself."""
        pieces, ends, sys, roles, nbytes, blocks, ntokens = (
            self.pieces,
            self._ends,
            self._sys,
            self._roles,
            self.nbytes,
            self.blocks,
            self.ntokens,
        )
        nsys = len(self.system)
        plain = fmt.plain
        total = nbytes[-1] if nbytes else 0
        nblocks = blocks[-1] if blocks else 0
        ntok = ntokens[-1] if ntokens else 0
        blank = 1  # the code of the role "" (identity formats have no wire roles)
        m = len(bodies)
        if m > 8 and fmt.plain_all(bodies):
            # A whole chain at once (a cold load): the same records as the loop below,
            # built list by list instead of message by message.
            k0 = len(pieces)
            new = [fmt.glue("", "")] * (2 * m)
            new[0] = fmt.glue(self.last_role(), "")
            new[1::2] = bodies
            pieces.extend(new)
            ends.extend(range(k0 + 2, k0 + 2 * m + 1, 2))
            sys.extend(repeat(nsys, m))
            roles.extend(repeat(blank, m))
            lens = list(map(len, bodies))
            nbytes.extend(islice(accumulate(lens, initial=total), 1, None))
            blocks.extend(range(nblocks + 1, nblocks + m + 1))
            toks = [(n + 3) // 4 for n in lens]
            ntokens.extend(islice(accumulate(toks, initial=ntok), 1, None))
            return
        for body in bodies:
            if not plain(body):
                self.extend(fmt, [fmt.render(body, target)])
                total, nblocks, ntok = nbytes[-1], blocks[-1], ntokens[-1]
                continue
            pieces.append(fmt.glue(self.last_role(), ""))
            pieces.append(body)
            ends.append(len(pieces))
            sys.append(nsys)
            roles.append(blank)
            total += len(body)
            nblocks += 1
            ntok += (len(body) + 3) // 4
            nbytes.append(total)
            blocks.append(nblocks)
            ntokens.append(ntok)

    def extend(self, fmt: WireFormat, frags: list[Frag]) -> None:
        last = self.last_role()
        pieces, system = self.pieces, self.system
        for f in frags:
            if not f.data:
                pass  # nothing to send for this message (e.g. an empty reply)
            elif f.kind == "system" and last is None:
                system.append(f.data)
            elif f.kind == "system":
                raise UnsupportedFeatureError(
                    fmt.name, "a system or developer message after the conversation has started"
                )
            else:
                pieces.append(fmt.glue(last, f.role))
                pieces.append(f.data)
                last = f.role
            if f.note:
                self._notes[len(self._ends)] = f.note
            self._ends.append(len(pieces))
            self._sys.append(len(system))
            self._roles.append(self._code(last))
            self.nbytes.append((self.nbytes[-1] if self.nbytes else 0) + len(f.data))
            self.blocks.append((self.blocks[-1] if self.blocks else 0) + f.blocks)
            prev = self.ntokens[-1] if self.ntokens else 0
            self.ntokens.append(prev + (len(f.data) + 3) // 4)
