# Part of srt._core (included by _core.pyx, in order: see there).
# Assembling bodies: ``assemble``, and ``OutputBuffer``, which keeps the bodies it built
# to grow them in place.

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
