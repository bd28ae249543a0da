# Part of srt._core (included by _core.pyx, in order: see there).
# ``Segments``: a send body's history as frozen chunks, each run of pieces joined once.

cdef class Segments:
    """A request body as a few large, frozen chunks, so that sending it copies nothing.

    ``build(head, parts, tail)`` returns the chunks of ``head + sep.join(parts) + tail``
    (``sep`` given when it is made, ``b""`` by default):
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
    cdef readonly bytes sep

    def __cinit__(
        self,
        Py_ssize_t min_bytes=128 * 1024,
        Py_ssize_t segment_bytes=256 * 1024,
        Py_ssize_t merge_bytes=4 * 1024 * 1024,
        bytes sep not None=b"",
    ):
        if segment_bytes < 1 or merge_bytes < segment_bytes:
            raise ValueError("need 1 <= segment_bytes <= merge_bytes")
        self.sep = sep
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
        cdef Py_ssize_t seplen = PyBytes_GET_SIZE(self.sep)
        if nbytes > self.merge_bytes:
            j = self._nparts
            run = 0
            while j < hi:
                m = PyBytes_GET_SIZE(<bytes>parts[j]) + (seplen if j else 0)
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
        _copy_parts(PyBytes_AS_STRING(seg), parts, self._nparts, hi, None, self.sep)
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
        """The chunks of ``head + sep.join(parts) + tail`` (with ``marks`` applied)."""
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
        waiting = _parts_bytes(parts, self._nparts, limit, None, self.sep)
        total = (
            PyBytes_GET_SIZE(head) + self._frozen + waiting
            + _parts_bytes(parts, limit, n, marks, self.sep) + PyBytes_GET_SIZE(tail)
        )
        if not self._segs and total < self.min_bytes:
            last = PyBytes_FromStringAndSize(NULL, total)
            off = PyBytes_GET_SIZE(head)
            memcpy(PyBytes_AS_STRING(last), PyBytes_AS_STRING(head), off)
            off += _copy_parts(PyBytes_AS_STRING(last) + off, parts, 0, n, marks, self.sep)
            memcpy(PyBytes_AS_STRING(last) + off, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
            self.copied += total
            self._parts = None
            return [last]
        if waiting >= self.segment_bytes or (not self._segs and waiting):
            self._freeze(parts, limit, waiting)
        total = _parts_bytes(parts, self._nparts, n, marks, self.sep) + PyBytes_GET_SIZE(tail)
        last = PyBytes_FromStringAndSize(NULL, total)
        off = _copy_parts(PyBytes_AS_STRING(last), parts, self._nparts, n, marks, self.sep)
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
