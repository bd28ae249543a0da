# Part of srt._core (included by _core.pyx, in order: see there).
# Reading history back: the UTF-8 and message decoders, text fragments, cutting and
# checking a chain's bodies, walking its nodes, heap spans, ``Body``, ``split_chain``.

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


def decode_utf8(bytes data not None, bint vector=True, bint fallback=True, bint avx2=True):
    """``data.decode("utf-8")``, by the decoder ``decode_messages`` uses (the same str,
    the same ``UnicodeDecodeError``): 32 or 16 bytes at a time where the CPU can
    (``vector``; ``avx2=False`` keeps to the 16-byte loops of CPUs without AVX2), else
    character by character (so tests can hold each to ``decode``). Where srt's decoder
    does not take the bytes it hands them to CPython's; ``fallback=False`` raises
    ``ValueError`` there instead (so tests can see valid text never go there)."""
    cdef int how = (SRT_UTF8_VECTOR if vector else 0) | (0 if fallback else SRT_UTF8_OWN)
    if not avx2:
        how |= SRT_UTF8_NARROW
    return srt_decode_utf8_as(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), how)


def utf8_valid(bytes data not None, bint vector=True, bint avx2=True):
    """Whether ``data.decode("utf-8")`` would succeed, by the check ``text_frags`` makes:
    32 or 16 bytes at a time where the CPU can (``vector``; ``avx2=False`` keeps to the
    16-byte loop), else byte by byte (so tests can hold each to ``decode``)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    return bool(srt_utf8_valid_at(p, n, (2 if avx2 else 1) if vector else 0))


def utf8_vector_width():
    """The bytes a step of the vector UTF-8 loops this CPU runs: 32 (AVX2), 16 (SSSE3)
    or 0 (none: the scalar loops)."""
    return (0, 16, 32)[srt_utf8_level()]


# Whether the JSON string bytes s[0..n) show a character that is not whitespace
# (str.isspace): an ASCII one other than a space, an escape of one (a quote, a backslash,
# a backspace), or the lead byte of a character outside the Unicode spaces' leads (0xC2:
# U+0085, U+00A0; 0xE1, 0xE2, 0xE3: U+1680, U+2000-205F, U+3000). 0 for a text of
# whitespace alone, and for one whose other characters all escape as \u00xx or share
# those leads: render decides those. Most texts show one in their first byte.
cdef inline bint _visible(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef unsigned char c, e
    while i < n:
        c = s[i]
        if c == 92:  # a backslash: \t \n \r \f are spaces, \u00xx not looked into
            if i + 1 >= n:
                return 0
            e = s[i + 1]
            if e == 117:  # u
                i += 6
                continue
            if e == 116 or e == 110 or e == 114 or e == 102:
                i += 2
                continue
            return 1  # \" \\ \b
        if 0x21 <= c <= 0x7E:
            return 1
        if c >= 0xC3 and c != 0xE1 and c != 0xE2 and c != 0xE3:
            return 1
        i += 1
    return 0


#: The roles of a plain text message, in the order of ``text_frags``' codes.
cdef tuple _TEXT_ROLES = (b"system", b"developer", b"user", b"assistant")


def text_frags(list bodies not None, tuple wraps not None, bint empty):
    """The fragments of the plain text messages among ``bodies``, without parsing them.

    A body that is exactly ``{"role":"<r>","content":"<text>"}``, ``r`` system, developer,
    user or assistant (code 0 to 3), its text as ``json.dumps(ensure_ascii=False)`` writes
    it (``srt_json_text``) and, unless ``empty``, showing a character that is not
    whitespace (``_visible``: a text it cannot tell goes to ``render``), gets its role's
    code and the fragment ``wraps[code][0] + <the text's JSON string> + wraps[code][1]`` (the body
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
        if (not empty and not _visible(<const unsigned char*>p + start, slen)) or not srt_json_text(
            <const unsigned char*>p + start, slen
        ):
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
        ) != NULL and meta_pinned(meta):
            pp[i] = 1
    return ids, hashes, bodies, status, pinned


def meta_pinned(bytes meta not None):
    """Whether node metadata (JSON bytes) says ``"pinned": true`` at its top level: a
    nested ``{"x": {"pinned": true}}`` pins nothing. (Parsed only where the bytes hold
    ``"pinned":true`` at all: a pinned message is rare.)"""
    try:
        found = _json.loads(meta)
    except ValueError:
        return False
    return type(found) is dict and found.get("pinned") is True


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
