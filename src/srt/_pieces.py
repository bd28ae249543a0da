"""A request's glued pieces per (format, model, partial, window cut): ``Assembly``, with
running byte, block and token figures, and the small views the builder reads it through
(``View``, ``Offset``, ``Roles``, ``Planned``). ``Builder`` (``_builder``) keeps one
``Assembly`` per key and extends it with the messages new since its last build.
"""

from __future__ import annotations

import bisect
import json
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, repeat
from typing import TypeAlias

from ._core import OutputBuffer, Segments, assemble, assembled_length
from .cache import (
    Breakpoint,
    CacheExplain,
)
from .errors import UnsupportedFeatureError
from .wire.base import Frag, Target, TextFrags, WireFormat

__all__ = ["Assembly", "Offset", "Planned", "Roles", "View", "target_of"]

#: Bodies at least this large are built by an ``OutputBuffer`` that keeps the last one
#: (to grow it in place); an assembly makes its buffer on its first such body, so one
#: that only ever builds small bodies keeps none.
OUT_MIN_BYTES = 128 * 1024
#: The system pieces of an assembly that has none: shared, never changed (``extend``
#: gives an assembly its own list for its first system piece; ``truncate`` of an empty
#: list changes nothing).
_NO_SYSTEM: list[bytes] = []
#: The wire roles an assembly starts with (by code): shared until it sees another one.
_START_ROLES: tuple[str | None, ...] = (None, "")

#: A column of running figures: a ``range`` while it steps evenly (2 pieces and 1 block a
#: message, the identity formats' plain messages: 48 bytes however long), else an array.
Column: TypeAlias = "array[int] | range"


def _push(col: Column, value: int) -> Column:
    """``col`` with ``value`` appended (a range stays one while ``value`` continues it)."""
    if type(col) is range:
        if value == col.stop:
            return range(col.start, col.stop + col.step, col.step)
        col = array("i", list(col))
    col.append(value)
    return col


def _extended(col: Column, values: range) -> Column:
    """``col`` with ``values`` (a range ending at its stop) appended."""
    if type(col) is range and values.start == col.stop and values.step == col.step:
        return range(col.start, values.stop, col.step)
    if type(col) is range:
        col = array("i", list(col))
    col.extend(values)
    return col


def _wide(values: list[int]) -> array[int]:
    """Running byte counts: 4 bytes each while they fit in 32 bits, else 8."""
    try:
        return array("i", values)
    except OverflowError:
        return array("q", values)


def _add_wide(col: array[int], value: int) -> array[int]:
    """``col`` with ``value`` appended, widened to 8 bytes an item if it does not fit."""
    try:
        col.append(value)
    except OverflowError:
        col = array("q", col)
        col.append(value)
    return col


def _cut(col: Column, k: int) -> Column:
    """``col`` without its items from ``k`` on."""
    if type(col) is range:
        return col[:k]
    del col[k:]
    return col


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
        # Interned: a cache explain keeps the role it names, one str for every session.
        return sys.intern(str(json.loads(self._bodies[i])["role"]))


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
    sent: str | None = None  # the key the request sends (``CacheRules.key_param``), if any


_TARGETS: dict[tuple[str, str], Target] = {}


