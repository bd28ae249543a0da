# gc's mark (``store/sqlite/gc.py``): one pass over the node rows, newest first.

from cpython.set cimport PySet_Add, PySet_Contains, PySet_Discard
from array import array as _array


def mark_nodes(object rows, object roots):
    """One pass over node rows ``(id, parent, at, len, ...)``, newest first (ids
    descending): a row is live if its id is in ``roots`` or is the parent of a live row
    met before it. A node is stored after its parent, so the pass meets every child of a
    node before the node itself.

    Returns ``(dead, starts, lens, counts)``: the rows not live, in the order met; and of
    the bodies the rows name (``(at, len)``), the distinct starts ascending, each one's
    length (the largest met) and how many rows name it, as three ``array('q')``.
    ``None`` if a live row's parent id is not smaller than its own (the pass cannot
    tell then). ``TypeError`` for a row that is not a tuple of an int id, an int or
    ``None`` parent and an int place, ``ValueError`` for one of fewer than four items or
    a place out of ``[0, 2**60]`` (a damaged node row)."""
    cdef set pending = set(roots)
    cdef list dead = []
    cdef Py_ssize_t n = 0, cap = 4096, i, m = 0
    cdef long long at, ln
    cdef long long* buf = <long long*>PyMem_Malloc(<size_t>cap * 2 * sizeof(long long))
    cdef long long* out = NULL
    cdef long long* grown
    cdef bint ordered = True
    cdef tuple row
    cdef object item, nid, parent, a, b
    if buf == NULL:
        raise MemoryError()
    try:
        for item in rows:
            row = <tuple?>item
            if len(row) < 4:
                raise ValueError("a node row has fewer than four items")
            nid = row[0]
            parent = row[1]
            a = row[2]
            b = row[3]
            if type(nid) is not int or type(a) is not int or type(b) is not int or (
                parent is not None and type(parent) is not int
            ):
                raise TypeError("a node row's id, parent and place must be ints")
            if not (0 <= a <= _SPAN_LIMIT and 0 <= b <= _SPAN_LIMIT):
                raise ValueError("a body's place is out of range")
            if n == cap:
                grown = <long long*>PyMem_Realloc(buf, <size_t>cap * 4 * sizeof(long long))
                if grown == NULL:
                    raise MemoryError()
                buf = grown
                cap *= 2
            at = a
            ln = b
            buf[2 * n] = at
            buf[2 * n + 1] = ln
            if n and (at < buf[2 * n - 2] or (at == buf[2 * n - 2] and ln < buf[2 * n - 1])):
                ordered = False
            n += 1
            if PySet_Contains(pending, nid):
                PySet_Discard(pending, nid)
                if parent is not None:
                    if parent >= nid:
                        return None
                    PySet_Add(pending, parent)
            else:
                dead.append(row)
        if not ordered:
            qsort(buf, <size_t>n, 2 * sizeof(long long), srt_span_cmp)
        out = <long long*>PyMem_Malloc(<size_t>(n if n else 1) * 3 * sizeof(long long))
        if out == NULL:
            raise MemoryError()
        for i in range(n):  # (sorted by start, then length: a start's last is its largest)
            if m and out[m - 1] == buf[2 * i]:
                out[n + m - 1] = buf[2 * i + 1]
                out[2 * n + m - 1] += 1
            else:
                out[m] = buf[2 * i]
                out[n + m] = buf[2 * i + 1]
                out[2 * n + m] = 1
                m += 1
        starts, lens, counts = _array("q"), _array("q"), _array("q")
        starts.frombytes(PyBytes_FromStringAndSize(<char*>out, m * sizeof(long long)))
        lens.frombytes(PyBytes_FromStringAndSize(<char*>(out + n), m * sizeof(long long)))
        counts.frombytes(PyBytes_FromStringAndSize(<char*>(out + 2 * n), m * sizeof(long long)))
        return dead, starts, lens, counts
    finally:
        PyMem_Free(buf)
        PyMem_Free(out)
