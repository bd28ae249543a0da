# cython: language_level=3, boundscheck=False, wraparound=False
"""srt's hot core: content hashes, prefix chaining and single-allocation assembly.

No SQL and no I/O live here. Every function has a pure-Python twin in
``tests/reference_core.py``; Hypothesis checks that both give identical bytes.

Digests are 16-byte ``bytes`` (XXH3-128, seed 0, canonical big-endian form), so
they are stable across processes, runs and machines.
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
    _PyBytes_Resize,
)
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.ref cimport PyObject, Py_XDECREF, Py_XINCREF
from libc.string cimport memcmp, memcpy

cdef extern from *:
    """
    /* A bytes object may be grown in place only while the GIL makes its reference
       count exact and nobody else can see it. Free-threaded builds are excluded. */
    #ifdef Py_GIL_DISABLED
    #define SRT_IN_PLACE 0
    #else
    #define SRT_IN_PLACE 1
    #endif
    static Py_ssize_t srt_refcnt(PyObject *o) { return Py_REFCNT(o); }

    /* memmem where the C library has it (glibc, musl, macOS, the BSDs); elsewhere
       memchr for the first byte, then memcmp. */
    #if defined(__GLIBC__) || defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || (defined(__linux__) && !defined(__GLIBC__))
    #define srt_memmem memmem
    #else
    static void *srt_memmem(const void *h, size_t hn, const void *n, size_t nn) {
        const char *p = (const char *)h, *end = p + hn;
        if (nn == 0) return (void *)h;
        while (hn >= nn && (p = (const char *)memchr(p, *(const char *)n, (size_t)(end - p) - nn + 1))) {
            if (memcmp(p, n, nn) == 0) return (void *)p;
            p++;
            if ((size_t)(end - p) < nn) break;
        }
        return NULL;
    }
    #endif
    """
    int SRT_IN_PLACE
    Py_ssize_t srt_refcnt(PyObject* o)
    void* srt_memmem(const void* haystack, size_t hn, const void* needle, size_t nn)

import collections.abc as _abc
import hashlib

import xxhash

cdef object _xxh3_128 = xxhash.xxh3_128_digest
cdef object _blake2b = hashlib.blake2b

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


#: BLAKE2b personalisation of message digests and of prefix-chain links, so that no
#: message body can stand for a link or the other way round.
PERSON_MESSAGE = b"srt-message"
PERSON_CHAIN = b"srt-chain"


cdef class KeyedHasher:
    """Keyed BLAKE2b-128 (RFC 7693) digests and prefix chains, for stores that hold
    content from several trust domains or whose hashes others may see.

    The same three operations as the module functions (which are XXH3-128, srt's
    default, and untouched by this class): ``digest(data)``, ``chain(parent, h)``,
    ``chain_many(parent, hashes)``. Messages and links are personalised apart
    (``PERSON_MESSAGE``, ``PERSON_CHAIN``). Each call copies a state keyed once, so
    the key block is not hashed again per message. The key is never shown.
    """

    cdef object _message
    cdef object _link

    def __cinit__(self, bytes key not None):
        if not 16 <= PyBytes_GET_SIZE(key) <= 64:
            raise ValueError("a BLAKE2b key has 16 to 64 bytes")
        self._message = _blake2b(digest_size=16, key=key, person=PERSON_MESSAGE)
        self._link = _blake2b(digest_size=16, key=key, person=PERSON_CHAIN)

    def __repr__(self):
        return "<srt._core.KeyedHasher blake2b-128 key=***>"

    def __reduce__(self):
        raise TypeError("a KeyedHasher holds a secret key and cannot be pickled")

    def digest(self, bytes data not None):
        """Keyed BLAKE2b-128 of ``data`` as 16 bytes."""
        h = self._message.copy()
        h.update(data)
        return h.digest()

    cdef bytes _chain(self, bytes parent, bytes message_hash):
        _check16(parent, "parent prefix hash")
        _check16(message_hash, "message hash")
        h = self._link.copy()
        h.update(parent)
        h.update(message_hash)
        return h.digest()

    def chain(self, bytes parent not None, bytes message_hash not None):
        """Prefix hash of a node: keyed H(parent prefix hash || message hash)."""
        return self._chain(parent, message_hash)

    def chain_many(self, bytes parent not None, list message_hashes not None):
        """Prefix hashes of a run of messages appended after ``parent``, in order."""
        cdef list out = []
        cdef bytes cur = parent
        cdef object h
        for h in message_hashes:
            if h is None:
                raise TypeError("message hashes must be bytes, not None")
            cur = self._chain(cur, <bytes?>h)
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


cdef inline bint _same(object a, object b):
    if a is b:
        return True
    cdef Py_ssize_t n = PyBytes_GET_SIZE(<bytes>a)
    return n == PyBytes_GET_SIZE(<bytes>b) and memcmp(
        PyBytes_AS_STRING(<bytes>a), PyBytes_AS_STRING(<bytes>b), n
    ) == 0


def find_in_any(list items not None, bytes needle not None):
    """Index of the first of ``items`` (bytes) that contains ``needle``, or -1.

    One C pass over every item (``memmem``); a cold load asks this of a whole chain
    to learn whether any message needs more than its canonical bytes."""
    cdef Py_ssize_t i
    cdef object item
    cdef Py_ssize_t nn = PyBytes_GET_SIZE(needle)
    for i in range(len(items)):
        item = items[i]
        if item is None:
            raise TypeError("items must be bytes, not None")
        if srt_memmem(
            PyBytes_AS_STRING(<bytes?>item), <size_t>PyBytes_GET_SIZE(<bytes>item),
            PyBytes_AS_STRING(needle), <size_t>nn,
        ) != NULL:
            return i
    return -1


def common_prefix(list a not None, list b not None, Py_ssize_t limit=-1):
    """How many leading items ``a`` and ``b`` share (the same object or equal bytes),
    looking at no more than ``limit`` items (all when negative). No item is copied and
    no list is sliced, so comparing two long hash lists costs pointer compares only."""
    cdef Py_ssize_t n = min(len(a), len(b))
    cdef Py_ssize_t i = 0
    if 0 <= limit < n:
        n = limit
    while i < n:
        x = a[i]
        y = b[i]
        if x is not y and not (
            type(x) is bytes and type(y) is bytes and _same(x, y)
        ):
            break
        i += 1
    return i


cdef class OutputBuffer:
    """``assemble`` that reuses the memory of the body it built last time.

    A session builds nearly the same body turn after turn: the same head, the same
    fragments, a few new ones, a new tail. When the previous body is at least
    ``min_bytes`` and nobody but this buffer still holds it (the caller has sent and
    dropped it), ``build`` grows that bytes object in place and rewrites only what
    follows the part that is unchanged, byte for byte; fresh memory is never touched
    and the unchanged prefix is not copied again. When the caller still holds the
    previous body, it is left exactly as it was and a new one is allocated, as
    ``assemble`` does. The result always equals ``assemble(head, parts, sep, tail)``.

    Holding the last body costs its size in memory, so bodies under ``min_bytes``
    (cheap to copy) are not kept.

    ``parts`` is remembered by reference, not copied: the caller must never change
    the first ``len(parts)`` items of a list it passed (appending is fine; to drop
    items, build a new list). srt's assemblies keep their piece lists that way.
    """

    cdef PyObject* _out
    cdef bytes _head
    cdef bytes _sep
    cdef list _parts
    cdef Py_ssize_t _nparts
    cdef Py_ssize_t _prefix_end  # bytes of head and parts in the previous body
    cdef readonly Py_ssize_t min_bytes
    cdef readonly Py_ssize_t reused
    cdef readonly Py_ssize_t copied

    def __cinit__(self, Py_ssize_t min_bytes=128 * 1024):
        self._out = NULL
        self.min_bytes = min_bytes
        self.reused = 0
        self.copied = 0

    def __dealloc__(self):
        Py_XDECREF(self._out)
        self._out = NULL

    @property
    def holding(self):
        """Bytes of the previous body this buffer keeps (0 when none)."""
        return PyBytes_GET_SIZE(<bytes>self._out) if self._out != NULL else 0

    def clear(self):
        """Drop the previous body."""
        Py_XDECREF(self._out)
        self._out = NULL
        self._head = self._sep = None
        self._parts = None

    def build(
        self, bytes head not None, list parts not None, bytes sep not None, bytes tail not None
    ):
        """``head + sep.join(parts) + tail``, in the previous body's memory if it is free."""
        cdef Py_ssize_t n = len(parts)
        cdef Py_ssize_t seplen = PyBytes_GET_SIZE(sep)
        cdef Py_ssize_t total, off = 0, k = 0, m, limit, i
        cdef list prev = self._parts
        cdef object part
        cdef char* dst
        cdef bytes out
        cdef bint same_list = (
            self._out != NULL
            and prev is parts
            and n >= self._nparts
            and _same(head, self._head)
            and _same(sep, self._sep)
        )
        if same_list:
            # The same list, only appended to since the last build: its first _nparts
            # items are already in place, so only the new ones are looked at.
            k = self._nparts
            off = self._prefix_end
            total = off + PyBytes_GET_SIZE(tail)
            for i in range(k, n):
                part = parts[i]
                if part is None:
                    raise TypeError("parts must be bytes, not None")
                total += PyBytes_GET_SIZE(<bytes?>part) + (seplen if i else 0)
        else:
            total = _length(head, parts, sep, tail)
        if (
            SRT_IN_PLACE
            and self._out != NULL
            and srt_refcnt(self._out) == 1
            and total >= self.min_bytes
            # Equal sizes would keep a stale cached hash (_PyBytes_Resize returns early).
            and total != PyBytes_GET_SIZE(<bytes>self._out)
        ):
            if (
                not same_list
                and prev is not None
                and _same(head, self._head)
                and _same(sep, self._sep)
            ):
                # The unchanged prefix: the same head, then the same parts, in order.
                off = PyBytes_GET_SIZE(head)
                limit = min(n, self._nparts)
                while k < limit and _same(parts[k], prev[k]):
                    off += PyBytes_GET_SIZE(<bytes>parts[k]) + (seplen if k else 0)
                    k += 1
            _PyBytes_Resize(&self._out, total)  # on failure: NULL and MemoryError
            dst = PyBytes_AS_STRING(<bytes>self._out)
            self.reused += off
            self.copied += total - off
            if k == 0:
                m = PyBytes_GET_SIZE(head)
                memcpy(dst, PyBytes_AS_STRING(head), m)
                off = m
            dst += off
            while k < n:
                if k and seplen:
                    memcpy(dst, PyBytes_AS_STRING(sep), seplen)
                    dst += seplen
                part = parts[k]
                m = PyBytes_GET_SIZE(<bytes>part)
                memcpy(dst, PyBytes_AS_STRING(<bytes>part), m)
                dst += m
                k += 1
            memcpy(dst, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
            out = <bytes>self._out
        else:
            out = assemble(head, parts, sep, tail)
            self.copied += total
            Py_XDECREF(self._out)
            self._out = NULL
            if SRT_IN_PLACE and total >= self.min_bytes:
                self._out = <PyObject*>out
                Py_XINCREF(self._out)
        if self._out != NULL:
            self._head = head
            self._sep = sep
            self._parts = parts
            self._nparts = n
            self._prefix_end = total - PyBytes_GET_SIZE(tail)
        else:
            self._head = self._sep = None
            self._parts = None
        return out


cdef class HashSeq:
    """A sequence of 16-byte message hashes packed in one buffer (16 bytes each).

    A session holds its chain's hashes this way instead of as a list of bytes
    objects (56 bytes each plus the list's slot). Items come out as new ``bytes``;
    slices come out as lists. Only ``append`` and ``extend`` change it: to drop
    hashes, take ``head(n)``, a new sequence, so whoever kept this one (a record of
    the previous request) still sees the same first items.
    """

    cdef bytearray _buf

    def __cinit__(self, data=b""):
        if len(data) % 16:
            raise ValueError("HashSeq data must be a whole number of 16-byte hashes")
        self._buf = bytearray(data)

    def __len__(self):
        return PyByteArray_GET_SIZE(self._buf) >> 4

    def __getitem__(self, i):
        cdef Py_ssize_t n = PyByteArray_GET_SIZE(self._buf) >> 4
        cdef Py_ssize_t k
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(n))]
        k = i
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError("HashSeq index out of range")
        return PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self._buf) + 16 * k, 16)

    def __iter__(self):
        cdef Py_ssize_t k
        for k in range(PyByteArray_GET_SIZE(self._buf) >> 4):
            yield PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self._buf) + 16 * k, 16)

    def __contains__(self, h):
        if type(h) is not bytes or PyBytes_GET_SIZE(<bytes>h) != 16:
            return False
        cdef Py_ssize_t k
        cdef const char* p = PyByteArray_AS_STRING(self._buf)
        for k in range(PyByteArray_GET_SIZE(self._buf) >> 4):
            if memcmp(p + 16 * k, PyBytes_AS_STRING(<bytes>h), 16) == 0:
                return True
        return False

    def __reduce__(self):
        return (HashSeq, (bytes(self._buf),))

    def append(self, bytes h not None):
        _check16(h, "message hash")
        self._buf += h

    def extend(self, hashes):
        for h in hashes:
            self.append(h)

    def head(self, Py_ssize_t n):
        """A new sequence of the first ``n`` hashes."""
        if n < 0:
            raise ValueError("n must be >= 0")
        return HashSeq(self._buf[: 16 * n])

    def packed(self):
        """All the hashes as one ``bytes`` (16 each)."""
        return bytes(self._buf)

    def common(self, HashSeq other not None, Py_ssize_t limit=-1):
        """How many leading hashes this and ``other`` share (at most ``limit``)."""
        cdef Py_ssize_t n = min(len(self), len(other))
        cdef Py_ssize_t k = 0
        cdef const char* a = PyByteArray_AS_STRING(self._buf)
        cdef const char* b = PyByteArray_AS_STRING(other._buf)
        if 0 <= limit < n:
            n = limit
        if memcmp(a, b, 16 * n) == 0:
            return n
        while k < n and memcmp(a + 16 * k, b + 16 * k, 16) == 0:
            k += 1
        return k


