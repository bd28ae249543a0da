"""A pure-Python twin of ``srt._core``, for the property tests in ``test_core.py``.

Written from the specification of each function, not by calling ``srt._core``:
the tests check that both give identical bytes, hashes and cache behaviour.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import OrderedDict
from collections.abc import Hashable

import xxhash

DIGEST_SIZE = 16
ROOT = b"\x00" * 16


def digest(data: bytes) -> bytes:
    """XXH3-128 (seed 0) of ``data``, canonical big-endian, 16 bytes."""
    if not isinstance(data, bytes):
        raise TypeError("data must be bytes")
    return xxhash.xxh3_128_digest(data)


def chain(parent: bytes, message_hash: bytes) -> bytes:
    """H(parent || message_hash); both must be 16 bytes."""
    if not isinstance(parent, bytes) or not isinstance(message_hash, bytes):
        raise TypeError("parent and message_hash must be bytes")
    if len(parent) != DIGEST_SIZE:
        raise ValueError(f"parent prefix hash must be 16 bytes, got {len(parent)}")
    if len(message_hash) != DIGEST_SIZE:
        raise ValueError(f"message hash must be 16 bytes, got {len(message_hash)}")
    return xxhash.xxh3_128_digest(parent + message_hash)


def chain_many(parent: bytes, message_hashes: list[bytes]) -> list[bytes]:
    """The running prefix hashes of ``message_hashes`` appended after ``parent``."""
    out: list[bytes] = []
    cur = parent
    for h in message_hashes:
        cur = chain(cur, h)
        out.append(cur)
    return out


class KeyedHasher:
    """Keyed BLAKE2b-128 (hashlib), personalised ``srt-message`` for message digests and
    ``srt-chain`` for prefix links: the twin of ``srt._core.KeyedHasher``."""

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError("key must be bytes")
        if not 16 <= len(key) <= 64:
            raise ValueError("a BLAKE2b key has 16 to 64 bytes")
        self._key = key

    def digest(self, data: bytes) -> bytes:
        if not isinstance(data, bytes):
            raise TypeError("data must be bytes")
        return hashlib.blake2b(data, digest_size=16, key=self._key, person=b"srt-message").digest()

    def chain(self, parent: bytes, message_hash: bytes) -> bytes:
        if not isinstance(parent, bytes) or not isinstance(message_hash, bytes):
            raise TypeError("parent and message_hash must be bytes")
        if len(parent) != DIGEST_SIZE:
            raise ValueError(f"parent prefix hash must be 16 bytes, got {len(parent)}")
        if len(message_hash) != DIGEST_SIZE:
            raise ValueError(f"message hash must be 16 bytes, got {len(message_hash)}")
        link = hashlib.blake2b(digest_size=16, key=self._key, person=b"srt-chain")
        link.update(parent + message_hash)
        return link.digest()

    def chain_many(self, parent: bytes, message_hashes: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        cur = parent
        for h in message_hashes:
            cur = self.chain(cur, h)
            out.append(cur)
        return out


def assembled_length(head: bytes, parts: list[bytes], sep: bytes, tail: bytes) -> int:
    """``len(head + sep.join(parts) + tail)``."""
    return len(assemble(head, parts, sep, tail))


def assemble(head: bytes, parts: list[bytes], sep: bytes, tail: bytes) -> bytes:
    """``head + sep.join(parts) + tail``."""
    return head + sep.join(parts) + tail


def find_in_any(items: list[bytes], needle: bytes) -> int:
    """Index of the first item containing ``needle``, or -1."""
    return next((i for i, item in enumerate(items) if needle in item), -1)


def find_odd_key(items: list[bytes], keys: tuple[bytes, ...]) -> int:
    """Index of the first item with ``,"`` followed by neither a key of ``keys`` and
    ``":`` nor its last byte ``}``, or -1."""
    for i, item in enumerate(items):
        at = item.find(b',"')
        while at >= 0:
            rest = item[at + 2 :]
            if rest != b"}" and not any(rest.startswith(k + b'":') for k in keys):
                return i
            at = item.find(b',"', at + 1)
    return -1


