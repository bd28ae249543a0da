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
        SRT_UTF8_NARROW
    object srt_decode_utf8_as(const char* data, Py_ssize_t n, int how)
    int srt_json_text(const unsigned char* s, Py_ssize_t n)
    int srt_utf8_valid_at(const unsigned char* s, Py_ssize_t n, int level)
    int srt_utf8_level()
    int srt_utf8_valid_scalar(const unsigned char* p, const unsigned char* end)

import collections.abc as _abc
import hashlib
import json as _json
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


# The rest of the core, in this order (a textual include: one module, one namespace;
# split only to keep each file readable):
include "_core_assemble.pxi"
include "_core_caches.pxi"
include "_core_segments.pxi"
include "_core_reads.pxi"
include "_core_append.pxi"
include "_core_gc.pxi"