def target_of(provider: str, model: str) -> Target:
    """``Target(provider, model)``, one object per pair (a build makes one every time)."""
    t = _TARGETS.get((provider, model))
    if t is None:
        if len(_TARGETS) >= 256:
            _TARGETS.clear()
        t = _TARGETS[(provider, model)] = Target(provider, model)
    return t


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
        "sep",
        "serialized",
        "system",
    )

    def __init__(self, sep: bytes = b"") -> None:
        # The message pieces, joined by ``sep``: the fragments alone where the format's
        # glue is always one separator (``WireFormat.sep``), else glue and fragment in
        # turn, ``sep`` empty (a session keeps this list, so the glue is not kept where
        # the separator says it).
        self.sep = sep
        self.pieces: list[bytes] = []
        self.system: list[bytes] = _NO_SYSTEM
        self._ends: Column = array("i")  # len(pieces) after message i
        # len(system) after message i; None while ``system`` is empty (all 0: most
        # formats' assemblies never have a system piece)
        self._sys: array[int] | None = None
        # the wire roles seen, by code (a list once a role beyond the first two is seen)
        self._role_names: Sequence[str | None] = _START_ROLES
        self._roles = bytearray()  # code of the last wire role after message i
        self._notes: dict[int, str] | None = None  # message index -> what its rendering
        # left out (made for the first such message)
        # bytes of system + message fragments up to message i (4 bytes each, 8 past 2 GiB)
        self.nbytes = array("i")
        self.blocks: Column = array("i")  # content blocks up to message i
        self.ntokens = array("i")  # estimated tokens up to message i (per fragment)
        self.serialized = 0
        # The last large body built from these pieces, grown in place by the next build
        # once the caller has dropped it (see _core.OutputBuffer). One per assembly, so
        # a session that builds for two formats in turn keeps both warm; made by the
        # first body of ``OUT_MIN_BYTES`` or more (``build``).
        self.out: OutputBuffer | None = None
        # The same pieces as frozen chunks, for send (created by the first such build).
        self.segments: Segments | None = None

    @property
    def n(self) -> int:
        return len(self._ends)

    def copy(self) -> Assembly:
        """The same pieces and figures for another handle of the session (lists and
        columns copied, the fragments shared); no body writer: its first build writes one."""
        new = Assembly(self.sep)
        new.pieces = self.pieces[:]
        new.system = self.system if self.system is _NO_SYSTEM else self.system[:]
        new._ends, new.nbytes, new.blocks = self._ends[:], self.nbytes[:], self.blocks[:]
        new.ntokens, new._roles = self.ntokens[:], self._roles[:]
        new._sys = self._sys[:] if self._sys is not None else None
        names = self._role_names
        new._role_names = names[:] if isinstance(names, list) else names
        new._notes = dict(self._notes) if self._notes is not None else None
        return new

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
            self._role_names = [*self._role_names, role]
            return len(self._role_names) - 1

    def _sys_after(self, i: int) -> int:
        """len(system) after message ``i``."""
        return self._sys[i] if self._sys is not None else 0

    def _sys_append(self, k: int) -> None:
        """Record len(system) after the message whose ``_ends`` item was just appended."""
        if self._sys is None:
            if not k:
                return
            self._sys = array("i", bytes(4 * (len(self._ends) - 1)))  # the zeros so far
        self._sys.append(k)

    def build(self, head: bytes, pieces: list[bytes], tail: bytes) -> bytes:
        """``head + sep.join(pieces) + tail``, through the assembly's ``OutputBuffer``
        once a body has reached ``OUT_MIN_BYTES``."""
        out, sep = self.out, self.sep
        if out is None:
            if assembled_length(head, pieces, sep, tail) < OUT_MIN_BYTES:
                return assemble(head, pieces, sep, tail)
            out = self.out = OutputBuffer(OUT_MIN_BYTES)
        return out.build(head, pieces, sep, tail)

    def last_role(self) -> str | None:
        return self._role_names[self._roles[-1]] if self._roles else None

    def notes(self) -> tuple[str, ...]:
        notes = self._notes
        return tuple(notes[i] for i in sorted(notes)) if notes else ()

    def pieces_after(self, i: int) -> list[bytes]:
        """A copy of the pieces that follow message ``i`` (each after ``sep``)."""
        return self.pieces[self._ends[i] :]

    def skip(self) -> None:
        """A message that is not sent (a partial reply): no pieces, same totals."""
        self._ends = _push(self._ends, len(self.pieces))
        self._sys_append(len(self.system))
        self._roles.append(self._roles[-1] if self._roles else 0)
        self.nbytes = _add_wide(self.nbytes, self.nbytes[-1] if self.nbytes else 0)
        self.blocks = _push(self.blocks, self.blocks[-1] if self.blocks else 0)
        self.ntokens.append(self.ntokens[-1] if self.ntokens else 0)

    def truncate(self, k: int) -> None:
        """Drop messages from ``k`` on, in place: the work is what is dropped (the body
        writers are told, so they keep what stays)."""
        keep = self._ends[k - 1] if k else 0
        del self.pieces[keep:]
        if self.out is not None:
            self.out.truncate(keep)
        if self.segments is not None:
            self.segments.truncate(keep)
        del self.system[self._sys_after(k - 1) if k else 0 :]
        if self._notes:
            for i in [i for i in self._notes if i >= k]:
                del self._notes[i]
        if self._sys is not None:
            del self._sys[k:]
        self._ends, self.blocks = _cut(self._ends, k), _cut(self.blocks, k)
        del self._roles[k:], self.nbytes[k:], self.ntokens[k:]

    def extend_identity(self, fmt: WireFormat, target: Target, bodies: list[bytes]) -> None:
        """Fast path for formats whose fragment is normally the canonical body itself."""
        nsys = len(self.system)
        plain = fmt.plain
        ntokens = self.ntokens
        total = self.nbytes[-1] if self.nbytes else 0
        nblocks = self.blocks[-1] if self.blocks else 0
        ntok = ntokens[-1] if ntokens else 0
        blank = 1  # the code of the role "" (identity formats have no wire roles)
        m = len(bodies)
        if m > 8 and fmt.plain_all(bodies):
            # A whole chain at once (a cold load): the same records as the loop below,
            # built list by list instead of message by message.
            self._extend_plain(fmt, bodies, nsys, total, nblocks, ntok)
            return
        pieces, roles = self.pieces, self._roles
        for body in bodies:
            if not plain(body):
                self.extend(fmt, [fmt.render(body, target)])
                total, nblocks, ntok = self.nbytes[-1], self.blocks[-1], ntokens[-1]
                continue
            if not self.sep:
                pieces.append(fmt.glue(self.last_role(), ""))
            pieces.append(body)
            # ``_push``, ``_sys_append`` and ``_add_wide``, their usual case inlined (a
            # turn's build comes here with a message or two, after a long pause).
            k, ends, blocks = len(pieces), self._ends, self.blocks
            if type(ends) is range and k == ends.stop:
                self._ends = range(ends.start, k + ends.step, ends.step)
            else:
                self._ends = _push(ends, k)
            if nsys or self._sys is not None:
                self._sys_append(nsys)
            roles.append(blank)
            total += len(body)
            nblocks += 1
            ntok += (len(body) + 3) // 4
            if total < 2**31 or self.nbytes.typecode == "q":
                self.nbytes.append(total)
            else:
                self.nbytes = _add_wide(self.nbytes, total)
            if type(blocks) is range and nblocks == blocks.stop:
                self.blocks = range(blocks.start, nblocks + blocks.step, blocks.step)
            else:
                self.blocks = _push(blocks, nblocks)
            ntokens.append(ntok)

    def _extend_plain(
        self, fmt: WireFormat, bodies: list[bytes], nsys: int, total: int, nblocks: int, ntok: int
    ) -> None:
        """``extend_identity`` of plain messages only. An assembly's first build makes
        each column at its final size (a session keeps them for as long as it is
        loaded; grown one item at a time they would carry their growth's slack)."""
        k0 = len(self.pieces)
        m = len(bodies)
        if self.sep:
            new, step = bodies[:], 1
        else:
            new, step = [fmt.glue("", "")] * (2 * m), 2
            new[0] = fmt.glue(self.last_role(), "")
            new[1::2] = bodies
        lens = list(map(len, bodies))
        cum_bytes = list(islice(accumulate(lens, initial=total), 1, None))
        cum_tokens = list(islice(accumulate([(n + 3) // 4 for n in lens], initial=ntok), 1, None))
        ends = range(k0 + step, k0 + step * m + step, step)
        cum_blocks = range(nblocks + 1, nblocks + m + 1)
        if nsys or self._sys is not None:
            self._sys = self._sys if self._sys is not None else array("i", bytes(4 * self.n))
            self._sys.extend(repeat(nsys, m))
        if not self._ends:
            self.pieces = new  # a new list: no body writer has seen this assembly's yet
            self._ends = ends
            self._roles = bytearray(bytes((1,)) * m)  # the code of the role ""
            self.nbytes = _wide(cum_bytes)
            self.blocks = cum_blocks
            self.ntokens = array("i", cum_tokens)
            return
        self.pieces.extend(new)
        self._ends = _extended(self._ends, ends)
        self._roles.extend(repeat(1, m))
        if self.nbytes.typecode == "i" and cum_bytes[-1] >= 2**31:  # running sums: the
            self.nbytes = array("q", self.nbytes)  # last is the largest
        self.nbytes.extend(cum_bytes)
        self.blocks = _extended(self.blocks, cum_blocks)
        self.ntokens.extend(cum_tokens)

    def extend_texts(
        self, fmt: WireFormat, texts: TextFrags, codes: bytes, datas: list[bytes]
    ) -> None:
        """``extend`` of plain text messages' fragments (``_core.text_frags``: role codes
        and non-empty fragment bytes; one block each, no note): the same records, made
        list by list. A system message that does not lead the conversation goes to
        ``extend``, which refuses it."""
        m, n0 = len(codes), self.n
        last = self.last_role()
        body = codes.lstrip(texts.system_codes)
        lead = m - len(body)
        if (lead and last is not None) or any(c in body for c in texts.system_codes):
            kinds, wire = texts.kinds, texts.roles
            frags = [Frag(kinds[c], wire[c], d) for c, d in zip(codes, datas, strict=True)]
            self.extend(fmt, frags)
            return
        k0, s0, mm = len(self.pieces), len(self.system), m - lead
        if lead:
            if self.system is _NO_SYSTEM:
                self.system = []
            self.system.extend(datas[:lead])
        # Wire role codes, taken in the order the roles first appear (as ``extend`` does).
        table = bytearray(256)
        for c in sorted(set(body), key=body.index):
            table[c] = self._code(texts.roles[c])
        codes_after = bytes([self._code(last)]) * lead + body.translate(table)
        if mm:
            new: list[bytes]
            if self.sep:
                new = datas[lead:]  # the fragments alone: ``sep`` is all the glue
            else:
                # The glue between neighbours by their codes (which give their wire
                # roles): the pair ``(a, b)`` as ``4 * a + b``, for all neighbours in one
                # big-int sum.
                wire, present = texts.roles, set(body)
                pair: list[bytes] = [b""] * 16
                for x in present:
                    for y in present:
                        pair[4 * x + y] = fmt.glue(wire[x], wire[y])
                pairs = int.from_bytes(body[:-1], "big") * 4 + int.from_bytes(body[1:], "big")
                new = [b""] * (2 * mm)
                new[0] = fmt.glue(last, wire[body[0]])
                new[2::2] = map(pair.__getitem__, pairs.to_bytes(mm - 1, "big"))
                new[1::2] = datas[lead:]
            if not n0 and not self.pieces:
                self.pieces = new  # a new list at its final size (see ``_extend_plain``)
            else:
                self.pieces.extend(new)
        step = 1 if self.sep else 2
        ends = range(k0 + step, k0 + step * mm + step, step)
        lens = list(map(len, datas))
        total = self.nbytes[-1] if self.nbytes else 0
        ntok = self.ntokens[-1] if self.ntokens else 0
        nblocks = self.blocks[-1] if self.blocks else 0
        cum_bytes = list(islice(accumulate(lens, initial=total), 1, None))
        cum_tokens = array(
            "i", islice(accumulate([(n + 3) // 4 for n in lens], initial=ntok), 1, None)
        )
        sys_after = (
            array("i", [*range(s0 + 1, s0 + lead + 1), *repeat(s0 + lead, mm)])
            if lead or self._sys is not None
            else None
        )
        if not n0:  # a new assembly: its columns made at their final size
            self._ends = array("i", [*repeat(k0, lead), *ends]) if lead else ends
            self._sys = sys_after
            self.blocks = range(1, m + 1)
            self._roles = bytearray(codes_after)
            self.nbytes = _wide(cum_bytes)
            self.ntokens = cum_tokens
            return
        if sys_after is not None:
            self._sys = self._sys if self._sys is not None else array("i", bytes(4 * n0))
            self._sys.extend(sys_after)
        for _ in range(lead):
            self._ends = _push(self._ends, k0)
        if mm:
            self._ends = _extended(self._ends, ends)
        self.blocks = _extended(self.blocks, range(nblocks + 1, nblocks + m + 1))
        self._roles.extend(codes_after)
        if self.nbytes.typecode == "i" and cum_bytes[-1] >= 2**31:  # running sums: the
            self.nbytes = array("q", self.nbytes)  # last is the largest
        self.nbytes.extend(array(self.nbytes.typecode, cum_bytes))
        self.ntokens.extend(cum_tokens)

    def extend(self, fmt: WireFormat, frags: list[Frag]) -> None:
        last = self.last_role()
        pieces, system = self.pieces, self.system
        for f in frags:
            if not f.data:
                pass  # nothing to send for this message (e.g. an empty reply)
            elif f.kind == "system" and last is None:
                if system is _NO_SYSTEM:
                    system = self.system = []
                system.append(f.data)
            elif f.kind == "system":
                raise UnsupportedFeatureError(
                    fmt.name, "a system or developer message after the conversation has started"
                )
            else:
                if not self.sep:
                    pieces.append(fmt.glue(last, f.role))
                pieces.append(f.data)
                last = f.role
            if f.note:
                if self._notes is None:
                    self._notes = {}
                self._notes[len(self._ends)] = f.note
            self._ends = _push(self._ends, len(pieces))
            self._sys_append(len(system))
            self._roles.append(self._code(last))
            total = (self.nbytes[-1] if self.nbytes else 0) + len(f.data)
            self.nbytes = _add_wide(self.nbytes, total)
            self.blocks = _push(self.blocks, (self.blocks[-1] if self.blocks else 0) + f.blocks)
            prev = self.ntokens[-1] if self.ntokens else 0
            self.ntokens.append(prev + (len(f.data) + 3) // 4)