_abc.Sequence.register(HashSeq)


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
        """Store ``value`` under ``key`` and evict the oldest entries past the budget.

        Only an explicit ``nbytes`` is remembered per entry; the default charge,
        ``len(value)``, is computed again when the entry leaves (values are
        immutable), which keeps a cache of many small bodies small itself."""
        if value is None:
            raise ValueError("None cannot be cached")
        cdef bint explicit = nbytes >= 0
        if not explicit:
            nbytes = len(value)
        cdef object old = self._data.pop(key, None)
        if old is not None:
            self.nbytes -= self._charge(key, old)
        if nbytes > self.max_bytes:
            return
        self._data[key] = value
        if explicit:
            self._sizes[key] = nbytes
        self.nbytes += nbytes
        cdef object k
        while self.nbytes > self.max_bytes:
            k = next(iter(self._data))
            old = self._data.pop(k)
            self.nbytes -= self._charge(k, old)
            self.evictions += 1

    cdef Py_ssize_t _charge(self, object key, object value) except -1:
        """What an entry leaving the cache was charged (its ``_sizes`` record is dropped)."""
        cdef object size = self._sizes.pop(key, None)
        return len(value) if size is None else <Py_ssize_t>size

    cpdef void clear(self) except *:
        self._data.clear()
        self._sizes.clear()
        self.nbytes = 0
