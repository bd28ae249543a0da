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
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport PyObject, Py_XDECREF, Py_XINCREF
from libc.string cimport memchr, memcmp, memcpy

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

    /* Give a bytes object nobody else holds the length n, no more than it was allocated
       with: its terminating NUL written and its cached hash dropped (the bytes change). */
    static void srt_bytes_set_size(PyObject *o, Py_ssize_t n) {
        Py_SET_SIZE(o, n);
        ((PyBytesObject *)o)->ob_sval[n] = 0;
    #if defined(__GNUC__) || defined(__clang__)
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    #endif
        ((PyBytesObject *)o)->ob_shash = -1;
    #if defined(__GNUC__) || defined(__clang__)
    #pragma GCC diagnostic pop
    #endif
    }

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
    void srt_bytes_set_size(PyObject* o, Py_ssize_t n)
    void* srt_memmem(const void* haystack, size_t hn, const void* needle, size_t nn)

cdef extern from "_utf8.h":
    enum:
        SRT_UTF8_VECTOR
        SRT_UTF8_JSON
        SRT_UTF8_OWN
    object srt_decode_utf8_as(const char* data, Py_ssize_t n, int how)
    int srt_json_text(const unsigned char* s, Py_ssize_t n)
    int srt_utf8_valid(const unsigned char* s, Py_ssize_t n)
    int srt_utf8_valid_scalar(const unsigned char* p, const unsigned char* end)

import collections.abc as _abc
import hashlib
import weakref as _weakref

import xxhash

cdef object _xxh3_128 = xxhash.xxh3_128_digest
cdef object _blake2b = hashlib.blake2b

DIGEST_SIZE = 16
ROOT = b"\x00" * 16


def digest(bytes data not None):
    """XXH3-128 digest of ``data`` as 16 bytes."""
    return _xxh3_128(data)


#: ``digest`` itself: ``chain_rows`` given it calls XXH3 without going through it.
cdef object _DIGEST = digest


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


cdef bint _same_parts(
    bytes head, list parts, bytes sep, bytes head0, list parts0, bytes sep0
) except -1:
    """Whether ``head``, ``parts`` and ``sep`` are, byte for byte, ``head0``, ``parts0``
    and ``sep0`` (``parts0`` may be ``None``: not the same)."""
    cdef Py_ssize_t i, n = len(parts)
    if parts0 is None or len(parts0) != n or head0 is None or sep0 is None:
        return False
    if not (_same(head, head0) and _same(sep, sep0)):
        return False
    for i in range(n):
        if not _same(<bytes?>parts[i], <bytes?>parts0[i]):
            return False
    return True


cdef inline Py_ssize_t _roomy(Py_ssize_t n):
    """What a kept body of ``n`` bytes is allocated with: a sixteenth more."""
    return n + (n >> 4)


#: Builds in a row that grow the last body (the caller dropped it) after which an
#: ``OutputBuffer`` lets the body before last go.
cdef enum:
    SPARE_IDLE = 8


cdef class _Kept:
    """One body an ``OutputBuffer`` keeps, with what it was built from: where each part
    ends in it, the head, separator and parts list, and its room."""

    cdef PyObject* out
    cdef Py_ssize_t* ends  # bytes of the head and parts 0..i (with separators) in out
    cdef Py_ssize_t ncap
    cdef bytes head
    cdef bytes sep
    cdef list parts
    cdef Py_ssize_t nparts
    cdef Py_ssize_t prefix_end  # bytes of head and parts in out
    cdef Py_ssize_t room  # bytes out's memory holds (its length and the room to grow)

    def __cinit__(self):
        self.out = NULL
        self.ends = NULL
        self.ncap = 0
        self.room = 0

    def __dealloc__(self):
        Py_XDECREF(self.out)
        self.out = NULL
        PyMem_Free(self.ends)
        self.ends = NULL

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        cdef void* grown
        if n <= self.ncap:
            return 0
        cap = max(n, 2 * self.ncap, 64)
        grown = PyMem_Realloc(self.ends, cap * sizeof(Py_ssize_t))
        if grown == NULL:
            raise MemoryError()
        self.ends = <Py_ssize_t*>grown
        self.ncap = cap
        return 0

    cdef void truncate(self, Py_ssize_t k):
        if self.out != NULL and 0 <= k < self.nparts:
            self.nparts = k
            self.prefix_end = self.ends[k - 1] if k else PyBytes_GET_SIZE(self.head)

    cdef void clear(self):
        Py_XDECREF(self.out)
        self.out = NULL
        self.head = self.sep = None
        self.parts = None

    cdef inline bint free(self):
        """Whether it holds a body that nobody else holds (it may be written in place)."""
        return self.out != NULL and srt_refcnt(self.out) == 1

    cdef inline bint appended(self, bytes head, list parts, bytes sep, Py_ssize_t n):
        """Whether ``parts`` is the list it was built from, only appended to since."""
        return (
            self.out != NULL
            and self.parts is parts
            and n >= self.nparts
            and _same(head, self.head)
            and _same(sep, self.sep)
        )

    cdef void took(self, bytes head, list parts, bytes sep, Py_ssize_t n, Py_ssize_t prefix_end):
        self.head = head
        self.sep = sep
        self.parts = parts
        self.nparts = n
        self.prefix_end = prefix_end


