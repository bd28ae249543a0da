"""A pure-Python twin of ``srt._core``, for the property tests in ``test_core.py``.

Written from the specification of each function, not by calling ``srt._core``:
the tests check that both give identical bytes, hashes and cache behaviour.
"""

from __future__ import annotations

import hashlib
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