def common_prefix(a: list[bytes], b: list[bytes], limit: int = -1) -> int:
    """How many leading items of ``a`` and ``b`` are equal (at most ``limit``)."""
    n = min(len(a), len(b))
    if 0 <= limit < n:
        n = limit
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class OutputBuffer:
    """What ``srt._core.OutputBuffer`` returns: ``assemble``'s bytes, every time.

    (Where the bytes are written is the core's business; the reference only pins
    down the result.)
    """

    def __init__(self, min_bytes: int = 128 * 1024) -> None:
        self.min_bytes = min_bytes

    def build(self, head: bytes, parts: list[bytes], sep: bytes, tail: bytes) -> bytes:
        return assemble(head, parts, sep, tail)


class FragmentCache:
    """Byte-budgeted LRU map: the reference semantics of ``srt._core.FragmentCache``.

    Each entry is charged ``nbytes`` (``len(value)`` when not given); ``None`` cannot
    be cached, so ``get`` returning ``None`` always means a miss.
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._data: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: Hashable) -> object | None:
        """The value (now most recently used) and a hit, or ``None`` and a miss."""
        if key not in self._data:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return self._data[key][0]

    def put(self, key: Hashable, value: object, nbytes: int = -1) -> None:
        """Replace ``key``; skip a value over the budget; evict LRU entries past it."""
        if value is None:
            raise ValueError("None cannot be cached")
        if nbytes < 0:
            nbytes = len(value)  # type: ignore[arg-type]
        old = self._data.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        if nbytes > self.max_bytes:
            return
        self._data[key] = (value, nbytes)
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            _, (_, dropped) = self._data.popitem(last=False)
            self.nbytes -= dropped
            self.evictions += 1

    def clear(self) -> None:
        """Drop every entry; the hit, miss and eviction counters are kept."""
        self._data.clear()
        self.nbytes = 0


def segments_body(
    head: bytes,
    parts: list[bytes],
    tail: bytes,
    marks: dict[int, bytes] | None = None,
    sep: bytes = b"",
) -> bytes:
    """What the chunks of ``srt._core.Segments(sep=sep).build`` join to: ``head``, the
    parts (each replaced by its mark, if it has one) with ``sep`` between, ``tail``."""
    marks = marks or {}
    return head + sep.join(marks.get(i, p) for i, p in enumerate(parts)) + tail


def decode_messages(bodies: list[bytes]) -> list[object]:
    """What ``srt._core.decode_messages`` returns: each body parsed as JSON."""
    import json

    return [json.loads(b) for b in bodies]


def cut(ids: list[int], rows: list[bytes], ats: list[int], lens: list[int]) -> list[bytes]:
    """The ranges ``[at, at + len)`` of the stream that ``rows`` (starting at ``ids``) hold."""
    stream = {ids[j] + k: b for j, row in enumerate(rows) for k, b in enumerate(row)}
    out = []
    for at, n in zip(ats, lens, strict=True):
        if any(at + k not in stream for k in range(n)):
            raise ValueError("the stored rows do not cover a range")
        out.append(bytes(stream[at + k] for k in range(n)))
    return out


def heap_spans(
    rows: list[tuple[object, ...]], at_col: int, len_col: int, gap: int
) -> list[tuple[int, int]]:
    """The heap ranges holding the bodies at ``(row[at_col], row[len_col])``, merged where
    they overlap or lie ``gap`` bytes or less apart (``ValueError``/``TypeError`` for a
    place that is not two ints in ``[0, 2**60]``)."""
    places = []
    for row in rows:
        at, n = row[at_col], row[len_col]
        if type(at) is not int or type(n) is not int:
            raise TypeError("a body's place must be two ints")
        if not (0 <= at <= 1 << 60 and 0 <= n <= 1 << 60):
            raise ValueError("a body's place is out of range")
        places.append((at, at + n))
    spans: list[list[int]] = []
    for lo, hi in sorted(places):
        if spans and lo <= spans[-1][1] + gap:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    return [(lo, hi) for lo, hi in spans]


def walk_chain(
    rows: list[tuple[object, ...]], head: int
) -> tuple[list[tuple[object, ...]], object]:
    """Parent links from ``head`` through ``rows`` (by id): the rows met, root first, and
    the first ancestor id not among them (``None`` at a root)."""
    by_id = {r[0]: r for r in rows}
    out: list[tuple[object, ...]] = []
    cur: object = head
    last = None
    while cur is not None:
        if cur not in by_id:
            return out[::-1], cur
        row = by_id[cur]
        if last is not None and not row[2] < last:  # type: ignore[operator]
            raise ValueError("a parent link does not lead to a shallower node")
        last = row[2]
        out.append(row)
        cur = row[1]
    return out[::-1], None


def split_chain(
    rows: list[tuple[object, ...]], intern: object, intern_min: int
) -> tuple[list[object], bytes, list[object], dict[int, object], bytearray]:
    """A chain's rows as columns: ids, packed hashes, (interned) bodies, statuses, pinned."""
    ids = [r[0] for r in rows]
    hashes = b"".join(r[1] for r in rows)  # type: ignore[misc]
    bodies = [
        intern(r[1], r[2]) if len(r[2]) >= intern_min else r[2]  # type: ignore[arg-type,operator]
        for r in rows
    ]
    status = {i: r[4] for i, r in enumerate(rows) if r[4] is not None}
    pinned = bytearray(isinstance(r[5], bytes) and _pinned(r[5]) for r in rows)
    return ids, hashes, bodies, status, pinned