cdef class OutputBuffer:
    """``assemble`` that reuses the memory of the bodies it built before.

    A session builds nearly the same body turn after turn: the same head, the same
    fragments, a few new ones, a new tail. When a body it built is at least
    ``min_bytes`` and nobody but this buffer still holds it, ``build`` grows that bytes
    object in place and rewrites only what follows the part that is unchanged, byte for
    byte; fresh memory is never touched and the unchanged prefix is not copied again.
    A body the caller still holds is left exactly as it was. The result always equals
    ``assemble(head, parts, sep, tail)``.

    Two bodies are kept: the last one and, while the caller held that one when the next
    was built, the one before. So a caller that holds each body until the next build
    returns (``body = s.request(...)`` in a loop) gets the body before last grown in
    place, two turns' worth of new bytes written, instead of a new body each time. A
    caller that drops each body first reuses the last one, and the one before is let go
    after eight such builds in a row (``spare``: the bytes its memory holds, 0 when
    none), so memory goes back when nothing holds bodies any more.

    Holding a body costs its size in memory, so bodies under ``min_bytes`` (cheap to
    copy) are not kept. A kept body is allocated with room to grow by a sixteenth of its
    size (``capacity``), so the next builds grow it where it is: growing a bytes object
    past its allocation is a ``realloc``, which moves (copies) the whole body whenever
    something was allocated right after it. The room is reserved again only once it is
    used up (``resized`` counts these), or when the body shrinks below half of it.

    ``parts`` is remembered by reference, not copied: the caller must never change
    the first ``len(parts)`` items of a list it passed (appending is fine), unless it
    calls ``truncate(k)`` after removing or replacing its items from ``k`` on; to start
    over, pass a new list. srt's assemblies keep their piece lists that way.
    """

    cdef _Kept _cur  # the last body built
    cdef _Kept _spare  # the one before, kept while the caller held the last one
    cdef Py_ssize_t _idle  # builds in a row that grew the last body (no spare needed)
    cdef readonly Py_ssize_t min_bytes
    cdef readonly Py_ssize_t resized
    cdef readonly Py_ssize_t reused
    cdef readonly Py_ssize_t copied

    def __cinit__(self, Py_ssize_t min_bytes=128 * 1024):
        self._cur = _Kept()
        self._spare = _Kept()
        self._idle = 0
        self.min_bytes = min_bytes
        self.resized = 0
        self.reused = 0
        self.copied = 0

    def truncate(self, Py_ssize_t k):
        """The parts from index ``k`` on were removed or replaced (in the same list): the
        next build rewrites the body from the end of part ``k - 1``."""
        self._cur.truncate(k)
        self._spare.truncate(k)

    @property
    def holding(self):
        """Bytes of the last body this buffer keeps (0 when none)."""
        return PyBytes_GET_SIZE(<bytes>self._cur.out) if self._cur.out != NULL else 0

    @property
    def capacity(self):
        """Bytes the last body's memory holds: its length and the room it can grow
        into without moving (0 when none)."""
        return self._cur.room if self._cur.out != NULL else 0

    @property
    def spare(self):
        """Bytes the memory of the body before the last holds, when it is kept (0 when
        not)."""
        return self._spare.room if self._spare.out != NULL else 0

    def clear(self):
        """Drop the bodies kept."""
        self._cur.clear()
        self._spare.clear()

    def build(
        self, bytes head not None, list parts not None, bytes sep not None, bytes tail not None
    ):
        """``head + sep.join(parts) + tail``, in a kept body's memory if one is free."""
        cdef Py_ssize_t n = len(parts)
        cdef Py_ssize_t seplen = PyBytes_GET_SIZE(sep)
        cdef Py_ssize_t total, off, i
        cdef object part
        cdef _Kept cur = self._cur
        cdef _Kept kept
        cdef bytes out
        cdef bint same_list = cur.appended(head, parts, sep, n)
        if same_list:
            # The same list, only appended to since the last build: its first nparts
            # items are already in place, so only the new ones are looked at.
            total = cur.prefix_end + PyBytes_GET_SIZE(tail)
            for i in range(cur.nparts, n):
                part = parts[i]
                if part is None:
                    raise TypeError("parts must be bytes, not None")
                total += PyBytes_GET_SIZE(<bytes?>part) + (seplen if i else 0)
        else:
            total = _length(head, parts, sep, tail)
        if (
            cur.out != NULL
            and n == cur.nparts
            and total == PyBytes_GET_SIZE(<bytes>cur.out)
            and memcmp(
                PyBytes_AS_STRING(<bytes>cur.out) + cur.prefix_end,
                PyBytes_AS_STRING(tail),
                PyBytes_GET_SIZE(tail),
            ) == 0
            and (same_list or _same_parts(head, parts, sep, cur.head, cur.parts, cur.sep))
        ):
            # Nothing new since the last build (a retry, or a second look): that body is
            # this one, and bytes never change, so it is returned as it is, held or not.
            # (A list made anew each build, as with cache marks, is compared part by
            # part: by identity, and by bytes where a part is a new object.)
            self.reused += total
            return <bytes>cur.out
        if not SRT_IN_PLACE or total < self.min_bytes:
            out = assemble(head, parts, sep, tail)
            self.copied += total
            self._cur.clear()
            self._spare.clear()
            return out
        if cur.free():
            # The caller dropped the last body: grow it. The one before is let go once
            # it has not been needed for SPARE_IDLE builds in a row.
            self._idle += 1
            if self._idle >= SPARE_IDLE:
                self._spare.clear()
            return self._write(cur, head, parts, sep, tail, total, same_list)
        self._idle = 0
        kept = self._spare
        if kept.free():
            # The caller holds the last body but dropped the one before: grow that one,
            # which becomes the last (the one the caller holds is kept as the spare).
            self._spare, self._cur = cur, kept
            same_list = kept.appended(head, parts, sep, n)
            return self._write(kept, head, parts, sep, tail, total, same_list)
        # Both held (or none kept yet): a new body with room to grow, written part by
        # part; the last one, which the caller holds, is kept as the spare for next time.
        kept.clear()
        kept.reserve(n)
        out = PyBytes_FromStringAndSize(NULL, _roomy(total))
        srt_bytes_set_size(<PyObject*>out, total)
        off = _write_parts(PyBytes_AS_STRING(out), 0, head, parts, sep, 0, n, kept.ends)
        memcpy(PyBytes_AS_STRING(out) + off, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
        self.copied += total
        kept.out = <PyObject*>out
        Py_XINCREF(kept.out)
        kept.room = _roomy(total)
        kept.took(head, parts, sep, n, off)
        if cur.out != NULL and PyBytes_GET_SIZE(<bytes>cur.out) >= self.min_bytes:
            self._spare, self._cur = cur, kept
        else:
            cur.clear()
            self._cur, self._spare = kept, cur
        return out

    cdef bytes _write(
        self,
        _Kept kept,
        bytes head,
        list parts,
        bytes sep,
        bytes tail,
        Py_ssize_t total,
        bint same_list,
    ):
        """Write the body in ``kept``'s memory (nobody else holds it), from the end of
        the part it shares with the new one: its parts list only appended to since
        (``same_list``), else the same head and separator and the same parts, in order."""
        cdef Py_ssize_t n = len(parts), k = 0, off, limit
        cdef Py_ssize_t seplen = PyBytes_GET_SIZE(sep)
        cdef list prev = kept.parts
        cdef char* dst
        if same_list:
            k = kept.nparts
            off = kept.prefix_end
        elif prev is not None and _same(head, kept.head) and _same(sep, kept.sep):
            # The unchanged prefix: the same head, then the same parts, in order.
            off = PyBytes_GET_SIZE(head)
            limit = min(n, kept.nparts)
            while k < limit and _same(parts[k], prev[k]):
                off += PyBytes_GET_SIZE(<bytes>parts[k]) + (seplen if k else 0)
                k += 1
        else:
            off = 0
        kept.reserve(n)
        if total > kept.room or 2 * total < kept.room:
            # Past its room (or far below it): a new allocation with room again,
            # which realloc may have to move (on failure: NULL and MemoryError).
            _PyBytes_Resize(&kept.out, _roomy(total))
            kept.room = _roomy(total)
            self.resized += 1
        srt_bytes_set_size(kept.out, total)  # no cached hash of the old bytes kept
        dst = PyBytes_AS_STRING(<bytes>kept.out)
        self.reused += off
        self.copied += total - off
        off = _write_parts(dst, off, head, parts, sep, k, n, kept.ends)
        memcpy(dst + off, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
        kept.took(head, parts, sep, n, off)
        return <bytes>kept.out


cdef Py_ssize_t _write_parts(
    char* dst,
    Py_ssize_t off,
    bytes head,
    list parts,
    bytes sep,
    Py_ssize_t k,
    Py_ssize_t n,
    Py_ssize_t* ends,
) except -1:
    """Write parts ``k``..``n - 1`` (each after the separator but the first) at ``off``
    in ``dst`` (the head first when ``k`` is 0), recording where each ends in ``ends``;
    return the offset after them."""
    cdef Py_ssize_t m, seplen = PyBytes_GET_SIZE(sep)
    cdef object part
    if k == 0:
        m = PyBytes_GET_SIZE(head)
        memcpy(dst, PyBytes_AS_STRING(head), m)
        off = m
    while k < n:
        if k and seplen:
            memcpy(dst + off, PyBytes_AS_STRING(sep), seplen)
            off += seplen
        part = parts[k]
        m = PyBytes_GET_SIZE(<bytes>part)
        memcpy(dst + off, PyBytes_AS_STRING(<bytes>part), m)
        off += m
        ends[k] = off
        k += 1
    return off


cdef class HashSeq:
    """A sequence of 16-byte message hashes packed in one buffer (16 bytes each).

    A session holds its chain's hashes this way instead of as a list of bytes
    objects (56 bytes each plus the list's slot). Items come out as new ``bytes``;
    slices come out as lists. Only ``append`` and ``extend`` change it: to drop
    hashes, take ``head(n)``, a new sequence, so whoever kept this one (a record of
    the previous request) still sees the same first items. A sequence made by
    ``head(n)`` remembers (weakly) the one it came from, so ``common`` between the two
    compares only what follows those ``n``: after a rewind or an edit, the cache
    planner's comparison with the previous request costs what changed.
    """

    cdef bytearray _buf
    cdef object _from  # weakref to the sequence this one is a head of, or None
    cdef Py_ssize_t _from_n  # ... and how many of its first hashes this one starts with
    cdef object __weakref__

    def __cinit__(self, data=b""):
        if len(data) % 16:
            raise ValueError("HashSeq data must be a whole number of 16-byte hashes")
        self._buf = bytearray(data)
        self._from = None
        self._from_n = 0

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
        cdef HashSeq out = HashSeq(self._buf[: 16 * n])
        out._from = _weakref.ref(self)
        out._from_n = min(n, len(self))
        return out

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
        # One is a head of the other: both only grew since, so that many are shared.
        if other._from is not None and other._from() is self:
            k = min(other._from_n, n)
        elif self._from is not None and self._from() is other:
            k = min(self._from_n, n)
        if memcmp(a + 16 * k, b + 16 * k, 16 * (n - k)) == 0:
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


cdef Py_ssize_t _parts_bytes(list parts, Py_ssize_t lo, Py_ssize_t hi, dict marks) except -1:
    cdef Py_ssize_t i, total = 0
    cdef object part
    for i in range(lo, hi):
        part = parts[i]
        if marks is not None and i in marks:
            part = marks[i]
        if part is None:
            raise TypeError("parts must be bytes, not None")
        total += PyBytes_GET_SIZE(<bytes?>part)
    return total


cdef Py_ssize_t _copy_parts(
    char* dst, list parts, Py_ssize_t lo, Py_ssize_t hi, dict marks
) except -1:
    cdef Py_ssize_t i, m, off = 0
    cdef object part
    for i in range(lo, hi):
        part = parts[i]
        if marks is not None and i in marks:
            part = marks[i]
        m = PyBytes_GET_SIZE(<bytes>part)
        memcpy(dst + off, PyBytes_AS_STRING(<bytes>part), m)
        off += m
    return off


cdef class _Running:
    """A hash state over ``head`` and the first ``nbytes`` frozen bytes of a Segments
    (valid while the Segments' ``generation`` is still ``gen``)."""

    cdef object factory
    cdef bytes head
    cdef object state
    cdef Py_ssize_t nbytes
    cdef Py_ssize_t gen

    def __cinit__(self, factory):
        self.factory = factory
        self.head = None
        self.state = None
        self.nbytes = 0
        self.gen = -1


cdef class Segments:
    """A request body as a few large, frozen chunks, so that sending it copies nothing.

    ``build(head, parts, tail)`` returns the chunks of ``head + b"".join(parts) + tail``:
    ``head``, then the *segments* (runs of leading parts joined once and kept, the same
    ``bytes`` objects turn after turn), then one chunk with the parts that are not frozen
    yet and ``tail``. A send loop hands these chunks to the socket one by one: no turn
    joins the history again, and the body reaches the socket in a few large writes
    rather than one per message.

    Parts are frozen once at least ``segment_bytes`` of them wait after the last segment,
    so the last chunk (the only one built per turn) stays under about that size plus the
    new parts; runs of eight or more small segments are merged into one of at most
    ``merge_bytes``, and a longer run (the first build of a long history) is frozen as
    segments of at most ``merge_bytes``, so a body of B bytes is about B / ``merge_bytes``
    + 16 chunks, none larger than ``merge_bytes`` but for a single part that is. A body
    under ``min_bytes`` is one chunk and nothing is kept.

    ``marks`` maps part indexes to bytes that replace those parts in this body only (the
    cache planner's breakpoints); the parts from the first mark on are never frozen.

    Like ``OutputBuffer``, ``parts`` is remembered by reference: only appends may change
    a list passed here, unless ``truncate(k)`` is called after its items from ``k`` on
    were removed or replaced. Another list starts over.
    """

    cdef list _segs
    cdef list _ends  # part index after each segment
    cdef list _starts  # byte offset of each segment in the frozen run
    cdef list _parts
    cdef Py_ssize_t _nparts
    cdef Py_ssize_t _frozen
    cdef readonly Py_ssize_t min_bytes
    cdef readonly Py_ssize_t segment_bytes
    cdef readonly Py_ssize_t merge_bytes
    cdef readonly Py_ssize_t copied
    cdef Py_ssize_t _gen  # bumped whenever frozen bytes are dropped
    cdef _Running _xxh
    cdef _Running _sha

    def __cinit__(
        self,
        Py_ssize_t min_bytes=128 * 1024,
        Py_ssize_t segment_bytes=256 * 1024,
        Py_ssize_t merge_bytes=4 * 1024 * 1024,
    ):
        if segment_bytes < 1 or merge_bytes < segment_bytes:
            raise ValueError("need 1 <= segment_bytes <= merge_bytes")
        self.min_bytes = min_bytes
        self.segment_bytes = segment_bytes
        self.merge_bytes = merge_bytes
        self.copied = 0
        self._gen = 0
        self._xxh = _Running(xxhash.xxh3_128)
        self._sha = _Running(hashlib.sha256)
        self._reset(None)

    cdef void _reset(self, list parts):
        self._gen += 1
        self._segs = []
        self._ends = []
        self._starts = []
        self._parts = parts
        self._nparts = 0
        self._frozen = 0

    @property
    def holding(self):
        """Bytes of frozen segments this holds."""
        return self._frozen

    @property
    def frozen_parts(self):
        """How many leading parts are frozen into segments."""
        return self._nparts

    def clear(self):
        """Drop every segment."""
        self._reset(None)

    def truncate(self, Py_ssize_t k):
        """The parts from index ``k`` on were removed or replaced: forget any segment
        holding one of them."""
        cdef Py_ssize_t j = len(self._segs)
        while j and self._ends[j - 1] > k:
            j -= 1
        if j == len(self._segs):
            return
        self._gen += 1
        del self._segs[j:]
        del self._ends[j:]
        del self._starts[j:]
        self._nparts = self._ends[j - 1] if j else 0
        self._frozen = sum(PyBytes_GET_SIZE(<bytes>x) for x in self._segs)

    cdef void _freeze(self, list parts, Py_ssize_t hi, Py_ssize_t nbytes) except *:
        """Freeze parts ``_nparts`` to ``hi`` (``nbytes`` in all): in runs of at most
        ``merge_bytes`` (a part larger than that alone), so no chunk handed to a socket
        is larger (a write loop that slices what the socket did not take copies it)."""
        cdef Py_ssize_t j, run, m
        if nbytes > self.merge_bytes:
            j = self._nparts
            run = 0
            while j < hi:
                m = PyBytes_GET_SIZE(<bytes>parts[j])
                if run and run + m > self.merge_bytes:
                    self._freeze_run(parts, j, run)
                    run = 0
                run += m
                j += 1
            if run:
                self._freeze_run(parts, hi, run)
            return
        self._freeze_run(parts, hi, nbytes)

    cdef void _freeze_run(self, list parts, Py_ssize_t hi, Py_ssize_t nbytes) except *:
        cdef bytes seg = PyBytes_FromStringAndSize(NULL, nbytes)
        _copy_parts(PyBytes_AS_STRING(seg), parts, self._nparts, hi, None)
        self.copied += nbytes
        self._starts.append(self._frozen)
        self._segs.append(seg)
        self._ends.append(hi)
        self._nparts = hi
        self._frozen += nbytes
        self._merge()

    cdef void _merge(self) except *:
        """Merge the trailing run of small segments once it has eight or more."""
        cdef Py_ssize_t j = len(self._segs), total = 0, m, off
        cdef Py_ssize_t first
        while j:
            m = PyBytes_GET_SIZE(<bytes>self._segs[j - 1])
            if total + m > self.merge_bytes:
                break
            total += m
            j -= 1
        if len(self._segs) - j < 8:
            return
        first = j
        cdef bytes seg = PyBytes_FromStringAndSize(NULL, total)
        cdef char* dst = PyBytes_AS_STRING(seg)
        off = 0
        for j in range(first, len(self._segs)):
            m = PyBytes_GET_SIZE(<bytes>self._segs[j])
            memcpy(dst + off, PyBytes_AS_STRING(<bytes>self._segs[j]), m)
            off += m
        self.copied += total
        end = self._ends[len(self._ends) - 1]
        start = self._starts[first]
        del self._segs[first:]
        del self._ends[first:]
        del self._starts[first:]
        self._segs.append(seg)
        self._ends.append(end)
        self._starts.append(start)

    def build(self, bytes head not None, list parts not None, bytes tail not None, dict marks=None):
        """The chunks of ``head + b"".join(parts) + tail`` (with ``marks`` applied)."""
        cdef Py_ssize_t n = len(parts)
        cdef Py_ssize_t limit = n, waiting, total, off
        cdef bytes last
        if marks is not None and not marks:
            marks = None
        if parts is not self._parts or n < self._nparts:
            self._reset(parts)
        if marks is not None:
            for key in marks:
                if not 0 <= key < n:
                    raise IndexError("a mark's index is outside the parts")
            limit = min(marks)
            if limit < self._nparts:
                self.truncate(limit)
        waiting = _parts_bytes(parts, self._nparts, limit, None)
        total = (
            PyBytes_GET_SIZE(head) + self._frozen + waiting
            + _parts_bytes(parts, limit, n, marks) + PyBytes_GET_SIZE(tail)
        )
        if not self._segs and total < self.min_bytes:
            last = PyBytes_FromStringAndSize(NULL, total)
            off = PyBytes_GET_SIZE(head)
            memcpy(PyBytes_AS_STRING(last), PyBytes_AS_STRING(head), off)
            off += _copy_parts(PyBytes_AS_STRING(last) + off, parts, 0, n, marks)
            memcpy(PyBytes_AS_STRING(last) + off, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
            self.copied += total
            self._parts = None
            return [last]
        if waiting >= self.segment_bytes or (not self._segs and waiting):
            self._freeze(parts, limit, waiting)
        total = _parts_bytes(parts, self._nparts, n, marks) + PyBytes_GET_SIZE(tail)
        last = PyBytes_FromStringAndSize(NULL, total)
        off = _copy_parts(PyBytes_AS_STRING(last), parts, self._nparts, n, marks)
        memcpy(PyBytes_AS_STRING(last) + off, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
        self.copied += total
        return [head, *self._segs, last]

    cdef bytes _hash(self, _Running run, list chunks):
        """The digest of ``b"".join(chunks)``, resuming from ``run`` when ``chunks`` are
        what ``build`` returned last (the frozen bytes then need hashing only once)."""
        cdef Py_ssize_t nseg = len(chunks) - 2, j, start, end, have
        cdef object h
        cdef bint ours = (
            nseg >= 1
            and nseg == len(self._segs)
            and all(chunks[1 + j] is self._segs[j] for j in range(nseg))
        )
        if not ours:
            h = run.factory()
            for c in chunks:
                h.update(c)
            return h.digest()
        head = chunks[0]
        if (
            run.state is None
            or run.gen != self._gen
            or not _same(head, run.head)
            or run.nbytes > self._frozen
        ):
            run.state = run.factory()
            run.state.update(head)
            run.head = head
            run.nbytes = 0
            run.gen = self._gen
        for j in range(nseg):
            start = self._starts[j]
            end = start + PyBytes_GET_SIZE(<bytes>self._segs[j])
            have = run.nbytes
            if end <= have:
                continue
            if start >= have:
                run.state.update(self._segs[j])
            else:
                run.state.update(memoryview(self._segs[j])[have - start :])
            run.nbytes = end
        h = run.state.copy()
        h.update(chunks[len(chunks) - 1])
        return h.digest()

    def digest(self, list chunks not None):
        """XXH3-128 of the body ``chunks`` make (equal to ``digest(b"".join(chunks))``)."""
        return self._hash(self._xxh, chunks)

    def sha256(self, list chunks not None):
        """SHA-256 of the body ``chunks`` make (``hashlib.sha256(b"".join(chunks))``)."""
        return self._hash(self._sha, chunks)


def decode_messages(list bodies not None, dict roles not None, object loads not None):
    """``[loads(b) for b in bodies]``, but a body that is exactly
    ``{"role":"<r>","content":"<text>"}`` (``r``'s UTF-8 bytes a key of ``roles``) with
    no escape in its text becomes ``{"role": roles[r], "content": text}`` by decoding
    the text's UTF-8 bytes alone, which is what those bodies' JSON means."""
    cdef list out = []
    cdef object b
    cdef const char* p
    cdef const char* q
    cdef Py_ssize_t n, rl, start, clen
    cdef object role, text
    for b in bodies:
        if type(b) is not bytes:
            raise TypeError("bodies must be bytes")
        p = PyBytes_AS_STRING(<bytes>b)
        n = PyBytes_GET_SIZE(<bytes>b)
        role = None
        if n > 25 and memcmp(p, b'{"role":"', 9) == 0 and memcmp(p + n - 2, b'"}', 2) == 0:
            q = <const char*>memchr(p + 9, 34, <size_t>(n - 9))  # the role's closing quote
            if q != NULL:
                rl = q - (p + 9)
                start = 9 + rl + 13
                if start <= n - 2 and memcmp(q, b'","content":"', 13) == 0:
                    role = roles.get(PyBytes_FromStringAndSize(p + 9, rl))
                    clen = n - 2 - start
        if role is not None:
            # None when the text holds a quote or a backslash (found as it is decoded)
            text = srt_decode_utf8_as(p + start, clen, SRT_UTF8_VECTOR | SRT_UTF8_JSON)
            if text is not None:
                out.append({"role": role, "content": text})
                continue
        out.append(loads(b))
    return out


def decode_utf8(bytes data not None, bint vector=True, bint fallback=True):
    """``data.decode("utf-8")``, by the decoder ``decode_messages`` uses (the same str,
    the same ``UnicodeDecodeError``): 16 bytes at a time where the CPU can (``vector``),
    else character by character (so tests can hold each to ``decode``). Where srt's
    decoder does not take the bytes it hands them to CPython's; ``fallback=False``
    raises ``ValueError`` there instead (so tests can see valid text never go there)."""
    cdef int how = (SRT_UTF8_VECTOR if vector else 0) | (0 if fallback else SRT_UTF8_OWN)
    return srt_decode_utf8_as(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), how)


def utf8_valid(bytes data not None, bint vector=True):
    """Whether ``data.decode("utf-8")`` would succeed, by the check ``text_frags`` makes:
    16 bytes at a time where the CPU can (``vector``), else byte by byte (so tests
    can hold each to ``decode``)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if vector:
        return bool(srt_utf8_valid(p, n))
    return bool(srt_utf8_valid_scalar(p, p + n))

#: The roles of a plain text message, in the order of ``text_frags``' codes.
cdef tuple _TEXT_ROLES = (b"system", b"developer", b"user", b"assistant")


def text_frags(list bodies not None, tuple wraps not None, bint empty):
    """The fragments of the plain text messages among ``bodies``, without parsing them.

    A body that is exactly ``{"role":"<r>","content":"<text>"}``, ``r`` system, developer,
    user or assistant (code 0 to 3), its text as ``json.dumps(ensure_ascii=False)`` writes
    it (``srt_json_text``) and not empty unless ``empty``, gets its role's code and the
    fragment ``wraps[code][0] + <the text's JSON string> + wraps[code][1]`` (the body
    itself where ``wraps[code]`` is None). Any other body gets code 255 and None.
    Returns ``(codes, fragments)``: bytes and a list, one item a body."""
    cdef Py_ssize_t m = len(bodies), i, n, rl, start, plen, slen
    cdef bytes codes = PyBytes_FromStringAndSize(NULL, m)
    cdef unsigned char* cp = <unsigned char*>PyBytes_AS_STRING(codes)
    cdef list out = [None] * m
    cdef object b, wrap
    cdef bytes pre, post, role, frag
    cdef const char* p
    cdef char* q
    cdef int code
    if len(wraps) != 4:
        raise ValueError("wraps needs one item per role")
    for i in range(m):
        cp[i] = 255
        b = bodies[i]
        if type(b) is not bytes:
            raise TypeError("bodies must be bytes")
        p = PyBytes_AS_STRING(<bytes>b)
        n = PyBytes_GET_SIZE(<bytes>b)
        if n < 27 or memcmp(p, b'{"role":"', 9) != 0 or memcmp(p + n - 2, b'"}', 2) != 0:
            continue
        for code in range(4):
            role = <bytes>_TEXT_ROLES[code]
            rl = PyBytes_GET_SIZE(role)
            start = 9 + rl + 13  # the text's first byte
            if (
                start <= n - 2
                and memcmp(p + 9, PyBytes_AS_STRING(role), rl) == 0
                and memcmp(p + 9 + rl, b'","content":"', 13) == 0
            ):
                break
        else:
            continue
        slen = n - 2 - start
        if (slen == 0 and not empty) or not srt_json_text(<const unsigned char*>p + start, slen):
            continue
        cp[i] = code
        wrap = wraps[code]
        if wrap is None:
            out[i] = b
            continue
        pre, post = wrap
        plen = PyBytes_GET_SIZE(pre)
        frag = PyBytes_FromStringAndSize(NULL, plen + slen + 2 + PyBytes_GET_SIZE(post))
        q = PyBytes_AS_STRING(frag)
        memcpy(q, PyBytes_AS_STRING(pre), plen)
        memcpy(q + plen, p + start - 1, slen + 2)
        memcpy(q + plen + slen + 2, PyBytes_AS_STRING(post), PyBytes_GET_SIZE(post))
        out[i] = frag
    return codes, out


def cut(list ids not None, list rows not None, list ats not None, list lens not None):
    """The byte ranges ``[ats[i], ats[i] + lens[i])`` of a stream stored as ``rows``, where
    ``rows[j]`` holds the stream's bytes from offset ``ids[j]`` (``ids`` ascending, the
    rows not overlapping). A range the rows do not cover raises ``ValueError``."""
    cdef Py_ssize_t i
    cdef list out = []
    _check_rows(ids, rows)
    if len(ats) != len(lens):
        raise ValueError("ids and rows, and ats and lens, must have equal lengths")
    for i in range(len(ats)):
        out.append(_cut_one(ids, rows, ats[i], lens[i]))
    return out


cdef int _check_rows(list ids, list rows) except -1:
    cdef Py_ssize_t i
    if len(ids) != len(rows):
        raise ValueError("ids and rows, and ats and lens, must have equal lengths")
    for i in range(len(rows)):
        if type(rows[i]) is not bytes and type(rows[i]) is not bytearray:
            raise TypeError("rows must be bytes")
    return 0


cdef inline Py_ssize_t _row_size(object row):
    """The size of a row ``_check_rows`` accepted (bytes, or a bytearray read into)."""
    if type(row) is bytes:
        return PyBytes_GET_SIZE(<bytes>row)
    return PyByteArray_GET_SIZE(<bytearray>row)


cdef inline const char* _row_data(object row):
    if type(row) is bytes:
        return PyBytes_AS_STRING(<bytes>row)
    return PyByteArray_AS_STRING(<bytearray>row)


cdef bytes _cut_one(list ids, list rows, Py_ssize_t at, Py_ssize_t n):
    """The range ``[at, at + n)`` of the stream (``cut``)."""
    cdef Py_ssize_t nrows = len(rows), j, lo, hi, mid, have, off, take, rid
    cdef bytes body
    cdef object row
    cdef char* dst
    if n < 0:
        raise ValueError("a range's length is negative")
    # the last row starting at or before ``at``
    lo, hi = 0, nrows
    while lo < hi:
        mid = (lo + hi) >> 1
        if <Py_ssize_t>ids[mid] <= at:
            lo = mid + 1
        else:
            hi = mid
    j = lo - 1
    if j < 0:
        raise ValueError("a range starts before the stored rows")
    rid = ids[j]
    row = rows[j]
    off = at - rid
    if n <= _row_size(row) - off:
        return PyBytes_FromStringAndSize(_row_data(row) + off, n)
    body = PyBytes_FromStringAndSize(NULL, n)
    dst = PyBytes_AS_STRING(body)
    have = 0
    while have < n:
        if j >= nrows or <Py_ssize_t>ids[j] != at + have - off:
            raise ValueError("the stored rows do not cover a range")
        row = rows[j]
        take = _row_size(row) - off
        if take <= 0:
            raise ValueError("the stored rows do not cover a range")
        if take > n - have:
            take = n - have
        memcpy(dst + have, _row_data(row) + off, take)
        have += take
        off = 0
        j += 1
    return body


def chain_rows(
    list nodes not None,
    list ids not None,
    list rows not None,
    object head,
    object digest not None,
    object chain_many not None,
    bytes start not None,
):
    """A chain's rows ``(id, hash, body, prefix, status, meta, depth)`` from its node rows
    ``(id, parent, depth, prefix, at, len, status, meta)`` (root first), each body cut
    from the heap rows as ``cut`` does and hashed (``digest``), and checked as
    ``store.base.check_chain`` checks them: ``(rows, fault)``, where ``fault`` is
    ``None``, ``"missing"`` (a body the heap rows do not hold, or a node whose place is
    not a range) or ``"hash"`` (no rows, a stored prefix that is not the chain of the
    bodies' hashes, or a last row that is not ``head``; ``digest`` and ``chain_many`` are
    the store's hashing). A body that does not hash to its message's hash breaks the
    chain at its node, so the prefixes catch it without reading the hashes."""
    cdef Py_ssize_t n = len(nodes), i
    cdef list out = [None] * n
    cdef list hashes = [None] * n
    cdef list prefixes
    cdef tuple node
    cdef bytes body
    cdef object h
    try:
        _check_rows(ids, rows)
        for i in range(n):
            node = <tuple?>nodes[i]
            body = _cut_one(ids, rows, node[4], node[5])
            out[i] = body
    except (ValueError, TypeError, OverflowError):
        return [], "missing"
    if n == 0:
        return out, "hash"
    if digest is _DIGEST:
        digest = _xxh3_128
    for i in range(n):
        hashes[i] = digest(<bytes>out[i])
    prefixes = chain_many(start, hashes)
    for i in range(n):
        node = <tuple>nodes[i]
        h = node[3]
        if type(h) is not bytes or prefixes[i] != h:
            return [], "hash"
        out[i] = (node[0], hashes[i], out[i], h, node[6], node[7], node[2])
    if (<tuple>nodes[n - 1])[0] != head:
        return [], "hash"
    return out, None


def walk_chain(list rows not None, object head):
    """Follow parent links from node ``head`` through ``rows`` (tuples ``(id, parent,
    depth, ...)`` sorted by id): ``(chain, missing)`` where ``chain`` lists the rows met,
    root first, and ``missing`` is the id of the first ancestor not in ``rows`` (``None``
    when the walk reached a root). A depth that does not decrease ends the walk with
    ``ValueError`` (a damaged parent link cannot loop)."""
    cdef Py_ssize_t n = len(rows), lo, hi, mid, at = n
    cdef list out = []
    cdef object cur = head, row, key_obj
    cdef object last_depth = None
    cdef long long want, key
    while cur is not None:
        want = cur
        # A chain one writer appended is a run of ids: the parent is most often the row
        # just before the one met last, found without a search.
        lo, hi = 0, n
        if 0 < at <= n:
            key_obj = (<tuple?>rows[at - 1])[0]
            if type(key_obj) is int and key_obj == want:
                lo = hi = at - 1
        while lo < hi:
            mid = (lo + hi) >> 1
            key = (<tuple?>rows[mid])[0]
            if key < want:
                lo = mid + 1
            else:
                hi = mid
        if lo == n or (<tuple>rows[lo])[0] != want:
            out.reverse()
            return out, cur
        at = lo
        row = rows[lo]
        if last_depth is not None and not (<tuple>row)[2] < last_depth:
            raise ValueError("a parent link does not lead to a shallower node")
        last_depth = (<tuple>row)[2]
        out.append(row)
        cur = (<tuple>row)[1]
    out.reverse()
    return out, None


cdef extern from *:
    """
    /* Orders heap ranges (pairs of long long: start, end) by start, then end. */
    static int srt_span_cmp(const void *a, const void *b) {
        const long long *x = (const long long *)a, *y = (const long long *)b;
        if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
        if (x[1] != y[1]) return x[1] < y[1] ? -1 : 1;
        return 0;
    }
    """
    int srt_span_cmp(const void* a, const void* b) noexcept nogil

cdef extern from "<stdlib.h>":
    void qsort(void* base, size_t n, size_t size, int (*cmp)(const void*, const void*) noexcept nogil) nogil

#: The largest offset or length ``heap_spans`` takes (a damaged value beyond is refused).
cdef long long _SPAN_LIMIT = 1LL << 60


def heap_spans(list rows not None, Py_ssize_t at_col, Py_ssize_t len_col, long long gap):
    """The ranges ``[lo, hi)`` of the heap's stream that hold the bodies at ``(row[at_col],
    row[len_col])`` for each tuple ``row`` of ``rows``, in order: ranges that overlap or
    lie ``gap`` bytes or less apart are merged. ``ValueError`` for an offset or a length
    that is negative or past 2**60, ``TypeError`` for one that is not an int (a damaged
    node row); no recursion, whatever the values."""
    cdef Py_ssize_t n = len(rows), i, m = 0
    cdef long long at, ln, lo, hi
    cdef long long* buf
    cdef tuple row
    cdef object a, b
    cdef bint ordered = True
    cdef list out = []
    if n == 0:
        return out
    if gap < 0:
        raise ValueError("the gap must not be negative")
    buf = <long long*>PyMem_Malloc(<size_t>n * 2 * sizeof(long long))
    if buf == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            row = <tuple?>rows[i]
            if not (0 <= at_col < len(row) and 0 <= len_col < len(row)):
                raise ValueError("a row has no such column")
            a = row[at_col]
            b = row[len_col]
            if type(a) is not int or type(b) is not int:
                raise TypeError("a body's place must be two ints")
            if not (0 <= a <= _SPAN_LIMIT and 0 <= b <= _SPAN_LIMIT):
                raise ValueError("a body's place is out of range")
            at = a
            ln = b
            buf[2 * i] = at
            buf[2 * i + 1] = at + ln
            if i and at < buf[2 * i - 2]:
                ordered = False
        if not ordered:
            qsort(buf, <size_t>n, 2 * sizeof(long long), srt_span_cmp)
        lo, hi = buf[0], buf[1]
        for i in range(1, n):
            if buf[2 * i] <= hi + gap:
                if buf[2 * i + 1] > hi:
                    hi = buf[2 * i + 1]
            else:
                out.append((lo, hi))
                lo, hi = buf[2 * i], buf[2 * i + 1]
        out.append((lo, hi))
    finally:
        PyMem_Free(buf)
    return out


cdef class Body:
    """A request body as ``chunks`` of bytes (``Segments.build``), sent one after another.

    ``len(body)`` is its size in bytes and ``bytes(body)`` joins it (a copy: only for
    checks and error reports). ``digest()`` (XXH3-128) and ``sha256()`` equal those of
    the joined bytes; with the ``Segments`` that built it they resume from its running
    state, hashing only what was not frozen before.
    """

    cdef readonly list chunks
    cdef readonly Py_ssize_t nbytes
    cdef Segments _segments

    def __cinit__(self, list chunks not None, Segments segments=None):
        cdef Py_ssize_t total = 0
        for c in chunks:
            if type(c) is not bytes:
                raise TypeError("a body's chunks must be bytes")
            total += PyBytes_GET_SIZE(<bytes>c)
        self.chunks = chunks
        self.nbytes = total
        self._segments = segments

    def __len__(self):
        return self.nbytes

    def __iter__(self):
        return iter(self.chunks)

    def __bytes__(self):
        return b"".join(self.chunks)

    def __repr__(self):
        return f"<srt._core.Body {self.nbytes} bytes in {len(self.chunks)} chunks>"

    def digest(self):
        """XXH3-128 of the body's bytes."""
        if self._segments is not None:
            return self._segments.digest(self.chunks)
        h = xxhash.xxh3_128()
        for c in self.chunks:
            h.update(c)
        return h.digest()

    def sha256(self):
        """SHA-256 of the body's bytes."""
        if self._segments is not None:
            return self._segments.sha256(self.chunks)
        h = hashlib.sha256()
        for c in self.chunks:
            h.update(c)
        return h.digest()

    def rfind(self, bytes needle not None):
        """Offset of the last ``needle`` in the body, or -1 (it must not span chunks)."""
        cdef Py_ssize_t off = self.nbytes, i, k
        cdef bytes c
        for i in range(len(self.chunks) - 1, -1, -1):
            c = self.chunks[i]
            off -= PyBytes_GET_SIZE(c)
            k = c.rfind(needle)
            if k >= 0:
                return off + k
        return -1

    def slice(self, Py_ssize_t start, Py_ssize_t stop):
        """The body's bytes from ``start`` to ``stop`` (clamped, like a slice)."""
        cdef Py_ssize_t off = 0, lo, hi, n
        cdef list out = []
        start = max(0, min(start, self.nbytes))
        stop = max(start, min(stop, self.nbytes))
        for c in self.chunks:
            n = PyBytes_GET_SIZE(<bytes>c)
            lo, hi = max(start - off, 0), min(stop - off, n)
            if lo < hi:
                out.append((<bytes>c)[lo:hi])
            off += n
            if off >= stop:
                break
        return b"".join(out)


def split_chain(list rows not None, object intern not None, Py_ssize_t intern_min):
    """A loaded chain's rows ``(node id, hash, body, prefix, status, meta, depth)`` as the
    columns a session keeps: ``(ids, packed hashes, bodies, statuses, pinned)``. A body of
    ``intern_min`` bytes or more becomes ``intern(hash, body)``; ``statuses`` maps the
    index of each partial reply to its status; ``pinned`` has 1 where the metadata (bytes)
    says ``"pinned":true``. ``intern`` may be a ``FragmentCache`` instead: a body becomes
    the one cached under its hash, or is cached there if there is none (no Python call)."""
    cdef Py_ssize_t n = len(rows), i
    cdef list ids = [None] * n
    cdef list bodies = [None] * n
    cdef dict status = {}
    cdef bytearray pinned = bytearray(n)
    cdef bytes hashes = PyBytes_FromStringAndSize(NULL, 16 * n)
    cdef char* hp = PyBytes_AS_STRING(hashes)
    cdef char* pp = PyByteArray_AS_STRING(pinned)
    cdef tuple row
    cdef object h, body, meta, cached
    cdef FragmentCache cache = intern if type(intern) is FragmentCache else None
    for i in range(n):
        row = <tuple?>rows[i]
        ids[i] = row[0]
        h = row[1]
        if type(h) is not bytes or PyBytes_GET_SIZE(<bytes>h) != 16:
            raise ValueError("a chain row's hash must be 16 bytes")
        memcpy(hp + 16 * i, PyBytes_AS_STRING(<bytes>h), 16)
        body = row[2]
        if type(body) is not bytes:
            raise TypeError("a chain row's body must be bytes")
        if PyBytes_GET_SIZE(<bytes>body) < intern_min:
            bodies[i] = body
        elif cache is None:
            bodies[i] = intern(h, body)
        else:
            cached = cache.get(h)
            if cached is None:
                cache.put(h, body)
                cached = body
            bodies[i] = cached
        if row[4] is not None:
            status[i] = row[4]
        meta = row[5]
        if type(meta) is bytes and srt_memmem(
            PyBytes_AS_STRING(<bytes>meta), <size_t>PyBytes_GET_SIZE(<bytes>meta),
            b'"pinned":true', 13,
        ) != NULL:
            pp[i] = 1
    return ids, hashes, bodies, status, pinned


def short_bytes(list bodies not None, Py_ssize_t limit, Py_ssize_t extra):
    """``sum(len(b) + extra for b in bodies if len(b) < limit)``."""
    cdef Py_ssize_t total = 0, n
    cdef object b
    for b in bodies:
        if type(b) is not bytes:
            raise TypeError("bodies must be bytes")
        n = PyBytes_GET_SIZE(<bytes>b)
        if n < limit:
            total += n + extra
    return total


# -- PostgreSQL chain reads --------------------------------------------------------------
# The PostgreSQL engine walks a window of node rows in memory (``walk_chain``), asks for
# the walked nodes' message bodies by id, and joins the two: in Python, the id list,
# the lookup dict and the row tuples cost more than the walk itself.


def id_array(list rows not None, Py_ssize_t col):
    """The integers in column ``col`` of ``rows`` (tuples) as a PostgreSQL array literal,
    ``"{1,2,3}"``. Anything but an ``int`` there is a ``TypeError``."""
    cdef list parts = []
    cdef object row, v
    for row in rows:
        v = (<tuple?>row)[col]
        if type(v) is not int:
            raise TypeError("an id must be an int")
        parts.append(str(v))
    return "{" + ",".join(parts) + "}"


def join_bodies(list walked not None, list bodies not None):
    """The chain rows ``(id, hash, body, prefix, status, meta, depth)`` of ``walked``
    (node rows ``(id, parent, depth, message, prefix, status, meta)``) with each
    message's hash and body from ``bodies`` (rows ``(message, hash, body)`` in any
    order); ``None`` if a message is not among ``bodies``."""
    cdef dict stored = {}
    cdef list out = []
    cdef object row, m
    cdef tuple n, b
    for row in bodies:
        b = <tuple?>row
        stored[b[0]] = b
    for row in walked:
        n = <tuple?>row
        m = stored.get(n[3])
        if m is None:
            return None
        b = <tuple>m
        out.append((n[0], b[1], b[2], n[4], n[5], n[6], n[2]))
    return out


# -- an append's plain message ---------------------------------------------------------
#
# The commonest message appended, {"role": r, "content": "..."}, in one call: its
# canonical bytes (``message.canonical_text``'s) and its digest, with no Python frame.

cdef extern from *:
    """
    /* The bytes JSON (json.dumps, ensure_ascii=False) adds to escape byte c of UTF-8
       text: 1 for \\" \\\\ \\b \\f \\n \\r \\t, 5 for the other controls (\\u00XX). */
    static const unsigned char srt_json_extra[256] = {
        5,5,5,5,5,5,5,5,1,1,1,5,1,1,5,5, 5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,
        0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
        0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,
    };
    #ifdef SRT_SSE2
    /* Nonzero when one of the 16 bytes at s is a control, a quote or a backslash. */
    static inline int srt_json_odd16(const unsigned char *s) {
        const __m128i v = _mm_loadu_si128((const __m128i *)s);
        return _mm_movemask_epi8(_mm_or_si128(
            _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v),
            _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                         _mm_cmpeq_epi8(v, _mm_set1_epi8('\\\\')))));
    }
    #endif
    static Py_ssize_t srt_json_extra_bytes(const unsigned char *s, Py_ssize_t n) {
        Py_ssize_t extra = 0, i = 0;
    #ifdef SRT_SSE2
        for (; n - i >= 16; i += 16)  /* (16 plain bytes at a time) */
            if (srt_json_odd16(s + i))
                for (int k = 0; k < 16; k++) extra += srt_json_extra[s[i + k]];
    #endif
        for (; i < n; i++) extra += srt_json_extra[s[i]];
        return extra;
    }
    /* Write s (n bytes, `extra` of escapes to add) JSON-escaped to out; return the end. */
    static char *srt_json_escape(char *out, const unsigned char *s, Py_ssize_t n,
                                 Py_ssize_t extra) {
        static const char hex[] = "0123456789abcdef";
        if (extra == 0) {
            memcpy(out, s, (size_t)n);
            return out + n;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
    #ifdef SRT_SSE2
            for (; n - i >= 16 && !srt_json_odd16(s + i); i += 16, out += 16)
                memcpy(out, s + i, 16);  /* (16 plain bytes at a time) */
            if (i == n) break;
    #endif
            unsigned char c = s[i];
            switch (srt_json_extra[c]) {
            case 0: *out++ = (char)c; break;
            case 1:
                *out++ = '\\\\';
                *out++ = c == '"' ? '"' : c == '\\\\' ? '\\\\' : c == '\\b' ? 'b'
                       : c == '\\f' ? 'f' : c == '\\n' ? 'n' : c == '\\r' ? 'r' : 't';
                break;
            default:
                *out++ = '\\\\'; *out++ = 'u'; *out++ = '0'; *out++ = '0';
                *out++ = hex[c >> 4]; *out++ = hex[c & 15];
            }
        }
        return out;
    }
    """
    Py_ssize_t srt_json_extra_bytes(const unsigned char* s, Py_ssize_t n)
    char* srt_json_escape(char* out, const unsigned char* s, Py_ssize_t n, Py_ssize_t extra)

from cpython.dict cimport PyDict_GetItem, PyDict_Size
from cpython.unicode cimport PyUnicode_AsUTF8String

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL


cdef str _ROLE = "role"
cdef str _CONTENT = "content"


def plain_prepared(object msg, dict heads not None, Py_ssize_t max_bytes, object digest, object cls):
    """``cls((digest(body), body, None))`` (a tuple of the type ``cls``) where ``body`` is
    ``message.canonical_text(msg, max_bytes)`` and ``msg`` is a dict of exactly ``role``
    (a str key of ``heads``, whose value is the body's start) and ``content`` (a str);
    ``None`` for any other message, and for one the Python path would refuse (longer
    than ``max_bytes``, a lone surrogate), which then goes through it: same bytes, same
    errors."""
    if type(msg) is not dict or PyDict_Size(msg) != 2:
        return None
    # (with errors, as ``dict.get``: a key whose ``__eq__`` raises raises here too)
    cdef PyObject* role = PyDict_GetItemWithError(msg, _ROLE)
    cdef PyObject* content = PyDict_GetItemWithError(msg, _CONTENT)
    if role is NULL or content is NULL or type(<object>role) is not str:
        return None
    if type(<object>content) is not str:
        return None
    cdef PyObject* head = PyDict_GetItem(heads, <object>role)
    if head is NULL or type(<object>head) is not bytes:
        return None
    cdef object text = <object>content
    if PyUnicode_GET_LENGTH(text) > max_bytes:
        return None
    cdef bytes utf8
    cdef const unsigned char* s
    cdef Py_ssize_t n
    if PyUnicode_IS_ASCII(text):
        s = <const unsigned char*>PyUnicode_DATA(text)
        n = PyUnicode_GET_LENGTH(text)
    else:
        try:
            utf8 = PyUnicode_AsUTF8String(text)
        except UnicodeEncodeError:
            return None  # a lone surrogate: the Python path says which
        s = <const unsigned char*>PyBytes_AS_STRING(utf8)
        n = PyBytes_GET_SIZE(utf8)
    cdef bytes start = <bytes>head
    cdef Py_ssize_t h = PyBytes_GET_SIZE(start)
    cdef Py_ssize_t extra = srt_json_extra_bytes(s, n)
    cdef Py_ssize_t size = h + 2 + n + extra + 1  # head, the quotes, the text, "}"
    if size > max_bytes:
        return None
    cdef bytes body = PyBytes_FromStringAndSize(NULL, size)
    cdef char* p = PyBytes_AS_STRING(body)
    memcpy(p, PyBytes_AS_STRING(start), h)
    p += h
    p[0] = b'"'
    p = srt_json_escape(p + 1, s, n, extra)
    p[0] = b'"'
    p[1] = b'}'
    return tuple.__new__(cls, (digest(body), body, None))


def new_nodes(object prepared, list prefixes not None, Py_ssize_t plain, object status, object cls):
    """``[cls((h, body, prefix, meta, st)) ...]`` for each ``(h, body, meta)`` of
    ``prepared`` and its prefix hash in ``prefixes`` (as many), ``st`` being ``None``
    for the first ``plain`` and ``status`` after them: a commit's nodes, each a tuple of
    the type ``cls`` (a NamedTuple's own constructor is a Python call)."""
    cdef list out = []
    cdef Py_ssize_t i = 0
    cdef object p, h, body, meta
    if len(prepared) != len(prefixes):
        raise ValueError("a prefix hash for each prepared message, no more")
    for p in prepared:
        h, body, meta = p
        out.append(tuple.__new__(cls, (h, body, prefixes[i], meta, None if i < plain else status)))
        i += 1
    return out


def first_items(object rows):
    """The first item of each of ``rows``, in a list."""
    return [row[0] for row in rows]
