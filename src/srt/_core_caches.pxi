# Part of srt._core (included by _core.pyx, in order: see there).
# Packed hashes (``HashSeq``), the byte-budgeted ``FragmentCache``, and the helpers
# ``Segments`` shares.

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


cdef Py_ssize_t _parts_bytes(
    list parts, Py_ssize_t lo, Py_ssize_t hi, dict marks, bytes sep
) except -1:
    """Bytes of parts ``lo`` to ``hi`` (``marks`` applied), each but part 0 after ``sep``."""
    cdef Py_ssize_t i, total = 0
    cdef object part
    for i in range(lo, hi):
        part = parts[i]
        if marks is not None and i in marks:
            part = marks[i]
        if part is None:
            raise TypeError("parts must be bytes, not None")
        total += PyBytes_GET_SIZE(<bytes?>part)
    if hi > lo:
        total += (hi - lo - (lo == 0)) * PyBytes_GET_SIZE(sep)
    return total


cdef Py_ssize_t _copy_parts(
    char* dst, list parts, Py_ssize_t lo, Py_ssize_t hi, dict marks, bytes sep
) except -1:
    """Copy parts ``lo`` to ``hi`` to ``dst`` as ``_parts_bytes`` counts them."""
    cdef Py_ssize_t i, m, off = 0
    cdef Py_ssize_t seplen = PyBytes_GET_SIZE(sep)
    cdef const char* sepp = PyBytes_AS_STRING(sep)
    cdef object part
    for i in range(lo, hi):
        part = parts[i]
        if marks is not None and i in marks:
            part = marks[i]
        if i and seplen:
            memcpy(dst + off, sepp, seplen)
            off += seplen
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
