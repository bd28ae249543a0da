# cython: language_level=3, boundscheck=False, wraparound=False
"""srt's hot core: content hashes, prefix chaining and single-allocation assembly.

No SQL and no I/O live here. Every function has a pure-Python twin in
``tests/reference_core.py``; Hypothesis checks that both give identical bytes.

Digests are 16-byte ``bytes`` (XXH3-128, seed 0, canonical big-endian form), so
they are stable across processes, runs and machines.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

import xxhash

cdef object _xxh3_128 = xxhash.xxh3_128_digest

DIGEST_SIZE = 16
ROOT = b"\x00" * 16


def digest(bytes data not None):
    """XXH3-128 digest of ``data`` as 16 bytes."""
    return _xxh3_128(data)


cdef inline void _check16(bytes b, str what) except *:
    if PyBytes_GET_SIZE(b) != 16:
        raise ValueError(f"{what} must be 16 bytes, got {PyBytes_GET_SIZE(b)}")


def chain(bytes parent not None, bytes message_hash not None):
    """Prefix hash of a node: H(parent prefix hash || message hash).

    The root's parent is ``ROOT`` (16 zero bytes).
    """
    return _chain(parent, message_hash)


cdef bytes _chain(bytes parent, bytes message_hash):
    _check16(parent, "parent prefix hash")
    _check16(message_hash, "message hash")
    cdef bytes buf = PyBytes_FromStringAndSize(NULL, 32)
    cdef char* p = PyBytes_AS_STRING(buf)
    memcpy(p, PyBytes_AS_STRING(parent), 16)
    memcpy(p + 16, PyBytes_AS_STRING(message_hash), 16)
    return _xxh3_128(buf)


def chain_many(bytes parent not None, list message_hashes not None):
    """Prefix hashes of a run of messages appended after ``parent``, in order."""
    cdef list out = []
    cdef bytes cur = parent
    cdef object h
    for h in message_hashes:
        if h is None:
            raise TypeError("message hashes must be bytes, not None")
        cur = _chain(cur, <bytes?>h)
        out.append(cur)
    return out


def assembled_length(
    bytes head not None, list parts not None, bytes sep not None, bytes tail not None
):
    """Length of ``head + sep.join(parts) + tail`` without building it."""
    return _length(head, parts, sep, tail)


cdef Py_ssize_t _length(bytes head, list parts, bytes sep, bytes tail) except -1:
    cdef Py_ssize_t n = len(parts)
    cdef Py_ssize_t total = PyBytes_GET_SIZE(head) + PyBytes_GET_SIZE(tail)
    cdef Py_ssize_t i
    cdef object part
    for i in range(n):
        part = parts[i]
        if part is None:
            raise TypeError("parts must be bytes, not None")
        total += PyBytes_GET_SIZE(<bytes?>part)
    if n > 1:
        total += (n - 1) * PyBytes_GET_SIZE(sep)
    return total


def assemble(
    bytes head not None, list parts not None, bytes sep not None, bytes tail not None
):
    """``head + sep.join(parts) + tail`` in one allocation and one pass of memcpy.

    The total length is computed first; the result is allocated once and each
    fragment is copied straight into place, so no intermediate joins exist.
    """
    cdef Py_ssize_t n = len(parts)
    cdef Py_ssize_t total = _length(head, parts, sep, tail)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* dst = PyBytes_AS_STRING(out)
    cdef Py_ssize_t seplen = PyBytes_GET_SIZE(sep)
    cdef const char* sepp = PyBytes_AS_STRING(sep)
    cdef Py_ssize_t i, m
    cdef bytes part
    m = PyBytes_GET_SIZE(head)
    memcpy(dst, PyBytes_AS_STRING(head), m)
    dst += m
    for i in range(n):
        if i and seplen:
            memcpy(dst, sepp, seplen)
            dst += seplen
        part = <bytes>parts[i]
        m = PyBytes_GET_SIZE(part)
        memcpy(dst, PyBytes_AS_STRING(part), m)
        dst += m
    m = PyBytes_GET_SIZE(tail)
    memcpy(dst, PyBytes_AS_STRING(tail), m)
    return out


cdef class FragmentCache:
    """A byte-budgeted LRU map from a key (message hash, format, ...) to frozen values.

    Values are immutable (``bytes``, or records holding bytes) shared by every
    session that uses them, so a fragment is held once in memory however many
    sessions reference it. Each entry is charged ``nbytes`` (``len(value)`` by
    default). When the budget is exceeded the least recently used entries are
    dropped; a dropped fragment is recomputed deterministically on its next use.
    """

    cdef dict _data
    cdef dict _sizes
    cdef readonly Py_ssize_t max_bytes
    cdef readonly Py_ssize_t nbytes
    cdef readonly Py_ssize_t hits
    cdef readonly Py_ssize_t misses
    cdef readonly Py_ssize_t evictions

    def __cinit__(self, Py_ssize_t max_bytes=256 * 1024 * 1024):
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._data = {}
        self._sizes = {}
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self):
        return len(self._data)

    def __contains__(self, key):
        return key in self._data

    cpdef object get(self, object key):
        """The cached value, refreshed as most recently used, or ``None``."""
        cdef object v = self._data.pop(key, None)
        if v is None:
            self.misses += 1
            return None
        self._data[key] = v
        self.hits += 1
        return v

    cpdef void put(self, object key, object value, Py_ssize_t nbytes=-1) except *:
        """Store ``value`` under ``key`` and evict the oldest entries past the budget."""
        if value is None:
            raise ValueError("None cannot be cached")
        if nbytes < 0:
            nbytes = len(value)
        if self._data.pop(key, None) is not None:
            self.nbytes -= <Py_ssize_t>self._sizes.pop(key)
        if nbytes > self.max_bytes:
            return
        self._data[key] = value
        self._sizes[key] = nbytes
        self.nbytes += nbytes
        cdef object k
        while self.nbytes > self.max_bytes:
            k = next(iter(self._data))
            del self._data[k]
            self.nbytes -= <Py_ssize_t>self._sizes.pop(k)
            self.evictions += 1

    cpdef void clear(self) except *:
        self._data.clear()
        self._sizes.clear()
        self.nbytes = 0