def _pinned(meta: bytes) -> bool:
    """Whether node metadata says ``"pinned": true`` at its top level (the bytes
    ``"pinned":true`` alone, not a JSON object, or nested deeper, pin nothing)."""
    try:
        found = json.loads(meta)
    except ValueError:
        return False
    return isinstance(found, dict) and found.get("pinned") is True


def mark_nodes(
    rows: list[tuple[object, ...]], roots: set[int]
) -> tuple[list[tuple[object, ...]], array[int], array[int], array[int]] | None:
    """Rows newest first: the rows no root reaches by parent links, and the distinct
    bodies' starts, largest lengths and counts (``None``: a live row's parent id is
    not smaller than its own)."""
    pending = set(roots)
    dead: list[tuple[object, ...]] = []
    places: list[tuple[int, int]] = []
    for row in rows:
        if not isinstance(row, tuple):
            raise TypeError("a node row must be a tuple")
        if len(row) < 4:
            raise ValueError("a node row has fewer than four items")
        nid, parent, at, n = row[:4]
        if (
            type(nid) is not int
            or type(at) is not int
            or type(n) is not int
            or (parent is not None and type(parent) is not int)
        ):
            raise TypeError("a node row's id, parent and place must be ints")
        if not (0 <= at <= 1 << 60 and 0 <= n <= 1 << 60):
            raise ValueError("a body's place is out of range")
        places.append((at, n))
        if nid in pending:
            pending.discard(nid)
            if parent is not None:
                assert isinstance(parent, int)
                if parent >= nid:
                    return None
                pending.add(parent)
        else:
            dead.append(row)
    largest: dict[int, int] = {}
    counts: dict[int, int] = {}
    for at, n in places:
        largest[at] = max(largest.get(at, n), n)
        counts[at] = counts.get(at, 0) + 1
    starts = sorted(largest)
    return (
        dead,
        array("q", starts),
        array("q", [largest[a] for a in starts]),
        array("q", [counts[a] for a in starts]),
    )
